"""Post-processing: delay, smoothing, bias/scale, and the dev-tuned chain."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import signal

from emotools import metrics, postprocess
from emotools.sequences import SequenceRecord

RATE = 10.0


def smooth_signal(rng: np.random.Generator, T: int) -> np.ndarray:
    x = signal.filtfilt([0.1], [1, -0.9], rng.standard_normal((T, 2)), axis=0)  # smooth, as ratings are
    return x / x.std(0) * 0.3


def dev_set(seed: int = 0, n: int = 3, T: int = 600) -> list[SequenceRecord]:
    rng = np.random.default_rng(seed)
    return [SequenceRecord(f"d{i}", x=np.zeros((T, 1)), y=smooth_signal(rng, T), time=np.arange(T) / RATE, rate_hz=RATE)
            for i in range(n)]


def stats(records) -> dict:
    y = np.concatenate([r.y for r in records])
    return {"arousal": {"mean": float(y[:, 0].mean()), "std": float(y[:, 0].std())},
            "valence": {"mean": float(y[:, 1].mean()), "std": float(y[:, 1].std())}}


def concat_ccc(records, preds, k):
    return metrics.ccc(np.concatenate([r.y[:, k] for r in records]), np.concatenate([p[:, k] for p in preds]))


# --------------------------------------------------------------------------- the steps


def test_delay_shifts_in_time_and_repeats_edges():
    p = np.arange(6.0)
    assert postprocess.delay(p, 2).tolist() == [0, 0, 0, 1, 2, 3]
    assert postprocess.delay(p, -2).tolist() == [2, 3, 4, 5, 5, 5]
    assert postprocess.delay(p, 0).tolist() == p.tolist()
    two = np.stack([p, -p], axis=1)
    assert postprocess.delay(two, 1)[:, 1].tolist() == [0, 0, -1, -2, -3, -4]


def test_median_smoothing_against_a_direct_median():
    rng = np.random.default_rng(0)
    p = rng.standard_normal((40, 2))
    out = postprocess.median_smooth(p, 4)  # even windows become odd: 5
    padded = np.pad(p, ((2, 2), (0, 0)), mode="edge")
    expected = np.stack([np.median(padded[t : t + 5], axis=0) for t in range(40)])
    np.testing.assert_allclose(out, expected)
    with pytest.raises(postprocess.PostProcessError, match="window"):
        postprocess.median_smooth(p, 0)


def test_exponential_smoothing_is_zero_phase_and_keeps_constants():
    impulse = np.zeros(101)
    impulse[50] = 1.0
    out = postprocess.exponential_smooth(impulse, 0.2)
    np.testing.assert_allclose(out, out[::-1], atol=1e-5)  # symmetric up to edge effects: no lag
    assert np.argmax(out) == 50 and out.sum() == pytest.approx(1.0, abs=1e-4)
    assert (out * np.arange(101)).sum() / out.sum() == pytest.approx(50.0, abs=1e-3)
    causal = signal.lfilter([0.2], [1, -0.8], impulse)  # one pass lags by (1 - a) / a = 4 frames
    assert (causal * np.arange(101)).sum() / causal.sum() == pytest.approx(54.0, abs=1e-3)
    np.testing.assert_allclose(postprocess.exponential_smooth(np.full(30, 0.7), 0.1), 0.7)
    assert np.array_equal(postprocess.exponential_smooth(impulse, 1.0), impulse)
    with pytest.raises(postprocess.PostProcessError, match="alpha"):
        postprocess.exponential_smooth(impulse, 0.0)


# --------------------------------------------------------------------------- the chain


def test_chain_finds_a_known_delay():
    rng = np.random.default_rng(0)
    rough = signal.lfilter([0.1], [1, -0.9], rng.standard_normal((4, 600, 2)), axis=1)  # sharp autocorrelation peak
    dev = [SequenceRecord(f"d{i}", x=np.zeros((600, 1)), y=y, time=np.arange(600) / RATE, rate_hz=RATE)
           for i, y in enumerate(rough)]
    preds = [postprocess.delay(r.y, -16) + 0.01 * rng.standard_normal(r.y.shape) for r in dev]  # 1.6 s early
    chain = postprocess.fit_chain(preds, dev, label_stats=stats(dev), steps=("delay",))
    assert [s.delay_frames for s in chain.steps] == [16, 16]
    assert list(chain.report_frame["parameter"]) == ["1.6 s", "1.6 s"]


def test_smoothing_is_kept_for_noisy_predictions():
    dev = dev_set(seed=1)
    rng = np.random.default_rng(2)
    preds = [r.y + 0.3 * rng.standard_normal(r.y.shape) for r in dev]
    chain = postprocess.fit_chain(preds, dev, label_stats=stats(dev), steps=("smoothing",))
    report = chain.report_frame
    assert report["kept"].all() and (report["dev_ccc_after"] > report["dev_ccc_before"] + 0.1).all()
    assert all(s.smoothing in ("median", "exponential") for s in chain.steps)


def test_full_chain_each_kept_step_improves_dev():
    dev = dev_set()
    rng = np.random.default_rng(1)
    # predictions run 1.6 s ahead of the labels, are noisy, too small and offset
    preds = [0.5 * postprocess.delay(r.y, -16) + 0.05 * rng.standard_normal(r.y.shape) + 0.2 for r in dev]
    chain = postprocess.fit_chain(preds, dev, label_stats=stats(dev))
    report = chain.report_frame
    assert list(report["step"]) == ["delay", "smoothing", "bias", "scale"] * 2
    assert all(abs(s.delay_frames - 16) <= 3 for s in chain.steps)  # smooth labels: a flat optimum
    assert report[report.step.isin(["delay", "bias", "scale"])]["kept"].all()
    kept = report[report["kept"]]
    assert (kept["dev_ccc_after"] > kept["dev_ccc_before"]).all()
    dropped = report[~report["kept"]]
    assert (dropped["dev_ccc_after"] == dropped["dev_ccc_before"]).all()
    # steps run in sequence: each one starts where the previous one ended
    for _, group in report.groupby("target"):
        np.testing.assert_allclose(group["dev_ccc_before"].to_numpy()[1:], group["dev_ccc_after"].to_numpy()[:-1])
    out = chain.apply(preds)
    for k, target in enumerate(chain.targets):
        final = report[report.target == target]["dev_ccc_after"].iloc[-1]
        assert concat_ccc(dev, out, k) == pytest.approx(final)
        assert concat_ccc(dev, out, k) > 0.9 > 0.5 > concat_ccc(dev, preds, k)
        # bias and scale brought the predictions to the training label statistics
        merged = np.concatenate([o[:, k] for o in out])
        assert merged.mean() == pytest.approx(stats(dev)[target]["mean"], abs=1e-6)
        assert merged.std() == pytest.approx(stats(dev)[target]["std"], rel=1e-5)


def test_steps_that_do_not_help_are_not_kept():
    dev = dev_set(seed=2)
    perfect = [r.y.copy() for r in dev]
    chain = postprocess.fit_chain(perfect, dev, label_stats=stats(dev))
    report = chain.report_frame
    assert not report["kept"].any()
    np.testing.assert_allclose(report["dev_ccc_before"], 1.0)
    np.testing.assert_allclose(report["dev_ccc_after"], 1.0)
    for a, b in zip(chain.apply(perfect), perfect):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_chain_is_a_fixed_transform_that_round_trips(tmp_path):
    dev, test = dev_set(seed=3), dev_set(seed=4, n=2)
    rng = np.random.default_rng(5)
    preds = [postprocess.delay(r.y, -8) + 0.1 * rng.standard_normal(r.y.shape) for r in dev]
    chain = postprocess.fit_chain(preds, dev, label_stats=stats(dev), ccc_protocol="per_recording",
                                  steps=("delay", "smoothing"))
    assert chain.ccc_protocol == "per_recording" and set(chain.report_frame["step"]) == {"delay", "smoothing"}
    again = postprocess.PostProcessor.from_dict(json.loads(json.dumps(chain.to_dict())))
    test_preds = [r.y + 0.1 * rng.standard_normal(r.y.shape) for r in test]
    for a, b in zip(chain.apply(test_preds), again.apply(test_preds)):
        np.testing.assert_array_equal(a, b)
    # applying never looks at other recordings: one at a time gives the same result
    one_by_one = [chain.apply([p])[0] for p in test_preds]
    for a, b in zip(chain.apply(test_preds), one_by_one):
        np.testing.assert_array_equal(a, b)


def test_chain_refuses_bad_input():
    dev = dev_set(n=2)
    preds = [r.y for r in dev]
    with pytest.raises(postprocess.PostProcessError, match="1 predictions for 2 records"):
        postprocess.fit_chain(preds[:1], dev, label_stats=stats(dev))
    with pytest.raises(postprocess.PostProcessError, match="unknown step"):
        postprocess.fit_chain(preds, dev, label_stats=stats(dev), steps=("wiener",))
    with pytest.raises(postprocess.PostProcessError, match=r"label_stats lack target\(s\) \['valence'\]"):
        postprocess.fit_chain(preds, dev, label_stats={"arousal": {"mean": 0, "std": 1}})
    with pytest.raises(postprocess.PostProcessError, match=r"d0: predictions \(600, 1\) vs labels \(600, 2\)"):
        postprocess.fit_chain([p[:, :1] for p in preds], dev, label_stats=stats(dev))
    chain = postprocess.fit_chain(preds, dev, label_stats=stats(dev))
    with pytest.raises(postprocess.PostProcessError, match="3 columns"):
        chain.apply([np.zeros((10, 3))])
