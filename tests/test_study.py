"""The long-context study: settings, relabelling at other lags, sweeps, cost, frontier, findings."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from emotools import experiments, labels, metrics, models, parallel, plots, postprocess, sequences, study
from emotools.sequences import SequenceRecord
from emotools.study import cost
from emotools.training import FitOptions

# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize("layers", [1, 2, 3, 4, 5, 6])
def test_tdnn_depth_doubles_the_receptive_field(layers: int) -> None:
    setting = study.Setting("tdnn", "layers", layers)
    expected = 5 + 6 * (2 ** (layers - 1) - 1)  # 5 taps, then offsets +-3, +-6, +-12, ...
    assert setting.receptive_field_frames() == expected
    assert setting.receptive_field_s(10.0) == pytest.approx(expected / 10.0)
    if layers == 4:  # the registry's default TDNN
        assert study.tdnn_contexts(4) == models.TDNN_CONTEXTS


def test_setting_knobs_map_to_model_and_training_options() -> None:
    attention = study.Setting("attention", "window", 25)
    assert attention.model_options == {"window": 25}
    assert attention.receptive_field_frames() == 1 + 2 * 25 * models.AttentionConfig.attention_layers
    assert attention.name == "attention (window 25)"
    tcn = study.Setting("tcn", "levels", 3)
    assert tcn.receptive_field_frames() == 1 + 2 * (3 - 1) * (2**3 - 1)
    lstm = study.Setting("lstm", "chunk_s", 5.0)
    assert lstm.model_options == {} and lstm.chunk_s(30.0) == 5.0
    assert math.isinf(lstm.receptive_field_s()) and lstm.context_s(30.0) == 5.0
    assert study.Setting("mlp").context_s(30.0) == pytest.approx(0.1) and study.Setting("mlp").name == "mlp"
    assert study.Setting("lstm").context_s(30.0) == 30.0  # unbounded: the training chunk is its context


def test_bad_settings_and_grids_are_named() -> None:
    with pytest.raises(study.StudyError, match="unknown family 'gru'"):
        study.Setting("gru")
    with pytest.raises(study.StudyError, match="mlp: unknown knob 'window'"):
        study.Setting("mlp", "window", 5)
    with pytest.raises(study.StudyError, match="lstm: has no TDNN layers"):
        study.Setting("lstm", "layers", 3)
    with pytest.raises(study.StudyError, match="window must be > 0"):
        study.Setting("attention", "window", 0)
    with pytest.raises(study.StudyError, match="mlp: no context knob"):
        study.settings_from_grid({"mlp": [1, 2]})
    with pytest.raises(study.StudyError, match="unknown family 'cnn'"):
        study.settings_from_grid({"cnn": []})


def test_grid_plan_and_deduplication() -> None:
    settings = study.settings_from_grid({"mlp": [], "tdnn": [2, 4], "lstm": [30.0]})
    assert [s.name for s in settings] == ["mlp", "tdnn (2 layers)", "tdnn (4 layers)", "lstm (chunk 30 s)"]
    extra = [study.Setting("tdnn"), study.Setting("lstm"), study.Setting("tcn")]
    unique = study.unique_settings(settings + extra, chunk_s=30.0)
    # tdnn's default config is the 4-layer TDNN; lstm's default trains on the same 30-s chunks
    assert [s.name for s in unique] == ["mlp", "tdnn (2 layers)", "tdnn (4 layers)", "lstm (chunk 30 s)", "tcn"]
    assert len(study.unique_settings(settings + extra, chunk_s=10.0)) == 6
    plan = study.make_plan(settings[:2], study_lag_s=3.0, lags_s=[0.0, 4.0], lag_settings=[settings[0]])
    assert [(lag, s.name) for lag, s in plan] == [(3.0, "mlp"), (3.0, "tdnn (2 layers)"), (0.0, "mlp"), (4.0, "mlp")]
    table = study.plan_table(plan, chunk_s=30.0)
    assert table["receptive_field_s"].tolist() == pytest.approx([0.1, 1.1, 0.1, 0.1])
    assert table["parameters"].iloc[1] == models.build("tdnn", contexts=study.tdnn_contexts(2)).n_parameters


# --------------------------------------------------------------------------- labels at other lags


def test_lag_model_scales_the_raters_lags_and_reproduces_the_corpus_at_its_own_lag() -> None:
    reference = labels.AnnotationModel(seed=5)
    assert labels.lag_model(reference.lag_mean, seed=5) == reference
    zero = labels.lag_model(0.0, seed=5).panel()
    assert all(r.lag == 0.0 for r in zero)
    four = labels.lag_model(4.0, seed=5).panel()
    assert np.mean([r.lag for r in four]) == pytest.approx(4.0, abs=1e-3)
    assert [r.smoothing for r in four] == [r.smoothing for r in reference.panel()]  # only the lags change
    with pytest.raises(labels.LabelError, match="lag must be"):
        labels.lag_model(-1.0, seed=0)


def _latent_corpus(tmp_path: Path, n: int = 2, seconds: float = 240.0) -> pd.DataFrame:
    """Annotation files with a smooth random latent, as emotools.synth stores them."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n):
        t = np.round(np.arange(int(seconds * 10)) / 10.0, 6)
        walk = np.convolve(rng.normal(size=len(t) + 200), np.ones(60) / 60, mode="same")[100:-100]
        latent = np.tanh(3 * walk)
        frame = pd.DataFrame({"time": t, "arousal": latent, "valence": -latent,
                              "arousal_latent": latent, "valence_latent": -latent})
        path = tmp_path / f"rec{i}.csv"
        frame.to_csv(path, index=False)
        rows.append({"utterance": f"rec{i}", "annotation": str(path), "split": "test" if i == 0 else "train"})
    return pd.DataFrame(rows)


def _lag_of(latent: np.ndarray, signal: np.ndarray, rate: float = 10.0) -> float:
    # the delay d (s) maximising corr(latent(t - d), signal(t)): an independent estimate
    best, arg = -np.inf, 0
    for d in range(0, 100):
        r = np.corrcoef(latent[: len(latent) - d], signal[d:])[0, 1]
        if r > best:
            best, arg = r, d
    return arg / rate


def test_relabelled_lag_moves_the_labels_by_the_lag(tmp_path: Path) -> None:
    table = _latent_corpus(tmp_path)
    zero = labels.lag_labels(table, 0.0, seed=0)
    four = labels.lag_labels(table, 4.0, seed=0)
    for rec in table["utterance"]:
        latent = zero[rec]["arousal_latent"].to_numpy()
        shift = _lag_of(latent, four[rec]["arousal_ceiling"].to_numpy()) - _lag_of(
            latent, zero[rec]["arousal_ceiling"].to_numpy())
        assert shift == pytest.approx(4.0, abs=0.35)
        assert not np.allclose(zero[rec]["arousal"], four[rec]["arousal"])
    # the ceiling is the CCC of gold and ceiling over the test recordings, concatenated
    records = [SequenceRecord(id=u, x=np.zeros((len(zero[u]), 1)), time=zero[u]["time"].to_numpy(), rate_hz=10.0,
                              y=zero[u][["arousal", "valence"]].to_numpy(), split=s)
               for u, s in zip(table["utterance"], table["split"])]
    ceiling = study.annotation_ceiling(four, records)
    test = four["rec0"]
    assert ceiling["arousal"] == pytest.approx(metrics.ccc(test["arousal"], test["arousal_ceiling"]), abs=1e-9)
    assert 0.5 < ceiling["arousal"] <= 1.0


def test_relabelling_a_drifting_corpus_keeps_its_drift_around_the_new_lag(tmp_path: Path) -> None:
    drifting = labels.AnnotationModel(seed=0, lag_drift=0.1, lag_bounds=(2.0, 5.0))  # corpus v2's raters
    assert labels.annotation.lag_model(3.0, seed=0, reference=drifting) == drifting  # the corpus' own labels
    six = labels.annotation.lag_model(6.0, seed=0, reference=drifting)
    assert (six.lag_mean, six.lag_drift, six.lag_bounds) == (6.0, pytest.approx(0.2), (4.0, 10.0))
    zero = labels.annotation.lag_model(0.0, seed=0, reference=drifting)
    assert (zero.lag_spread, zero.lag_drift, zero.lag_bounds) == (0.0, 0.0, (0.0, 0.0))
    table = _latent_corpus(tmp_path)
    time = np.arange(600) / 10.0
    paths = labels.annotation.lag_paths(six, "rec0", time)
    assert paths.min() >= 4.0 and paths.max() <= 10.0 and np.ptp(paths, axis=1).max() > 0.05  # drifts, in bounds
    plain, drifted = (labels.lag_labels(table, 6.0, seed=0, reference=r) for r in (None, drifting))
    assert not np.allclose(plain["rec0"]["arousal_ceiling"], drifted["rec0"]["arousal_ceiling"])


def test_with_labels_keeps_features_and_takes_labels_by_time() -> None:
    t = np.arange(5) / 10.0
    rec = SequenceRecord(id="a", x=np.arange(6.0).reshape(3, 2), time=t[1:4], rate_hz=10.0, y=np.zeros((3, 2)),
                         split="test")
    frame = pd.DataFrame({"time": t, "arousal": [0.0, 0.1, 0.2, 0.3, 0.4], "valence": [1.0, 1.1, 1.2, 1.3, 1.4]})
    [new] = sequences.with_labels([rec], {"a": frame})
    assert new.y[:, 0].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert new.y[:, 1].tolist() == pytest.approx([1.1, 1.2, 1.3])
    assert np.array_equal(new.x, rec.x)
    with pytest.raises(sequences.SequenceError, match="a: no label frame"):
        sequences.with_labels([rec], {})
    with pytest.raises(sequences.SequenceError, match="a: the label frame lacks"):
        sequences.with_labels([rec], {"a": frame.iloc[:2]})


# --------------------------------------------------------------------------- sweeps


def _records(lag_frames: int = 0, *, frames: int = 150) -> list[SequenceRecord]:
    """Labels a smoothed, delayed function of the features: context and delay both matter."""
    rng = np.random.default_rng(0)
    out = []
    for split, n in (("train", 4), ("dev", 1), ("test", 1)):
        for i in range(n):
            x = rng.normal(size=(frames, 4)).astype(np.float32)
            a = np.convolve(x[:, 0], np.ones(9) / 9, mode="same")
            a = np.concatenate([np.full(lag_frames, a[0]), a[: frames - lag_frames]])
            y = np.stack([a, -np.convolve(x[:, 1], np.ones(3) / 3, mode="same")], axis=1)
            out.append(SequenceRecord(id=f"{split}{i}", x=x, y=y, time=np.arange(frames) / 10.0, rate_hz=10.0,
                                      speaker=f"s{split}{i}", session=f"{split}{i}", split=split))
    return out


def test_run_sweep_rows_caching_and_parallel_equal_serial(tmp_path: Path) -> None:
    records_by_lag = {0.0: _records(0), 2.0: _records(20)}
    mlp, tdnn = study.Setting("mlp"), study.Setting("tdnn", "layers", 2)
    plan = study.make_plan([mlp, tdnn], study_lag_s=2.0, lags_s=[0.0], lag_settings=[mlp])
    options = dict(seeds=[0, 1], fit_options=FitOptions(epochs=2, chunk_s=6.0), progress=False)
    sweep = study.run_sweep(records_by_lag, plan, run_dir=tmp_path / "serial", jobs=1, **options)
    r = sweep.results
    assert set(zip(r["lag_s"], r["setting"])) == {(2.0, "mlp"), (2.0, "tdnn (2 layers)"), (0.0, "mlp")}
    # per (lag, setting): 2 seeds x 2 targets x (2 splits x raw/avec + test with the delay step only)
    assert r.groupby(["lag_s", "setting"]).size().tolist() == [2 * 2 * 5] * 3
    assert set(r["postprocess"]) == {"none", "avec", "delay"}
    delay = r[r["postprocess"] == "delay"]
    assert (delay["split"] == "test").all() and delay["delay_s"].between(0, 6).all()
    assert set(r["label_protocol"]) == {"annotation, lag 0 s", "annotation, lag 2 s"}
    assert r.loc[r["setting"] == "tdnn (2 layers)", "receptive_field_s"].eq(1.1).all()
    assert (r["architecture"] == r["setting"]).all() and r["ccc"].notna().all() and (r["train_seconds"] >= 0).all()
    assert len(sweep.predictions(2.0, "mlp")) == 1 and sweep.predictions(2.0, "mlp")[0].shape == (150, 2)
    assert sweep.best(2.0, split="dev") in {"mlp", "tdnn (2 layers)"}
    # the settings' interval rows carry the setting names of the results (one test recording: no CI, estimates kept)
    iv = sweep.interval_table(n_resamples=50)
    assert set(zip(iv["label_protocol"], iv["architecture"])) == {
        ("annotation, lag 2 s", "mlp"), ("annotation, lag 2 s", "tdnn (2 layers)"), ("annotation, lag 0 s", "mlp")}
    test_means = r[r["split"] == "test"].groupby(["label_protocol", "setting", "target", "postprocess"])["ccc"].mean()
    for row in iv.itertuples():
        assert row.ccc == pytest.approx(test_means[(row.label_protocol, row.architecture, row.target, row.postprocess)])
    assert iv["ccc_low"].isna().all() and (iv["n_units"] == 1).all()
    # a rerun is served from the cache; worker processes give the same numbers
    again = study.run_sweep(records_by_lag, plan, run_dir=tmp_path / "serial", jobs=1, **options)
    pd.testing.assert_frame_equal(again.results, r)
    parallel = study.run_sweep(records_by_lag, plan, run_dir=tmp_path / "parallel", jobs=2, **options)
    cols = ["lag_s", "setting", "seed", "target", "split", "postprocess", "ccc", "mse"]
    pd.testing.assert_frame_equal(parallel.results[cols], r[cols])
    assert sweep.failures.empty
    # a point that cannot be trained is recorded, the others go on
    bad = study.Setting("tcn", "kernel", 4)  # even kernels cannot be centred
    partial = study.run_sweep(records_by_lag, [(2.0, mlp), (2.0, bad)], run_dir=tmp_path / "serial", jobs=1,
                                **options)
    assert set(partial.results["setting"]) == {"mlp"}
    assert partial.failures[["lag_s", "setting"]].values.tolist() == [[2.0, "tcn (kernel 4)"]]
    assert "odd" in partial.failures["reason"].iloc[0]
    with pytest.raises(study.StudyError, match="every point of the sweep failed"):
        study.run_sweep(records_by_lag, [(2.0, bad)], run_dir=tmp_path / "serial", jobs=1, **options)
    with pytest.raises(study.StudyError, match=r"no records for lag\(s\) \[4.0\]"):
        study.run_sweep(records_by_lag, [(4.0, mlp)], run_dir=tmp_path / "x", jobs=1, **options)


def test_delay_only_rows_apply_just_the_delay_step() -> None:
    recs = _records()[-1:]
    truth = recs[0].y
    k = 7
    early = np.concatenate([truth[k:], np.repeat(truth[-1:], k, axis=0)])  # predicts k frames too early
    chain = postprocess.PostProcessor(("arousal", "valence"), 10.0, [
        postprocess.TargetSteps(delay_frames=k, smoothing="median", smoothing_param=9, offset=5.0),
        postprocess.TargetSteps(delay_frames=0, offset=-5.0)])
    cell = experiments.Cell("mlp", "joint", 0, ("arousal", "valence"), [], pd.DataFrame(), [early],
                            chain.to_dict())
    rows = {r["target"]: r for r in study.delay_only_rows(cell, recs)}
    assert rows["arousal"]["delay_s"] == pytest.approx(0.7) and rows["valence"]["delay_s"] == 0.0
    assert rows["arousal"]["ccc"] == pytest.approx(metrics.ccc(truth[:, 0], postprocess.delay(early[:, 0], k)))
    assert rows["arousal"]["ccc"] > 0.99 > metrics.ccc(truth[:, 0], early[:, 0])  # no smoothing, no offset
    assert rows["valence"]["ccc"] == pytest.approx(metrics.ccc(truth[:, 1], early[:, 1]))
    assert all(r["postprocess"] == "delay" and r["split"] == "test" for r in rows.values())


# --------------------------------------------------------------------------- analysis on hand-made tables


def _study_table() -> pd.DataFrame:
    """A results table as run_sweep writes it, with numbers chosen by hand."""
    rows = []

    def add(lag, family, knob, value, ctx, ccc_by_target, post="none", seeds=(0, 1), delay_s=np.nan):
        name = family if knob is None else f"{family} ({knob} {value})"
        for seed in seeds:
            for target, c in ccc_by_target.items():
                for split in ("test", "dev") if post != "delay" else ("test",):  # dev = test unless a test changes it
                    rows.append({"dataset": "ground_truth", "label_protocol": f"annotation, lag {lag:g} s",
                                 "architecture": name, "target": target, "mode": "joint", "seed": seed,
                                 "split": split, "postprocess": post, "ccc": c + (0.01 if seed else -0.01),
                                 "family": family, "setting": name, "knob": knob or "", "value": value,
                                 "receptive_field_s": ctx, "context_s": ctx, "lag_s": lag, "delay_s": delay_s})

    for lag, shift in ((3.0, 0.0), (0.0, 0.1)):
        add(lag, "mlp", None, None, 0.1, {"arousal": 0.30 + shift, "valence": 0.20 + shift})
        add(lag, "mlp", None, None, 0.1, {"arousal": 0.50 + shift, "valence": 0.30 + shift}, post="delay", delay_s=lag)
        add(lag, "mlp", None, None, 0.1, {"arousal": 0.65 + shift, "valence": 0.45 + shift}, post="avec")
        for value, ctx, c in ((2, 1.1, 0.40), (4, 4.7, 0.69), (6, 19.1, 0.70)):
            add(lag, "tdnn", "layers", value, ctx, {"arousal": c + shift, "valence": c - 0.1 + shift})
            add(lag, "tdnn", "layers", value, ctx, {"arousal": c + shift + 0.05, "valence": c - 0.05 + shift},
                post="delay", delay_s=0.4)
            add(lag, "tdnn", "layers", value, ctx, {"arousal": c + shift + 0.06, "valence": c - 0.04 + shift},
                post="avec")
    return pd.DataFrame(rows)


def test_context_curve_and_saturation_on_a_hand_made_table() -> None:
    curve = study.context_curve(_study_table())
    tdnn = curve[(curve["lag_s"] == 3.0) & (curve["family"] == "tdnn") & (curve["target"] == "arousal")]
    assert tdnn["context_s"].tolist() == [1.1, 4.7, 19.1]
    assert tdnn["ccc"].tolist() == pytest.approx([0.40, 0.69, 0.70])  # mean of the two seeds
    assert tdnn["ccc_sd"].tolist() == pytest.approx([np.std([-0.01, 0.01], ddof=1)] * 3)
    sat = study.saturation(curve, tolerance=0.02).set_index(["lag_s", "family", "target"])
    row = sat.loc[(3.0, "tdnn", "arousal")]
    assert row["saturation_s"] == 4.7 and row["best_context_s"] == 19.1
    assert row["gain"] == pytest.approx(0.30) and row["saturation_setting"] == "tdnn (layers 4)"
    assert study.saturation(curve, tolerance=0.0).set_index(["lag_s", "family", "target"]).loc[
        (3.0, "tdnn", "arousal"), "saturation_s"] == 19.1
    with pytest.raises(study.StudyError, match="no rows"):
        study.context_curve(_study_table(), postprocess="delay", split="dev")
    with pytest.raises(study.StudyError, match="no dev CCC to choose on"):
        study.saturation(study.context_curve(_study_table(), postprocess="delay"))


def _dev_disagrees_with_test() -> pd.DataFrame:
    """The study table where tdnn (layers 4) is best on dev but tdnn (layers 6) stays best on test."""
    t = _study_table()
    dev4 = (t["split"] == "dev") & (t["setting"] == "tdnn (layers 4)") & (t["postprocess"] == "none")
    t.loc[dev4, "ccc"] += 0.2
    return t


def test_every_choice_is_made_on_dev_and_its_test_value_reported() -> None:
    t = _dev_disagrees_with_test()
    curve = study.context_curve(t)
    row = study.saturation(curve, tolerance=0.02).set_index(["lag_s", "family", "target"]).loc[(3.0, "tdnn", "arousal")]
    assert row["best_setting"] == "tdnn (layers 4)" and row["best_dev_ccc"] == pytest.approx(0.89)
    assert row["best_ccc"] == pytest.approx(0.69)  # its test CCC, not test's best (0.70)
    assert row["saturation_setting"] == "tdnn (layers 4)" and row["gain"] == pytest.approx(0.29)
    lag = study.lag_table(t).set_index(["lag_s", "target"]).loc[(3.0, "arousal")]
    assert lag["best_setting"] == "tdnn (layers 4)" and lag["best_raw"] == pytest.approx(0.69)
    assert lag["best_dev"] == pytest.approx(0.89) and lag["best_delay"] == pytest.approx(0.74)
    assert lag["floor_setting"] == "mlp"
    # after the chain dev agrees with test again (only the raw dev rows moved)
    assert lag["best_avec_setting"] == "tdnn (layers 6)" and lag["best_avec_any"] == pytest.approx(0.76)
    best = _one(_findings(t, ceilings={}), "best", "arousal")
    assert best["setting"] == "tdnn (layers 4)" and best["ccc"] == pytest.approx(0.69)
    frontier = study.frontier_table(t, _costs(), lag_s=3.0)
    eff = _one(study.findings_table(curve, study.saturation(curve), study.lag_table(t), frontier, ceilings={},
                                    study_lag_s=3.0), "efficiency")
    assert eff["setting"] == "tdnn (layers 4)" and eff["ccc"] == pytest.approx(0.64)  # mean of 0.69 and 0.59


def test_lag_table_compares_floor_context_and_delay_compensation() -> None:
    table = study.lag_table(_study_table(), ceilings={3.0: {"arousal": 0.97, "valence": 0.95}})
    row = table.set_index(["lag_s", "target"]).loc[(3.0, "arousal")]
    assert row["floor_raw"] == pytest.approx(0.30) and row["floor_delay"] == pytest.approx(0.50)
    assert row["floor_delay_s"] == 3.0 and row["best_setting"] == "tdnn (layers 6)"
    assert row["best_raw"] == pytest.approx(0.70) and row["best_delay"] == pytest.approx(0.75)
    assert row["floor_avec"] == pytest.approx(0.65) and row["best_avec"] == pytest.approx(0.76)
    assert row["best_avec_any"] == pytest.approx(0.76) and row["best_avec_setting"] == "tdnn (layers 6)"
    assert row["ceiling"] == 0.97
    assert math.isnan(table.set_index(["lag_s", "target"]).loc[(0.0, "arousal")]["ceiling"])


def test_pareto_front_on_a_hand_made_table() -> None:
    cost = [1.0, 2.0, 2.0, 3.0, 0.5, np.nan, 4.0]
    score = [0.5, 0.7, 0.6, 0.7, 0.1, 0.99, 0.9]
    # 0.5 cheapest; (1, .5) and (2, .7) better for their cost; (2, .6) and (3, .7) dominated by (2, .7); NaN never
    assert study.pareto_front(cost, score).tolist() == [True, True, False, False, True, False, True]
    assert study.pareto_front([1.0, 1.0], [0.5, 0.5]).tolist() == [True, True]  # ties dominate nobody
    with pytest.raises(study.StudyError, match="differ in length"):
        study.pareto_front([1.0], [0.1, 0.2])


def _costs() -> pd.DataFrame:
    rows = []
    for setting, family, per_minute in (("mlp", "mlp", 0.001), ("tdnn (layers 2)", "tdnn", 0.002),
                                        ("tdnn (layers 4)", "tdnn", 0.004), ("tdnn (layers 6)", "tdnn", 0.003)):
        for minutes in (1.0, 10.0):
            rows.append({"setting": setting, "family": family, "minutes": minutes,
                         "infer_seconds_per_hour": per_minute * 60 * (2.0 if minutes == 1.0 else 1.0),
                         "infer_peak_mb": minutes, "train_epoch_seconds": minutes * 0.5, "parameters": 10, "error": ""})
    return pd.DataFrame(rows)


def test_frontier_table_uses_the_longest_length_and_marks_the_front() -> None:
    f = study.frontier_table(_study_table(), _costs(), lag_s=3.0).set_index("setting")
    assert f.loc["mlp", "minutes"] == 10.0 and f.loc["mlp", "infer_seconds_per_hour"] == pytest.approx(0.06)
    assert f.loc["mlp", "train_epoch_seconds_per_hour"] == pytest.approx(5.0 * 6)
    assert f.loc["mlp", "ccc"] == pytest.approx(0.25)  # mean of the targets, raw predictions
    assert f["on_front"].to_dict() == {"mlp": True, "tdnn (layers 2)": True, "tdnn (layers 6)": True,
                                       "tdnn (layers 4)": False}
    assert list(f.index) == ["mlp", "tdnn (layers 2)", "tdnn (layers 6)", "tdnn (layers 4)"]  # by cost


def _findings(results: pd.DataFrame, **kwargs) -> pd.DataFrame:
    curve = study.context_curve(results)
    return study.findings_table(curve, study.saturation(curve, tolerance=0.02), study.lag_table(results),
                                study.frontier_table(results, _costs(), lag_s=3.0), study_lag_s=3.0, **kwargs)


def _one(table: pd.DataFrame, kind: str, subject: str | None = None) -> pd.Series:
    rows = table[(table["kind"] == kind) & ((table["subject"] == subject) if subject else True)]
    assert len(rows) == 1, (kind, subject, rows)
    return rows.iloc[0]


def test_findings_table_holds_each_claim_with_its_numbers() -> None:
    table = _findings(_study_table(), ceilings={"arousal": 0.97, "valence": 0.95})
    assert list(table.columns[:3]) == list(study.FINDING_COLUMNS) and (table["tolerance"] == 0.02).all()
    assert list(dict.fromkeys(table["kind"])) == ["best", "family", "saturation", "lag", "delay", "chain",
                                                 "context_needed", "growth", "efficiency", "cost_gain"]
    best = _one(table, "best", "arousal")
    assert best["setting"] == "tdnn (layers 6)" and best["ccc"] == pytest.approx(0.70)
    assert best["reference"] == "mlp" and best["reference_ccc"] == pytest.approx(0.30)
    assert best["ceiling"] == 0.97 and best["remaining"] == pytest.approx(0.27)
    sat = table[(table["kind"] == "saturation") & (table["target"] == "arousal")].iloc[0]
    assert sat["subject"] == "tdnn" and sat["gain"] == pytest.approx(0.30)
    assert (sat["smallest_context_s"], sat["largest_context_s"]) == (1.1, 19.1)
    lag = table[(table["kind"] == "lag") & (table["target"] == "arousal")].set_index("lag_s")
    assert lag.loc[3.0, "reference_ccc"] == pytest.approx(0.30) and lag.loc[3.0, "delay_s"] == 3.0
    assert lag.loc[3.0, "reference_delay_ccc"] == pytest.approx(0.50) and lag.loc[0.0, "ccc"] == pytest.approx(0.80)
    delay = _one(table, "delay")
    assert delay["finding"] == "does not substitute for context"
    # best raw minus delay-compensated floor: 0.70 - 0.50 (arousal, lag 3) .. 0.80 - 0.50 (arousal, lag 0)
    assert (delay["gap_min"], delay["gap_max"]) == pytest.approx((0.20, 0.30))
    chain = _one(table, "chain")
    assert chain["finding"] == "does not substitute for learnt context"
    # valence at lag 3 s (0.45) to arousal at lag 0 s (0.75)
    assert (chain["floor_avec_min"], chain["floor_avec_max"]) == pytest.approx((0.45, 0.75))
    efficiency = _one(table, "efficiency")
    assert efficiency["setting"] == "tdnn (layers 6)" and efficiency["reference"] == "tdnn (layers 6)"
    assert efficiency["front"] == "mlp; tdnn (layers 2); tdnn (layers 6)" and efficiency["minutes"] == 10.0
    gain = _one(table, "cost_gain")
    # (mean CCC 0.65 - floor 0.25) / 0.18 s per hour
    assert gain["gain"] == pytest.approx(0.40) and gain["per_cost"] == pytest.approx(0.40 / 0.18)
    # other numbers, other verdict: a floor that delay compensation lifts to the best model's level
    better = _study_table()
    better.loc[(better["family"] == "mlp") & (better["postprocess"] == "delay"), "ccc"] = 0.8
    assert _one(_findings(better, ceilings={}), "delay")["finding"] == "substitutes for context"


def test_conclusions_are_rendered_from_the_findings_table(tmp_path: Path) -> None:
    results = _study_table()
    curve = study.context_curve(results)
    sat = study.saturation(curve, tolerance=0.02)
    frontier = study.frontier_table(results, _costs(), lag_s=3.0)
    ceilings = {"arousal": 0.97, "valence": 0.95}
    table = study.findings_table(curve, sat, study.lag_table(results), frontier, ceilings=ceilings, study_lag_s=3.0)
    text = study.conclusions(curve, sat, study.lag_table(results), frontier, ceilings=ceilings, study_lag_s=3.0)
    assert text == study.render_findings(table)
    # one bullet per (kind, subject) group; context_needed rows feed the growth bullet
    lines = text.splitlines()
    assert all(line.startswith("- ") for line in lines) and len(lines) == 2 + 2 + 1 + 2 + 1 + 1 + 1 + 1 + 1
    best = _one(table, "best", "arousal")
    assert f"chosen on dev, `{best['setting']}` (context 19.1 s) scores test CCC {best['ccc']:.3f}" in text
    assert "no interval" in text  # no intervals given: no difference is claimed as resolved
    assert f"{best['remaining']:.3f} remains" in text
    delay = _one(table, "delay")
    assert f"Delay compensation {delay['finding']}" in text and f"{delay['gap_min']:+.3f}" in text
    # a table saved as CSV and read back renders the same text
    table.to_csv(tmp_path / "findings.csv", index=False)
    assert study.render_findings(pd.read_csv(tmp_path / "findings.csv")) == text
    empty = study.findings_table(curve.iloc[:0], sat.iloc[:0], pd.DataFrame(), frontier.iloc[:0], ceilings={},
                                 study_lag_s=3.0)
    assert empty.empty and study.render_findings(empty) == ""


def test_study_views_rebuild_what_the_poster_draws() -> None:
    results = _study_table()
    ceilings = study.ceiling_table({3.0: {"arousal": 0.97, "valence": 0.95}, 0.0: {"arousal": 0.99}})
    assert study.ceilings_from_table(ceilings) == {3.0: {"arousal": 0.97, "valence": 0.95}, 0.0: {"arousal": 0.99}}
    views = study.study_views(results, costs=_costs(), ceilings=ceilings)
    assert views.study_lag_s in (0.0, 3.0) and views.ceilings == views.lag_ceilings[views.study_lag_s]
    assert set(views.curve["lag_s"]) == {views.study_lag_s}
    assert set(views.lag_curve["setting"]) == set(results["setting"])  # every setting ran at both lags
    assert views.frontier is not None and views.frontier["on_front"].any()
    assert study.study_views(results).frontier is None


# --------------------------------------------------------------------------- cost


def test_peak_memory_sees_a_known_allocation() -> None:
    size = 64 * 2**20

    def allocate() -> int:
        a = np.ones(size // 8)  # touched: resident
        return int(a.nbytes)

    nbytes, m = study.peak_memory(allocate)
    assert nbytes == size and m["seconds"] >= 0 and m["cpu_seconds"] >= 0
    if m["memory_method"] == "VmHWM reset":
        assert m["peak_bytes"] == pytest.approx(size, rel=0.15)
    else:
        assert m["peak_bytes"] >= 0


def test_measure_costs_every_architecture_at_a_tiny_length_and_failures_go_on() -> None:
    settings = [study.Setting(name) for name in models.MODELS] + [study.Setting("tcn", "kernel", 4)]
    costs = study.measure_costs(settings, [0.05], repeats=1, train_epochs=1, chunk_s=1.0, progress=False)
    ok, bad = costs.iloc[:-1], costs.iloc[-1]
    assert ok["setting"].tolist() == list(models.MODELS)
    assert (ok["error"] == "").all(), ok["error"].tolist()
    assert (ok["frames"] == 30).all() and (ok["minutes"] == 0.05).all()
    for column in ("infer_seconds", "infer_cpu_seconds", "train_epoch_seconds", "parameters"):
        assert (ok[column].astype(float) > 0).all(), column
    assert (ok["infer_peak_mb"] >= 0).all() and (ok["train_peak_mb"] >= 0).all()
    assert ok["infer_seconds_per_hour"].tolist() == pytest.approx((ok["infer_seconds"] * 60 / 0.05).tolist())
    assert ok.set_index("setting").loc["tdnn", "parameters"] == models.build("tdnn").n_parameters
    assert "odd" in bad["error"] and math.isnan(bad["receptive_field_s"])
    with pytest.raises(study.StudyError, match="must be > 0 minutes"):
        study.measure_costs(settings[:1], [0.0])


def test_run_each_reports_failures_and_workers_give_the_same_results() -> None:
    tasks = [4.0, -1.0, 9.0]  # math.sqrt(-1.0) raises: recorded, the others go on
    serial = list(parallel.run_each(math.sqrt, tasks, jobs=1))
    assert [(t, r) for t, r, e in serial if e is None] == [(4.0, 2.0), (9.0, 3.0)]
    [(bad, result, error)] = [x for x in serial if x[2] is not None]
    assert bad == -1.0 and result is None and isinstance(error, ValueError)
    pooled = sorted(parallel.run_each(math.sqrt, tasks, jobs=2), key=lambda x: tasks.index(x[0]))
    assert [(t, r) for t, r, _ in pooled] == [(t, r) for t, r, _ in serial]
    assert [type(e) for _, _, e in pooled] == [type(None), ValueError, type(None)]


def test_cost_harness_measures_in_a_fresh_process_and_survives_a_dead_worker() -> None:
    import torch

    model = models.build("mlp", 3, 2).eval()
    m = cost.measure_inference(model, torch.zeros(1, 40, 3), repeats=3, warmup_frames=10)
    assert len(m["seconds_all"]) == 3 and m["seconds"] == min(m["seconds_all"])
    assert m["seconds_median"] == pytest.approx(float(np.median(m["seconds_all"])))
    assert m["peak_rss_bytes"] >= m["peak_bytes"] >= 0
    job = {"family": "mlp", "frames": 50, "n_features": 88, "n_targets": 2, "threads": 1, "repeats": 2}
    [row] = cost.run_isolated("emotools.study.cost:model_inference", [job])
    assert row["frames"] == 50 and row["parameters"] == models.build("mlp", 88, 2).n_parameters
    assert row["infer_seconds"] > 0 and len(row["infer_seconds_all"]) == 2 and "error" not in row
    # sys.exit(job) kills the worker: the job in flight is blamed, a new worker takes the next one
    dead = cost.run_isolated("sys:exit", [{"a": 1}, {"b": 2}])
    assert "'a': 1" in dead[0]["error"] and "'b': 2" in dead[1]["error"]
    # subprocess.run(job) runs the job's keys as argv: `sh -c "sleep 3" id` blocks past the timeout
    [slow] = cost.run_isolated("subprocess:run", [{"sh": 0, "-c": 0, "sleep 3": 0}], timeout=1.5)
    assert slow["error"] == "timeout after 1.5 s"


# --------------------------------------------------------------------------- poster helpers


def test_trajectory_frame_is_tidy_with_rater_band() -> None:
    t = np.arange(4) / 10.0
    rec = SequenceRecord(id="r", x=np.zeros((4, 1)), time=t, rate_hz=10.0, y=[[0, 1], [1, 2], [2, 3], [3, 4]],
                         speaker="spk")
    frame = pd.DataFrame({"time": t, "arousal": 0.0, "valence": 0.0, "arousal_r1": [0, 1, 2, 3],
                          "arousal_r2": [3, 2, 1, 0], "arousal_latent": 0.5})
    table = study.trajectory_frame(rec, {"mlp": np.full((4, 2), 0.25)}, frame=frame)
    a = table[table["target"] == "arousal"]
    assert list(a.columns) == ["recording", "speaker", "time", "target", "gold", "raters_min", "raters_max",
                               "latent", "mlp"]
    assert a["raters_min"].tolist() == [0, 1, 1, 0] and a["raters_max"].tolist() == [3, 2, 2, 3]
    assert a["gold"].tolist() == [0, 1, 2, 3] and (a["mlp"] == 0.25).all() and (a["latent"] == 0.5).all()
    v = table[table["target"] == "valence"]
    assert v["gold"].tolist() == [1, 2, 3, 4] and v["raters_min"].isna().all()  # valence has no raters here
    assert set(table["speaker"]) == {"spk"} and len(table) == 8
    fig = plots.plot_trajectory_panels(table)
    assert fig.axes[-1].get_xlabel() == "time (s)"
    plt.close(fig)


def test_collect_results_notes_missing_and_unreadable_tables(tmp_path: Path) -> None:
    pd.DataFrame({"prediction": ["perfect"], "ccc": [1.0], "pearson": [1.0], "mse": [0.0]}).to_csv(
        tmp_path / "00_metrics.csv", index=False)
    (tmp_path / "VoxCeleb1.csv").write_bytes(b"\x00\x01\x02 not a table \xff")
    found, notes = study.collect_results(["00_metrics", "VoxCeleb1", "long_context"], folder=tmp_path)
    assert list(found) == ["00_metrics"] and found["00_metrics"]["ccc"].iloc[0] == 1.0
    assert any(n.startswith("long_context: no results/long_context.csv") for n in notes)
    assert any(n.startswith("VoxCeleb1:") for n in notes) or "VoxCeleb1" in found


def test_architecture_results_keep_test_raw_rows_and_one_mode() -> None:
    base = {c: 0 for c in experiments.RESULT_COLUMNS}
    rows = []
    for mode in ("joint", "separate"):
        for split in ("dev", "test"):
            for post in ("none", "avec"):
                rows.append({**base, "dataset": "ground_truth", "label_protocol": "annotation", "architecture": "mlp",
                             "target": "arousal", "mode": mode, "split": split, "postprocess": post})
    rows.append({**base, "dataset": "librispeech", "label_protocol": "seed", "architecture": "lstm", "target": "arousal",
                 "mode": "separate", "split": "test", "postprocess": "none"})
    table = pd.DataFrame(rows)
    names = ["01_ground_truth", "LibriSpeech", "00_metrics"]
    out = study.architecture_results({"01_ground_truth": table.iloc[:-1], "LibriSpeech": table.iloc[-1:],
                                      "00_metrics": pd.DataFrame({"prediction": ["x"]})}, names=names)
    assert out[["dataset", "mode", "split", "postprocess"]].values.tolist() == [
        ["ground_truth", "joint", "test", "none"], ["librispeech", "separate", "test", "none"]]
    assert study.architecture_results({}, names=names).empty


def test_study_figures_have_labelled_axes() -> None:
    curve = study.context_curve(_study_table())
    fig = plots.plot_context_curves(curve[curve["lag_s"] == 3.0], ceilings={"arousal": 0.97})
    ax = fig.axes[0]
    assert "(s" in ax.get_xlabel() and "CCC" in ax.get_ylabel() and ax.get_title()
    assert {t.get_text() for t in ax.get_legend().get_texts()} >= {"tdnn", "mlp (frame-local floor)",
                                                                     "annotation ceiling"}
    frontier = study.frontier_table(_study_table(), _costs(), lag_s=3.0)
    fig2 = plots.plot_poster_overview(frontier=frontier, curve=curve[curve["lag_s"] == 3.0])
    assert len(fig2.axes) == 6 and "per hour" in fig2.axes[4].get_xlabel()
    plt.close("all")


def test_shortfall_of_short_contexts_against_the_lag() -> None:
    results = _study_table()
    flat = study.shortfall(study.context_curve(results))
    assert set(flat["reference"]) == {"tdnn (layers 6)"} and set(flat["setting"]) == {"tdnn (layers 2)",
                                                                                      "tdnn (layers 4)"}
    four = flat[(flat["setting"] == "tdnn (layers 4)") & (flat["target"] == "arousal")].sort_values("lag_s")
    assert four["shortfall"].tolist() == pytest.approx([0.01, 0.01])  # same gap at lag 0 and 3
    # make the short context fall further behind at the longer lag
    worse = results.copy()
    worse.loc[(worse["setting"] == "tdnn (layers 4)") & (worse["lag_s"] == 3.0) & (worse["postprocess"] == "none"),
              "ccc"] -= 0.3
    curve = study.context_curve(worse)
    grown = study.shortfall(curve)
    four = grown[(grown["setting"] == "tdnn (layers 4)") & (grown["target"] == "arousal")].sort_values("lag_s")
    assert four["shortfall"].tolist() == pytest.approx([0.01, 0.31])
    table = study.findings_table(curve, study.saturation(curve), study.lag_table(worse),
                                 study.frontier_table(worse, _costs(), lag_s=3.0), ceilings={}, study_lag_s=3.0)
    growth = _one(table, "growth", "tdnn/arousal")
    assert growth["finding"] == "the context needed grows with the lag (point estimates, no interval)"
    # with intervals of the shortfall at both lags: a claim only where they separate
    def shortfall_ci(lo0: float, hi0: float, lo3: float, hi3: float) -> pd.DataFrame:
        rows = [{"kind": "saturation", "lag_s": lag, "target": "arousal", "a": "tdnn (layers 6)",
                 "b": "tdnn (layers 4)", "estimate": (lo + hi) / 2, "low": lo, "high": hi, "resolved": lo > 0 or hi < 0}
                for lag, lo, hi in ((0.0, lo0, hi0), (3.0, lo3, hi3))]
        return pd.DataFrame(rows)
    args = (curve, study.saturation(curve), study.lag_table(worse), study.frontier_table(worse, _costs(), lag_s=3.0))
    for ci, verdict in (((-0.01, 0.03, 0.2, 0.4), "the context needed grows with the lag (the shortfalls' CIs "
                                                  "do not overlap)"),
                        ((-0.01, 0.25, 0.2, 0.4), "growth of the context needed with the lag not resolved"),
                        ((-0.01, 0.03, -0.05, 0.6), "growth of the context needed with the lag not resolved")):
        t = study.findings_table(*args, ceilings={}, study_lag_s=3.0, intervals=shortfall_ci(*ci))
        assert _one(t, "growth", "tdnn/arousal")["finding"].startswith(verdict)
    assert (growth["setting"], growth["context_s"], growth["reference"], growth["reference_context_s"]) == (
        "tdnn (layers 4)", 4.7, "tdnn (layers 6)", 19.1)
    assert (growth["from_lag_s"], growth["to_lag_s"]) == (0.0, 3.0)
    assert (growth["shortfall_from"], growth["shortfall_to"]) == pytest.approx((0.01, 0.31))
    needed = table[(table["kind"] == "context_needed") & (table["subject"] == "tdnn/arousal")]
    assert needed[["lag_s", "saturation_s"]].values.tolist() == [[0.0, 4.7], [3.0, 19.1]]
    flat = _findings(results, ceilings={})
    assert _one(flat, "growth", "tdnn/arousal")["finding"] == (
        "no clear growth of the context needed with the lag (point estimates, no interval)")


# --------------------------------------------------------------------------- intervals


def _synthetic_sweep(n_speakers: int = 8, frames: int = 300) -> study.Sweep:
    """A sweep at lag 3 s from synthetic predictions: tdnn clearly beats mlp; two tdnn depths tie."""
    rng = np.random.default_rng(11)
    records = []
    for i in range(n_speakers):
        walk = np.cumsum(rng.normal(size=(frames, 2)), axis=0)
        y = (walk - walk.mean(axis=0)) / walk.std(axis=0)
        records.append(SequenceRecord(f"rec{i}", np.zeros((frames, 1), np.float32), np.arange(frames) / 10.0, 10.0,
                                      y=y.astype(np.float32), speaker=f"spk{i}", split="test"))
    noise = {"mlp": 1.5, "tdnn (layers 4)": 0.40, "tdnn (layers 6)": 0.40}
    contexts = {"mlp": 0.1, "tdnn (layers 4)": 4.7, "tdnn (layers 6)": 19.1}
    grids, rows = {}, []
    for setting, sd in noise.items():
        cells = []
        for seed in (0, 1):
            preds = [r.y + rng.normal(scale=sd, size=r.y.shape) for r in records]
            cells.append(experiments.Cell(setting, "joint", seed, ("arousal", "valence"), [], pd.DataFrame(), preds,
                                          None))
            for k, target in enumerate(("arousal", "valence")):
                ccc = metrics.ccc(np.concatenate([r.y[:, k] for r in records]),
                                  np.concatenate([p[:, k] for p in preds]))
                for split in ("dev", "test"):
                    rows.append({"target": target, "seed": seed, "split": split, "postprocess": "none", "ccc": ccc,
                                 "family": setting.split(" ")[0], "setting": setting, "knob": "",
                                 "value": np.nan, "receptive_field_s": contexts[setting],
                                 "context_s": contexts[setting], "lag_s": 3.0})
        grids[(3.0, setting)] = experiments.GridResult(pd.DataFrame(), pd.DataFrame(), cells, records)
    return study.Sweep(pd.DataFrame(rows), grids)


def test_intervals_resolve_a_clear_difference_and_not_an_unclear_one() -> None:
    sweep = _synthetic_sweep()
    curve = study.context_curve(sweep.results)
    saturated, lags = study.saturation(curve), study.lag_table(sweep.results)
    wanted = study.comparisons(curve, saturated, lags, study_lag_s=3.0)
    iv = study.study_intervals(sweep, wanted, n_resamples=500)
    assert list(iv.columns) == list(study.INTERVAL_COLUMNS)
    own = iv[(iv["kind"] == "ccc") & (iv["a"] == "mlp") & (iv["target"] == "arousal")].iloc[0]
    # the estimate is the mean over seeds of the test CCC of the concatenation (independent: the results rows)
    assert own["estimate"] == pytest.approx(curve.set_index(["setting", "target"]).loc[("mlp", "arousal"), "ccc"])
    assert own["low"] < own["estimate"] < own["high"] and own["unit"] == "speaker" and own["n_units"] == 8
    assert own["n_seeds"] == 2
    clear = iv[(iv["kind"] == "context_vs_floor") & (iv["target"] == "arousal")].iloc[0]
    assert clear["resolved"] and clear["low"] > 0.2
    unclear = iv[(iv["kind"] == "saturation") & (iv["target"] == "arousal")].iloc[0]
    assert not unclear["resolved"] and unclear["low"] < 0 < unclear["high"]
    # a comparison the sweep cannot make (no post-processing chain) is a row with its reason, not a crash
    delay = iv[iv["kind"] == "context_vs_floor_delay"].iloc[0]
    assert np.isnan(delay["estimate"]) and "no post-processing chain" in delay["note"]
    # the prose states the resolved difference and calls the unclear one "not resolved"
    table = study.findings_table(curve, saturated, lags, pd.DataFrame(), ceilings={}, study_lag_s=3.0,
                                 intervals=iv)
    best = _one(table, "best", "arousal")
    assert best["resolved"] and best["diff"] == pytest.approx(clear["estimate"])
    text = study.render_findings(table)
    assert f"difference {clear['estimate']:+.3f} [{clear['low']:+.3f}, {clear['high']:+.3f}]" in text
    sat = table[(table["kind"] == "saturation") & (table["target"] == "arousal")].iloc[0]
    assert sat["finding"] == "no resolved gain from more context" and sat["saturation_s"] == 4.7
    assert (f"gain not resolved ({unclear['estimate']:+.3f} [{unclear['low']:+.3f}, {unclear['high']:+.3f}])"
            in text)
    curve_ci = study.with_intervals(curve, iv)
    assert (curve_ci["ccc_low"] < curve_ci["ccc"]).all() and (curve_ci["ccc"] < curve_ci["ccc_high"]).all()
