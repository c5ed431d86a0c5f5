"""emotools.stats: unit bootstrap of CCC against direct computations, normal-theory references and coverage."""

from __future__ import annotations

import json
import re
from fractions import Fraction

import numpy as np
import pytest

from emotools import metrics, stats
from emotools.errors import EmotoolsError
from emotools.stats import CIMethod, Interval, Separability, StatsError, UnitStatistics

Z95 = 1.959963984540054


def _recordings(rng: np.random.Generator, n_rec: int, *, offset: float = 0.0, noise: float = 0.5):
    """Recordings of varying length; predictions = truth + a per-recording bias + noise."""
    lengths = rng.integers(20, 80, size=n_rec)
    truths = [offset + rng.normal(size=n) + rng.normal() for n in lengths]
    preds = [t + 0.3 * rng.normal() + noise * rng.normal(size=t.size) for t in truths]
    return truths, preds


def _expand(arrays, members, counts):
    """Concatenation of the units drawn ``counts[j]`` times each (the resample spelled out)."""
    return np.concatenate([arrays[i] for j, c in enumerate(counts) for _ in range(int(c)) for i in members[j]])


# --------------------------------------------------------------------------- exact scoring of a resample


@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_concat_ccc_from_moments_equals_metrics_ccc_on_the_resampled_concatenation(offset):
    rng = np.random.default_rng(1)
    truths, preds = _recordings(rng, 9, offset=offset)
    speakers = ["s1", "s2", "s1", "s3", "s2", "s4", "s4", "s3", "s1"]
    st = UnitStatistics.from_recordings(truths, preds, units=speakers)
    assert st.units == ("s1", "s2", "s3", "s4")
    members = [[i for i, s in enumerate(speakers) if s == u] for u in st.units]
    full = st.ccc(np.ones(4))
    assert full.shape == (1, 1)
    # metrics.ccc itself rounds its means at 1e6 (~1e-11 relative); the exact rational value decides.
    assert full[0, 0] == pytest.approx(_exact_ccc(np.concatenate(truths), np.concatenate(preds)), rel=1e-14)
    tol = 1e-12 if offset == 0 else 1e-9
    counts = stats.resample_counts(4, 25, rng)
    got = st.ccc(counts)[:, 0]
    want = [metrics.ccc(_expand(truths, members, c), _expand(preds, members, c)) for c in counts]
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def _exact_ccc(t: np.ndarray, p: np.ndarray) -> float:
    """CCC of the float64 values in exact rational arithmetic (population moments)."""
    ft, fp = [Fraction(x) for x in t], [Fraction(x) for x in p]
    mt, mp = sum(ft) / len(ft), sum(fp) / len(fp)
    cov = sum((a - mt) * (b - mp) for a, b in zip(ft, fp))
    vt, vp = sum((a - mt) ** 2 for a in ft), sum((b - mp) ** 2 for b in fp)
    return float(2 * cov / (vt + vp + len(ft) * (mt - mp) ** 2))


def test_per_recording_ccc_is_the_nan_ignoring_mean_over_resampled_recordings():
    rng = np.random.default_rng(2)
    truths, preds = _recordings(rng, 6)
    preds[2] = np.full_like(preds[2], 0.5)  # constant prediction: CCC 0, as metrics.ccc
    truths[4], preds[4] = np.ones(10), np.ones(10)  # both constant and equal: undefined, skipped
    st = UnitStatistics.from_recordings(truths, preds, ccc_protocol="per_recording")
    per = np.array([metrics.ccc(t, p) for t, p in zip(truths, preds)])
    assert per[2] == 0.0 and np.isnan(per[4])
    counts = stats.resample_counts(6, 30, rng)
    want = [np.nanmean(np.repeat(per, c)) for c in counts]
    np.testing.assert_allclose(st.ccc(counts)[:, 0], want, rtol=1e-12)


def test_constant_prediction_and_degenerate_resamples_follow_metrics_semantics():
    truths = [np.arange(5.0), np.arange(5.0) + 2]
    st = UnitStatistics.from_recordings(truths, [np.full(5, 3.0), np.full(5, 3.0)])
    assert st.ccc(np.ones(2))[0, 0] == pytest.approx(0.0, abs=1e-15)
    same = UnitStatistics.from_recordings([np.ones(3), np.ones(4)], [np.ones(3), np.ones(4)])
    assert np.isnan(same.ccc(np.ones(2))[0, 0])


def test_target_column_and_list_input_match_one_dimensional_arrays():
    rng = np.random.default_rng(3)
    truths, preds = _recordings(rng, 5)
    two_t = [np.stack([rng.normal(size=t.size), t], axis=1) for t in truths]
    two_p = [np.stack([rng.normal(size=p.size), p], axis=1) for p in preds]
    a = stats.bootstrap_ccc(truths, preds, seed=4)
    b = stats.bootstrap_ccc(two_t, two_p, target=1, seed=4)
    c = stats.bootstrap_ccc([t.tolist() for t in truths], [p[:, None] for p in preds], seed=4)
    assert a == b == c


# --------------------------------------------------------------------------- results


def test_interval_reads_as_estimate_interval_and_unit_and_round_trips():
    rng = np.random.default_rng(5)
    truths, preds = _recordings(rng, 8)
    speakers = [f"spk{i % 4}" for i in range(8)]
    iv = stats.bootstrap_ccc(truths, preds, units=speakers)
    assert iv.unit == "speaker" and iv.n_units == 4 and iv.ccc_protocol == "concat" and iv.n_resamples == 2000
    assert iv.low <= iv.estimate <= iv.high
    assert re.fullmatch(r"0\.\d{3} \[0\.\d{3}, 0\.\d{3}\] \(95% CI, 4 speakers resampled\)", str(iv))
    assert Interval.from_dict(json.loads(json.dumps(iv.to_dict()))) == iv
    assert iv.half_width == pytest.approx((iv.high - iv.low) / 2)
    rec = stats.bootstrap_ccc(truths, preds, ccc_protocol="per_recording", method="bca", label="tcn")
    assert str(rec).startswith("tcn: ") and "(95% BCA CI, 8 recordings resampled)" in str(rec)


def test_seeded_and_deterministic():
    rng = np.random.default_rng(6)
    truths, preds = _recordings(rng, 10)
    a = stats.bootstrap_ccc(truths, preds, seed=11)
    assert stats.bootstrap_ccc(truths, preds, seed=11) == a
    assert stats.bootstrap_ccc(truths, preds, seed=12) != a


def test_seeds_estimate_is_the_mean_of_per_seed_scores_and_resampling_seeds_widens():
    rng = np.random.default_rng(7)
    truths, _ = _recordings(rng, 12)
    per_seed = {s: [t + rng.normal() * 0.2 + (0.2 + 0.4 * s) * rng.normal(size=t.size) for t in truths]
                for s in range(4)}
    scores = [metrics.ccc(np.concatenate(truths), np.concatenate(p)) for p in per_seed.values()]
    hier = stats.bootstrap_ccc(truths, per_seed)
    fixed = stats.bootstrap_ccc(truths, per_seed, resample_seeds=False)
    assert hier.estimate == pytest.approx(np.mean(scores), rel=1e-12)
    assert hier.n_seeds == 4 and hier.seeds_resampled and not fixed.seeds_resampled
    assert "12 recordings and 4 seeds resampled" in str(hier)
    assert "12 recordings resampled, mean of 4 seeds" in str(fixed)
    assert hier.high - hier.low > 1.5 * (fixed.high - fixed.low)


# --------------------------------------------------------------------------- references


def test_bootstrap_mean_matches_the_normal_theory_interval_on_large_data():
    v = np.random.default_rng(8).normal(0.6, 0.2, size=2000)
    half = Z95 * v.std() / np.sqrt(v.size)
    for method in ("percentile", "bca", "expanded"):
        iv = stats.bootstrap_mean(v, unit="speaker", method=method)
        assert iv.estimate == pytest.approx(v.mean())
        assert iv.low == pytest.approx(v.mean() - half, abs=0.1 * half)
        assert iv.high == pytest.approx(v.mean() + half, abs=0.1 * half)


def test_system_against_itself_differs_by_exactly_zero():
    rng = np.random.default_rng(9)
    truths, preds = _recordings(rng, 7)
    for protocol in ("concat", "per_recording"):
        d = stats.paired_difference(truths, preds, list(preds), ccc_protocol=protocol)
        assert (d.estimate, d.low, d.high) == (0.0, 0.0, 0.0)
        assert not d.excludes(0.0)


def _single_recording_systems(rng, n_units: int, effect: float):
    """Unit-level CCCs that differ between systems by ``effect`` on average, with unit-to-unit variation."""
    truths = [rng.normal(size=30) for _ in range(n_units)]
    a = [t + rng.uniform(0.3, 1.2) * rng.normal(size=t.size) for t in truths]
    b = [t + rng.uniform(0.3, 1.2) * rng.normal(size=t.size) + effect * rng.normal(size=t.size) for t in truths]
    return truths, a, b


@pytest.mark.parametrize("effect", [0.0, 0.8])
def test_paired_difference_matches_a_paired_normal_interval_and_a_sign_flip_permutation_test(effect):
    rng = np.random.default_rng(10)
    truths, a, b = _single_recording_systems(rng, 300, effect)
    d = np.array([metrics.ccc(t, x) - metrics.ccc(t, y) for t, x, y in zip(truths, a, b)])
    iv = stats.paired_difference(truths, a, b, names=("a", "b"), ccc_protocol="per_recording")
    half = Z95 * d.std() / np.sqrt(d.size)
    assert iv.estimate == pytest.approx(d.mean(), rel=1e-12)
    assert iv.low == pytest.approx(d.mean() - half, abs=0.1 * half)
    assert iv.high == pytest.approx(d.mean() + half, abs=0.1 * half)
    flips = rng.choice([-1.0, 1.0], size=(4000, d.size))
    p = np.mean(np.abs(flips @ d) >= abs(d.sum()))
    assert iv.excludes(0.0) == (p < 0.05)
    assert iv.excludes(0.0) == (effect > 0)
    assert iv.label == "a - b"


# --------------------------------------------------------------------------- coverage


@pytest.mark.parametrize("n_spk, method", [(30, "percentile"), (10, "expanded")])
def test_speaker_bootstrap_of_concat_ccc_covers_the_true_ccc_about_95_percent(n_spk, method):
    """Speakers with their own level (in truth) and bias (in prediction): frames within a speaker are dependent.

    truth = a_spk + w, prediction = truth + b_spk + v with a ~ N(0, 0.5^2), b ~ N(0, 0.3^2), w ~ N(0, 1),
    v ~ N(0, 0.8^2): the population CCC is 2 * 1.25 / (2 * 1.25 + 0.09 + 0.64). 300 simulated test sets,
    2 recordings of 40 frames per speaker; Monte-Carlo SE of a coverage near 0.95 is ~0.013.
    Measured (1000 resamples): 30 speakers percentile 0.910 (expanded 0.933, BCa 0.897); 10 speakers
    expanded 0.923 (percentile 0.873, BCa 0.857). With stronger speaker effects (a ~ N(0, 1),
    b ~ N(0, 0.5^2)) every method covers less: percentile / expanded / BCa 0.890 / 0.900 / 0.887 with
    30 speakers, 0.800 / 0.837 / 0.803 with 10, 0.933 / 0.937 / 0.943 with 200 (docs/statistics.md).
    """
    rng = np.random.default_rng(2024)
    true_ccc = 2.5 / (2.5 + 0.09 + 0.64)
    n_sets, hits = 300, 0
    speakers = np.repeat(np.arange(n_spk), 2)
    for k in range(n_sets):
        a, b = rng.normal(scale=0.5, size=n_spk), rng.normal(scale=0.3, size=n_spk)
        truths = [a[s] + rng.normal(size=40) for s in speakers]
        preds = [t + b[s] + rng.normal(scale=0.8, size=40) for t, s in zip(truths, speakers)]
        iv = stats.bootstrap_ccc(truths, preds, units=speakers, n_resamples=1000, seed=k, method=method)
        hits += iv.low <= true_ccc <= iv.high
    coverage = hits / n_sets
    assert 0.90 <= coverage <= 0.99, coverage


def test_bootstrap_mean_covers_the_true_mean_of_a_skewed_distribution():
    """400 samples of 40 exponential values (mean 1), SE ~0.011. Measured: percentile 0.920, expanded 0.938."""
    rng = np.random.default_rng(77)
    hits = 0
    for k in range(400):
        iv = stats.bootstrap_mean(rng.exponential(size=40), n_resamples=1000, seed=k)
        hits += iv.low <= 1.0 <= iv.high
    assert 0.90 <= hits / 400 <= 0.99, hits / 400


# --------------------------------------------------------------------------- separability


def test_separable_from_best_marks_the_best_only_when_the_runner_up_is_resolved():
    rng = np.random.default_rng(12)
    truths = [rng.normal(size=60) + rng.normal() for _ in range(20)]
    good = [t + 0.3 * rng.normal(size=t.size) for t in truths]
    twin = [p + 0.01 * rng.normal(size=p.size) for p in good]
    bad = [t + 1.5 * rng.normal(size=t.size) for t in truths]
    close = stats.separable_from_best(truths, {"bad": bad, "good": good, "twin": twin})
    assert close.best in ("good", "twin") and close.runner_up in ("good", "twin")
    assert close.separable == {close.runner_up: False, "bad": True}
    assert close.best_if_separable is None
    clear = stats.separable_from_best(truths, {"bad": bad, "good": good})
    assert clear.best == "good" and clear.best_if_separable == "good"
    assert clear.differences["bad"].estimate == pytest.approx(
        clear.intervals["good"].estimate - clear.intervals["bad"].estimate)
    assert Separability.from_dict(json.loads(json.dumps(clear.to_dict()))) == clear
    frame = clear.to_frame()
    assert list(frame["system"]) == ["good", "bad"] and list(frame["best_if_separable"]) == [True, False]
    assert "best: good" in str(clear) and "good - bad" in str(clear)


def test_shared_unit_draws_make_the_paired_interval_narrower_than_the_unpaired_one():
    rng = np.random.default_rng(13)
    truths = [rng.normal(size=50) for _ in range(15)]
    hard = [rng.uniform(0.2, 2.0) for _ in truths]  # how hard each recording is, for both systems
    a = [t + h * rng.normal(size=t.size) for t, h in zip(truths, hard)]
    b = [t + 1.1 * h * rng.normal(size=t.size) for t, h in zip(truths, hard)]
    paired = stats.paired_difference(truths, a, b, ccc_protocol="per_recording")
    ia = stats.bootstrap_ccc(truths, a, ccc_protocol="per_recording")
    ib = stats.bootstrap_ccc(truths, b, ccc_protocol="per_recording", seed=1)
    unpaired_half = np.hypot(ia.half_width, ib.half_width)
    assert paired.half_width < 0.5 * unpaired_half


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, subject, reason", [
    (lambda t, p: stats.bootstrap_ccc(t, p[:2]), "predictions", "2 predictions for 3 recordings"),
    (lambda t, p: stats.bootstrap_ccc(t, [p[0], p[1], p[2][:-1]]), "predictions", "seed 0, recording 2: labels"),
    (lambda t, p: stats.bootstrap_ccc(t, p, units=["x", "x", "x"]), "units", "at least 2 units"),
    (lambda t, p: stats.bootstrap_ccc(t, p, units=["x"]), "units", "1 units for 3 recordings"),
    (lambda t, p: stats.bootstrap_ccc(t, p, level=1.5), "level", "(0, 1)"),
    (lambda t, p: stats.bootstrap_ccc(t, p, method="studentized"), "method", "'percentile', 'bca' or 'expanded'"),
    (lambda t, p: stats.bootstrap_ccc(t, p, n_resamples=0), "n_resamples", "positive"),
    (lambda t, p: stats.bootstrap_ccc([np.zeros((5, 2))] * 3, p), "truths[0]", "target="),
    (lambda t, p: stats.bootstrap_ccc(t, {}), "predictions", "no seeds"),
    (lambda t, p: stats.bootstrap_ccc(t, p, ccc_protocol="frames"), "ccc_protocol", "'concat' or 'per_recording'"),
    (lambda t, p: stats.bootstrap_mean([0.5]), "values", "at least 2"),
    (lambda t, p: stats.separable_from_best(t, {"only": p}), "systems", "at least 2 systems"),
])
def test_bad_input_names_the_parameter_and_the_problem(call, subject, reason):
    t = [np.arange(5.0), np.arange(5.0) * 2, np.arange(5.0) - 1]
    p = [x + 0.1 for x in t]
    with pytest.raises(StatsError) as err:
        call(t, p)
    assert isinstance(err.value, EmotoolsError) and isinstance(err.value, ValueError)
    assert err.value.subject == subject and reason in err.value.reason


def test_cimethod_enum_is_accepted():
    t = [np.arange(6.0) + k for k in range(4)]
    p = [x + np.sin(x) for x in t]
    assert stats.bootstrap_ccc(t, p, method=CIMethod.BCA).method == "bca"
