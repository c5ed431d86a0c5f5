"""Two smoke runs of the ground-truth notebook with one seed give identical tables; another seed does not."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from emotools import notebooks


def _run(run_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, name: str, **parameters) -> pd.DataFrame:
    # Shared data (the rendered corpus and features are cached), fresh results:
    # every model is trained again.
    monkeypatch.setenv("EMOTOOLS_DATA_DIR", str(run_dirs["data"]))
    monkeypatch.setenv("EMOTOOLS_RESULTS_DIR", str(run_dirs["data"].parent / f"determinism-{name}" / "results"))
    monkeypatch.setenv("EMOTOOLS_FIGURES_DIR", str(run_dirs["data"].parent / f"determinism-{name}" / "figures"))
    notebooks.run_all(["01_ground_truth"], smoke=True, parameters=parameters)
    return pd.read_csv(run_dirs["data"].parent / f"determinism-{name}" / "results" / "01_ground_truth.csv")


def test_ground_truth_notebook_is_deterministic_per_seed(run_dirs, monkeypatch) -> None:
    first = _run(run_dirs, monkeypatch, "a")
    second = _run(run_dirs, monkeypatch, "b")
    pd.testing.assert_frame_equal(first, second)
    assert first["ccc"].notna().all()
    other = _run(run_dirs, monkeypatch, "c", seeds=[1])
    assert set(other["seed"]) == {1}
    assert not (other["ccc"].to_numpy() == first["ccc"].to_numpy()).all(), "a different seed gave the same results"
