"""features/stream.py: streamed windowed functionals against the offline extraction of the same audio,
the rows each chunk completes, the lookahead, bad chunks, abandoning a stream, and flat memory."""

from __future__ import annotations

import gc
import re
import threading
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from emotools import synth
from emotools.features import (
    SAMPLE_RATE,
    FeatureError,
    FeatureSpec,
    StreamingExtractor,
    extract_signal,
    max_lookahead,
    measure_lookahead,
)
from emotools.features import stream as stream_module

SR = SAMPLE_RATE
SPEC = FeatureSpec(level="windowed", window=1.0, hop=0.1)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    # Built-in synthesized speech; cut so that the last windows need the end of the audio (close() emits rows).
    audio = synth.render_session(0, 0, minutes=0.5, seed=1).audio
    return audio[: 30 * SR + SR // 20]  # 30.05 s: the window ending at 30.0 s is complete, but not yet out


@pytest.fixture(scope="module")
def offline(speech) -> pd.DataFrame:
    return extract_signal(speech, SR, SPEC)


def stream_rows(audio: np.ndarray, sizes, spec: FeatureSpec = SPEC, sr: int = SR) -> tuple[list, pd.DataFrame]:
    """Push ``audio`` in chunks of ``sizes``; the (samples pushed, rows) of each push, and close()'s rows."""
    pushed, bounds = [], np.cumsum([0, *sizes])
    assert bounds[-1] == audio.size
    with StreamingExtractor(spec, sr) as stream:
        for begin, end in zip(bounds[:-1], bounds[1:]):
            pushed.append((int(end), stream.push(audio[begin:end])))
        last = stream.close()
    return pushed, last


def chunks_of(size: int, total: int) -> list[int]:
    return [size] * (total // size) + ([total % size] if total % size else [])


def random_chunks(total: int, seed: int) -> list[int]:
    """Sizes from 1 sample to 2.5 windows, with a run of single samples."""
    rng = np.random.default_rng(seed)
    sizes = [1] * 500
    while sum(sizes) < total:
        sizes.append(int(rng.choice([1, 2, 7, 159, 161, 1600, 4321, 40000])))
    sizes[-1] -= sum(sizes) - total
    return [s for s in sizes if s > 0]


def assert_same_rows(streamed: pd.DataFrame, offline: pd.DataFrame) -> None:
    """Same windows, same times; features within |a - b| <= 1e-5 + 1e-5 |b| (absolute for small values,
    relative for large-valued ones such as F0 in Hz or formant bandwidths)."""
    assert list(streamed.columns) == list(offline.columns)
    assert len(streamed) == len(offline)
    np.testing.assert_array_equal(streamed["start"], offline["start"])
    np.testing.assert_array_equal(streamed["end"], offline["end"])
    assert (streamed.dtypes.iloc[2:] == np.float32).all()
    np.testing.assert_allclose(streamed.iloc[:, 2:].to_numpy(np.float64), offline.iloc[:, 2:].to_numpy(np.float64),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [160, 1600, 16000, "random"])
def test_streamed_rows_equal_the_offline_extraction(speech, offline, size) -> None:
    sizes = random_chunks(speech.size, seed=5) if size == "random" else chunks_of(size, speech.size)
    pushed, last = stream_rows(speech, sizes)
    assert len(last) >= 1  # the windows that only the end of the audio completes
    assert_same_rows(pd.concat([rows for _, rows in pushed] + [last], ignore_index=True), offline)
    assert len(offline) == int(np.floor((speech.size / SR - SPEC.window - 0.04) / SPEC.hop + 1e-9)) + 1


def test_each_push_returns_the_windows_it_completed(speech) -> None:
    # A row comes out once its audio (and openSMILE's lookahead) is in, never before, and never later than
    # the bound: with 10 ms chunks, every window whose end + max_lookahead has been pushed is out.
    bound = max_lookahead(SPEC)
    emitted = 0
    pushed, _ = stream_rows(speech[: 12 * SR], chunks_of(160, 12 * SR))
    for samples, rows in pushed:
        seconds = samples / SR
        assert (rows["end"] + 0.05 <= seconds + 1e-9).all()  # the last frame's 60 ms analysis window is in
        emitted += len(rows)
        due = int(np.floor((seconds - bound - SPEC.window) / SPEC.hop + 1e-9)) + 1
        assert emitted >= due
    assert emitted == 110  # windows starting at 0.0 .. 10.9 s; the rest wait for more audio or the end


def test_lookahead_is_measured_and_within_the_derived_bound(speech) -> None:
    measured = measure_lookahead(speech[: 10 * SR], SR, SPEC, step=160)
    assert len(measured) == 90
    np.testing.assert_allclose(measured["end"] - measured["start"], SPEC.window)
    # 50 ms analysis frame + 1 frame of sma3 + at least one frame of the Viterbi pitch smoother
    assert measured["lookahead"].min() >= 0.07 - 1e-9
    assert measured["lookahead"].max() <= max_lookahead(SPEC) + 1e-9
    assert max_lookahead(FeatureSpec(feature_set="GeMAPSv01b")) == 0.46
    with pytest.raises(ValueError, match="ComParE_2016"):
        max_lookahead(FeatureSpec(feature_set="ComParE_2016"))


def test_a_rate_other_than_16_khz_is_handed_to_opensmile_like_offline(speech) -> None:
    audio = speech[: 6 * SR : 2].copy()  # 8 kHz
    pushed, last = stream_rows(audio, chunks_of(1234, audio.size), sr=8000)
    assert_same_rows(pd.concat([rows for _, rows in pushed] + [last], ignore_index=True),
                     extract_signal(audio, 8000, SPEC))


@pytest.mark.parametrize("chunk, message", [
    (np.zeros(100, dtype=np.int16), "expected float samples in [-1, 1], got dtype int16"),
    (np.zeros((2, 100), dtype=np.float32), "expected a mono chunk (samples,), got shape (2, 100)"),
    (np.array([0.1, np.nan], dtype=np.float32), "NaN or infinite samples in the chunk at 1.000 s"),
    (np.array([0.1, np.inf]), "NaN or infinite samples in the chunk at 1.000 s"),
])
def test_a_bad_chunk_is_refused_and_the_stream_goes_on(speech, chunk, message) -> None:
    audio = speech[: 3 * SR]
    with StreamingExtractor(SPEC, name="mic-1") as stream:
        rows = [stream.push(audio[:SR])]
        with pytest.raises(FeatureError, match=f"^{re.escape('mic-1: ' + message)}$"):
            stream.push(chunk)
        assert stream.samples == SR  # nothing of the bad chunk went in
        rows += [stream.push(audio[SR:]), stream.close()]
    assert_same_rows(pd.concat(rows, ignore_index=True), extract_signal(audio, SR, SPEC))


def test_specs_rates_and_closed_streams_are_checked() -> None:
    with pytest.raises(FeatureError, match="streaming needs a windowed spec, got level 'lld'"):
        StreamingExtractor(FeatureSpec(level="lld"))
    with pytest.raises(FeatureError, match="sample rate must be a positive integer, got 0"):
        StreamingExtractor(SPEC, 0)
    stream = StreamingExtractor(SPEC)
    assert stream.push(np.zeros(0, dtype=np.float32)).shape == (0, 90)
    assert len(stream.close()) == 0  # too short for any window
    for action in (lambda: stream.push(np.zeros(10)), stream.close):
        with pytest.raises(FeatureError, match="^<stream>: the stream is closed$"):
            action()


def running_streams() -> int:
    return sum(t.name == "opensmile-stream" for t in threading.enumerate())


def test_abandoned_streams_leave_no_thread_and_no_instance(speech) -> None:
    before = running_streams()
    with StreamingExtractor(SPEC) as stream:
        stream.push(speech[:SR])
        assert running_streams() == before + 1
    assert running_streams() == before and stream.closed
    stream.abort()  # idempotent
    abandoned = StreamingExtractor(SPEC)
    abandoned.push(speech[: 2 * SR])
    engine = abandoned._engine
    del abandoned
    gc.collect()
    assert running_streams() == before
    assert engine._smile._smileobj is None  # smile_free ran


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def test_memory_stays_flat_over_ten_minutes_in_one_second_chunks(speech) -> None:
    # 10 minutes of the synthesized speech (tiled), pushed second by second. openSMILE's default external source
    # keeps the whole signal (float32: 3.84 MB a minute, 38 MB for 10 minutes); here the wave level is a ring
    # buffer, rows are handed out at each push, and neither the process nor the Python heap grows with the stream.
    # The process's resident size is read once a minute after the first two: a stream that kept its audio would
    # grow by ~3.8 MB every minute, while the allocator's one-off steps (other tests share the process) are rare.
    audio = np.tile(speech[: 30 * SR], 20)
    rows, rss = 0, []
    with StreamingExtractor(SPEC) as stream:
        for second in range(600):
            rows += len(stream.push(audio[second * SR:(second + 1) * SR]))
            assert len(stream._engine.rows) == 0  # nothing kept between pushes
            if second == 120:
                tracemalloc.start()
                heap = tracemalloc.get_traced_memory()[0]
            if second >= 120 and second % 60 == 0:
                rss.append(rss_bytes())
        python_growth = tracemalloc.get_traced_memory()[1] - heap
        tracemalloc.stop()
        rss.append(rss_bytes())
        rows += len(stream.close())
    assert rows == int(np.floor((600 - SPEC.window - 0.04) / SPEC.hop + 1e-9)) + 1 == 5990
    assert python_growth < 2_000_000  # peak over 8 minutes, vs ~30 MB if the audio were kept
    steps = np.diff(rss)
    assert len(steps) == 8
    assert (steps > 1_000_000).sum() <= 2, steps  # kept audio: every minute's step ~3.8 MB
    assert rss[-1] - rss[0] < 15_000_000, steps  # kept audio: ~30 MB over these 8 minutes


def test_ring_buffer_include_is_in_the_cache_folder() -> None:
    path = stream_module._source_config(SR)
    assert path.parent.name == "opensmile" and "writer.levelconf.isRb = 1" in path.read_text()
    assert f"writer.levelconf.nT = {int(stream_module.RING_SECONDS * SR)}" in path.read_text()
