"""``python -m emotools predict`` on what the main job saves: new audio of several lengths and formats,
blocked processing equal to a whole-file pass, distinct outputs, and predictors refused at load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures_main_job import run_smoke_main_job

from emotools import models, training
from emotools.audio import SAMPLE_RATE, read_audio, write_audio
from emotools.features import FeatureSpec, extract_signal
from emotools.predict import LABEL_RANGE, Predictor, cli, load_predictor, output_names, save_predictor
from emotools.sequences import Normalizer, make_record

SPEC = FeatureSpec(level="windowed", window=1.0, hop=0.1)


# --------------------------------------------------------------------------- the main job's predictor


@pytest.fixture(scope="module")
def main_job(run_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The smoke main job's own ``results/models/01_ground_truth`` predictor (one run per module), and its corpus."""
    home = tmp_path_factory.mktemp("main-job")
    results = run_smoke_main_job("01_ground_truth", run_dirs, home)
    audio = sorted((run_dirs["data"] / "ground_truth").rglob("audio/*.wav"))
    return SimpleNamespace(predictor=results / "models" / "01_ground_truth", audio=audio, home=home)


@pytest.fixture(scope="module")
def speech(main_job: SimpleNamespace) -> np.ndarray:
    """Rendered eSpeak speech of the corpus, concatenated (about 3 min)."""
    return np.concatenate([read_audio(p) for p in main_job.audio])


@pytest.fixture(scope="module")
def new_audio(speech: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> dict[Path, float]:
    """3 s and 30 s of speech in WAV, FLAC and m4a, and 10 min in m4a (the corpus repeated); path -> seconds.

    Every format at the short lengths; the long one once, in the format with the most decoding (length, not
    format, is what it tests; the block-wise path is also checked against whole files below).
    """
    folder = tmp_path_factory.mktemp("new-audio")
    files = {}
    for seconds, suffixes in ((3, (".wav", ".flac", ".m4a")), (30, (".wav", ".flac", ".m4a")), (600, (".m4a",))):
        signal = np.resize(speech, seconds * SAMPLE_RATE)
        for suffix in suffixes:
            files[write_audio(folder / f"talk{seconds}s{suffix}", signal, SAMPLE_RATE)] = float(seconds)
    return files


def test_main_job_predictor_is_the_notebook_default_and_stores_exact_rates(main_job: SimpleNamespace) -> None:
    predictor = load_predictor(main_job.predictor)
    assert {m.normalizer.mode.value for m in predictor.models.values()} == {"session"}
    assert all(m.rate_hz == 10.0 for m in predictor.models.values())  # exact, not 9.999999999999858
    assert predictor.postprocessor is None or predictor.postprocessor.rate_hz == 10.0
    assert "own session" in predictor.normalization_note()


def test_predict_cli_on_new_audio_of_every_length_and_format(main_job, new_audio, tmp_path: Path) -> None:
    out = tmp_path / "predictions"
    run = subprocess.run([sys.executable, "-m", "emotools", "predict", *map(str, new_audio), "--checkpoint",
                          str(main_job.predictor), "--out", str(out)], capture_output=True, text=True,
                         env={**os.environ, "MPLBACKEND": "Agg"}, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    assert not (out / "failures.csv").exists()
    frames: dict[float, int] = {}
    post = load_predictor(main_job.predictor).postprocessor
    # delay compensation shifts a recording by up to this many frames (edge-padded): a file no longer than that
    # is legitimately predicted as a constant
    delay = max((step.delay_frames for step in post.steps), default=0) if post is not None else 0
    shared = Counter(path.stem for path in new_audio)
    for path, seconds in new_audio.items():
        # talk3s.wav / talk3s.flac / talk3s.m4a share a stem: the suffix stays; talk600s.m4a is talk600s
        stem = out / (path.name if shared[path.stem] > 1 else path.stem)
        frame = pd.read_csv(stem.with_name(stem.name + ".csv"))
        assert stem.with_name(stem.name + ".png").stat().st_size > 0
        meta = json.loads(stem.with_name(stem.name + ".json").read_text())
        assert "own session" in meta["normalization"]
        assert list(frame.columns) == ["time", "arousal", "valence"]
        values = frame[["arousal", "valence"]].to_numpy()
        assert np.isfinite(values).all() and values.min() >= LABEL_RANGE[0] and values.max() <= LABEL_RANGE[1]
        if seconds not in frames:  # every window a whole-file extraction gives (same count in every format)
            frames[seconds] = len(extract_signal(read_audio(path), SAMPLE_RATE, SPEC))
        assert len(frame) == frames[seconds] >= seconds * 10 - 10
        np.testing.assert_allclose(frame["time"], SPEC.window / 2 + np.arange(frames[seconds]) * SPEC.hop, atol=1e-5)
        if len(frame) > delay + 1:
            assert values.std(axis=0).min() > 0, f"{path.name}: constant prediction"


def test_main_job_predictor_on_blocks_matches_its_whole_file_pass(main_job, speech: np.ndarray) -> None:
    # attention_tdnn_lstm or whatever won on dev: blocks of 40 s, the model's own overlap
    predictor = load_predictor(main_job.predictor)
    whole = predictor.predict_signal(speech[: 100 * SAMPLE_RATE], block_s=float("inf"))
    blocked = predictor.predict_signal(speech[: 100 * SAMPLE_RATE], block_s=40.0)
    np.testing.assert_array_equal(blocked["time"], whole["time"])
    np.testing.assert_allclose(blocked[["arousal", "valence"]], whole[["arousal", "valence"]], atol=1e-5)


# --------------------------------------------------------------------------- blocks against whole files


def _trained(name: str, normalization: str, x: np.ndarray, seed: int = 0) -> training.TrainedModel:
    """A real (untrained-weight) model of ``name`` with its normalizer fit on ``x``; 10 Hz, two targets."""
    torch.manual_seed(seed)
    overrides = {"levels": 3} if name == "dsus" else {}
    net = models.build(name, n_features=x.shape[1], n_targets=2, **overrides).eval()
    record = make_record("train", pd.DataFrame({"start": np.arange(len(x)) / 10, "end": np.arange(len(x)) / 10 + 1,
                                                **{f"f{i}": x[:, i] for i in range(x.shape[1])}}),
                         session="train", speaker="train")
    return training.TrainedModel(model=net, normalizer=Normalizer(normalization).fit([record]),
                                 targets=("arousal", "valence"), rate_hz=10.0)


@pytest.fixture(scope="module")
def signal_90s(speech: np.ndarray) -> np.ndarray:
    return speech[20 * SAMPLE_RATE : 110 * SAMPLE_RATE]


@pytest.fixture(scope="module")
def features_90s(signal_90s: np.ndarray) -> pd.DataFrame:
    return extract_signal(signal_90s, SAMPLE_RATE, SPEC)


@pytest.mark.parametrize("name", ["mlp", "tdnn", "attention", "attention_tdnn", "tcn", "dsus"])
@pytest.mark.parametrize("normalization", ["session", "global"])
def test_blocked_prediction_equals_whole_file_for_bounded_models(name, normalization, signal_90s, features_90s):
    x = features_90s.iloc[:, 2:].to_numpy(np.float32)
    trained = _trained(name, normalization, x[::3] * 1.1 + 0.2)  # training statistics differ from this file's
    assert trained.model.receptive_field is not None
    predictor = Predictor(SPEC, {"arousal+valence": trained}, None, {})
    whole = predictor.predict_signal(signal_90s, block_s=float("inf"))
    blocked = predictor.predict_signal(signal_90s, block_s=13.0)  # 7 blocks, not aligned to anything
    # the whole-file pass against an independent one: features of the whole signal, the Normalizer on a
    # record that is its own session, the model's forward
    record = make_record("file", features_90s, session="file", speaker="file")
    reference = np.clip(trained.predict([record])[0], *LABEL_RANGE)
    np.testing.assert_allclose(whole[["arousal", "valence"]], reference, atol=1e-5)
    np.testing.assert_array_equal(blocked["time"], whole["time"])
    np.testing.assert_allclose(blocked[["arousal", "valence"]], whole[["arousal", "valence"]], atol=1e-5)


def test_feature_blocks_equal_whole_file_features(signal_90s, features_90s, tmp_path: Path) -> None:
    from emotools.predict import file_features

    chunks = [signal_90s[i : i + 7777] for i in range(0, len(signal_90s), 7777)]  # odd chunk sizes
    feats = file_features(chunks, SAMPLE_RATE, SPEC, tmp_path, block_s=11.0)
    whole = features_90s.iloc[:, 2:].to_numpy(np.float32)
    np.testing.assert_array_equal(np.asarray(feats.x), whole)
    np.testing.assert_allclose(feats.time, ((features_90s["start"] + features_90s["end"]) / 2).to_numpy())
    np.testing.assert_allclose(feats.mean, whole.astype(np.float64).mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(feats.std, whole.astype(np.float64).std(0), rtol=1e-7, atol=1e-9)


def test_features_of_a_steady_harmonic_signal_do_not_depend_on_the_blocks(tmp_path: Path) -> None:
    # Pitch tracking over a slowly gliding harmonic tone carries state across any fixed audio context: features
    # extracted per block with 1 s of context on each side differed from the whole-file pass here (up to 0.19 in
    # F0 functionals at a block edge). One running openSMILE instance does not.
    from emotools.predict import file_features

    t = np.arange(40 * SAMPLE_RATE) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(140 + 40 * np.sin(2 * np.pi * 0.15 * t)) / SAMPLE_RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.4 * t) ** 2)
    signal = (0.1 * voice + 0.01 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    whole = extract_signal(signal, SAMPLE_RATE, SPEC).iloc[:, 2:].to_numpy(np.float32)
    chunks = [signal[i : i + 4000] for i in range(0, len(signal), 4000)]
    feats = file_features(chunks, SAMPLE_RATE, SPEC, tmp_path, block_s=13.0)
    np.testing.assert_array_equal(np.asarray(feats.x), whole)


# --------------------------------------------------------------------------- outputs never overwrite each other


@pytest.fixture(scope="module")
def small_predictor(features_90s: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tdnn predictor folder (session normalization), saved as the notebooks save theirs."""
    home = tmp_path_factory.mktemp("small-predictor")
    trained = _trained("tdnn", "session", features_90s.iloc[:, 2:].to_numpy(np.float32))
    trained.save(home / "model.pt")
    return save_predictor(home / "predictor", SPEC, {"arousal+valence": home / "model.pt"}, None, architecture="tdnn")


def test_output_names_are_distinct() -> None:
    names = output_names(["a/talk.wav", "a/talk.flac", "b/failures.wav", "c/x.wav", "d/x.wav", "e/failures.wav"])
    assert len({n.as_posix() for n in names}) == 6 and all(n.as_posix() != "failures" for n in names)
    assert [n.as_posix() for n in names[:2]] == ["a/talk.wav", "a/talk.flac"]  # relative, suffix kept


def test_cli_gives_every_input_its_own_outputs(small_predictor, signal_90s, tmp_path: Path, capsys) -> None:
    audio = tmp_path / "audio"
    talk = write_audio(audio / "talk.wav", signal_90s[: 5 * SAMPLE_RATE], SAMPLE_RATE)
    other = write_audio(audio / "talk.flac", signal_90s[5 * SAMPLE_RATE : 12 * SAMPLE_RATE], SAMPLE_RATE)
    failures = write_audio(audio / "failures.wav", signal_90s[: 8 * SAMPLE_RATE], SAMPLE_RATE)
    link = audio / "sub" / "talk.wav"
    link.parent.mkdir()
    link.symlink_to(other)  # a link named like talk.wav pointing at talk.flac
    loop_a, loop_b = audio / "loop_a.wav", audio / "loop_b.wav"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    out = tmp_path / "out"
    args = [str(p) for p in (talk, other, failures, link, loop_a, talk)]
    code = cli([*args, "--checkpoint", str(small_predictor), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "loop_a.wav" in err and "1 repeated path" in err
    assert pd.read_csv(out / "failures.csv")["file"].tolist() == [str(loop_a)]
    lengths = {p.relative_to(out).as_posix(): len(pd.read_csv(p)) for p in out.rglob("*.csv") if p.name != "failures.csv"}
    frames = {s: len(extract_signal(signal_90s[: s * SAMPLE_RATE], SAMPLE_RATE, SPEC)) for s in (5, 7, 8)}
    assert sorted(lengths.values()) == sorted([frames[5], frames[7], frames[8], frames[7]]), lengths
    assert len(lengths) == 4


# --------------------------------------------------------------------------- predictors refused at load


def _copy(folder: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, tmp_path / "copy"))


def _edit(folder: Path, **changes) -> None:
    meta = json.loads((folder / "predictor.json").read_text())
    meta.update(changes)
    (folder / "predictor.json").write_text(json.dumps(meta))


def _refused(argv: list[str], capsys) -> str:
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_a_pt_file_is_refused_as_checkpoint(small_predictor, tmp_path, capsys) -> None:
    err = _refused(["x.wav", "--checkpoint", str(small_predictor / "arousal_valence.pt"), "--out", str(tmp_path)],
                   capsys)
    assert "is a file" in err and "predictor.json" in err


def test_a_malformed_postprocess_is_refused(small_predictor, tmp_path, capsys) -> None:
    folder = _copy(small_predictor, tmp_path)
    _edit(folder, postprocess={"targets": ["arousal", "valence"], "rate_hz": 10.0, "steps": [{"smooth": 3}]})
    assert "malformed predictor" in _refused(["x.wav", "--checkpoint", str(folder), "--out", str(tmp_path)], capsys)


def test_weights_that_do_not_fit_the_config_are_refused(small_predictor, tmp_path, capsys) -> None:
    folder = _copy(small_predictor, tmp_path)
    ckpt = torch.load(folder / "arousal_valence.pt", weights_only=True)
    config = json.loads(ckpt["config"])
    ckpt["config"] = json.dumps({**config, "hidden": config["hidden"] * 2})
    torch.save(ckpt, folder / "arousal_valence.pt")
    err = _refused(["x.wav", "--checkpoint", str(folder), "--out", str(tmp_path)], capsys)
    assert "weights do not fit the model config" in err


@pytest.mark.parametrize("spec, words", [
    ({"feature_set": "ComParE_2016", "level": "windowed", "window": 1.0, "hop": 0.1}, "features"),
    ({"feature_set": "eGeMAPSv02", "level": "windowed", "window": 1.0, "hop": 0.04}, "frames/s"),
])
def test_a_feature_spec_the_model_was_not_trained_on_is_refused(small_predictor, tmp_path, capsys, spec, words):
    folder = _copy(small_predictor, tmp_path)
    _edit(folder, feature_spec=spec)
    err = _refused(["x.wav", "--checkpoint", str(folder), "--out", str(tmp_path)], capsys)
    assert words in err and "feature spec" in err


def test_an_unwritable_out_is_refused(small_predictor, tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    err = _refused(["x.wav", "--checkpoint", str(small_predictor), "--out", str(blocker / "out")], capsys)
    assert "cannot write predictions there" in err

