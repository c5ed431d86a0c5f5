"""The AVEC post-processing chain for continuous predictions.

Per target, in order, each step tuned on dev and kept only if it raises the
dev CCC (before / after reported):

1. **delay** compensation: raters react late, so labels lag the speech.
   Predictions are delayed by ``d`` seconds (``d`` from a grid). The
   training-time variant, training on labels shifted by ``d``
   (:func:`emotools.sequences.shift_labels`) and then shifting predictions
   back with :func:`delay`, needs one fit per ``d`` and is left to the caller.
2. **smoothing**: median filter (window in seconds) or zero-phase
   exponential smoothing (forward then backward, so it adds no delay of its
   own), whichever helps most.
3. **bias**: shift predictions so their mean is the training labels' mean.
4. **scale**: scale predictions around their mean so their standard
   deviation is the training labels'.

Prediction statistics for steps 3 and 4 are measured on the dev predictions
at fit time, so :meth:`PostProcessor.apply` is a fixed transform (nothing is
estimated on the test set). Steps never cross recording boundaries. The
gains are tuned on dev and therefore optimistic on dev: report test scores.

>>> import numpy as np
>>> delay(np.array([1.0, 2.0, 3.0, 4.0]), 1).tolist()
[1.0, 1.0, 2.0, 3.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage, signal

from .errors import EmotoolsError
from .metrics import CCCProtocol
from .sequences import SequenceRecord, protocol_ccc

__all__ = [
    "PostProcessError",
    "Smoothing",
    "delay",
    "median_smooth",
    "exponential_smooth",
    "TargetSteps",
    "PostProcessor",
    "fit_chain",
    "DELAYS_S",
    "MEDIAN_WINDOWS_S",
    "EXPONENTIAL_ALPHAS",
]

#: Default search grids.
DELAYS_S: tuple[float, ...] = tuple(round(0.2 * i, 1) for i in range(31))  # 0 .. 6 s
MEDIAN_WINDOWS_S: tuple[float, ...] = (0.3, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
EXPONENTIAL_ALPHAS: tuple[float, ...] = (0.5, 0.3, 0.2, 0.1, 0.05, 0.02)


class PostProcessError(EmotoolsError, ValueError):
    """Bad input to post-processing: ``PostProcessError(subject, reason)``."""


class Smoothing(str, Enum):
    NONE = "none"
    MEDIAN = "median"
    EXPONENTIAL = "exponential"


def _as2d(pred: np.ndarray) -> np.ndarray:
    pred = np.asarray(pred, dtype=np.float64)
    return pred[:, None] if pred.ndim == 1 else pred


def delay(pred: np.ndarray, frames: int) -> np.ndarray:
    """Delay a ``(time[, targets])`` prediction by ``frames`` (negative: advance).

    ``out[t] = pred[t - frames]``; frames shifted in from outside repeat the
    edge value, so the length is unchanged.
    """
    p = np.asarray(pred)
    if frames == 0 or len(p) == 0:
        return p.copy()
    idx = np.clip(np.arange(len(p)) - frames, 0, len(p) - 1)
    return p[idx]


def median_smooth(pred: np.ndarray, window: int) -> np.ndarray:
    """Centred median filter over time, ``window`` frames (made odd), edges repeated."""
    if window < 1:
        raise PostProcessError("median_smooth", f"median window must be >= 1 frame, got {window}")
    window = window + 1 - window % 2
    p = np.asarray(pred)
    size = (window,) + (1,) * (p.ndim - 1)
    return ndimage.median_filter(p, size=size, mode="nearest")


def exponential_smooth(pred: np.ndarray, alpha: float) -> np.ndarray:
    """Zero-phase exponential smoothing: ``y[t] = a x[t] + (1 - a) y[t - 1]``, forward then backward.

    Running the filter both ways cancels its lag, so smoothing and delay
    compensation stay separate steps.
    """
    if not 0.0 < alpha <= 1.0:
        raise PostProcessError("exponential_smooth", f"alpha must be in (0, 1], got {alpha}")
    p = np.asarray(pred, dtype=np.float64)
    if len(p) == 0 or alpha == 1.0:
        return p.copy()
    b, a = [alpha], [1.0, alpha - 1.0]

    def run(x: np.ndarray) -> np.ndarray:
        zi = (1.0 - alpha) * x[:1]  # start at the first value: no transient
        return signal.lfilter(b, a, x, axis=0, zi=zi)[0]

    return run(run(p)[::-1])[::-1]


@dataclass
class TargetSteps:
    """The chain for one target, as fit (identity by default)."""

    delay_frames: int = 0
    smoothing: str = Smoothing.NONE.value
    smoothing_param: float = 0.0  # median window (frames) or alpha
    offset: float | None = None  # bias: added to predictions
    scale: tuple[float, float] | None = None  # (centre, factor): (p - centre) * factor + centre

    def apply(self, p: np.ndarray) -> np.ndarray:
        """Apply to one recording's ``(time,)`` predictions."""
        p = delay(np.asarray(p, dtype=np.float64), self.delay_frames)
        if self.smoothing == Smoothing.MEDIAN.value:
            p = median_smooth(p, int(self.smoothing_param))
        elif self.smoothing == Smoothing.EXPONENTIAL.value:
            p = exponential_smooth(p, float(self.smoothing_param))
        if self.offset is not None:
            p = p + self.offset
        if self.scale is not None:
            p = (p - self.scale[0]) * self.scale[1] + self.scale[0]
        return p


@dataclass
class PostProcessor:
    """A fitted chain per target, applied with :meth:`apply`.

    Attributes:
        targets: column names of the predictions.
        rate_hz: frame rate the delays and windows were fit at.
        steps: one :class:`TargetSteps` per target.
        report: one row per (target, step): ``parameter``,
            ``dev_ccc_before``, ``dev_ccc_after``, ``kept``.
        ccc_protocol: the dev CCC protocol the steps were tuned on.
    """

    targets: tuple[str, ...]
    rate_hz: float
    steps: list[TargetSteps]
    report: list[dict[str, Any]] = field(default_factory=list)
    ccc_protocol: str = CCCProtocol.CONCAT.value

    def apply(self, predictions: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Post-process one ``(time, targets)`` prediction per recording."""
        out = []
        for p in predictions:
            p = _as2d(p)
            if p.shape[1] != len(self.steps):
                raise PostProcessError("apply", f"predictions have {p.shape[1]} columns, the chain {len(self.steps)}")
            out.append(np.stack([s.apply(p[:, k]) for k, s in enumerate(self.steps)], axis=1).astype(np.float32))
        return out

    @property
    def report_frame(self) -> pd.DataFrame:
        """:attr:`report` as a DataFrame."""
        return pd.DataFrame(self.report)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state; inverse of :meth:`from_dict`."""
        return {"targets": list(self.targets), "rate_hz": self.rate_hz, "ccc_protocol": self.ccc_protocol,
                "steps": [asdict(s) for s in self.steps], "report": self.report}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PostProcessor:
        """A chain from :meth:`to_dict` (files written before the rename store ``protocol``)."""
        steps = []
        for s in d["steps"]:
            s = dict(s)
            if s.get("scale") is not None:
                s["scale"] = tuple(s["scale"])
            steps.append(TargetSteps(**s))
        return cls(tuple(d["targets"]), float(d["rate_hz"]), steps, list(d.get("report", [])),
                   d.get("ccc_protocol", d.get("protocol", CCCProtocol.CONCAT.value)))


def fit_chain(
    predictions: Sequence[np.ndarray],
    records: Sequence[SequenceRecord],
    *,
    label_stats: Mapping[str, Mapping[str, float]],
    targets: Sequence[str] | None = None,
    delays_s: Sequence[float] = DELAYS_S,
    median_windows_s: Sequence[float] = MEDIAN_WINDOWS_S,
    exponential_alphas: Sequence[float] = EXPONENTIAL_ALPHAS,
    ccc_protocol: CCCProtocol | str = CCCProtocol.CONCAT,
    steps: Sequence[str] = ("delay", "smoothing", "bias", "scale"),
) -> PostProcessor:
    """Tune the chain on dev predictions; keep each step only if it raises dev CCC.

    Args:
        predictions: dev predictions, one ``(time, targets)`` array per record.
        records: the labelled dev records (same order).
        label_stats: ``{target: {"mean", "std"}}`` of the training labels
            (``TrainedModel.label_stats``).
        targets: prediction column names (default: the records' targets).
        delays_s, median_windows_s, exponential_alphas: search grids.
        ccc_protocol: dev CCC protocol to tune on.
        steps: which steps to try, in chain order.

    Returns:
        The fitted :class:`PostProcessor` with its before/after report.
    """
    ccc_protocol = CCCProtocol(ccc_protocol)
    if not records or len(predictions) != len(records):
        raise PostProcessError("fit_chain", f"{len(predictions)} predictions for {len(records)} records")
    unknown = set(steps) - {"delay", "smoothing", "bias", "scale"}
    if unknown:
        raise PostProcessError("fit_chain", f"unknown step(s) {sorted(unknown)}: use delay, smoothing, bias, scale")
    targets = tuple(targets) if targets is not None else tuple(records[0].target_names)
    missing = [t for t in targets if t not in label_stats]
    if missing:
        raise PostProcessError("fit_chain", f"label_stats lack target(s) {missing}")
    rate = float(records[0].rate_hz)
    preds = [_as2d(p) for p in predictions]
    truths = [_as2d(r.select_targets(targets).y) for r in records]
    for p, t, r in zip(preds, truths, records):
        if p.shape != t.shape:
            raise PostProcessError(r.id, f"predictions {p.shape} vs labels {t.shape}")

    chain, report = [], []
    for k, target in enumerate(targets):
        true_k = [t[:, k] for t in truths]
        fitted = TargetSteps()

        def score(s: TargetSteps) -> float:
            return float(protocol_ccc(true_k, [s.apply(p[:, k]) for p in preds], ccc_protocol)[0])  # noqa: B023

        def current() -> np.ndarray:
            return np.concatenate([fitted.apply(p[:, k]) for p in preds])  # noqa: B023 (the current steps)

        base = score(fitted)
        for step in steps:
            candidates: list[tuple[str, TargetSteps]] = []
            if step == "delay":
                for d in delays_s:
                    candidates.append((f"{d:g} s", _with(fitted, delay_frames=round(d * rate))))
            elif step == "smoothing":
                for w in median_windows_s:
                    frames = max(1, round(w * rate)) | 1
                    candidates.append((f"median {frames / rate:g} s",
                                       _with(fitted, smoothing="median", smoothing_param=frames)))
                for a in exponential_alphas:
                    candidates.append((f"exponential alpha={a:g}",
                                       _with(fitted, smoothing="exponential", smoothing_param=a)))
            elif step == "bias":
                offset = label_stats[target]["mean"] - float(current().mean())
                candidates.append((f"{offset:+.4f}", _with(fitted, offset=offset)))
            elif step == "scale":
                c = current()
                sd = float(c.std())
                factor = label_stats[target]["std"] / sd if sd > 0 else 1.0
                candidates.append((f"x{factor:.4f}", _with(fitted, scale=(float(c.mean()), factor))))
            best_param, best_steps, best = "", fitted, base
            for param, cand in candidates:
                value = score(cand)
                if np.isfinite(value) and (not np.isfinite(best) or value > best + 1e-9):
                    best_param, best_steps, best = param, cand, value
            kept = best_steps is not fitted
            report.append({"target": target, "step": step, "parameter": best_param if kept else "-",
                           "dev_ccc_before": base, "dev_ccc_after": best if kept else base, "kept": kept})
            if kept:
                fitted, base = best_steps, best
        chain.append(fitted)
    return PostProcessor(targets, rate, chain, report, ccc_protocol.value)


def _with(s: TargetSteps, **changes: Any) -> TargetSteps:
    d = asdict(s)
    d.update(changes)
    if d.get("scale") is not None:
        d["scale"] = tuple(d["scale"])
    return TargetSteps(**d)
