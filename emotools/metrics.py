"""Agreement metrics for continuous emotion: one definition, in numpy and torch.

All moments are population (biased, ``1/n``) moments, in numpy and torch
alike, so the torch loss equals ``1 - ccc`` exactly up to float rounding.

The concordance correlation coefficient (Lin, 1989):

    CCC = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2)

Semantics (as ``audmetric.concordance_cc``):

* constant predictions against varying targets give ``cov = 0`` and so
  CCC = 0, not NaN (the original project's implementation returned NaN);
* CCC is NaN only where it is undefined: fewer than 2 values, or both
  sequences constant and equal (``0 / 0``).

Inputs are centred before any product is formed (two-pass moments in
float64), so values around 1e6 or float32 input lose no precision.

This module imports nothing from the package.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

__all__ = [
    "CCCProtocol",
    "CCC_PROTOCOL_NAMES",
    "ccc",
    "pearson",
    "mse",
    "rmse",
    "summarize",
    "ccc_loss",
    "ccc_torch",
]


def _pair(y_true: np.ndarray | list, y_pred: np.ndarray | list) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    return t, p


def _centred(x: np.ndarray) -> np.ndarray:
    # A constant input centres to exact zeros (x - mean(x) can be 1e-17 off).
    if x.size == 0 or x.min() == x.max():
        return np.zeros_like(x)
    return x - x.mean()


def ccc(y_true: np.ndarray | list, y_pred: np.ndarray | list) -> float:
    """Concordance correlation coefficient with population moments.

    Args:
        y_true: reference values.
        y_pred: predicted values, same length.

    Returns:
        CCC in [-1, 1]; 0 for constant predictions of a varying target;
        NaN for fewer than 2 values or two equal constants.

    >>> ccc([1, 2, 3], [1, 2, 3])
    1.0
    >>> ccc([1, 2, 3], [2, 2, 2])
    0.0
    """
    t, p = _pair(y_true, y_pred)
    if t.size < 2:
        return float("nan")
    mt, mp = t.mean(), p.mean()
    dt, dp = _centred(t), _centred(p)
    cov = np.dot(dt, dp) / t.size
    denominator = np.dot(dt, dt) / t.size + np.dot(dp, dp) / t.size + (mt - mp) ** 2
    if denominator == 0:
        return float("nan")
    return float(2.0 * cov / denominator)


def pearson(y_true: np.ndarray | list, y_pred: np.ndarray | list) -> float:
    """Pearson correlation with the same conventions as :func:`ccc`.

    Returns 0 when exactly one input is constant (no linear association can
    be shown), NaN for fewer than 2 values or when both are constant.

    >>> round(pearson([1, 2, 3], [2, 4, 7]), 4)
    0.9934
    """
    t, p = _pair(y_true, y_pred)
    if t.size < 2:
        return float("nan")
    dt, dp = _centred(t), _centred(p)
    st, sp = np.sqrt(np.dot(dt, dt)), np.sqrt(np.dot(dp, dp))
    if st == 0 and sp == 0:
        return float("nan")
    if st == 0 or sp == 0:
        return 0.0
    return float(np.clip(np.dot(dt, dp) / (st * sp), -1.0, 1.0))


def mse(y_true: np.ndarray | list, y_pred: np.ndarray | list) -> float:
    """Mean squared error; NaN for empty input.

    >>> mse([0, 0], [1, 3])
    5.0
    """
    t, p = _pair(y_true, y_pred)
    if t.size == 0:
        return float("nan")
    return float(np.mean((t - p) ** 2))


def rmse(y_true: np.ndarray | list, y_pred: np.ndarray | list) -> float:
    """Root mean squared error; NaN for empty input."""
    return float(np.sqrt(mse(y_true, y_pred)))


def summarize(y_true: np.ndarray | list, y_pred: np.ndarray | list) -> dict[str, float]:
    """All metrics at once: ``{"ccc", "pearson", "mse", "rmse"}``."""
    return {
        "ccc": ccc(y_true, y_pred),
        "pearson": pearson(y_true, y_pred),
        "mse": mse(y_true, y_pred),
        "rmse": rmse(y_true, y_pred),
    }


# --------------------------------------------------------------------------- protocols


class CCCProtocol(str, Enum):
    """How CCC is computed over a set of recordings (or the sequences of a batch)."""

    CONCAT = "concat"  #: one CCC over all frames concatenated (AVEC 2019 / MuSe)
    PER_RECORDING = "per_recording"  #: CCC per recording, then the mean (AVEC 2018)


#: Human-readable protocol names, for tables and figure labels.
CCC_PROTOCOL_NAMES: dict[CCCProtocol, str] = {
    CCCProtocol.CONCAT: "CCC of concatenated recordings (AVEC 2019 / MuSe)",
    CCCProtocol.PER_RECORDING: "mean per-recording CCC (AVEC 2018)",
}


def _ccc_protocol(value: CCCProtocol | str) -> CCCProtocol:
    try:
        return CCCProtocol(value)
    except ValueError:
        raise ValueError(f"unknown ccc_protocol {value!r}: use 'concat' or 'per_recording'") from None


# --------------------------------------------------------------------------- torch


def ccc_torch(truth, pred, mask=None, *, ccc_protocol: CCCProtocol | str = CCCProtocol.CONCAT):
    """CCC per target dimension as a differentiable torch tensor.

    Args:
        truth: reference values, ``(batch, time)`` or ``(batch, time, targets)``.
        pred: predictions, same shape as ``truth``.
        mask: optional boolean ``(batch, time)``, True = valid frame.
            Masked frames have no effect at all on the result.
        ccc_protocol: ``"concat"``: one CCC over all valid frames of the
            batch concatenated (AVEC 2019 / MuSe protocol), shape
            ``(targets,)``; ``"per_recording"``: one CCC per sequence, shape
            ``(batch, targets)`` (AVEC 2018 protocol when averaged).

    Returns:
        CCC values. Undefined CCC (zero denominator) is returned as 0 so that
        a loss never becomes NaN; :func:`ccc` in numpy reports NaN there.
    """
    import torch

    target = truth  # the reference, named as in the formulas below
    if pred.shape != target.shape:
        raise ValueError(f"truth and pred differ in shape: {tuple(target.shape)} vs {tuple(pred.shape)}")
    if pred.dim() == 2:
        pred, target = pred.unsqueeze(-1), target.unsqueeze(-1)
    if pred.dim() != 3:
        raise ValueError(f"expected (batch, time) or (batch, time, targets), got {tuple(pred.shape)}")
    if mask is None:
        mask = torch.ones(pred.shape[:2], dtype=torch.bool, device=pred.device)
    if mask.shape != pred.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match (batch, time) {tuple(pred.shape[:2])}")
    w = mask.to(pred.dtype).unsqueeze(-1)  # (batch, time, 1)
    # Zero padded values so that NaN/inf in padding cannot leak through 0 * x.
    pred = torch.where(mask.unsqueeze(-1), pred, torch.zeros_like(pred))
    target = torch.where(mask.unsqueeze(-1), target, torch.zeros_like(target))
    concat = _ccc_protocol(ccc_protocol) is CCCProtocol.CONCAT
    dims = (0, 1) if concat else (1,)
    n = w.sum(dim=dims).clamp_min(1.0)
    mp = (pred * w).sum(dim=dims) / n
    mt = (target * w).sum(dim=dims) / n
    if concat:
        dp, dt = (pred - mp) * w, (target - mt) * w
    else:
        dp, dt = (pred - mp.unsqueeze(1)) * w, (target - mt.unsqueeze(1)) * w
    cov = (dp * dt).sum(dim=dims) / n
    vp = (dp * dp).sum(dim=dims) / n
    vt = (dt * dt).sum(dim=dims) / n
    denominator = vp + vt + (mp - mt) ** 2
    tiny = torch.finfo(pred.dtype).tiny
    return 2.0 * cov / denominator.clamp_min(tiny)


def ccc_loss(truth, pred, mask=None, *, ccc_protocol: CCCProtocol | str = CCCProtocol.CONCAT):
    """``1 - CCC``, averaged over target dimensions (and sequences).

    Args:
        truth, pred, mask: as :func:`ccc_torch`.
        ccc_protocol: ``"concat"`` (CCC over all valid frames of the batch)
            or ``"per_recording"`` (CCC per sequence, then the mean over
            sequences).

    Returns:
        A scalar tensor in [0, 2].
    """
    return 1.0 - ccc_torch(truth, pred, mask, ccc_protocol=ccc_protocol).mean()
