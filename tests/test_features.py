"""openSMILE features: levels against direct opensmile calls, one-pass windows, the store, Dask."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import opensmile
import pandas as pd
import pytest
import soundfile as sf

from emotools.audio import AudioMissingError, read_audio, write_audio
from emotools.features import (
    FeatureError,
    FeatureSet,
    FeatureSpec,
    FeatureStore,
    Level,
    cache_key,
    cli,
    extract,
    extract_file,
    extract_signal,
    feature_names,
    to_int16,
)
from emotools.features.store import partial_path

SR = 16000
WINDOWED = FeatureSpec(FeatureSet.eGeMAPSv02, Level.windowed, window=1.0, hop=0.1)


def _smooth(rng: np.random.Generator, n: int, rate_hz: float) -> np.ndarray:
    """A random trajectory in [-1, 1] with about ``rate_hz`` turns per second."""
    knots = rng.uniform(-1, 1, int(n / SR * rate_hz) + 3)
    return np.interp(np.arange(n) / SR * rate_hz, np.arange(knots.size), knots)


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Voiced, speech-like audio: harmonics of a wandering F0 shaped by two moving formants, with pauses."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SR))
    f0 = 150 * 2 ** (0.5 * _smooth(rng, n, 2.0))  # +- half an octave
    level = 10 ** (0.75 * _smooth(rng, n, 1.5))  # +- 15 dB
    f1, f2 = 600 + 250 * _smooth(rng, n, 3.0), 1600 + 500 * _smooth(rng, n, 2.5)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = np.zeros(n)
    for k in range(1, 40):
        gain = np.exp(-0.5 * ((k * f0 - f1) / 150) ** 2) + 0.6 * np.exp(-0.5 * ((k * f0 - f2) / 200) ** 2) + 0.05 / k
        x += gain * (k * f0 < 7500) * np.sin(k * phase)
    x *= level * np.clip(3 * (_smooth(rng, n, 1.0) + 0.4), 0, 1)  # pauses
    x += 0.002 * np.abs(x).max() * rng.standard_normal(n)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    return speechlike(4.0, seed=1)


# --------------------------------------------------------------------------- spec


def test_spec_coerces_names_and_validates() -> None:
    spec = FeatureSpec("GeMAPSv01b", "windowed", window=3, hop=0.5)
    assert spec.feature_set is FeatureSet.GeMAPSv01b and spec.level is Level.windowed
    assert (spec.window, spec.hop, spec.rate_hz) == (3.0, 0.5, 2.0)
    assert FeatureSpec(level="lld").rate_hz == 100.0 and FeatureSpec(level="functionals").rate_hz is None
    assert FeatureSpec(level="lld", window=0.015).to_dict() == {"feature_set": "eGeMAPSv02", "level": "lld"}
    with pytest.raises(ValueError, match="multiple of 0.01"):
        FeatureSpec(window=0.015)
    with pytest.raises(ValueError, match="hop must be a positive"):
        FeatureSpec(hop=0.0)
    with pytest.raises(ValueError, match="unknown feature set 'emobase'; known: eGeMAPSv02"):
        FeatureSpec("emobase")
    with pytest.raises(ValueError, match="unknown level 'frames'"):
        FeatureSpec(level="frames")


def test_int16_scaling_is_opensmiles() -> None:
    x = np.random.default_rng(0).uniform(-1, 1, 10_000).astype(np.float32)
    np.testing.assert_array_equal(to_int16(x), (x * 32768).astype(np.int16))  # the opensmile package's formula
    assert to_int16(np.array([-1.0, 0.0, 1.0])).tolist() == [-32768, 0, 32767]  # full scale clips, never wraps


# --------------------------------------------------------------------------- one signal


@pytest.mark.parametrize(
    "feature_set, level, n_features",
    [
        (FeatureSet.eGeMAPSv02, Level.lld, 25),
        (FeatureSet.eGeMAPSv02, Level.functionals, 88),
        (FeatureSet.GeMAPSv01b, Level.functionals, 62),
        (FeatureSet.ComParE_2016, Level.lld, 65),
    ],
)
def test_levels_match_a_direct_opensmile_call(signal, feature_set, level, n_features) -> None:
    ours = extract_signal(signal, SR, FeatureSpec(feature_set, level))
    direct = opensmile.Smile(
        opensmile.FeatureSet[feature_set.value],
        opensmile.FeatureLevel.LowLevelDescriptors if level is Level.lld else opensmile.FeatureLevel.Functionals,
    ).process_signal(signal, SR)
    assert list(ours.columns) == ["start", "end", *direct.columns]
    assert ours.shape == (len(direct), n_features + 2)
    # Bit-identical values: same configuration and the same int16 conversion.
    np.testing.assert_array_equal(ours.iloc[:, 2:].to_numpy(), direct.to_numpy())
    assert (ours.dtypes.iloc[2:] == np.float32).all()
    np.testing.assert_allclose(ours["start"], direct.index.get_level_values("start").total_seconds(), atol=1e-9)
    # opensmile stretches the last frame to the signal's end; we keep openSMILE's own frame end.
    np.testing.assert_allclose(ours["end"][:-1], direct.index.get_level_values("end").total_seconds()[:-1], atol=1e-9)
    if level is Level.functionals:
        assert ours[["start", "end"]].to_numpy().tolist() == [[0.0, signal.size / SR]]


def test_windowed_level_holds_the_functionals(signal) -> None:
    frames = extract_signal(signal, SR, WINDOWED)
    assert list(frames.columns[2:]) == feature_names(FeatureSpec(level="functionals"))
    assert frames.shape[1] == 88 + 2 and (frames.dtypes.iloc[2:] == np.float32).all()
    assert frames.attrs["rate_hz"] == 10.0 and frames.attrs["seconds"] == signal.size / SR
    assert np.isfinite(frames.iloc[:, 2:].to_numpy()).all()


@pytest.mark.parametrize("window, hop", [(1.0, 0.1), (0.5, 0.25), (2.0, 0.3)])
def test_number_of_windows_follows_duration_and_hop(window, hop) -> None:
    duration = 4.37
    x = speechlike(duration, seed=2)
    frames = extract_signal(x, SR, FeatureSpec(level="windowed", window=window, hop=hop))
    # A window holds the LLD frames starting in [start, end); the last one's
    # analysis reaches 40-50 ms further, so a window needs window + 0.04 s.
    assert len(frames) == math.floor((duration - window - 0.04) / hop + 1e-9) + 1
    n_lld = len(extract_signal(x, SR, FeatureSpec(level="lld")))
    assert len(frames) == (n_lld - round(window / 0.01)) // round(hop / 0.01) + 1
    np.testing.assert_allclose(frames["start"], hop * np.arange(len(frames)), atol=1e-9)
    np.testing.assert_allclose(frames["end"] - frames["start"], window, atol=1e-9)
    assert frames["end"].iloc[-1] <= duration


def test_one_pass_windows_agree_with_one_call_per_window() -> None:
    x = speechlike(5.0, seed=0)
    frames = extract_signal(x, SR, WINDOWED)
    smile = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.Functionals)
    # Each reference call gets the audio of exactly the window's LLD frames (+40 ms, see above).
    reference = np.vstack([
        smile.process_signal(x[round(start * SR): round((end + 0.04) * SR)], SR).to_numpy()
        for start, end in zip(frames["start"], frames["end"])
    ])
    ours = frames.iloc[:, 2:].to_numpy()
    assert ours.shape == reference.shape == (40, 88)
    varying = [j for j in range(88) if ours[:, j].std() > 0 and reference[:, j].std() > 0]
    assert len(varying) >= 80
    correlations = [np.corrcoef(ours[:, j], reference[:, j])[0, 1] for j in varying]
    assert np.median(correlations) >= 0.99


def test_bad_signals_raise_feature_errors(signal) -> None:
    with pytest.raises(FeatureError, match=r"^<signal>: too short for the 1 s window: 0\.900 s"):
        extract_signal(speechlike(0.9), SR, WINDOWED)
    with pytest.raises(FeatureError, match="too short for one openSMILE frame"):
        extract_signal(signal[:400], SR, FeatureSpec(level="lld"))
    with pytest.raises(FeatureError, match="NaN or infinite"):
        extract_signal(np.full(SR, np.nan, dtype=np.float32), SR)
    with pytest.raises(FeatureError, match=r"x\.wav: expected a mono signal"):
        extract_signal(np.zeros((2, SR), dtype=np.float32), SR, path="x.wav")
    with pytest.raises(FeatureError, match="empty signal"):
        extract_signal(np.zeros(0, dtype=np.float32), SR)


def test_extract_file_decodes_through_the_audio_module(tmp_path) -> None:
    path = write_audio(tmp_path / "a.flac", speechlike(2.5, seed=4)[::2].repeat(2), 22050)  # resampled to 16 kHz
    ours = extract_file(path, WINDOWED)
    pd.testing.assert_frame_equal(ours, extract_signal(read_audio(path, sr=SR), SR, WINDOWED))
    with pytest.raises(AudioMissingError):
        extract_file(tmp_path / "missing.wav", WINDOWED)


# --------------------------------------------------------------------------- corpus extraction


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> pd.DataFrame:
    """Three good recordings (ids that need safe file names), a corrupt, a too-short and a missing file."""
    root = tmp_path_factory.mktemp("corpus")
    rows = []
    for i, seconds in enumerate([2.5, 3.0, 3.5]):
        path = root / f"good{i}.wav"
        sf.write(path, speechlike(seconds, seed=10 + i), SR, subtype="PCM_16")
        rows.append({"file": str(path), "utterance": f"spk{i}/utt {i}", "duration": seconds})
    (root / "corrupt.wav").write_bytes(b"RIFF-but-not-really" * 50)
    sf.write(root / "short.wav", speechlike(0.6, seed=3), SR)
    rows += [
        {"file": str(root / "corrupt.wav"), "utterance": "corrupt", "duration": 1.0},
        {"file": str(root / "short.wav"), "utterance": "short", "duration": 0.6},
        {"file": str(root / "missing.wav"), "utterance": "missing", "duration": 1.0},
    ]
    return pd.DataFrame(rows)


GOOD = ["spk0/utt 0", "spk1/utt 1", "spk2/utt 2"]


def _mtimes(store: FeatureStore) -> dict[str, int]:
    return {path: (store.root / path).stat().st_mtime_ns for path in store.index["path"]}


def test_bad_files_are_recorded_and_the_rest_finishes(corpus, tmp_path) -> None:
    store = extract(corpus, WINDOWED, out=tmp_path / "store", jobs=2, progress=False)
    assert store.utterances == GOOD
    failures = store.failures.set_index("utterance")["reason"]
    assert sorted(failures.index) == ["corrupt", "missing", "short"]
    assert "not readable audio" in failures["corrupt"]
    assert failures["missing"] == "file does not exist"
    assert failures["short"].startswith("too short for the 1 s window")
    summary = store.summary
    assert (summary["processed"], summary["reused"], summary["failed"]) == (3, 0, 3)
    assert summary["audio_seconds"] == pytest.approx(9.0)
    assert summary["backend"] == "processes(2)" and summary["spec"] == WINDOWED.to_dict()
    assert summary["wall_time_s"] > 0 and "task_cpu_s" in summary
    for row in store.index.itertuples():
        loaded = store.load(row.utterance)
        pd.testing.assert_frame_equal(loaded, extract_file(row.file, WINDOWED))
        assert loaded.attrs["utterance"] == row.utterance and loaded.attrs["rate_hz"] == 10.0
        assert row.frames == len(loaded) and "/" not in row.path.removeprefix("features/")
    assert not [p for p in store.root.rglob("*") if p.name.startswith(".")]  # no temporary files left
    with pytest.raises(KeyError, match="'corrupt' is not in the feature store"):
        store.load("corrupt")


def test_rerun_reuses_the_cache_and_changed_settings_invalidate_it(corpus, tmp_path) -> None:
    out = tmp_path / "store"
    first = extract(corpus, WINDOWED, out=out, jobs=1, progress=False)
    before = {u: first.load(u) for u in GOOD}
    stamps = _mtimes(first)

    again = extract(corpus, WINDOWED, out=out, jobs=1, progress=False)
    assert (again.summary["processed"], again.summary["reused"], again.summary["failed"]) == (0, 3, 3)
    assert _mtimes(again) == stamps  # nothing rewritten
    for u in GOOD:
        np.testing.assert_array_equal(again.load(u).to_numpy(), before[u].to_numpy())

    half = FeatureSpec(level="windowed", window=0.5, hop=0.1)
    changed = extract(corpus, half, out=out, jobs=1, progress=False)
    # 0.6 s is too short for a 1 s window but long enough for a 0.5 s one.
    assert (changed.summary["processed"], changed.summary["reused"]) == (4, 0)
    assert changed.utterances == [*GOOD, "short"]
    for row in changed.index.iloc[:3].itertuples():
        pd.testing.assert_frame_equal(changed.load(row.utterance), extract_file(row.file, half))
        assert len(changed.load(row.utterance)) > len(before[row.utterance])

    # New audio under the same name is a new recording.
    sf.write(corpus.file[1], speechlike(3.0, seed=99), SR, subtype="PCM_16")
    touched = extract(corpus, half, out=out, jobs=1, progress=False)
    assert (touched.summary["processed"], touched.summary["reused"]) == (1, 3)
    pd.testing.assert_frame_equal(touched.load(GOOD[1]), extract_file(corpus.file[1], half))


def test_an_interrupted_run_resumes(corpus, tmp_path) -> None:
    out = tmp_path / "store"
    complete = extract(corpus, WINDOWED, out=out, jobs=1, progress=False)
    expected = {u: complete.load(u) for u in GOOD}
    unfinished = out / complete.index["path"].iloc[2]
    # What a kill leaves: no index or summary yet, one recording unfinished, a temporary file.
    (out / "index.parquet").unlink()
    (out / "summary.json").unlink()
    unfinished.unlink()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    partial_path(unfinished, pid=int(dead.stdout)).write_bytes(b"half a file")  # its writer was killed
    resumed = extract(corpus, WINDOWED, out=out, jobs=1, progress=False)
    assert (resumed.summary["processed"], resumed.summary["reused"]) == (1, 2)
    assert not list((out / "features").glob(".partial-*"))
    for u in GOOD:
        pd.testing.assert_frame_equal(resumed.load(u), expected[u])


def test_cache_key_covers_audio_and_every_setting(tmp_path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, speechlike(1.5), SR)
    key = cache_key(path, WINDOWED)
    assert key == cache_key(path, FeatureSpec()) and len(key) == 32
    variants = [
        FeatureSpec(window=2.0), FeatureSpec(hop=0.2), FeatureSpec(level="functionals"), FeatureSpec(level="lld"),
        FeatureSpec("GeMAPSv01b"), FeatureSpec("ComParE_2016"),
    ]
    assert len({key, *(cache_key(path, spec) for spec in variants)}) == 1 + len(variants)
    # window and hop do not determine LLDs or whole-utterance functionals
    assert cache_key(path, FeatureSpec(level="lld", window=2.0)) == cache_key(path, FeatureSpec(level="lld"))
    # The audio's content counts, not its name or timestamps: a touched or copied file keeps its key.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert cache_key(path, WINDOWED) == key
    copy = tmp_path / "elsewhere" / "b.wav"
    copy.parent.mkdir()
    copy.write_bytes(path.read_bytes())
    assert cache_key(copy, WINDOWED) == key
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # one bit of the last sample
    path.write_bytes(bytes(data))
    assert cache_key(path, WINDOWED) != key
    assert cache_key(path, WINDOWED, digest=hashlib.sha256(bytes(data)).hexdigest()[:32]) == cache_key(path, WINDOWED)


def test_duplicate_ids_and_missing_columns(corpus, tmp_path) -> None:
    table = pd.concat([corpus.iloc[:1], corpus.iloc[:1]], ignore_index=True)
    store = extract(table, WINDOWED, out=tmp_path / "store", jobs=1, progress=False)
    assert store.utterances == GOOD[:1]
    assert store.failures["reason"].tolist() == ["duplicate utterance id in the table"]
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['utterance'\]"):
        extract(corpus.drop(columns="utterance"), WINDOWED, out=tmp_path / "x")
    with pytest.raises(ValueError, match="either scheduler"):
        extract(corpus, WINDOWED, out=tmp_path / "x", scheduler="tcp://127.0.0.1:1", dask_workers=1)


def test_a_dask_cluster_gives_the_local_features(corpus, tmp_path) -> None:
    from distributed import LocalCluster

    local = extract(corpus, WINDOWED, out=tmp_path / "local", jobs=1, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, host="127.0.0.1", protocol="tcp",
                      dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        remote = extract(corpus, WINDOWED, out=tmp_path / "dask", scheduler=cluster.scheduler_address,
                         progress=False)
    assert remote.summary["backend"] == f"dask {cluster.scheduler_address}" and remote.summary["workers"] == 2
    assert remote.utterances == local.utterances == GOOD
    for u in GOOD:
        pd.testing.assert_frame_equal(remote.load(u), local.load(u))
    pd.testing.assert_frame_equal(
        remote.failures.sort_values("utterance", ignore_index=True),
        local.failures.sort_values("utterance", ignore_index=True),
    )


def test_dask_workers_start_a_local_cluster(corpus, tmp_path) -> None:
    table = corpus.iloc[:2]
    local = extract(table, WINDOWED, out=tmp_path / "local", jobs=1, progress=False)
    remote = extract(table, WINDOWED, out=tmp_path / "dask", dask_workers=1, progress=False)
    assert remote.summary["backend"] == "dask LocalCluster(1)" and remote.summary["processed"] == 2
    for u in GOOD[:2]:
        pd.testing.assert_frame_equal(remote.load(u), local.load(u))


# --------------------------------------------------------------------------- command line


def _annotated_corpus(root: Path) -> Path:
    (root / "audio").mkdir(parents=True)
    (root / "annotations").mkdir()
    for i, name in enumerate(["rec_a", "rec_b"]):
        x = speechlike(2.0 + i, seed=20 + i)
        sf.write(root / "audio" / f"{name}.wav", x, SR, subtype="PCM_16")
        time = np.round(np.arange(0, x.size / SR, 0.1), 3)
        pd.DataFrame({"time": time, "arousal": np.sin(time), "valence": np.cos(time)}).to_csv(
            root / "annotations" / f"{name}.csv", index=False
        )
    pd.DataFrame({"recording": ["rec_a", "rec_b"], "speaker": ["s1", "s2"], "split": ["train", "test"]}).to_csv(
        root / "metadata.csv", index=False
    )
    return root


def test_cli_extracts_a_corpus(tmp_path, isolated_dirs, capsys) -> None:
    root = _annotated_corpus(tmp_path / "corpus")
    out = tmp_path / "store"
    argv = [str(root), "--corpus", "annotated", "--level", "windowed", "--window", "1.0", "--hop", "0.1",
            "--jobs", "1", "--out", str(out), "--no-progress"]
    assert cli(argv) == 0
    assert "2 extracted, 0 reused from cache, 0 failed" in capsys.readouterr().out
    store = FeatureStore(out)
    assert store.utterances == ["rec_a", "rec_b"] and store.index["speaker"].tolist() == ["s1", "s2"]
    pd.testing.assert_frame_equal(store.load("rec_b"), extract_file(root / "audio" / "rec_b.wav", WINDOWED))
    assert cli(argv) == 0 and "0 extracted, 2 reused from cache" in capsys.readouterr().out
    # Without --out the store goes under the data folder, named by corpus and spec.
    assert cli([str(root), "--corpus", "annotated", "--level", "functionals", "--jobs", "1", "--no-progress"]) == 0
    default = isolated_dirs["data"] / "features" / "annotated-eGeMAPSv02-functionals"
    assert FeatureStore(default).index["frames"].tolist() == [1, 1]


def test_cli_refuses_bad_options(tmp_path, capsys) -> None:
    for argv in (["--window", "0.015"], ["--jobs", "0"], ["--scheduler", "tcp://127.0.0.1:1", "--dask-workers", "2"]):
        with pytest.raises(SystemExit) as exit_:
            cli([str(tmp_path), "--corpus", "annotated", *argv])
        assert exit_.value.code == 2
    assert cli([str(tmp_path), "--corpus", "nope", "--no-progress"]) == 1
    assert "unknown corpus 'nope'" in capsys.readouterr().err
    assert cli([str(tmp_path / "absent"), "--corpus", "annotated", "--no-progress"]) == 1
    assert "absent: annotated corpus root folder does not exist" in capsys.readouterr().err
