"""emotools/realtime.py: the lookahead plan, CCC cost of causality, latency, ONNX streams and a streamed session,
against independent computations on tiny inputs."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from emotools import experiments, models, realtime, synth
from emotools.export import OnnxError, export_step
from emotools.features import SAMPLE_RATE, FeatureSpec, extract_signal
from emotools.models.config import TDNN_CONTEXTS
from emotools.sequences import Normalizer, SequenceRecord

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest

SPEC = FeatureSpec("eGeMAPSv02", "windowed", window=1.0, hop=0.1)
TARGETS = ("arousal", "valence")


# --------------------------------------------------------------------------- plan and latency


@pytest.mark.parametrize("lookahead, expected", [(0.0, "tcn:causal"), (0.04, "tcn:causal"), (0.26, "tcn:lookahead=3"),
                                                 (4.0, "tcn:lookahead=40"), (math.inf, "tcn")])
def test_lookahead_spec_rounds_to_frames(lookahead: float, expected: str) -> None:
    assert realtime.lookahead_spec("tcn", lookahead, 10.0) == expected


@pytest.mark.parametrize("family, lookahead, message", [
    ("tcn", -1.0, "tcn: lookahead must be >= 0 s or inf (offline), got -1.0"),
    ("tcn", math.nan, "tcn: lookahead must be >= 0 s or inf (offline), got nan"),
    ("tcn:causal", 0.0, "tcn:causal: give the family's plain name"),
])
def test_lookahead_spec_refuses_bad_settings(family: str, lookahead: float, message: str) -> None:
    with pytest.raises(realtime.RealtimeError, match=re.escape(message)):
        realtime.lookahead_spec(family, lookahead, 10.0)


def test_plan_trains_a_lookahead_the_family_cannot_use_as_its_offline_model() -> None:
    plan = realtime.lookahead_plan(["tdnn", "lstm"], [4.0, 0.0, 1.0], rate_hz=10.0)
    tdnn = plan[plan["family"] == "tdnn"].set_index("lookahead_s")
    future = sum(max(layer) for layer in TDNN_CONTEXTS) / 10  # centred contexts: 2.3 s ahead
    span = sum(max(layer) - min(layer) for layer in TDNN_CONTEXTS) / 10
    assert list(tdnn.index) == [0.0, 1.0, 4.0, math.inf]
    assert list(tdnn["spec"]) == ["tdnn:causal", "tdnn:lookahead=10", "tdnn", "tdnn"]
    assert list(tdnn["same_as_offline"]) == [False, False, True, True]
    np.testing.assert_allclose(tdnn["future_s"], [0.0, 1.0, future, future])
    np.testing.assert_allclose(tdnn["past_s"], [span, span - 1.0, span - future, span - future])
    lstm = plan[plan["family"] == "lstm"].set_index("lookahead_s")
    assert list(lstm["spec"]) == ["lstm:causal", "lstm:lookahead=10", "lstm:lookahead=40", "lstm"]
    assert np.isinf(lstm["past_s"]).all() and list(lstm["future_s"]) == [0.0, 1.0, 4.0, math.inf]
    assert realtime.specs(plan) == ["tdnn:causal", "tdnn:lookahead=10", "tdnn", "lstm:causal", "lstm:lookahead=10",
                                    "lstm:lookahead=40", "lstm"]
    assert realtime.most_causal(plan) == {"tdnn": "tdnn:causal", "lstm": "lstm:causal"}
    assert realtime.most_causal(realtime.lookahead_plan(["tdnn"], [4.0], rate_hz=10.0)) == {}
    assert not np.isinf(realtime.lookahead_plan(["tcn"], [0.0], rate_hz=10.0, offline=False)["lookahead_s"]).any()
    with pytest.raises(realtime.RealtimeError, match="needs families and lookaheads"):
        realtime.lookahead_plan([], [0.0], rate_hz=10.0)


def test_latency_is_half_a_window_plus_opensmiles_bound_plus_the_model_lookahead() -> None:
    plan = realtime.lookahead_plan(["tdnn", "lstm"], [0.0, 1.0], rate_hz=10.0)
    table = realtime.latency_table(plan, SPEC, chunk_s=0.25).set_index(["family", "lookahead_s"])
    feature = 0.05 + (40 + 1) * 0.01  # 60-ms analysis frame past its 10-ms hop, 40 Viterbi frames, sma3
    assert table.loc[("tdnn", 1.0), "algorithmic_s"] == pytest.approx(0.5 + feature + 1.0)
    assert table.loc[("lstm", 0.0), "algorithmic_s"] == pytest.approx(0.5 + feature)
    assert table.loc[("tdnn", math.inf), "algorithmic_s"] == pytest.approx(0.5 + feature + 2.3)
    assert np.isinf(table.loc[("lstm", math.inf), "algorithmic_s"])
    finite = np.isfinite(table["algorithmic_s"])
    np.testing.assert_allclose((table["worst_s"] - table["algorithmic_s"])[finite], 0.25)


# --------------------------------------------------------------------------- CCC against lookahead


def _ccc(y: np.ndarray, p: np.ndarray) -> float:
    # Lin's concordance correlation coefficient, written out
    return 2 * np.cov(y, p, bias=True)[0, 1] / (y.var() + p.var() + (y.mean() - p.mean()) ** 2)


@pytest.fixture(scope="module")
def grid_and_plan() -> tuple[experiments.GridResult, pd.DataFrame]:
    """Four test speakers; the offline TDNN predicts with little noise, the causal one with much."""
    rng = np.random.default_rng(0)
    records = [SequenceRecord(f"r{i}", x=np.zeros((60, 1)), time=np.arange(60) / 10, rate_hz=10.0,
                              y=np.cumsum(rng.standard_normal((60, 2)), 0) / 5, speaker=f"s{i}", split="test")
               for i in range(4)]
    noise = {"tdnn": 0.1, "tdnn:causal": 0.6}
    cells, rows = [], []
    for spec, sd in noise.items():
        preds = [(r.y + sd * rng.standard_normal(r.y.shape)).astype(np.float32) for r in records]
        scored = experiments.score_rows(records, preds, TARGETS)
        rows += [{"dataset": "d", "label_protocol": "p", "architecture": spec, "mode": "joint", "seed": 0,
                  "split": "test", "postprocess": "none", **row} for row in scored]
        cells.append(experiments.Cell(spec, "joint", 0, TARGETS, scored, pd.DataFrame(), preds, None))
    grid = experiments.GridResult(pd.DataFrame(rows)[experiments.RESULT_COLUMNS], pd.DataFrame(), cells, records)
    return grid, realtime.lookahead_plan(["tdnn"], [0.0, 4.0], rate_hz=10.0)


def _concat_ccc(grid: experiments.GridResult, spec: str, k: int) -> float:
    cell = next(c for c in grid.cells if c.architecture == spec)
    return _ccc(np.concatenate([r.y[:, k] for r in grid.test_records]),
                np.concatenate([p[:, k] for p in cell.test_predictions]))


def test_cost_of_causality_is_the_paired_difference_of_test_cccs(grid_and_plan) -> None:
    grid, plan = grid_and_plan
    costs = realtime.causality_costs(grid, plan, n_resamples=300).set_index(["lookahead_s", "target"])
    assert len(costs) == 4  # lookaheads 0 and 4 s, two targets
    for k, target in enumerate(TARGETS):
        now = costs.loc[(0.0, target)]
        expected = _concat_ccc(grid, "tdnn", k) - _concat_ccc(grid, "tdnn:causal", k)
        assert now["cost"] == pytest.approx(expected, abs=1e-6)
        assert now["ccc_offline"] == pytest.approx(_concat_ccc(grid, "tdnn", k), abs=1e-6)
        assert now["cost_low"] <= now["cost"] <= now["cost_high"] and now["resolved"]  # 0.1 vs 0.6 noise
        assert (now["unit"], now["n_units"]) == ("speaker", 4)
        same = costs.loc[(4.0, target)]  # the TDNN cannot use 4 s: the offline model itself
        assert same["spec"] == "tdnn" and same["cost"] == 0 and np.isnan(same["cost_low"]) and not same["resolved"]


def test_lookahead_curve_carries_each_settings_ccc_and_ci(grid_and_plan) -> None:
    grid, plan = grid_and_plan
    curve = realtime.lookahead_curve(experiments.interval_table(grid, n_resamples=300), plan)
    assert len(curve) == len(plan) * len(TARGETS)
    for row in curve.itertuples():
        assert row.ccc == pytest.approx(_concat_ccc(grid, row.spec, TARGETS.index(row.target)), abs=1e-6)
        assert row.ccc_low <= row.ccc <= row.ccc_high
    text = realtime.render_findings(realtime.causality_costs(grid, plan, n_resamples=300), pd.DataFrame())
    cost = _concat_ccc(grid, "tdnn", 0) - _concat_ccc(grid, "tdnn:causal", 0)
    assert f"tdnn, lookahead 0 s: arousal {cost:+.3f} [" in text
    assert "tdnn, lookahead 4 s (the same model as offline): arousal +0.000 no CI" in text


# --------------------------------------------------------------------------- streams


def _small(spec: str, n_features: int = 6, **options) -> models.SequenceRegressor:
    torch.manual_seed(0)
    return models.build(spec, n_features, 2, hidden=16, **options).eval()


def _offline(model: models.SequenceRegressor, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)[None], torch.tensor([len(x)]))[0].numpy()


@pytest.mark.parametrize("spec, options", [("tdnn:lookahead=2", {}), ("attention:causal", {"window": 5}),
                                           ("tcn:lookahead=3", {"levels": 3}), ("lstm:lookahead=2", {})])
def test_an_exported_graph_streamed_equals_the_offline_pass(spec: str, options: dict, tmp_path: Path) -> None:
    model = _small(spec, **options)
    x = np.random.default_rng(1).standard_normal((83, 6)).astype(np.float32)
    stream = realtime.OnnxStream(realtime.onnx_runner(export_step(model, tmp_path / "m.step.onnx")))
    sizes, out, start = [1, 7, 0, 30, 3, 42], [], 0
    for n in sizes:
        out.append(stream.push(x[start:start + n]))
        start += n
    out.append(stream.flush())
    assert stream.delay_frames == model.receptive_future
    assert sum(len(o) for o in out[:-1]) == len(x) - stream.delay_frames  # each output as soon as it is final
    np.testing.assert_allclose(np.concatenate(out), _offline(model, x), atol=1e-4)


def test_onnx_streams_refuse_unbounded_pasts_and_offline_models(tmp_path: Path) -> None:
    for spec, why in (("dsus:causal", "no fixed-state streaming step yet"), ("tdnn", "is not causal")):
        with pytest.raises(OnnxError, match=f"has no streaming-step graph: .*{why}"):
            export_step(_small(spec), tmp_path / "m.step.onnx")
        assert not (tmp_path / "m.step.onnx").exists()


def test_live_models_normalize_with_train_statistics_only() -> None:
    rec = SequenceRecord("a", x=np.random.default_rng(2).normal(3, 2, (40, 6)), time=np.arange(40) / 10,
                         rate_hz=10.0, speaker="s", session="s")
    norm = Normalizer("global").fit([rec])
    live = realtime.LiveModel("m", models.StreamingModel(_small("tdnn:causal")), norm)
    np.testing.assert_allclose(live.normalize(rec.x), norm.transform([rec])[0].x, rtol=1e-6)
    with pytest.raises(realtime.RealtimeError, match=re.escape("m: normalization 'session' needs a whole session's")):
        realtime.LiveModel("m", live.stream, Normalizer("session").fit([rec]))


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return synth.render_session(0, 0, minutes=0.1, seed=3).audio[: 5 * SAMPLE_RATE + 333]


def test_a_streamed_session_equals_offline_extraction_and_prediction(speech: np.ndarray) -> None:
    offline = extract_signal(speech, SAMPLE_RATE, SPEC)
    x = offline.iloc[:, 2:].to_numpy(np.float32)
    rec = SequenceRecord("a", x=x, time=np.arange(len(x)) / 10, rate_hz=10.0)
    norm = Normalizer("global").fit([rec])
    model = _small("tdnn:lookahead=3", n_features=x.shape[1])
    lives = [realtime.LiveModel("now", models.StreamingModel(model), norm, "tdnn:lookahead=3")]
    session = realtime.stream_session(speech, lives, spec=SPEC, sr=SAMPLE_RATE, chunk_s=0.25)

    np.testing.assert_allclose(session.features, x, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(session.time, (offline["start"] + offline["end"]) / 2)
    expected = _offline(model, (x - norm.mean) / norm.std)
    np.testing.assert_allclose(session.predictions["now"], expected, atol=1e-5)
    assert realtime.offline_difference(session, "now", model, lives[0]) < 1e-5

    emitted = session.emitted_at["now"]
    assert np.all(np.diff(emitted) >= 0) and emitted[-1] == pytest.approx(len(speech) / SAMPLE_RATE)
    live = emitted < session.audio_s
    plan = realtime.lookahead_plan(["tdnn"], [0.3], rate_hz=10.0, offline=False)
    bound = realtime.latency_table(plan, SPEC, chunk_s=0.25)["worst_s"].iloc[0]
    assert live.sum() > 0 and np.all(session.latency("now")[live] <= bound + 1e-9)
    assert np.all(session.latency("now")[live] >= SPEC.window / 2 + 0.3 - 1e-9)  # its window's end, 3 frames more

    assert len(session.chunks) == math.ceil(len(speech) / (0.25 * SAMPLE_RATE)) + 1  # pushes and the end
    assert session.chunks["rows"].sum() == len(x)
    [row] = realtime.compute_table(session, lives).to_dict("records")
    assert (row["architecture"], row["backend"], row["chunks"]) == ("tdnn:lookahead=3", "torch", len(session.chunks) - 1)
    total = session.chunks["features_s"].sum() + session.chunks["now_s"].sum()
    assert row["rtf"] == pytest.approx(total / session.audio_s)
    assert row["latency_s_max"] == pytest.approx(session.latency("now")[live].max())

    frame = realtime.live_frame(session, "now", TARGETS, {"gold": expected})
    assert list(frame.columns) == ["time", "emitted_at", "live arousal", "gold arousal", "live valence",
                                   "gold valence"]
    np.testing.assert_allclose(frame["live valence"], session.predictions["now"][:, 1])


def test_a_session_refuses_duplicate_names_and_empty_audio(speech: np.ndarray) -> None:
    live = realtime.LiveModel("m", models.StreamingModel(_small("tdnn:causal", n_features=88)))
    with pytest.raises(realtime.RealtimeError, match=re.escape("session: needs models with unique names, got "
                                                               "['m', 'm']")):
        realtime.stream_session(speech, [live, live], spec=SPEC, sr=SAMPLE_RATE, chunk_s=0.1)
    with pytest.raises(realtime.RealtimeError, match="needs audio and chunks of >= 1 sample, got 0 samples"):
        realtime.stream_session(speech[:0], [live], spec=SPEC, sr=SAMPLE_RATE, chunk_s=0.1)
