"""emotools.stream and ``predict --stream``: streamed rows against the offline prediction of the same audio (exact
for global normalization without post-processing; the causal chain against independent computations of it), the
latency of every row, raw PCM on stdin, bounded memory over 10 minutes, and refusals as one line."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures_main_job import run_smoke_main_job

from emotools import models, predict, synth, training
from emotools.__main__ import main
from emotools.audio import SAMPLE_RATE, read_audio, write_audio
from emotools.features import FeatureSpec, extract_signal, max_lookahead
from emotools.postprocess import PostProcessor, TargetSteps
from emotools.sequences import Normalizer, make_record
from emotools.stream import CHUNK_S, StreamPredictor, causal_lag, causal_postprocess, open_stream

SR = SAMPLE_RATE
SPEC = FeatureSpec(level="windowed", window=1.0, hop=0.1)
TARGETS = ["arousal", "valence"]
CHUNK = round(CHUNK_S * SR)


def _session(index: int, minutes: float = 0.5) -> synth.Session:
    return synth.render_session(index, 0, minutes=minutes, seed=index)


def _record(index: int):
    """Real openSMILE features of a built-in corpus session, labelled with its latent trajectory."""
    session = _session(index)
    features = extract_signal(session.audio, SR, SPEC)
    time = ((features["start"] + features["end"]) / 2).to_numpy()
    latent = session.latent
    labels = pd.DataFrame({"time": time, **{t: np.interp(time, latent["time"], latent[t]) for t in TARGETS}})
    return make_record(f"s{index}", features, labels, session=f"s{index}", speaker=f"p{index}")


@pytest.fixture(scope="module")
def trained_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A causal TCN trained by ``training.fit`` on three sessions of the built-in corpus, global normalization."""
    home = tmp_path_factory.mktemp("stream-model")
    records = [_record(k) for k in range(1, 4)]
    options = training.FitOptions(targets=tuple(TARGETS), epochs=2, chunk_s=None, normalization="global",
                                  model_options={"hidden": 16, "levels": 3})
    trained = training.fit("tcn:causal", records[:2], records[2:], options, progress=False, device="cpu")
    return trained.save(home / "model.pt")


def _folder(home: Path, model_path: Path, post: PostProcessor | None = None) -> Path:
    return predict.save_predictor(home, SPEC, {"arousal+valence": model_path},
                                  post.to_dict() if post is not None else None, architecture="tcn:causal")


@pytest.fixture(scope="module")
def plain(trained_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _folder(tmp_path_factory.mktemp("plain") / "predictor", trained_path)


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    """About 30 s of a session the model never saw."""
    return _session(0).audio


def _stream(stream: StreamPredictor, audio: np.ndarray, size: int = CHUNK) -> tuple[list[pd.DataFrame], pd.DataFrame]:
    with stream:
        pushed = [stream.push(audio[i : i + size]) for i in range(0, len(audio), size)]
        return pushed, stream.close()


def test_streamed_rows_equal_the_offline_prediction(plain: Path, audio: np.ndarray) -> None:
    stream = open_stream(plain)
    assert stream.lookahead_frames == 0 and "global" in stream.normalization_note()
    pushed, last = _stream(stream, audio)
    rows = pd.concat([*pushed, last], ignore_index=True)
    offline = predict.load_predictor(plain).predict_signal(audio)
    assert list(rows.columns) == ["time", *TARGETS, "latency_s"]
    np.testing.assert_array_equal(rows["time"], offline["time"])
    np.testing.assert_allclose(rows[TARGETS], offline[TARGETS], atol=1e-5, rtol=0)
    assert rows[TARGETS].std().min() > 1e-3  # the prediction moves: the comparison means something
    assert stream.info()["frames"] == len(offline)


@pytest.fixture(scope="module")
def main_job_stream(run_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The streaming predictor the smoke main job writes (``results/models/realtime-stream``)."""
    return run_smoke_main_job("realtime", run_dirs, tmp_path_factory.mktemp("main-job-realtime")) / "models" / \
        "realtime-stream"


def test_the_main_jobs_streaming_predictor_streams_what_it_predicts_offline(main_job_stream: Path, audio: np.ndarray,
                                                                             tmp_path: Path) -> None:
    wav = write_audio(tmp_path / "talk.wav", audio[: 12 * SR], SR)
    out = tmp_path / "talk.csv"
    assert predict.cli([str(wav), "--stream", "--checkpoint", str(main_job_stream), "--out", str(out)]) == 0
    rows = pd.read_csv(out)
    predictor = predict.load_predictor(main_job_stream)
    assert ":causal" in predictor.info["architecture"]
    offline = predictor.predict_signal(read_audio(wav))  # the samples the file holds (16-bit PCM)
    assert list(rows.columns) == ["time", *TARGETS, "latency_s"]
    np.testing.assert_allclose(rows["time"], offline["time"], atol=1e-9, rtol=0)  # as written in the CSV
    np.testing.assert_allclose(rows[TARGETS], offline[TARGETS], atol=1e-5, rtol=0)
    assert rows[TARGETS].std().min() > 1e-4 and (rows["latency_s"] > 0).all()


def test_latency_is_measured_within_the_algorithmic_bounds_and_rows_come_in_order(plain, audio) -> None:
    stream = open_stream(plain)
    low, high = stream.latency_bounds()
    assert (low, high) == (SPEC.window / 2, SPEC.window / 2 + max_lookahead(SPEC))
    pushed, last = _stream(stream, audio, size=160)  # 10 ms pushes: latency measured to 10 ms
    during = pd.concat(pushed, ignore_index=True)
    assert len(during) > 200
    # every row waits for its window's end plus openSMILE's 50 ms analysis frame at least, and no longer than the bound
    assert during["latency_s"].min() >= low + 0.05 - 1e-9
    assert during["latency_s"].max() <= high + 0.01 + 1e-9
    times = pd.concat([during, last])["time"].to_numpy()
    np.testing.assert_allclose(np.diff(times), SPEC.hop, atol=1e-6)
    # the latency column is the audio pushed when the row came out minus the frame's time
    ends = np.cumsum([len(audio[i : i + 160]) for i in range(0, len(audio), 160)]) / SR
    emitted_at = np.repeat(ends, [len(p) for p in pushed])
    np.testing.assert_allclose(during["latency_s"], emitted_at - during["time"], atol=1e-6)
    np.testing.assert_allclose(last["latency_s"], len(audio) / SR - last["time"], atol=1e-6)


# --------------------------------------------------------------------------- the causal post-processing chain


def _independent_causal(steps: TargetSteps, p: np.ndarray) -> np.ndarray:
    """The causal chain of the module docstring, written out frame by frame."""
    T, out = len(p), np.empty(len(p))
    filtered = np.empty(T)
    y1 = y2 = p[0]
    for i in range(T):
        if steps.smoothing == "median":
            w = int(steps.smoothing_param) | 1
            filtered[i] = np.median([p[max(0, j)] for j in range(i - w + 1, i + 1)])
        elif steps.smoothing == "exponential":
            a = steps.smoothing_param
            y1 = a * p[i] + (1 - a) * y1
            y2 = a * y1 + (1 - a) * y2
            filtered[i] = y2
        else:
            filtered[i] = p[i]
    lag = {"median": (int(steps.smoothing_param) | 1) // 2,
           "exponential": round(2 * (1 - steps.smoothing_param) / max(steps.smoothing_param, 1e-9))}
    shift = steps.delay_frames - lag.get(steps.smoothing, 0)
    for t in range(T):
        v = filtered[min(T - 1, max(0, t - shift))]
        v = v + (steps.offset or 0.0)
        if steps.scale is not None:
            v = (v - steps.scale[0]) * steps.scale[1] + steps.scale[0]
        out[t] = v
    return out


CHAIN = PostProcessor(("arousal", "valence"), 10.0, [
    TargetSteps(delay_frames=8, smoothing="median", smoothing_param=7, offset=0.05, scale=(0.0, 1.3)),  # shift +5
    TargetSteps(delay_frames=2, smoothing="exponential", smoothing_param=0.3, offset=-0.1),  # lag 5: lookahead 3
])


def test_causal_chain_against_frame_by_frame_computation_and_offline() -> None:
    rng = np.random.default_rng(0)
    p = np.cumsum(rng.standard_normal((300, 2)), axis=0) * 0.05
    got = causal_postprocess(CHAIN, p)
    assert [causal_lag(s) for s in CHAIN.steps] == [3, 5]
    for k, steps in enumerate(CHAIN.steps):
        np.testing.assert_allclose(got[:, k], _independent_causal(steps, p[:, k]), atol=1e-6)
    # a median with delay >= its half window is the offline chain except its last half window
    offline = CHAIN.apply([p])[0]
    np.testing.assert_allclose(got[:-3, 0], offline[:-3, 0], atol=1e-6)
    assert np.abs(got[:, 1] - offline[:, 1]).max() > 1e-3  # exponential smoothing cannot be causal: it differs
    # without smoothing the causal chain is the offline chain
    plain = PostProcessor(("a",), 10.0, [TargetSteps(delay_frames=4, offset=0.2, scale=(0.1, 2.0))])
    np.testing.assert_allclose(causal_postprocess(plain, p[:, :1]), plain.apply([p[:, :1]])[0], atol=1e-6)
    assert causal_postprocess(CHAIN, np.zeros((0, 2))).shape == (0, 2)


def test_streamed_rows_with_post_processing_equal_the_causal_chain_offline(trained_path, audio, tmp_path) -> None:
    folder = _folder(tmp_path / "predictor", trained_path, CHAIN)
    stream = open_stream(folder)
    assert stream.lookahead_frames == 3  # the valence chain reads 3 frames ahead; the model none
    pushed, last = _stream(stream, audio)
    rows = pd.concat([*pushed, last], ignore_index=True)
    # the offline raw prediction, unclipped (predict clips after the chain): the model on the record of the audio
    record = make_record("audio", extract_signal(audio, SR, SPEC))
    raw = training.load(trained_path).predict([record])[0]
    assert np.abs(raw).max() > 1  # clipping after the chain, not before, matters here
    expected = np.clip(causal_postprocess(CHAIN, raw), *predict.LABEL_RANGE)
    np.testing.assert_allclose(rows["time"], record.time, atol=1e-9)
    np.testing.assert_allclose(rows[TARGETS], expected, atol=1e-5, rtol=0)
    during = pd.concat(pushed)
    assert stream.latency_bounds()[0] == pytest.approx(SPEC.window / 2 + 3 * SPEC.hop)
    assert during["latency_s"].min() >= stream.latency_bounds()[0] + 0.05 - 1e-9
    assert len(last) >= 3  # the lookahead rows wait for the end
    info = stream.info()
    assert [c["shift_frames"] for c in info["causal_chain"]] == [5, -3] and info["postprocess"] == "causal"


# --------------------------------------------------------------------------- normalization


def test_session_normalization_streams_with_running_statistics(audio: np.ndarray) -> None:
    features = extract_signal(audio, SR, SPEC)
    x = features.iloc[:, 2:].to_numpy(np.float32)
    torch.manual_seed(0)
    net = models.build("tdnn:lookahead=2", n_features=x.shape[1], n_targets=2).eval()
    record = make_record("train", features.iloc[::2], session="train", speaker="train")
    trained = training.TrainedModel(net, Normalizer("session").fit([record]), tuple(TARGETS), 10.0)
    stream = StreamPredictor(predict.Predictor(SPEC, {"arousal+valence": trained}, None, {}))
    assert stream.normalization_note().startswith("running:")
    pushed, last = _stream(stream, audio, size=4321)
    rows = pd.concat([*pushed, last], ignore_index=True)
    # independent: cumulative mean and population std of the frames up to each one, then the offline forward
    x64 = x.astype(np.float64)
    n = np.arange(1, len(x) + 1)[:, None]
    mean = np.cumsum(x64, axis=0) / n
    std = np.sqrt(np.maximum(np.cumsum(x64**2, axis=0) / n - mean**2, 0))
    std = np.where(std < 1e-6, 1.0, std)
    z = ((x - mean.astype(np.float32)) / std.astype(np.float32)).astype(np.float32)
    with torch.inference_mode():
        expected = np.clip(net(torch.from_numpy(z)[None])[0].numpy(), -1, 1)
    np.testing.assert_allclose(rows[TARGETS], expected, atol=1e-4, rtol=0)


# --------------------------------------------------------------------------- the command line


def test_stdin_pcm_and_a_file_give_the_api_rows(plain: Path, audio: np.ndarray, tmp_path: Path) -> None:
    clip = audio[: 12 * SR]
    pcm = (np.clip(clip, -1, 32767 / 32768) * 32768).astype("<i2")
    exact = pcm.astype(np.float32) / 32768  # what 16-bit PCM holds
    pushed, last = _stream(open_stream(plain), exact)
    api = pd.concat([*pushed, last], ignore_index=True)
    run = subprocess.run([sys.executable, "-m", "emotools", "predict", "--stream", "-", "--checkpoint", str(plain)],
                         input=pcm.tobytes(), capture_output=True, timeout=600)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    assert "global" in run.stderr.decode() and "latency bound" in run.stderr.decode()
    piped = pd.read_csv(io.BytesIO(run.stdout))
    assert list(piped.columns) == ["time", *TARGETS, "latency_s"]
    np.testing.assert_allclose(piped.to_numpy(), api.to_numpy(), atol=1e-5)
    # a WAV file of the same samples, to a CSV with its JSON beside, at real-time pace
    wav = write_audio(tmp_path / "talk.wav", exact[: 3 * SR], SR)
    out = tmp_path / "out" / "talk.csv"
    out.parent.mkdir()
    assert predict.cli([str(wav), "--stream", "--realtime", "--checkpoint", str(plain), "--out", str(out)]) == 0
    written = pd.read_csv(out)
    same = ["time", *TARGETS]  # the latency differs: here the last rows wait for the end of a 3 s file
    np.testing.assert_allclose(written[same].to_numpy(), api[same].iloc[: len(written)].to_numpy(), atol=1e-5)
    assert len(written) == 20  # windows starting at 0.0 .. 1.9 s
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["frames"] == len(written) and meta["normalization"].startswith("global")


def _refused(argv: list[str], capsys, stdin: bytes | None = None, monkeypatch=None) -> str:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    assert predict.cli(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "Traceback" not in "".join(err), err
    return err[-1]


def test_bad_pcm_and_bad_options_are_refused_in_one_line(plain, capsys, monkeypatch, tmp_path) -> None:
    argv = ["-", "--stream", "--checkpoint", str(plain)]
    assert _refused(argv, capsys, b"\x01\x00" * 5000 + b"\x07", monkeypatch) == (
        "error: stdin: 10001 bytes are not whole s16le samples (one byte left over); "
        "expected raw 16-bit mono PCM at 16000 Hz")
    assert _refused(argv, capsys, b"", monkeypatch) == "error: stdin: no audio: expected raw s16le mono PCM at 16000 Hz"
    assert _refused(["a.wav", "b.wav", "--stream", "--checkpoint", str(plain)], capsys) == \
        "error: --stream takes one input, got 2"
    assert _refused(["a.wav", "--realtime", "--checkpoint", str(plain)], capsys) == "error: --realtime needs --stream"
    missing = tmp_path / "missing.wav"
    assert _refused([str(missing), "--stream", "--checkpoint", str(plain)], capsys) == \
        f"error: {missing}: file does not exist"


def test_a_non_causal_predictor_is_refused_in_one_line(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    net = models.build("tcn", n_features=88, n_targets=2, hidden=8, levels=2)
    record = make_record("r", pd.DataFrame({"start": [0.0, 0.1], "end": [1.0, 1.1],
                                            **{f"f{i}": [0.0, 1.0] for i in range(88)}}))
    trained = training.TrainedModel(net, Normalizer("global").fit([record]), tuple(TARGETS), 10.0)
    path = trained.save(tmp_path / "model.pt")
    folder = _folder(tmp_path / "predictor", path)
    err = _refused(["x.wav", "--stream", "--checkpoint", str(folder)], capsys)
    assert err == (f"error: {folder}: model 'arousal+valence' (tcn) is not causal: train with 'tcn:causal' "
                   "or 'tcn:lookahead=<frames>' to stream it")


# --------------------------------------------------------------------------- ONNX streaming-step graphs


def test_stream_onnx_writes_the_torch_streaming_csv(plain: Path, audio: np.ndarray, tmp_path: Path, capsys) -> None:
    folder = Path(shutil.copytree(plain, tmp_path / "predictor"))
    err = _refused(["x.wav", "--stream", "--onnx", "--checkpoint", str(folder)], capsys)
    assert "no ONNX export" in err and "emotools export --onnx" in err
    assert main(["export", "--onnx", "--checkpoint", str(folder)]) == 0
    record = json.loads((folder / "onnx.json").read_text())["models"]["arousal+valence"]["step"]
    assert record["onnx"] == "arousal_valence.step.onnx" and record["delay_frames"] == 0 and record["state"]
    wav = write_audio(tmp_path / "talk.wav", audio[: 15 * SR], SR)
    csv = {}
    for engine, extra in (("torch", []), ("onnx", ["--onnx"])):
        csv[engine] = tmp_path / engine / "talk.csv"
        csv[engine].parent.mkdir()
        assert predict.cli([str(wav), "--stream", "--checkpoint", str(folder), "--out", str(csv[engine]), *extra]) == 0
    torch_rows, onnx_rows = pd.read_csv(csv["torch"]), pd.read_csv(csv["onnx"])
    assert list(onnx_rows.columns) == ["time", *TARGETS, "latency_s"] and len(onnx_rows) == len(torch_rows) == 140
    np.testing.assert_array_equal(onnx_rows["time"], torch_rows["time"])
    np.testing.assert_allclose(onnx_rows[TARGETS], torch_rows[TARGETS], atol=1e-4, rtol=0)
    assert onnx_rows[TARGETS].std().min() > 0
    assert json.loads(csv["onnx"].with_suffix(".json").read_text())["engine"].startswith("onnxruntime")
    (folder / "arousal_valence.step.onnx").write_bytes(b"changed")  # a step graph not the one exported
    err = _refused([str(wav), "--stream", "--onnx", "--checkpoint", str(folder)], capsys)
    assert "arousal_valence.step.onnx does not match its export record" in err


# --------------------------------------------------------------------------- memory


def test_memory_stays_flat_over_a_ten_minute_stream(trained_path: Path, audio: np.ndarray, tmp_path: Path) -> None:
    # 10 minutes (the session tiled) in 1 s pushes: every buffer of the stream stays bounded and the Python heap
    # does not grow after the first two minutes (rows are handed out, not kept)
    signal = np.tile(audio[: 30 * SR], 20)
    stream = open_stream(_folder(tmp_path / "predictor", trained_path, CHAIN))
    rows, sizes = 0, []
    with stream:
        for second in range(600):
            rows += len(stream.push(signal[second * SR : (second + 1) * SR]))
            sizes.append((len(stream._times), max(len(c.values) for c in stream.columns),
                          sum(m.state_size for m in stream.models.values())))
            if second == 120:
                tracemalloc.start()
                heap = tracemalloc.get_traced_memory()[0]
        python_growth = tracemalloc.get_traced_memory()[1] - heap
        tracemalloc.stop()
        rows += len(stream.close())
    assert rows == 5990
    assert max(s[0] for s in sizes) <= 12 and max(s[1] for s in sizes) <= 12
    assert len({s[2] for s in sizes[120:]}) == 1  # the models' caches: a fixed size
    assert python_growth < 2_000_000
