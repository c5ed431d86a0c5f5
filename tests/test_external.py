"""External features: the original's arrays, MuSe-style frame CSVs and plain tables as records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emotools.features import ExternalFeatureError, from_arrays, read_frames, read_table


def frames(segment: int, n: int = 6, step_ms: int = 250, start: float = 0.0) -> pd.DataFrame:
    t = np.arange(n) * step_ms
    return pd.DataFrame({"timestamp": t, "segment_id": segment, "f0": start + np.arange(n, dtype=float),
                         "loud": np.full(n, float(segment))})


def labels(segment: int, n: int = 6, step_ms: int = 250) -> pd.DataFrame:
    t = np.arange(n) * step_ms
    return pd.DataFrame({"timestamp": t, "segment_id": segment, "arousal": np.linspace(0, 1, n) + segment,
                         "valence": -np.linspace(0, 1, n)})


def test_arrays_round_trip_through_npy_files(tmp_path: Path):
    X = np.random.default_rng(0).normal(size=(7, 88))
    a, v = np.linspace(0, 1, 7), np.linspace(1, 0, 7)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "a.npy", a)
    records = from_arrays(tmp_path / "X.npy", {"arousal": str(tmp_path / "a.npy"), "valence": v},
                          splits=["train"] * 5 + ["test"] * 2)
    assert [r.id for r in records] == [str(i) for i in range(7)] and records[6].split == "test"
    assert np.allclose(np.concatenate([r.x for r in records]), X.astype(np.float32))
    assert np.allclose(np.concatenate([r.y for r in records]), np.stack([a, v], 1))
    assert all(len(r) == 1 and r.time.tolist() == [0.0] for r in records)
    assert records[0].target_names == ("arousal", "valence") and records[0].feature_names[87] == "f87"


def test_arrays_reject_bad_input(tmp_path: Path):
    X = np.ones((4, 3))
    X[2, 1] = np.nan
    with pytest.raises(ExternalFeatureError, match=r"^features: NaN at row 2, column 'f1'"):
        from_arrays(X)
    X[2, 1] = np.inf
    with pytest.raises(ExternalFeatureError, match=r"^features: inf at row 2, column 'f1'"):
        from_arrays(X)
    with pytest.raises(ExternalFeatureError, match=r"must be a non-empty \(utterances, features\) matrix"):
        from_arrays(np.ones(5))
    with pytest.raises(ExternalFeatureError, match=r"labels 'arousal' must be one value per utterance \(4\)"):
        from_arrays(np.ones((4, 3)), {"arousal": np.ones(3)})
    with pytest.raises(ExternalFeatureError, match=r"^labels: NaN at row 1, column 'valence'"):
        from_arrays(np.ones((4, 3)), {"arousal": np.ones(4), "valence": [0, np.nan, 0, 0]})
    with pytest.raises(ExternalFeatureError, match="duplicate ids"):
        from_arrays(np.ones((3, 2)), ids=["a", "b", "a"])
    with pytest.raises(ExternalFeatureError, match=r"missing\.npy: cannot read features"):
        from_arrays(tmp_path / "missing.npy")


def test_muse_frames_round_trip_in_milliseconds(tmp_path: Path):
    paths = []
    for seg in (1, 2):
        frames(seg).to_csv(tmp_path / f"{seg}.csv", index=False)
        paths.append(tmp_path / f"{seg}.csv")
    pd.concat([labels(1), labels(2)]).to_csv(tmp_path / "labels.csv", index=False)
    records, failures = read_frames(paths, str(tmp_path / "labels.csv"))
    assert failures == [] and [r.id for r in records] == ["1", "2"]
    rec = records[1]
    assert rec.rate_hz == 4.0 and rec.time.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]
    assert rec.x[:, 0].tolist() == list(range(6)) and rec.feature_names == ("f0", "loud")
    assert np.allclose(rec.y[:, 0], np.linspace(0, 1, 6) + 2) and rec.target_names == ("arousal", "valence")


def test_muse_per_dimension_label_files_keep_the_label_frames(tmp_path: Path):
    frames(1, n=8).to_csv(tmp_path / "f.csv", index=False)
    lab = labels(1).iloc[1:5]  # labels on part of the features' grid
    for target in ("arousal", "valence"):
        lab.rename(columns={target: "value"})[["timestamp", "value", "segment_id"]].to_csv(
            tmp_path / f"{target}.csv", index=False)
    records, _ = read_frames(tmp_path / "f.csv", {t: tmp_path / f"{t}.csv" for t in ("arousal", "valence")})
    assert records[0].time.tolist() == [0.25, 0.5, 0.75, 1.0] and records[0].x[:, 0].tolist() == [1, 2, 3, 4]
    assert np.allclose(records[0].y, lab[["arousal", "valence"]].to_numpy())


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_plain_tables_round_trip(tmp_path: Path, suffix: str):
    table = pd.DataFrame({"id": ["u1", "u2", "u3"], "speaker": ["s1", "s1", "s2"], "a": [1.0, 2.0, 3.0],
                          "b": [0.5, 0.25, 0.0], "arousal": [0.1, 0.2, 0.3]})
    path = tmp_path / f"t{suffix}"
    table.to_csv(path, index=False) if suffix == ".csv" else table.to_parquet(path)
    records, failures = read_table(path, targets=["arousal"])
    assert failures == [] and [(r.id, r.speaker, len(r)) for r in records] == [("u1", "s1", 1), ("u2", "s1", 1),
                                                                             ("u3", "s2", 1)]
    assert records[2].x.tolist() == [[3.0, 0.0]] and records[2].feature_names == ("a", "b")
    assert records[1].y.tolist() == [[pytest.approx(0.2)]]
    frame_level = pd.concat([frames(1).rename(columns={"segment_id": "id"})])
    recs, _ = read_table(frame_level, id_column="id", time_column="timestamp", time_unit="ms")
    assert recs[0].y is None and recs[0].rate_hz == 4.0 and len(recs[0]) == 6


def test_bad_recordings_are_recorded_and_the_rest_goes_on(tmp_path: Path, caplog):
    bad = frames(2)
    bad.loc[3, "f0"] = np.nan
    pd.concat([frames(1), bad, frames(3)]).to_csv(tmp_path / "f.csv", index=False)
    pd.concat([labels(1), labels(2), labels(4)]).to_csv(tmp_path / "l.csv", index=False)
    records, failures = read_frames(tmp_path / "f.csv", tmp_path / "l.csv")
    assert [r.id for r in records] == ["1"]
    reasons = {f["id"]: f["reason"] for f in failures}
    assert reasons["2"] == "recording 2: NaN at row 9, column 'f0' (1 non-finite value(s) in all)"
    assert reasons["3"] == "recording 3: no labels for this id"
    assert reasons["4"] == "recording 4: labels but no features for this id"
    assert all(f["file"] == str(tmp_path / ("l.csv" if f["id"] == "4" else "f.csv")) for f in failures)
    assert sum("skipping" in r.message for r in caplog.records) == 3


@pytest.mark.parametrize("change, message", [
    (lambda f: f.assign(timestamp=[0, 250, 500, 400, 1000, 1250]), r"timestamps not increasing at row 3"),
    (lambda f: f.assign(timestamp=[0, 250, 500, 750, 1100, 1350]), r"timestamps not on a 0\.25 s grid at row 4"),
    (lambda f: f.assign(loud=[1, 2, np.inf, 4, 5, 6]), r"inf at row 2, column 'loud'"),
    (lambda f: f.assign(loud="x"), r"column 'loud' is not numeric"),
    (lambda f: f.drop(columns="timestamp"), r"features lack column\(s\) \['timestamp'\]"),
])
def test_frames_reject_bad_input_with_a_clear_message(tmp_path: Path, change, message):
    change(frames(1)).to_csv(tmp_path / "f.csv", index=False)
    labels(1).to_csv(tmp_path / "l.csv", index=False)
    with pytest.raises(ExternalFeatureError, match=f"^{tmp_path / 'f.csv'}: .*{message}"):
        read_frames(tmp_path / "f.csv", tmp_path / "l.csv", strict=True)
    with pytest.raises(ExternalFeatureError, match=f"no usable recording .*{message}"):
        read_frames(tmp_path / "f.csv", tmp_path / "l.csv")


def test_inconsistent_feature_count_and_off_grid_labels(tmp_path: Path):
    frames(1).to_csv(tmp_path / "1.csv", index=False)
    frames(2).drop(columns="loud").to_csv(tmp_path / "2.csv", index=False)
    records, failures = read_frames([tmp_path / "1.csv", tmp_path / "2.csv"])
    assert [r.id for r in records] == ["1"]
    assert failures[0]["file"] == str(tmp_path / "2.csv")
    assert failures[0]["reason"].startswith("inconsistent features: 3 columns, ") and "missing ['loud']" in \
        failures[0]["reason"]
    lab = labels(1).assign(timestamp=np.arange(6) * 250 + 100)
    with pytest.raises(ExternalFeatureError, match=r"labels not on the features' grid: 6 label time\(s\)"):
        read_frames(tmp_path / "1.csv", lab, strict=True)
    with pytest.raises(ExternalFeatureError, match=r"2 rows for one id; frame-level tables need a time column"):
        read_table(pd.DataFrame({"id": ["a", "a"], "x": [1.0, 2.0]}), strict=True)


def test_external_records_train(tmp_path: Path):
    from emotools.training import FitOptions, fit

    records, _ = read_frames([frames(s, n=12, start=s) for s in (1, 2, 3)], [labels(s, n=12) for s in (1, 2, 3)])
    trained = fit("tdnn", records[:2], records[2:], FitOptions(epochs=2, chunk_s=None, precision="float32"),
                  progress=False)
    assert trained.rate_hz == 4.0 and trained.targets == ("arousal", "valence") and len(trained.history) == 2


def test_each_format_trains_through_run_grid(tmp_path: Path):
    # the three ways in, each into the same grid: the original's arrays (random utterance split, no dev set),
    # MuSe-style frame CSVs and a plain table with a split column (train / dev / test)
    from emotools.experiments import run_grid
    from emotools.training import FitOptions

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    arrays = from_arrays(X, {"arousal": rng.uniform(size=30), "valence": rng.uniform(size=30)},
                         splits=["train"] * 24 + ["test"] * 6)
    frame_recs, _ = read_frames([frames(s, n=12, start=s) for s in range(1, 7)],
                                [labels(s, n=12) for s in range(1, 7)])
    frame_recs = [r.replace(split=split) for r, split in zip(frame_recs, ["train"] * 4 + ["dev", "test"])]
    table = pd.DataFrame({"id": [f"u{i}" for i in range(12)], "split": ["train"] * 8 + ["dev"] * 2 + ["test"] * 2,
                          "a": rng.normal(size=12), "b": rng.normal(size=12), "arousal": rng.uniform(size=12),
                          "valence": rng.uniform(size=12)})
    table_recs, _ = read_table(table, targets=["arousal", "valence"])
    options = FitOptions(epochs=2, chunk_s=None, precision="float32")
    for name, records, chain in (("arrays", arrays, False), ("frames", frame_recs, True), ("table", table_recs, True)):
        grid = run_grid(records, dataset=name, label_protocol="external", architectures=["mlp"], fit_options=options,
                        postprocess_chain=chain, run_dir=tmp_path / name, jobs=1, progress=False)
        test = grid.results[grid.results["split"] == "test"]
        assert len(test) == (4 if chain else 2) and test["ccc"].notna().all(), name
        assert [len(p) for p in grid.cells[0].test_predictions] == [len(r) for r in records if r.split == "test"]
