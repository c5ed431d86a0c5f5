"""Metrics against independent references: audmetric and the formula by hand."""

from __future__ import annotations

import math

import audmetric
import numpy as np
import pytest
import torch

from emotools import metrics


def _formula_ccc(t: list[float], p: list[float]) -> float:
    """Lin's CCC written out with plain Python floats (population moments)."""
    n = len(t)
    mt, mp = sum(t) / n, sum(p) / n
    vt = sum((x - mt) ** 2 for x in t) / n
    vp = sum((x - mp) ** 2 for x in p) / n
    cov = sum((a - mt) * (b - mp) for a, b in zip(t, p)) / n
    return 2 * cov / (vt + vp + (mt - mp) ** 2)


@pytest.mark.parametrize("seed", range(50))
def test_ccc_matches_audmetric_on_random_input(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 2000))
    t = rng.normal(rng.normal(), rng.uniform(0.1, 3), n)
    p = 0.6 * t + rng.normal(rng.normal(), rng.uniform(0.1, 3), n)
    assert metrics.ccc(t, p) == pytest.approx(audmetric.concordance_cc(t, p), abs=1e-9)
    assert metrics.ccc(t, p) == pytest.approx(_formula_ccc(list(t), list(p)), abs=1e-9)
    assert metrics.pearson(t, p) == pytest.approx(np.corrcoef(t, p)[0, 1], abs=1e-9)
    assert metrics.mse(t, p) == pytest.approx(np.mean((t - p) ** 2), rel=1e-12)


@pytest.mark.parametrize(
    ("name", "t", "p"),
    [
        ("constant prediction", [0.1, 0.5, -0.3, 0.9], [0.2, 0.2, 0.2, 0.2]),
        ("constant target", [0.2, 0.2, 0.2, 0.2], [0.1, 0.5, -0.3, 0.9]),
        ("two different constants", [1.0, 1.0, 1.0], [2.0, 2.0, 2.0]),
        ("length 2", [0.0, 1.0], [1.0, 0.0]),
        ("integer input", [1, 2, 3, 4, 5], [2, 2, 3, 5, 4]),
        ("offset 1e6", [1e6 + 0.1, 1e6 + 0.2, 1e6 + 0.4, 1e6 + 0.3], [1e6 + 0.15, 1e6 + 0.2, 1e6 + 0.35, 1e6 + 0.3]),
    ],
)
def test_ccc_named_edge_cases_match_audmetric(name: str, t: list, p: list) -> None:
    assert metrics.ccc(t, p) == pytest.approx(audmetric.concordance_cc(np.array(t, float), np.array(p, float)), abs=1e-9)


def test_constant_prediction_is_zero_not_nan() -> None:
    t = np.sin(np.linspace(0, 10, 100))
    assert metrics.ccc(t, np.full(100, t.mean())) == 0.0
    assert metrics.ccc(t, np.full(100, 3.0)) == 0.0
    assert metrics.pearson(t, np.full(100, 3.0)) == 0.0


@pytest.mark.parametrize(("t", "p"), [([], []), ([1.0], [2.0]), ([2.0, 2.0], [2.0, 2.0])])
def test_ccc_nan_only_where_undefined(t: list, p: list) -> None:
    assert math.isnan(metrics.ccc(t, p))


def test_offset_1e6_is_stable() -> None:
    rng = np.random.default_rng(1)
    t = rng.normal(size=500)
    p = t + rng.normal(scale=0.5, size=500)
    assert metrics.ccc(t + 1e6, p + 1e6) == pytest.approx(metrics.ccc(t, p), abs=1e-7)


def test_float32_input_matches_float64_reference() -> None:
    rng = np.random.default_rng(2)
    t = rng.normal(size=1000).astype(np.float32)
    p = (t + rng.normal(scale=0.7, size=1000)).astype(np.float32)
    reference = _formula_ccc([float(x) for x in t], [float(x) for x in p])
    assert metrics.ccc(t, p) == pytest.approx(reference, abs=1e-9)


def test_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        metrics.ccc([1, 2, 3], [1, 2])


def test_summarize_keys_and_values() -> None:
    s = metrics.summarize([0.0, 1.0, 2.0], [0.0, 1.0, 4.0])
    assert set(s) == {"ccc", "pearson", "mse", "rmse"}
    assert s["mse"] == pytest.approx(4 / 3)
    assert s["rmse"] == pytest.approx(math.sqrt(4 / 3))


# ----------------------------------------------------------------------- torch


def _batch(seed: int, batch: int = 4, time: int = 50, targets: int = 2):
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(batch, time, targets, generator=g, dtype=torch.float64)
    pred = 0.5 * target + torch.randn(batch, time, targets, generator=g, dtype=torch.float64)
    lengths = torch.randint(5, time + 1, (batch,), generator=g)
    mask = torch.arange(time)[None, :] < lengths[:, None]
    return pred, target, mask


@pytest.mark.parametrize("seed", range(5))
def test_torch_concat_loss_equals_one_minus_numpy_ccc(seed: int) -> None:
    pred, target, mask = _batch(seed)
    loss = metrics.ccc_loss(target, pred, mask, ccc_protocol="concat")
    expected = np.mean([
        1 - metrics.ccc(target[..., k][mask].numpy(), pred[..., k][mask].numpy()) for k in range(2)
    ])
    assert loss.item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_torch_per_recording_loss_equals_mean_of_per_sequence_ccc(seed: int) -> None:
    pred, target, mask = _batch(seed)
    loss = metrics.ccc_loss(target, pred, mask, ccc_protocol="per_recording")
    per = [
        1 - metrics.ccc(target[b, mask[b], k].numpy(), pred[b, mask[b], k].numpy())
        for b in range(pred.shape[0])
        for k in range(2)
    ]
    assert loss.item() == pytest.approx(float(np.mean(per)), abs=1e-12)


def test_torch_float32_close_to_numpy() -> None:
    pred, target, mask = _batch(7)
    loss32 = metrics.ccc_loss(target.float(), pred.float(), mask)
    loss64 = metrics.ccc_loss(target, pred, mask)
    assert loss32.item() == pytest.approx(loss64.item(), abs=1e-5)


@pytest.mark.parametrize("ccc_protocol", ["concat", "per_recording"])
def test_padding_values_have_no_effect(ccc_protocol: str) -> None:
    pred, target, mask = _batch(3)
    base = metrics.ccc_loss(target, pred, mask, ccc_protocol=ccc_protocol)
    pred2, target2 = pred.clone(), target.clone()
    pred2[~mask] = 1e6
    target2[~mask] = float("nan")
    assert metrics.ccc_loss(target2, pred2, mask, ccc_protocol=ccc_protocol).item() == pytest.approx(base.item(), abs=1e-12)


def test_gradients_finite_at_perfect_prediction() -> None:
    _, target, mask = _batch(4)
    pred = target.clone().requires_grad_(True)
    loss = metrics.ccc_loss(target, pred, mask)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    assert torch.isfinite(pred.grad).all()


def test_torch_constant_prediction_gives_loss_one_not_nan() -> None:
    target = torch.randn(2, 30)
    pred = torch.zeros(2, 30, requires_grad=True)
    loss = metrics.ccc_loss(target, pred)
    loss.backward()
    assert loss.item() == pytest.approx(1.0)
    assert torch.isfinite(pred.grad).all()


def test_torch_shape_errors() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.ccc_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="unknown ccc_protocol 'sequence'"):
        metrics.ccc_loss(torch.randn(2, 3), torch.randn(2, 3), ccc_protocol="sequence")
