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

    # Intervals of a really trained grid: the AVEC chain fit on dev, re-applied, gives the rows' CCC.
    intervals = experiments.interval_table(grid, n_resamples=200).set_index(["architecture", "target", "postprocess"])
    test = r[r["split"] == "test"].set_index(["architecture", "target", "postprocess"])["ccc"]
    for key, ccc in test.items():
        assert intervals.loc[key, "ccc"] == pytest.approx(ccc, abs=1e-6), key
    assert set(intervals["unit"]) == {"speaker"} and set(intervals["n_units"]) == {2}


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


def test_run_grid_without_dev_keeps_the_last_epoch_and_scores_test_only(tmp_path: Path) -> None:
    recs = _records({"train": 3, "test": 2})
    with pytest.raises(ValueError, match="no dev records .the AVEC chain is tuned on dev"):
        experiments.run_grid(recs, dataset="toy", label_protocol="seed", architectures=["mlp"], progress=False,
                             run_dir=tmp_path)
    grid = experiments.run_grid(recs, dataset="toy", label_protocol="seed", architectures=["mlp"], run_dir=tmp_path,
                                fit_options=FitOptions(epochs=3, chunk_s=6.0), postprocess_chain=False,
                                progress=False)
    assert set(grid.results["split"]) == {"test"} and len(grid.results) == 2
    [cell] = grid.cells
    assert cell.history["epoch"].tolist() == [1, 2, 3] and "dev_ccc" not in cell.history
    from emotools import training

    kept = training.load(cell.model_paths["arousal+valence"])
    assert kept.best_epoch == 3  # no dev: the last epoch, whatever its train loss
    predictions = kept.predict(grid.test_records)
    assert all(np.array_equal(a, b) for a, b in zip(predictions, cell.test_predictions))


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


# ------------------------------------------------------------------------ intervals


def _hand_grid(noise: dict[str, float], *, seeds: int = 3, speakers: int = 4, per_speaker: int = 2,
               frames: int = 200, bias: float = 0.1) -> experiments.GridResult:
    """A GridResult built by hand: per architecture, predictions = truth + noise of the given sd (per seed).

    Each speaker has its own truth scale, so test speakers differ; the AVEC chain is a fixed bias correction.
    """
    from emotools.postprocess import PostProcessor, TargetSteps

    rng = np.random.default_rng(7)
    records = []
    for s in range(speakers):
        for i in range(per_speaker):
            t = np.arange(frames) / 10.0
            y = (0.3 + 0.2 * s) * np.stack([np.sin(t / 2 + i + s), np.cos(t / 3 + s)], axis=1)
            records.append(SequenceRecord(id=f"t{s}-{i}", x=np.zeros((frames, 1), np.float32), y=y.astype(np.float32),
                                          time=t, rate_hz=10.0, speaker=f"spk{s}", session=f"t{s}-{i}", split="test"))
    targets = ("arousal", "valence")
    chain = PostProcessor(targets, 10.0, [TargetSteps(offset=-bias), TargetSteps(offset=-bias)]).to_dict()
    cells = []
    for arch, sd in noise.items():
        for seed in range(seeds):
            preds = [(r.y + bias + rng.normal(scale=sd, size=r.y.shape)).astype(np.float32) for r in records]
            post = PostProcessor.from_dict(chain).apply(preds)
            rows = [{"split": "test", "postprocess": kind, **row} for kind, p in (("none", preds), ("avec", post))
                    for row in experiments.score_rows(records, p, targets)]
            # dev rows: the architecture with less noise is better on dev too
            rows += [{**row, "split": "dev"} for row in rows]
            cells.append(experiments.Cell(arch, "joint", seed, targets, rows, pd.DataFrame(), preds, chain))
    results = pd.DataFrame([{"dataset": "toy", "label_protocol": "annotation", "architecture": c.architecture,
                             "mode": c.mode, "seed": c.seed, **r} for c in cells for r in c.rows])
    return experiments.GridResult(results[experiments.RESULT_COLUMNS], pd.DataFrame(), cells, records)


def test_interval_table_estimates_equal_results_means_and_ci_contains_them() -> None:
    grid = _hand_grid({"mlp": 0.6, "tcn": 0.2})
    table = experiments.interval_table(grid, n_resamples=500)
    assert list(table.columns) == experiments.INTERVAL_COLUMNS
    assert len(table) == 2 * 2 * 2  # architectures x targets x (raw, avec)
    test = grid.results[grid.results["split"] == "test"]
    means = test.groupby(["architecture", "target", "postprocess"])["ccc"].agg(["mean", "std"])
    for _, row in table.iterrows():
        mean, sd = means.loc[(row["architecture"], row["target"], row["postprocess"])]
        assert row["ccc"] == pytest.approx(mean, abs=1e-6)
        assert row["ccc_sd"] == pytest.approx(sd, abs=1e-12)
        assert row["ccc_low"] <= row["ccc"] <= row["ccc_high"]
    assert set(table["unit"]) == {"speaker"} and set(table["n_units"]) == {4} and set(table["n_seeds"]) == {3}
    assert table["seeds_resampled"].all() and set(table["n_resamples"]) == {500}
    # The chain removes the bias: CCC after it is higher, and the estimate equals the CCC of the post-processed rows.
    raw = table.set_index(["architecture", "target", "postprocess"])["ccc"]
    assert raw[("tcn", "arousal", "avec")] > raw[("tcn", "arousal", "none")]
    # Independent check of one point: the CCC of seed-mean concatenated predictions per seed, averaged.
    k = 0
    truth = np.concatenate([r.y[:, k] for r in grid.test_records])
    per_seed = [metrics.ccc(truth, np.concatenate([p[:, k] for p in experiments.cell_predictions(c, "avec")]))
                for c in grid.cells if c.architecture == "tcn"]
    assert raw[("tcn", "arousal", "avec")] == pytest.approx(np.mean(per_seed), abs=1e-9)


def test_interval_table_marks_the_best_only_when_the_paired_ci_excludes_zero() -> None:
    clear = experiments.interval_table(_hand_grid({"mlp": 1.0, "tcn": 0.1}), n_resamples=500)
    close = experiments.interval_table(_hand_grid({"mlp": 0.3, "tcn": 0.3}), n_resamples=500)
    for table in (clear, close):
        for _, group in table.groupby(["target", "postprocess"]):
            runner = group[group["architecture"] == group["runner_up"].iloc[0]].iloc[0]
            excludes = not runner["diff_low"] <= 0 <= runner["diff_high"]
            assert group["best"].sum() == int(excludes)
            assert runner["separable_from_best"] == excludes
    assert clear["best"].sum() == 4 and set(clear.loc[clear["best"], "architecture"]) == {"tcn"}
    assert not close["best"].any()
    # the difference is best - runner-up, on the estimates
    g = clear[(clear["target"] == "arousal") & (clear["postprocess"] == "none")].set_index("architecture")
    assert g.loc["mlp", "diff_to_best"] == pytest.approx(g.loc["tcn", "ccc"] - g.loc["mlp", "ccc"], abs=1e-9)
    assert g.loc["mlp", "diff_low"] > 0

    md = experiments.summary_table(_hand_grid({"mlp": 1.0, "tcn": 0.1}).results, intervals=clear)
    assert list(md.columns)[4:] == ["ccc arousal", "95% CI arousal", "ccc valence", "95% CI valence",
                                    "mse arousal", "mse valence"]
    row = md.set_index("architecture").loc["tcn"]
    assert row["ccc arousal"].startswith("**") and not md.set_index("architecture").loc["mlp", "ccc arousal"][0] == "*"
    lo, hi = g.loc["tcn", ["ccc_low", "ccc_high"]]
    assert row["95% CI arousal"] == f"[{lo:.3f}, {hi:.3f}]"
    notes = experiments.interval_notes(close)
    assert notes[0] == "95% CI: bootstrap over the 4 test speakers and the 3 seeds, 500 resamples, percentile."
    assert all("best not resolved" in n for n in notes[1:]) and len(notes) == 3
    assert "separable from the runner-up: tcn - mlp" in experiments.interval_notes(clear)[1]


def test_interval_units_fall_back_to_recordings_and_to_no_ci() -> None:
    one_speaker = experiments.interval_table(_hand_grid({"mlp": 0.5, "tcn": 0.2}, speakers=1, per_speaker=3),
                                             n_resamples=200)
    assert set(one_speaker["unit"]) == {"recording"} and set(one_speaker["n_units"]) == {3}
    single = _hand_grid({"mlp": 0.5, "tcn": 0.2}, speakers=1, per_speaker=1, seeds=1)
    table = experiments.interval_table(single, n_resamples=200)
    assert table["ccc_low"].isna().all() and table["ccc"].notna().all() and not table["best"].any()
    assert experiments.interval_notes(table)[0] == "no CI: only 1 test recording."
    comp = experiments.frame_local_comparison(single)  # the difference, without a CI
    assert len(comp) == 4 and comp["diff_low"].isna().all() and not comp["excludes_zero"].any()
    np.testing.assert_allclose(comp["difference"], comp["context_ccc"] - comp["frame_local_ccc"])
    assert "| no CI " in experiments.comparison_markdown(comp) and "no CI: only 1 test recording" in \
        experiments.comparison_markdown(comp)


def test_frame_local_comparison_picks_the_context_model_on_dev_and_states_the_paired_ci() -> None:
    grid = _hand_grid({"mlp": 0.8, "tcn": 0.2, "lstm": 0.4})
    comp = experiments.frame_local_comparison(grid, n_resamples=500)
    assert list(comp.columns) == experiments.COMPARISON_COLUMNS and len(comp) == 4
    assert set(comp["context_model"]) == {"tcn"} and set(comp["frame_local"]) == {"mlp"}
    ref = experiments.interval_table(grid, n_resamples=500).set_index(["architecture", "target", "postprocess"])
    for _, c in comp.iterrows():
        tcn, mlp = (ref.loc[(a, c["target"], c["postprocess"]), "ccc"] for a in ("tcn", "mlp"))
        diff = tcn - mlp
        assert c["difference"] == pytest.approx(diff, abs=1e-9)
        assert c["diff_low"] <= c["difference"] <= c["diff_high"]
        assert c["excludes_zero"] == (c["diff_low"] > 0 or c["diff_high"] < 0)
    assert comp["excludes_zero"].all()  # noise 0.8 vs 0.2: clearly resolved
    text = experiments.comparison_markdown(comp)
    assert "| tcn " in text and "bootstrap over the 4 test speakers and the 3 seeds" in text


def test_write_results_with_intervals_writes_every_number_to_a_file(isolated_dirs) -> None:
    grid = _hand_grid({"mlp": 1.0, "tcn": 0.1})
    intervals = experiments.interval_table(grid, n_resamples=300)
    comp = experiments.frame_local_comparison(grid, n_resamples=300)
    csv, md, iv_csv, comp_csv = experiments.write_results(grid.results, "toy_ci", note="n", intervals=intervals,
                                                          comparisons=comp, sections=[("Extra", "body")])
    assert iv_csv.name == "toy_ci_intervals.csv" and comp_csv.name == "toy_ci_vs_frame_local.csv"
    back = pd.read_csv(iv_csv)
    np.testing.assert_allclose(back["ccc_low"], intervals["ccc_low"], rtol=1e-5)
    text = md.read_text()
    assert text.count("95% CI: bootstrap over the 4 test speakers and the 3 seeds") == 3  # raw, avec, comparison
    assert "## Context model vs frame-local model (test)" in text and "## Extra\n\nbody" in text
    summary = experiments.write_summary(["toy_ci"]).read_text()
    assert "95% CI arousal" in summary and "**" in summary
