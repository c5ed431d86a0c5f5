"""The corpus-v2 mechanism study (emotools.study.mechanisms): its table against independent computations."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emotools import experiments, plots, postprocess, synth
from emotools.study import StudyError
from emotools.study import mechanisms as M
from emotools.training import FitOptions

TINY = FitOptions(epochs=1, chunk_s=10.0)


def _ccc(a: np.ndarray, b: np.ndarray) -> float:
    """Lin's concordance correlation, straight from the formula (population moments)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    cov = np.mean((a - a.mean()) * (b - b.mean()))
    return float(2 * cov / (a.var() + b.var() + (a.mean() - b.mean()) ** 2))


def _test_ceiling(data, target: str) -> float:
    """The annotation ceiling from the label frames of the test recordings: gold vs the ``*_ceiling`` column."""
    test = [r.id for r in data.records if r.split == "test"]
    frames = pd.concat([data.label_frames[u] for u in test])
    return _ccc(frames[target], frames[f"{target}_ceiling"])


def _system_ccc(grid, arch: str, k: int, kind: str) -> float:
    """Mean over seeds of one system's test CCC (records concatenated), its chain applied here."""
    truth = np.concatenate([r.y[:, k] for r in grid.test_records])
    scores = []
    for cell in (c for c in grid.cells if c.architecture == arch):
        preds = cell.test_predictions
        if kind == "avec":
            preds = postprocess.PostProcessor.from_dict(cell.postprocessor).apply(preds)
        scores.append(_ccc(truth, np.concatenate([p[:, k] for p in preds])))
    return float(np.mean(scores))


def _dev_ccc(grid, arch: str, target: str, kind: str) -> float:
    r = grid.results
    return r[(r["split"] == "dev") & (r["architecture"] == arch) & (r["target"] == target)
             & (r["postprocess"] == kind)]["ccc"].mean()


@pytest.fixture(scope="module")
def study(run_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, one_torch_thread) -> M.MechanismStudy:
    """Two presets of the smoke corpus (one test speaker), mlp and tcn, one epoch."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMOTOOLS_DATA_DIR", str(run_dirs["data"]))
        return M.mechanism_study(["easy", "levels"], corpus_size="smoke", architectures=["tcn"], seeds=[0],
                                 fit_options=TINY, run_root=tmp_path_factory.mktemp("runs"), n_resamples=200, jobs=1,
                                 progress=False)


def test_bad_preset_name_is_one_clear_error_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMOTOOLS_DATA_DIR", str(tmp_path / "data"))
    message = f"presets: unknown corpus preset 'calm'; choose from {', '.join(synth.PRESETS)}"
    with pytest.raises(StudyError, match=re.escape(message)):
        M.mechanism_study(["easy", "calm"], corpus_size="smoke", run_root=tmp_path / "runs")
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()  # nothing rendered or trained
    with pytest.raises(StudyError, match=re.escape("architectures: needs a context architecture besides 'mlp'")):
        M.mechanism_study(["easy"], architectures=["mlp"], run_root=tmp_path / "runs")
    with pytest.raises(StudyError, match="presets: a preset is repeated"):
        M.check_presets(["easy", "easy"])


def test_study_rows_ceilings_and_dev_choices(study: M.MechanismStudy) -> None:
    table = study.table
    assert list(table.columns) == M.MECHANISM_COLUMNS
    assert list(zip(table["preset"], table["target"])) == [(p, t) for p in ("easy", "levels")
                                                          for t in ("arousal", "valence")]
    assert study.failed.empty and set(study.grids) == {"easy", "levels"}
    for preset, grid in study.grids.items():
        assert set(grid.results["label_protocol"]) == {M.preset_protocol(preset)}
        assert {c.architecture for c in grid.cells} == {"mlp", "tcn"}  # mlp added to the context architectures
    for row in table.to_dict("records"):
        grid, data = study.grids[row["preset"]], study.data[row["preset"]]
        k = ["arousal", "valence"].index(row["target"])
        assert row["ceiling"] == pytest.approx(_test_ceiling(data, row["target"]), abs=1e-9)
        for prefix, (who, kind) in M.SYSTEMS.items():
            assert row[f"{prefix}_model"] == ("mlp" if who == "frame_local" else "tcn")
            assert row[prefix] == pytest.approx(_system_ccc(grid, row[f"{prefix}_model"], k, kind), abs=1e-5)
        # one test speaker: no interval anywhere, the difference alone
        assert (row["n_units"], row["unit"], row["n_resamples"]) == (1, "recording", 0)
        assert np.isnan([row["diff_low"], row["diff_high"], row["context_chain_low"]]).all()
        assert row["difference"] == pytest.approx(row["context_chain"] - row["frame_local_chain"], abs=1e-9)
        assert not row["excludes_zero"]
    md = M.mechanism_markdown(table)
    assert md.count("| no CI ") == 4 and "no CIs: only 1 test recording" in md
    assert M.mechanism_findings(table).startswith("- Not resolved")  # nothing stated without a CI


def test_table_numbers_with_two_test_speakers(study: M.MechanismStudy, tmp_path: Path, one_torch_thread) -> None:
    data = study.data["easy"]
    moved = sorted({r.speaker for r in data.records if r.split == "train"})[0]
    records = [dataclasses.replace(r, split="test") if r.speaker == moved else r for r in data.records]
    grid = experiments.run_grid(records, dataset="ground_truth", label_protocol=M.preset_protocol("easy"),
                                architectures=["mlp", "tdnn", "tcn"], seeds=[0, 1], fit_options=TINY,
                                run_dir=tmp_path, jobs=1, progress=False)
    ceiling = {"arousal": 0.9, "valence": 0.8}
    table = M.mechanism_table({"easy": grid}, {"easy": ceiling}, n_resamples=300)
    assert len(table) == 2
    for row in table.to_dict("records"):
        target, k = row["target"], ["arousal", "valence"].index(row["target"])
        assert (row["unit"], row["n_units"], row["n_seeds"], row["n_resamples"]) == ("speaker", 2, 2, 300)
        systems = {}
        for prefix, (who, kind) in M.SYSTEMS.items():
            if who == "context":  # the context model is the best on dev among the non-mlp architectures
                assert row[f"{prefix}_model"] == max(("tdnn", "tcn"), key=lambda a: _dev_ccc(grid, a, target, kind))
            assert row[prefix] == pytest.approx(_system_ccc(grid, row[f"{prefix}_model"], k, kind), abs=1e-5)
            assert row[f"{prefix}_low"] <= row[prefix] <= row[f"{prefix}_high"]
            systems[prefix] = _dev_ccc(grid, row[f"{prefix}_model"], target, kind)
        assert row["difference"] == pytest.approx(row["context_chain"] - row["frame_local_chain"], abs=1e-9)
        assert row["diff_low"] <= row["difference"] <= row["diff_high"]
        assert row["excludes_zero"] == (row["diff_low"] > 0 or row["diff_high"] < 0)
        assert row["best_system"] == max(systems, key=systems.get)
        assert row["best_ccc"] == row[row["best_system"]]
        assert row["best_minus_ceiling"] == pytest.approx(row[row["best_system"]] - ceiling[target], abs=1e-12)
        assert f"{row['difference']:.3f} [{row['diff_low']:.3f}, {row['diff_high']:.3f}]" in M.mechanism_markdown(
            table)
    check = M.target_check(table, preset="easy", min_gain=-1.0, min_headroom=0.0)
    assert check["gain_met"] == bool(table["excludes_zero"].all())
    assert check["headroom_met"] == bool((table["best_minus_ceiling"] <= 0).any())
    targets_md = M.render_targets(check)
    assert targets_md.count("\n") == 1 and ("**met**" in targets_md or "**not met**" in targets_md)
    with pytest.raises(StudyError, match=re.escape("default: no rows in the mechanism table (presets: ['easy'])")):
        M.target_check(table)
    findings = M.mechanism_findings(table)
    stated = [r for r in table.to_dict("records") if r["excludes_zero"]]
    assert findings.count("CCC [") == len(stated)  # only resolved differences are stated
    intervals = experiments.interval_table([grid], n_resamples=300)
    families = M.family_table(intervals)
    assert len(families) == 2 * 3 and set(families["preset"]) == {"easy"}
    for row in families.to_dict("records"):  # every architecture after the chain, its CI around it
        k = ["arousal", "valence"].index(row["target"])
        assert row["ccc"] == pytest.approx(_system_ccc(grid, row["architecture"], k, "avec"), abs=1e-5)
        assert row["ccc_low"] <= row["ccc"] <= row["ccc_high"]
    for _, part in families.groupby("target"):
        assert part.loc[part["ccc"].idxmax(), "tied_best"]  # the best on test is always marked
    families_md = M.family_markdown(families)
    assert families_md.count("\n| easy ") == 2 and families_md.count("**") >= 4
    fig = plots.plot_mechanisms(table)
    assert [ax.get_title() for ax in fig.axes] == ["arousal", "valence"]
    assert fig.legends[0].get_title().get_text() == "error bars: 95% CI"
