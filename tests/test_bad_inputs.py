"""The bad-input matrix, end to end through ``python -m emotools`` and the public API.

For every case: a clear error naming the file and the problem, the batch goes
on, the failure is recorded (``failures.csv`` of the feature store, the
scan's problems), and finished results are neither lost nor altered. Inputs
that are unusual but valid (silence, stereo, 8 / 44.1 / 96 kHz) must come out
right, checked against an independent 16 kHz rendering of the same sound.

Notebook parameters of the wrong type: the runner's own tests
(``tests/test_notebooks.py``: ParameterError from the API and exit status 1
from ``python -m emotools run``) cover the message; the one case here checks,
from the command line, that nothing was executed.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from fixtures_bad import (
    SR,
    add_recording,
    labels,
    opus_bytes,
    pcm16,
    run_emotools,
    streamed_wav_bytes,
    voiced,
    wav_bytes,
)

from emotools import corpora, experiments, models, samples, synth, training
from emotools import labels as label_protocols
from emotools.audio import AudioFormatError, SilentAudioWarning, audio_info, read_audio
from emotools.corpora import read_annotation
from emotools.features import FeatureSpec, FeatureStore, extract, extract_signal
from emotools.sequences import SequenceRecord, build_records, make_record

SPEC = FeatureSpec(level="windowed", window=1.0, hop=0.1)
F0 = "F0semitoneFrom27.5Hz_sma3nz_amean"
LOUDNESS = "loudness_sma3_amean"
GOOD = {"good_a": 3.0, "good_b": 3.5}


def _flac_bytes(signal: np.ndarray, sr: int = SR) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, signal, sr, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def _truncated(data: bytes, fraction: float = 0.6) -> bytes:
    """The first ``fraction`` of a file: an interrupted copy."""
    return data[: int(len(data) * fraction)]


def _with_field(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    """A canonical 44-byte-header WAV with one ``fmt `` field overwritten."""
    out = bytearray(data)
    out[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(out)


def _stereo_pair(seconds: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(int16 stereo samples, their exact mono mean as float): L = x + d, R = x - d."""
    x = pcm16(voiced(seconds, seed=seed, amplitude=0.35)).astype(np.int32)
    d = pcm16(0.1 * np.random.default_rng(seed).standard_normal(x.size).clip(-1, 1)).astype(np.int32)
    stereo = np.stack([x + d, x - d], axis=1).astype(np.int16)
    return stereo, (x / 32768).astype(np.float32)


# What each bad recording is, and what failures.csv must say about it:
# (file relative to the corpus root, words in the reason, stage).
# Scan problems carry no utterance id (the recording never became a row);
# extraction failures carry it.
BAD = {
    "empty": ("audio/empty.wav", "scan: file is empty (0 bytes); skipped", "scan"),
    "truncated_flac": ("audio/truncated_flac.flac", "truncated", "extract"),
    "corrupt_header": ("audio/corrupt_header.wav",
                       "scan: corrupt header: block align 2 bytes does not match 1 channel(s) x 24 bits", "scan"),
    "text_as_wav": ("audio/text_as_wav.wav", "scan: unreadable header (", "scan"),
    "zero_length": ("audio/zero_length.wav", "scan: no samples (empty audio stream); skipped", "scan"),
    "shorter_than_window": ("audio/shorter_than_window.wav",
                            "too short for the 1 s window: 0.500 s of audio gave no frame", "extract"),
    "nan_annotation": ("annotations/nan_annotation.csv",
                       "scan: NaN or infinite value in column 'arousal' at line 7 (1 in all); recording skipped",
                       "scan"),
    "non_monotonic": ("annotations/non_monotonic.csv",
                      "scan: time is not strictly increasing at line 10 (0.3 s after 0.7 s); recording skipped",
                      "scan"),
    "without_annotation": ("audio/without_annotation.wav", "scan: audio without annotation (no ", "scan"),
    "semicolon_annotation": ("annotations/semicolon_annotation.csv",
                             "scan: the file is ';'-separated (header 'time;arousal;valence'), but emotools reads "
                             "comma-separated CSV", "scan"),
}
# Usable recordings whose annotation does not match the audio's length: reported, and extracted.
MISMATCHED = {
    "annotation_short": ("annotations/annotation_short.csv",
                         "scan: annotation ends at 1.9 s but the audio lasts 5 s; kept (the rest of the audio "
                         "is unlabelled)"),
    "annotation_long": ("annotations/annotation_long.csv",
                        "scan: annotation runs to 4.9 s but the audio lasts 2.5 s; kept"),
}
# Valid but unusual: (native rate, seconds, suffix).
UNUSUAL = {
    "silent": (SR, 2.5, ".wav"),
    "stereo": (SR, 3.0, ".wav"),
    "rate_8k": (8000, 3.0, ".wav"),
    "rate_44k": (44100, 3.0, ".flac"),
    "rate_96k": (96000, 3.0, ".wav"),
    "streamed_wav": (SR, 3.0, ".wav"),  # data size 0 in the header, the samples run to the end of the file
    "opus_48k": (48000, 3.0, ".opus"),  # Ogg Opus from FFmpeg's libopus
}


def _add_bad_and_unusual(root: Path) -> dict[str, np.ndarray]:
    """Add every case of the matrix to the corpus; returns the 16 kHz reference signal of the unusual ones."""
    add_recording(root, "empty", b"", annotation=labels(2.0))
    add_recording(root, "truncated_flac", _truncated(_flac_bytes(voiced(3.0, seed=3))), suffix=".flac",
                  annotation=labels(3.0))
    add_recording(root, "corrupt_header", _with_field(wav_bytes(voiced(2.0, seed=4)), 34, "<H", 24),
                  annotation=labels(2.0))
    add_recording(root, "text_as_wav", b"this is a text file, not audio\n" * 40, annotation=labels(2.0))
    add_recording(root, "zero_length", np.zeros(0, np.float32), annotation=labels(2.0))
    add_recording(root, "shorter_than_window", voiced(0.5, seed=5), annotation=labels(0.5))
    nan = labels(2.0, seed=6)
    nan.loc[5, "arousal"] = np.nan
    add_recording(root, "nan_annotation", voiced(2.0, seed=6), annotation=nan)
    backwards = labels(2.0, seed=7)
    backwards.loc[8, "time"] = 0.3
    add_recording(root, "non_monotonic", voiced(2.0, seed=7), annotation=backwards)
    add_recording(root, "without_annotation", voiced(2.0, seed=8), annotation=None)
    add_recording(root, "annotation_short", voiced(5.0, seed=9), annotation=labels(2.0, seed=9))
    add_recording(root, "annotation_long", voiced(2.5, seed=10), annotation=labels(5.0, seed=10))
    add_recording(root, "semicolon_annotation", voiced(2.0, seed=12),
                  annotation=labels(2.0, seed=12).to_csv(index=False, sep=";"))

    references = {}
    add_recording(root, "silent", np.zeros(int(2.5 * SR), np.float32), annotation=labels(2.5))
    references["silent"] = np.zeros(int(2.5 * SR), np.float32)
    stereo, mono = _stereo_pair(3.0, seed=11)
    add_recording(root, "stereo", stereo, annotation=labels(3.0))
    references["stereo"] = mono
    for k, name in enumerate(("rate_8k", "rate_44k", "rate_96k")):
        rate, seconds, suffix = UNUSUAL[name]
        add_recording(root, name, voiced(seconds, rate, seed=20 + k), sr=rate, suffix=suffix,
                      subtype="PCM_24" if rate == 96000 else "PCM_16", annotation=labels(seconds))
        references[name] = voiced(seconds, SR, seed=20 + k)
    streamed = pcm16(voiced(3.0, seed=13))
    add_recording(root, "streamed_wav", streamed_wav_bytes(streamed), annotation=labels(3.0))
    references["streamed_wav"] = (streamed / 32768).astype(np.float32)
    add_recording(root, "opus_48k", opus_bytes(voiced(3.0, 48000, seed=14), 48000), suffix=".opus",
                  annotation=labels(3.0))
    references["opus_48k"] = voiced(3.0, SR, seed=14)
    return references


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A corpus extracted once with good recordings only, then again with the whole matrix added."""
    home = tmp_path_factory.mktemp("matrix")
    root, out = home / "corpus", home / "store"
    for k, (name, seconds) in enumerate(GOOD.items()):
        add_recording(root, name, voiced(seconds, seed=k), annotation=labels(seconds, seed=k))
    argv = ["extract", root, "--corpus", "annotated", "--level", "windowed", "--window", "1.0", "--hop", "0.1",
            "--jobs", "1", "--out", out, "--no-progress"]
    first = run_emotools(argv, home)
    assert first.returncode == 0, first.stderr
    files = {u: out / "features" / f"{u}.parquet" for u in GOOD}
    before = {u: (p.read_bytes(), p.stat().st_mtime_ns) for u, p in files.items()}
    references = _add_bad_and_unusual(root)
    second = run_emotools(argv, home)
    return SimpleNamespace(root=root, out=out, store=FeatureStore(out), first=first, second=second,
                           before=before, files=files, references=references)


def test_the_batch_goes_on_and_reports_where_to_look(matrix: SimpleNamespace) -> None:
    result = matrix.second
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    extracted = len(UNUSUAL) + len(MISMATCHED)
    failed = len(BAD) + len(MISMATCHED)  # every scan problem is listed, kept recordings included
    assert (f"{extracted} extracted, {len(GOOD)} reused from cache, {failed} failed "
            f"(see {matrix.out / 'failures.csv'})") in result.stdout
    assert sorted(matrix.store.utterances) == sorted([*GOOD, *UNUSUAL, *MISMATCHED])
    assert not [p for p in matrix.out.rglob("*") if p.name.startswith(".")], "temporary files left behind"


def test_finished_results_are_neither_recomputed_nor_altered(matrix: SimpleNamespace) -> None:
    assert "2 extracted, 0 reused from cache, 0 failed" in matrix.first.stdout
    for utterance, path in matrix.files.items():
        data, mtime = matrix.before[utterance]
        assert path.read_bytes() == data, f"{utterance}: feature file changed"
        assert path.stat().st_mtime_ns == mtime, f"{utterance}: feature file rewritten"
    summary = matrix.store.summary
    assert (summary["reused"], summary["processed"]) == (len(GOOD), len(UNUSUAL) + len(MISMATCHED))


@pytest.mark.parametrize("case", list(BAD))
def test_each_bad_input_is_recorded_with_its_file_and_reason(matrix: SimpleNamespace, case: str) -> None:
    relative, words, stage = BAD[case]
    failures = matrix.store.failures
    rows = failures[failures["file"] == str(matrix.root / relative)]
    assert len(rows) == 1, f"{case}: expected one failure row for {relative}, got\n{failures}"
    row = rows.iloc[0]
    assert words in row["reason"], row["reason"]
    assert row["utterance"] == (case if stage == "extract" else "")
    assert case not in matrix.store


@pytest.mark.parametrize("case", list(MISMATCHED))
def test_annotation_length_mismatch_is_reported_and_the_recording_kept(matrix: SimpleNamespace, case: str) -> None:
    relative, words = MISMATCHED[case]
    failures = matrix.store.failures
    assert failures[failures["file"] == str(matrix.root / relative)]["reason"].tolist() == [words]
    features = matrix.store.load(case)
    annotation = read_annotation(matrix.root / relative)
    record = make_record(case, features, annotation)
    # Labels are used only where there is audio: none past the last window, all within the annotation.
    assert record.time[0] >= features["start"].min() and record.time[-1] <= features["end"].max()
    assert record.time[-1] <= min(annotation["time"].iat[-1], audio_info(matrix.root / f"audio/{case}.wav").duration)
    assert np.isfinite(record.x).all() and np.isfinite(record.y).all()
    expected = annotation["time"].between(features["start"].min(), features["end"].max()).sum()
    assert len(record) == expected


@pytest.mark.parametrize("case", list(UNUSUAL))
def test_unusual_but_valid_input_is_processed_correctly(matrix: SimpleNamespace, case: str) -> None:
    rate, seconds, suffix = UNUSUAL[case]
    row = matrix.store.index.set_index("utterance").loc[case]
    assert row["duration"] == pytest.approx(seconds, abs=1 / rate)
    assert row["seconds"] == pytest.approx(seconds, abs=1 / SR)  # decoded at 16 kHz, nothing lost or added
    stored = matrix.store.load(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SilentAudioWarning)
        reference = extract_signal(matrix.references[case], SR, SPEC)
    assert row["frames"] == len(stored) == len(reference)
    np.testing.assert_array_equal(stored[["start", "end"]], reference[["start", "end"]])
    values = stored.drop(columns=["start", "end"]).to_numpy()
    assert np.isfinite(values).all()
    if case in ("silent", "stereo", "streamed_wav"):
        # silence is data; stereo is the mean of its channels; a streamed WAV holds all its samples (16-bit grid)
        pd.testing.assert_frame_equal(stored.drop(columns=["start", "end"]), reference.drop(columns=["start", "end"]))
    else:
        # the same sound rendered at 16 kHz: same pitch (within 0.1 semitone) and loudness (within 3 %)
        np.testing.assert_allclose(stored[F0], reference[F0], atol=0.1)
        np.testing.assert_allclose(stored[LOUDNESS], reference[LOUDNESS], rtol=0.03)


def test_unknown_corpus_key_from_the_command_line(tmp_path: Path) -> None:
    result = run_emotools(["extract", tmp_path, "--corpus", "recola", "--out", tmp_path / "store", "--no-progress"],
                          tmp_path / "home")
    assert result.returncode == 1
    assert "unknown corpus 'recola'; known: annotated, librispeech, voxceleb1, voxceleb2" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "store").exists()
    with pytest.raises(ValueError, match="unknown corpus 'recola'; known: annotated, librispeech"):
        corpora.scan("recola", tmp_path)


def _records(n: int, *, frames: int = 40, features: int = 6, seed: int = 0) -> list[SequenceRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = rng.standard_normal((frames, features)).astype(np.float32)
        y = np.tanh(x[:, :2] @ np.array([[0.8, -0.3], [0.2, 0.6]], dtype=np.float32))
        out.append(SequenceRecord(id=f"r{i}", x=x, y=y, time=np.arange(frames) / 10.0, rate_hz=10.0,
                                  speaker=f"s{i}"))
    return out


def test_unknown_architecture_name(tmp_path: Path) -> None:
    with pytest.raises(models.ModelConfigError, match=r"unknown model 'transformerxl'; known: mlp, lstm"):
        models.build("transformerxl")
    with pytest.raises(ValueError, match=r"unknown model 'transformerxl'; known: mlp, lstm") as caught:
        training.fit("transformerxl", _records(2), None, training.FitOptions(epochs=1), progress=False,
                     checkpoint_dir=tmp_path / "ck")
    assert isinstance(caught.value, models.ModelConfigError)
    assert not (tmp_path / "ck" / "last.pt").exists()


def test_wrong_notebook_parameter_type_fails_before_anything_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = run_emotools(["run", "--only", "00_metrics", "-p", "seed", "abc"], home)
    assert result.returncode == 1
    assert "00_metrics.ipynb: parameter 'seed' expects int, got str 'abc'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (home / "results" / "notebooks").exists(), "a notebook was started"


# --------------------------------------------------------------------------- audio layer (API)

CANONICAL = wav_bytes(voiced(1.0, seed=30))
CORRUPT_HEADERS = {
    # field: (offset, struct format, value, words). Each one decoded silently to garbage before:
    "bits 8": (34, "<H", 8, "block align 2 bytes does not match 1 channel(s) x 8 bits"),
    "bits 24": (34, "<H", 24, "block align 2 bytes does not match 1 channel(s) x 24 bits"),
    "bits 7": (34, "<H", 7, "block align 2 bytes does not match 1 channel(s) x 7 bits"),
    "channels 2": (22, "<H", 2, "block align 2 bytes does not match 2 channel(s) x 16 bits"),
    "channels 0": (22, "<H", 0, "0 channel(s)"),
    "rate 8000": (24, "<I", 8000, "byte rate 32000 does not match 8000 Hz x 2 bytes per frame"),
    "rate 0": (24, "<I", 0, "0 Hz"),
    "byte rate": (28, "<I", 12345, "byte rate 12345 does not match 16000 Hz x 2 bytes per frame"),
    "block align": (32, "<H", 4, "block align 4 bytes does not match 1 channel(s) x 16 bits"),
}


@pytest.mark.parametrize("case", list(CORRUPT_HEADERS))
def test_a_corrupt_wav_header_is_an_error_not_garbage(tmp_path: Path, case: str) -> None:
    offset, fmt, value, words = CORRUPT_HEADERS[case]
    path = tmp_path / "corrupt.wav"
    path.write_bytes(_with_field(CANONICAL, offset, fmt, value))
    for read in (read_audio, audio_info):
        with pytest.raises(AudioFormatError) as caught:
            read(path)
        assert caught.value.path == str(path)
        assert caught.value.reason.startswith("corrupt header: ") and words in caught.value.reason


BLOCK_CODECS = ("IMA_ADPCM", "MS_ADPCM", "GSM610")


def test_every_valid_wav_encoding_still_decodes(tmp_path: Path) -> None:
    x = voiced(0.5, 22050, seed=31, amplitude=2.0)  # loud enough for 8 bits
    assert 0.3 < np.abs(x).max() < 1.0
    reference = read_audio(_write(tmp_path / "ref.wav", x, 22050, "PCM_16"))
    for subtype in ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW", "IMA_ADPCM",
                    "MS_ADPCM", "GSM610"):
        for container in ("WAV", "WAVEX"):
            if not sf.check_format(container, subtype):
                continue
            for channels in (1, 2) if subtype != "GSM610" else (1,):  # GSM 6.10 is mono only
                signal = np.stack([x] * channels, axis=1)
                path = tmp_path / f"{subtype}-{container}-{channels}.wav"
                sf.write(path, signal, 22050, format=container, subtype=subtype)
                decoded = read_audio(path)
                assert audio_info(path).channels == channels
                padding = decoded.size - reference.size
                if subtype in BLOCK_CODECS:  # whole codec blocks: up to ~2000 samples at 22.05 kHz
                    assert 0 <= padding <= 1500, (path.name, padding)
                else:
                    assert padding == 0, (path.name, padding)
                n = reference.size
                error = np.sqrt(np.mean((decoded[:n] - reference) ** 2)) / np.sqrt(np.mean(reference**2))
                assert error < (0.35 if subtype == "GSM610" else 0.1), (path.name, error)


def _write(path: Path, signal: np.ndarray, sr: int, subtype: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, signal, sr, subtype=subtype)
    return path


def test_api_batch_with_bad_files_keeps_good_results(tmp_path: Path) -> None:
    """The API path (no scan): a table naming bad files, on two worker processes."""
    good = _write(tmp_path / "good.wav", voiced(2.5, seed=40), SR, "PCM_16")
    (tmp_path / "folder.wav").mkdir()
    bad = {
        "missing": (tmp_path / "missing.wav", "file does not exist"),
        "folder": (tmp_path / "folder.wav", "not a regular file"),
        "truncated_wav": (tmp_path / "truncated.wav", "truncated: header declares 80000 data bytes, file holds"),
        "corrupt_header": (tmp_path / "corrupt.wav", "corrupt header: block align"),
        "nan_samples": (tmp_path / "nan.wav", "NaN or infinite samples"),
    }
    (tmp_path / "truncated.wav").write_bytes(wav_bytes(voiced(2.5, seed=41))[:30000])
    (tmp_path / "corrupt.wav").write_bytes(_with_field(wav_bytes(voiced(2.5, seed=42)), 22, "<H", 2))
    sf.write(tmp_path / "nan.wav", np.r_[voiced(2.0, seed=43), np.nan, np.inf].astype(np.float32), SR,
             subtype="FLOAT")
    table = pd.DataFrame({"file": [str(good), *(str(p) for p, _ in bad.values())], "utterance": ["good", *bad]})
    store = extract(table, SPEC, out=tmp_path / "store", jobs=2, progress=False)
    assert store.utterances == ["good"]
    reasons = store.failures.set_index("utterance")
    assert sorted(reasons.index) == sorted(bad)
    for name, (path, words) in bad.items():
        assert reasons.loc[name, "file"] == str(path) and words in reasons.loc[name, "reason"], name
    pd.testing.assert_frame_equal(store.load("good"), extract_signal(read_audio(good), SR, SPEC),
                                  check_like=False, check_exact=True)


# --------------------------------------------------------------------------- predict (command line)


@pytest.fixture(scope="module")
def predictor_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real predictor folder: a small MLP fit on eGeMAPS-sized random records, saved as the notebooks do."""
    from emotools.features import feature_names
    from emotools.predict import save_predictor

    home = tmp_path_factory.mktemp("predictor")
    records = _records(3, frames=50, features=len(feature_names(SPEC)))
    training.fit("mlp", records, None, training.FitOptions(epochs=1, chunk_s=None, model_options={"hidden": 8}),
                 progress=False, checkpoint_dir=home / "ck")
    return save_predictor(home / "predictor", SPEC, {"arousal+valence": str(home / "ck" / "model.pt")})


def _frames(seconds: float) -> int:
    return len(extract_signal(voiced(seconds, seed=0), SR, SPEC))


@pytest.fixture(scope="module")
def prediction(predictor_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One ``python -m emotools predict`` over good, bad and unusual files (one subprocess: torch loads slowly)."""
    home = tmp_path_factory.mktemp("predict")
    audio = home / "audio"
    files = SimpleNamespace(
        good=_write(audio / "speech.wav", voiced(3.0, seed=50), SR, "PCM_16"),
        text=audio / "notes.wav",
        stereo=_write(audio / "stereo44k.flac", np.stack([voiced(2.5, 44100, seed=51)] * 2, axis=1), 44100,
                      "PCM_16"),
        short=_write(audio / "short.wav", voiced(0.4, seed=52), SR, "PCM_16"),
        silent=_write(audio / "silent.wav", np.zeros(2 * SR, np.float32), SR, "PCM_16"),
        # VoxCeleb-style paths: every video folder has its own 00001.wav.
        same_a=_write(audio / "id1" / "videoA" / "00001.wav", voiced(1.5, seed=53), SR, "PCM_16"),
        same_b=_write(audio / "id2" / "videoB" / "00001.wav", voiced(3.5, seed=54), SR, "PCM_16"),
    )
    files.text.write_bytes(b"not audio at all\n" * 30)
    out = home / "out"
    result = run_emotools(["predict", *vars(files).values(), "--checkpoint", predictor_dir, "--out", out], home)
    return SimpleNamespace(files=files, out=out, result=result)


def test_predict_goes_on_past_bad_files_and_records_them(prediction: SimpleNamespace) -> None:
    files, out, result = prediction.files, prediction.out, prediction.result
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"error: {files.text}: not readable audio" in result.stderr
    assert f"error: {files.short}: too short for the 1 s window" in result.stderr
    assert pd.read_csv(out / "failures.csv")["file"].tolist() == [str(files.text), str(files.short)]
    for path, seconds in ((files.good, 3.0), (files.stereo, 2.5), (files.silent, 2.0)):
        [written] = out.rglob(f"{path.stem}.csv")
        frame = pd.read_csv(written)
        assert list(frame.columns) == ["time", "arousal", "valence"]
        assert len(frame) == _frames(seconds) and np.isfinite(frame[["arousal", "valence"]].to_numpy()).all()
        np.testing.assert_allclose(frame["time"].iloc[0], SPEC.window / 2, atol=1e-5)  # window centres
        assert written.with_suffix(".png").is_file()


def test_predict_never_overwrites_one_file_s_result_with_another_s(prediction: SimpleNamespace) -> None:
    written = sorted(prediction.out.rglob("00001*.csv"))
    assert sorted(len(pd.read_csv(p)) for p in written) == [_frames(1.5), _frames(3.5)], (
        f"two inputs named 00001.wav gave {[str(p.relative_to(prediction.out)) for p in written]}"
    )


# --------------------------------------------------------------------------- a RECOLA-shaped corpus, str paths

RECOLA_RATERS = ("FM1", "FM2", "FM3", "FF1", "FF2", "FF3")
CORPORA_DOC = Path(__file__).resolve().parents[1] / "docs" / "audio-and-corpora.md"


def _doc_code(heading: str) -> str:
    """The first ``python`` code block after ``heading`` in the audio-and-corpora manual."""
    text = CORPORA_DOC.read_text(encoding="utf-8")
    section = text[text.index(heading):]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```", start)]


def _raw_recola(root: Path, participants: list[str], seconds: float) -> None:
    """RECOLA as released: one ``;``-separated file per participant and dimension, raters ``FM1 ``... (trailing
    spaces in the header), ``time`` at 25 Hz; the audio as ``RECOLA-Audio-recordings/<P>.wav``."""
    ratings = root / "RECOLA-Annotation" / "emotional_behaviour"
    time = np.round(np.arange(int(seconds * 25)) / 25, 2)
    for k, name in enumerate(participants):
        _write(root / "RECOLA-Audio-recordings" / f"{name}.wav", voiced(seconds, seed=60 + k), SR, "PCM_16")
        rng = np.random.default_rng(60 + k)
        for target in ("arousal", "valence"):
            trend = np.sin(2 * np.pi * 0.2 * time + rng.uniform(0, 6))
            raters = {f"{r} ": np.round(trend + 0.1 * rng.standard_normal(time.size), 4) for r in RECOLA_RATERS}
            path = ratings / target / f"{name}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame({"time": time, **raters}).to_csv(path, sep=";", index=False)


def test_recola_converted_by_the_readme_recipe_trains_with_str_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_torch_thread
) -> None:
    """The issue's report: the README's RECOLA recipe, then scan, extract and ``run_grid(run_dir="a/folder")``."""
    monkeypatch.chdir(tmp_path)  # the recipe and every path below are relative strings
    participants = [f"P{n}" for n in range(16, 22)]
    _raw_recola(tmp_path / "RECOLA", participants, seconds=6.0)
    exec(compile(_doc_code("### Converting RECOLA"), "docs/audio-and-corpora.md: Converting RECOLA", "exec"), {})

    table = corpora.scan("annotated", "data/recola", progress=False)
    assert sorted(table["utterance"]) == participants and table.attrs["problems"] == []
    assert table["label_rate"].tolist() == pytest.approx([25.0] * len(participants))
    converted = read_annotation("data/recola/annotations/P17.csv")
    raw = pd.read_csv("RECOLA/RECOLA-Annotation/emotional_behaviour/valence/P17.csv", sep=";")
    np.testing.assert_allclose(converted["valence"], raw.iloc[:, 1:].mean(axis=1), atol=1e-8)
    np.testing.assert_allclose(converted["valence_r6"], raw.iloc[:, 6], atol=1e-8)  # r6 = FF3

    store = extract(table, SPEC, out="store", jobs=1, progress=False)
    records, failures = build_records(table, store.load, label_protocols.annotation_labels(table))
    assert failures == [] and len(records) == len(participants)
    options = dict(dataset="recola", label_protocol="annotation", architectures=["mlp"], jobs=1,
                   fit_options=training.FitOptions(epochs=2, chunk_s=3.0), progress=False)
    grid = experiments.run_grid(records, run_dir="runs/recola", **options)
    results = grid.results
    assert set(results["split"]) == {"dev", "test"} and len(results) == 2 * 2 * 2  # splits x targets x post
    assert np.isfinite(results[["ccc", "mse"]].to_numpy()).all()
    finished = sorted((tmp_path / "runs" / "recola").glob("*/mlp-joint-seed0/cell.json"))
    assert len(finished) == 1
    # the same folder as a Path: the finished cell is found, not trained again
    again = experiments.run_grid(records, run_dir=Path("runs/recola"), **options)
    pd.testing.assert_frame_equal(again.results, results)
    assert finished[0].stat().st_mtime_ns == sorted(
        (tmp_path / "runs" / "recola").glob("*/mlp-joint-seed0/cell.json"))[0].stat().st_mtime_ns


def test_synth_and_samples_take_str_and_path_folders(tmp_path: Path) -> None:
    """Corpus writers accept ``str`` and ``os.PathLike`` alike and write the same files either way."""
    written = {}
    for kind in (str, Path):
        base = tmp_path / kind.__name__
        root = synth.write_corpus(kind(base / "gt"), speakers=1, minutes=0.05, seed=3, jobs=1, progress=False)
        roots = samples.write_samples(kind(base / "samples"), corpora=["voxceleb1"],
                                      size=samples.SampleSize(speakers=1, sessions=1, minutes=0.05),
                                      progress=False)
        assert root == base / "gt" and roots["voxceleb1"] == base / "samples" / "voxceleb1"
        assert samples.sample_root("voxceleb1", out=kind(base / "samples")) == roots["voxceleb1"]
        written[kind] = sorted(p.relative_to(base) for p in base.rglob("*") if p.is_file())
    assert written[str] == written[Path] and any(p.suffix == ".wav" for p in written[str])
