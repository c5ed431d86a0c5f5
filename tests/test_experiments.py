"""The experiment grid, results tables, label chaining and corpus subsetting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emotools import corpora, experiments, metrics
from emotools.sequences import SequenceRecord
from emotools.training import FitOptions


def _records(n_per_split: dict[str, int], *, frames: int = 120, seed: int = 0) -> list[SequenceRecord]:
    """Records whose labels are a smoothed linear function of the features (learnable)."""
    rng = np.random.default_rng(seed)
    out = []
    for split, n in n_per_split.items():
        for i in range(n):
            x = rng.normal(size=(frames, 4)).astype(np.float32)
            y = np.stack([np.convolve(x[:, 0], np.ones(5) / 5, mode="same"), -x[:, 1]], axis=1)
            out.append(SequenceRecord(id=f"{split}{i}", x=x, y=y, time=np.arange(frames) / 10.0, rate_hz=10.0,
                                      speaker=f"spk-{split}{i % 2}", session=f"{split}{i}", split=split))
    return out


def test_score_rows_match_metrics_on_concatenation() -> None:
    recs = _records({"test": 3})
    rng = np.random.default_rng(1)
    preds = [r.y + rng.normal(scale=0.5, size=r.y.shape) for r in recs]
    rows = experiments.score_rows(recs, preds, ("arousal", "valence"))
    truth = np.concatenate([r.y for r in recs])
    pred = np.concatenate(preds)
    for k, row in enumerate(rows):
        assert row["ccc"] == pytest.approx(metrics.ccc(truth[:, k], pred[:, k]), abs=1e-9)
        assert row["mse"] == pytest.approx(metrics.mse(truth[:, k], pred[:, k]), abs=1e-9)
        assert row["rmse"] == pytest.approx(np.sqrt(row["mse"]), abs=1e-6)
        per = np.mean([metrics.ccc(r.y[:, k], p[:, k]) for r, p in zip(recs, preds)])
        assert row["ccc_per_recording"] == pytest.approx(per, abs=1e-9)
        assert row["ccc_protocol"] == "concat"


def test_constant_predictions_score_zero_not_nan() -> None:
    recs = _records({"test": 2})
    rows = experiments.score_rows(recs, [np.zeros_like(r.y) for r in recs], ("arousal", "valence"))
    assert all(row["ccc"] == 0.0 and row["ccc_per_recording"] == 0.0 for row in rows)


def test_run_grid_tidy_results_caching_and_tables(tmp_path: Path, isolated_dirs) -> None:
    recs = _records({"train": 4, "dev": 2, "test": 2})
    kwargs = dict(dataset="toy", label_protocol="annotation", architectures=["mlp", "lstm"], seeds=[0],
                  run_dir=tmp_path / "run", fit_options=FitOptions(epochs=3, chunk_s=6.0), progress=False)
    grid = experiments.run_grid(recs, **kwargs)
    r = grid.results
    assert list(r.columns) == experiments.RESULT_COLUMNS
    # 2 architectures x 2 targets x 2 splits x (raw, post-processed)
    assert len(r) == 2 * 2 * 2 * 2
    assert r["ccc"].notna().all() and set(r["split"]) == {"dev", "test"}
    assert set(grid.histories["architecture"]) == {"mlp", "lstm"}
    assert all(p.shape == (len(t), 2) for p, t in zip(grid.cells[0].test_predictions, grid.test_records))
    # A rerun with the same data and options is served from the cache, identically.
    again = experiments.run_grid(recs, **kwargs)
    pd.testing.assert_frame_equal(again.results, r)
    # Changed options train anew (a different cache key).
    changed = experiments.run_grid(recs, **{**kwargs, "fit_options": FitOptions(epochs=2, chunk_s=6.0),
                                            "architectures": ["mlp"]})
    assert len(list((tmp_path / "run").iterdir())) == 2
    assert len(changed.results) == 8

    table = experiments.summary_table(r)
    assert list(table["architecture"]) == ["mlp", "lstm"]
    assert {"ccc arousal", "ccc valence", "mse arousal", "mse valence"} <= set(table.columns)
    csv, md = experiments.write_results(r, "toy_results", note="a note")
    assert pd.read_csv(csv).shape == r.shape
    assert "a note" in md.read_text() and "| mlp" in md.read_text().replace("|  ", "| ")
    summary = experiments.write_summary(["toy_results"]).read_text()
    assert "lstm" in summary


def test_run_grid_separate_mode_trains_one_model_per_target(tmp_path: Path) -> None:
    recs = _records({"train": 3, "dev": 1, "test": 1})
    grid = experiments.run_grid(recs, dataset="toy", label_protocol="annotation", architectures=["mlp"],
                                modes=["separate"], run_dir=tmp_path, fit_options=FitOptions(epochs=2, chunk_s=6.0),
                                progress=False, postprocess_chain=False)
    [cell] = grid.cells
    assert set(cell.model_paths) == {"arousal", "valence"}
    assert set(grid.histories["group"]) == {"arousal", "valence"}
    assert set(grid.results["postprocess"]) == {"none"}


def test_run_grid_refuses_missing_split() -> None:
    with pytest.raises(ValueError, match="no test records"):
        experiments.run_grid(_records({"train": 2, "dev": 1}), dataset="toy", label_protocol="seed",
                             architectures=["mlp"], progress=False)


def test_per_speaker_scores() -> None:
    recs = _records({"test": 4})
    preds = [r.y for r in recs]
    ps = experiments.per_speaker(recs, preds, ("arousal", "valence"))
    assert set(ps["speaker"]) == {"spk-test0", "spk-test1"}
    assert np.allclose(ps["ccc"], 1.0)


def test_limit_hours_keeps_whole_speakers_and_every_split() -> None:
    table = pd.DataFrame({"speaker": list("aabbccdd"), "split": ["train"] * 4 + ["dev"] * 2 + ["test"] * 2,
                          "duration": [1800.0] * 8, "utterance": list("12345678"), "file": list("12345678")})
    small = corpora.limit_hours(table, 0.5)
    assert set(small["split"]) == {"train", "dev", "test"}
    assert small.groupby("speaker").size().eq(2).all()
    assert set(corpora.limit_hours(table, 3.5)["speaker"]) == set("abcd")
    with pytest.raises(ValueError, match="hours must be > 0"):
        corpora.limit_hours(table, 0)


def test_parallel_cells_equal_serial_cells(tmp_path: Path) -> None:
    recs = _records({"train": 3, "dev": 1, "test": 1}, seed=5)
    kwargs = dict(dataset="toy", label_protocol="annotation", architectures=["mlp", "tcn"],
                  fit_options=FitOptions(epochs=2, chunk_s=6.0), progress=False, postprocess_chain=False)
    serial = experiments.run_grid(recs, run_dir=tmp_path / "serial", jobs=1, **kwargs)
    parallel = experiments.run_grid(recs, run_dir=tmp_path / "parallel", jobs=2, **kwargs)
    pd.testing.assert_frame_equal(serial.results, parallel.results)
    for a, b in zip(serial.cells, parallel.cells):
        for x, y in zip(a.test_predictions, b.test_predictions):
            np.testing.assert_array_equal(x, y)
