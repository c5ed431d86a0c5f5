"""Bootstrap confidence intervals for CCC over the right unit, paired differences, separability.

Frames of one recording are not independent, so an interval that resamples
frames is far too narrow. Every interval here resamples whole *units*: test
recordings, or speakers (all recordings of a speaker move together), and
optionally the training *seeds* too (hierarchical bootstrap: units and
seeds are drawn independently, with replacement). The result states the unit.

A resample's CCC is computed the way the project scores
(:class:`emotools.metrics.CCCProtocol`):

* ``"concat"``: ``metrics.ccc`` over the resampled recordings concatenated
  (AVEC 2019 / MuSe). It is computed exactly from per-unit sufficient
  statistics (frame count ``n``, means, centred sums of squares and cross
  products), combined with the parallel-moments formula
  ``M2 = sum_i c_i M2_i + sum_i c_i n_i (mean_i - mean)^2`` for unit counts
  ``c_i``, so 2,000 resamples cost a few matrix products, not 2,000 passes
  over the frames;
* ``"per_recording"``: the mean of the per-recording CCCs of the resampled
  recordings (AVEC 2018), NaN-ignoring like ``sequences.protocol_ccc``.

With several seeds, a resample's value is the mean over (resampled) seeds of
the per-seed CCC on the same resampled units; the point estimate is the mean
over seeds of the per-seed CCC on all units (the "mean" of "mean ± sd").
Intervals are percentile intervals, BCa (bias-corrected and accelerated,
acceleration from the leave-one-unit-out jackknife), or Hesterberg's expanded
percentile (wider quantiles for few units). With few units every bootstrap
interval is too narrow: on simulated speakers the 95% percentile interval of
the concat CCC covered the truth 0.89-0.91 of the time with 30 speakers and
0.80-0.87 with 10 (tests/test_stats.py, docs/statistics.md).

>>> print(bootstrap_mean([0.70, 0.78, 0.80, 0.85, 0.91, 0.93], unit="speaker"))
0.828 [0.767, 0.888] (95% CI, 6 speakers resampled)
>>> truth = [np.sin(np.arange(50) / 5 + k) for k in range(4)]
>>> pred = [0.8 * t + 0.1 * np.cos(np.arange(50) / 3 * k) for k, t in enumerate(truth)]
>>> print(bootstrap_ccc(truth, pred, units=["ann", "ann", "bob", "cy"]))
0.971 [0.967, 0.972] (95% CI, 3 speakers resampled)
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from . import metrics
from .errors import EmotoolsError
from .metrics import CCCProtocol

__all__ = [
    "StatsError",
    "CIMethod",
    "Interval",
    "Separability",
    "UnitStatistics",
    "resample_counts",
    "bootstrap_mean",
    "bootstrap_ccc",
    "paired_difference",
    "separable_from_best",
]

#: One system's test predictions: a list of per-recording arrays (one seed),
#: or ``{seed: list of per-recording arrays}`` (several seeds).
Predictions = Sequence[np.ndarray] | Mapping[int, Sequence[np.ndarray]]

_BLOCK = 2_000_000  # (resamples x seeds x units) elements per vectorised block: bounds memory


class StatsError(EmotoolsError, ValueError):
    """Input a bootstrap cannot use (subject: the parameter; reason: what is wrong)."""


class CIMethod(str, Enum):
    """How the interval is read off the bootstrap distribution."""

    PERCENTILE = "percentile"  #: the alpha/2 and 1 - alpha/2 quantiles of the replicates
    BCA = "bca"  #: bias-corrected and accelerated (Efron 1987), jackknife over units
    #: percentile at widened quantiles ``Phi(-sqrt(n / (n - 1)) t_{n-1}(alpha / 2))`` for n units
    #: (Hesterberg 2015): corrects the percentile interval's narrowness for few units
    EXPANDED = "expanded"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap confidence interval and what was resampled.

    ``str`` reads like ``0.912 [0.880, 0.940] (95% CI, 4 speakers resampled)``.
    """

    estimate: float
    low: float
    high: float
    level: float
    unit: str  #: the resampled unit, singular: "speaker", "recording", "seed", ...
    n_units: int
    n_resamples: int
    method: str = CIMethod.PERCENTILE.value
    ccc_protocol: str | None = None  #: None for a plain mean of per-unit values
    n_seeds: int = 1
    seeds_resampled: bool = False
    label: str = ""  #: what the estimate is, e.g. "tcn" or "tcn - mlp"

    @property
    def half_width(self) -> float:
        """Half the interval's width."""
        return (self.high - self.low) / 2.0

    def excludes(self, value: float = 0.0) -> bool:
        """True when ``value`` lies outside the closed interval (e.g. a difference separable from 0)."""
        return bool(value < self.low or value > self.high)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; inverse of :meth:`from_dict`."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Interval:
        """An interval from :meth:`to_dict`."""
        return cls(**d)

    def __str__(self) -> str:
        what = f"{self.n_units} {_plural(self.unit, self.n_units)}"
        if self.n_seeds > 1 and self.seeds_resampled:
            what += f" and {self.n_seeds} seeds resampled"
        elif self.n_seeds > 1:
            what += f" resampled, mean of {self.n_seeds} seeds"
        else:
            what += " resampled"
        method = "" if self.method == CIMethod.PERCENTILE.value else f" {self.method.upper()}"
        head = f"{self.label}: " if self.label else ""
        return (f"{head}{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}] "
                f"({self.level:.0%}{method} CI, {what})")


@dataclass(frozen=True)
class Separability:
    """Which systems are separable from the best (the CI of ``best - system`` excludes 0).

    ``best`` is the system with the highest point estimate; ``runner_up`` the
    second highest. :attr:`best_if_separable` names the best only when it is
    separable from the runner-up, the rule for marking a "best" in a table.
    """

    best: str
    runner_up: str | None
    intervals: dict[str, Interval]  #: each system's CCC
    differences: dict[str, Interval] = field(default_factory=dict)  #: ``best - system``, every other system

    @property
    def separable(self) -> dict[str, bool]:
        """``{system: CI of best - system excludes 0}`` for every system but the best."""
        return {name: d.excludes(0.0) for name, d in self.differences.items()}

    @property
    def best_if_separable(self) -> str | None:
        """The best system if its CI of the difference to the runner-up excludes 0, else None."""
        if self.runner_up is None:
            return None
        return self.best if self.separable[self.runner_up] else None

    def to_frame(self) -> pd.DataFrame:
        """One row per system, best first: CCC and CI, difference to the best and CI, separable."""
        rows = []
        for name, iv in sorted(self.intervals.items(), key=lambda kv: -kv[1].estimate):
            d = self.differences.get(name)
            rows.append({
                "system": name, "ccc": iv.estimate, "ccc_low": iv.low, "ccc_high": iv.high,
                "diff_to_best": 0.0 if d is None else d.estimate,
                "diff_low": np.nan if d is None else d.low, "diff_high": np.nan if d is None else d.high,
                "separable_from_best": None if d is None else d.excludes(0.0),
                "best_if_separable": name == self.best_if_separable,
            })
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; inverse of :meth:`from_dict`."""
        return {"best": self.best, "runner_up": self.runner_up,
                "intervals": {k: v.to_dict() for k, v in self.intervals.items()},
                "differences": {k: v.to_dict() for k, v in self.differences.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Separability:
        """A summary from :meth:`to_dict`."""
        return cls(d["best"], d["runner_up"], {k: Interval.from_dict(v) for k, v in d["intervals"].items()},
                   {k: Interval.from_dict(v) for k, v in d["differences"].items()})

    def __str__(self) -> str:
        lines = [f"best: {self.best}" + ("" if self.best_if_separable else " (not separable from the runner-up)")]
        lines += [f"  {self.intervals[self.best]}"]
        for d in self.differences.values():
            lines.append(f"  {d}{'  separable' if d.excludes(0.0) else '  not separable'}")
        return "\n".join(lines)


def _plural(unit: str, n: int) -> str:
    return unit if n == 1 else unit + "s"


# --------------------------------------------------------------------------- sufficient statistics


def _column(a: np.ndarray | Sequence[float], target: int | None, what: str) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    if x.ndim == 2 and (target is not None or x.shape[1] == 1):
        x = x[:, 0 if target is None else target]
    if x.ndim != 1:
        raise StatsError(what, f"expected (frames,) or (frames, targets) with target=, got shape {x.shape}")
    return x


def _centred(x: np.ndarray) -> np.ndarray:
    # As metrics: a constant input centres to exact zeros.
    return np.zeros_like(x) if x.size == 0 or x.min() == x.max() else x - x.mean()


def _seed_lists(predictions: Predictions) -> dict[object, Sequence[np.ndarray]]:
    """``{seed: per-recording predictions}``; a plain list is one seed."""
    if isinstance(predictions, Mapping):
        if not predictions:
            raise StatsError("predictions", "no seeds given")
        return {s: predictions[s] for s in sorted(predictions)}
    return {0: predictions}


def _checked(truths: Sequence[np.ndarray], predictions: Predictions, units: Sequence[Hashable] | None,
             target: int | None) -> tuple[list[np.ndarray], list[list[np.ndarray]], list[Hashable], list[list[int]]]:
    """1-D float64 truths, per-seed predictions, the units in first-seen order and each unit's recordings."""
    t = [_column(a, target, f"truths[{i}]") for i, a in enumerate(truths)]
    labels = list(range(len(t))) if units is None else list(units)
    if len(labels) != len(t):
        raise StatsError("units", f"{len(labels)} units for {len(t)} recordings")
    order = list(dict.fromkeys(labels))
    if len(order) < 2:
        raise StatsError("units", f"need at least 2 units to resample, got {len(order)}")
    p = []
    for s, seed in _seed_lists(predictions).items():
        if len(seed) != len(t):
            raise StatsError("predictions", f"seed {s}: {len(seed)} predictions for {len(t)} recordings")
        p.append([_column(a, target, f"predictions[{i}]") for i, a in enumerate(seed)])
        for i, (a, b) in enumerate(zip(t, p[-1])):
            if a.shape != b.shape:
                raise StatsError("predictions", f"seed {s}, recording {i}: labels {a.shape} vs predictions {b.shape}")
    # CCC is unchanged when truth and prediction move together: centre both on the truth's mean, so
    # unit means stay small and the between-unit terms lose no precision at offsets like 1e6.
    ref = np.concatenate(t).mean() if any(x.size for x in t) else 0.0
    t, p = [x - ref for x in t], [[x - ref for x in seed] for seed in p]
    return t, p, order, [[i for i, u in enumerate(labels) if u == unit] for unit in order]


@dataclass(frozen=True)
class UnitStatistics:
    """Per-unit sufficient statistics of one system's predictions for one target.

    Arrays are ``(units,)`` for the truth and ``(seeds, units)`` for what
    depends on the predictions. Sums are over a unit's frames (all its
    recordings concatenated); ``m2_*`` and ``cross`` are centred on the unit's
    own means. ``ccc_sum`` / ``ccc_count`` are the sum and number of defined
    per-recording CCCs in the unit (filled for the ``"per_recording"`` protocol only).
    """

    units: tuple[Hashable, ...]
    ccc_protocol: CCCProtocol
    n: np.ndarray
    mean_true: np.ndarray
    m2_true: np.ndarray
    mean_pred: np.ndarray
    m2_pred: np.ndarray
    cross: np.ndarray
    ccc_sum: np.ndarray
    ccc_count: np.ndarray

    @classmethod
    def from_recordings(cls, truths: Sequence[np.ndarray], predictions: Predictions, *,
                        units: Sequence[Hashable] | None = None, target: int | None = None,
                        ccc_protocol: CCCProtocol | str = CCCProtocol.CONCAT) -> UnitStatistics:
        """Statistics from per-recording arrays.

        Args:
            truths: per test recording, ``(frames,)`` or ``(frames, targets)``.
            predictions: per recording, same shapes; or ``{seed: per-recording list}``.
            units: the unit of each recording (e.g. its speaker); None: every
                recording is its own unit.
            target: the column to use when arrays are 2-D with several columns.
            ccc_protocol: ``"concat"`` or ``"per_recording"``.

        Raises:
            StatsError: mismatched lengths or shapes, fewer than 2 units.
        """
        try:
            protocol = CCCProtocol(ccc_protocol)
        except ValueError:
            raise StatsError("ccc_protocol", f"unknown {ccc_protocol!r}: use 'concat' or 'per_recording'") from None
        t, p, order, members = _checked(truths, predictions, units, target)
        tu = [np.concatenate([t[i] for i in m]) for m in members]
        dt = [_centred(x) for x in tu]
        S, U = len(p), len(order)
        mean_pred, m2_pred, cross = np.zeros((S, U)), np.zeros((S, U)), np.zeros((S, U))
        ccc_sum, ccc_count = np.zeros((S, U)), np.zeros((S, U))
        for s in range(S):
            for j, m in enumerate(members):
                x = np.concatenate([p[s][i] for i in m])
                dp = _centred(x)
                mean_pred[s, j] = x.mean() if x.size else 0.0
                m2_pred[s, j], cross[s, j] = dp @ dp, dp @ dt[j]
                if protocol is CCCProtocol.PER_RECORDING:
                    per = np.array([metrics.ccc(t[i], p[s][i]) for i in m])
                    ccc_sum[s, j], ccc_count[s, j] = np.nansum(per), np.sum(~np.isnan(per))
        return cls(tuple(order), protocol, np.array([x.size for x in tu], dtype=np.float64),
                   np.array([x.mean() if x.size else 0.0 for x in tu]), np.array([d @ d for d in dt]),
                   mean_pred, m2_pred, cross, ccc_sum, ccc_count)

    @property
    def n_units(self) -> int:
        """Number of units."""
        return len(self.units)

    @property
    def n_seeds(self) -> int:
        """Number of seeds."""
        return self.mean_pred.shape[0]

    def ccc(self, counts: np.ndarray) -> np.ndarray:
        """CCC per resample and seed, ``(resamples, seeds)``, from unit counts ``(resamples, units)``.

        A row of ``counts`` says how often each unit is drawn; all ones gives
        the CCC of the full test set (equal to ``metrics.ccc`` on the
        concatenation for ``"concat"``, to float rounding).
        """
        c = np.atleast_2d(np.asarray(counts, dtype=np.float64))  # (B, U)
        block = max(1, _BLOCK // (self.n_seeds * self.n_units))
        return np.concatenate([self._ccc_block(c[i:i + block]) for i in range(0, len(c), block)])

    def _ccc_block(self, c: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.ccc_protocol is CCCProtocol.PER_RECORDING:
                return (c @ self.ccc_sum.T) / (c @ self.ccc_count.T)  # (B, S)
            w = c * self.n  # (B, U) frames drawn per unit
            total = w.sum(axis=1)  # (B,)
            mt = (w @ self.mean_true) / total  # (B,)
            dt = self.mean_true[None, :] - mt[:, None]  # (B, U)
            mtt = c @ self.m2_true + np.einsum("bu,bu,bu->b", w, dt, dt)  # (B,)
            mp = (w @ self.mean_pred.T) / total[:, None]  # (B, S)
            dp = self.mean_pred[None, :, :] - mp[:, :, None]  # (B, S, U)
            mpp = c @ self.m2_pred.T + np.einsum("bu,bsu,bsu->bs", w, dp, dp)  # (B, S)
            mtp = c @ self.cross.T + np.einsum("bu,bu,bsu->bs", w, dt, dp)  # (B, S)
            denominator = mtt[:, None] + mpp + total[:, None] * (mt[:, None] - mp) ** 2
            out = 2.0 * mtp / denominator
        out[(denominator == 0) | (total[:, None] < 2)] = np.nan
        return out


# --------------------------------------------------------------------------- bootstrap core


def resample_counts(n_units: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_resamples, n_units)`` counts of a with-replacement draw of ``n_units`` units (a row sums to n_units)."""
    draws = rng.integers(0, n_units, size=(n_resamples, n_units))  # (resamples, draws): unit indices
    offset = np.arange(n_resamples)[:, None] * n_units
    return np.bincount((draws + offset).ravel(), minlength=n_resamples * n_units).reshape(n_resamples, n_units)


def _seed_mean(ccc: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Mean over seeds of ``(B, S)`` CCCs, weighted by seed counts when seeds are resampled."""
    if weights is None:
        return ccc.mean(axis=1)
    return (ccc * weights).sum(axis=1) / weights.sum(axis=1)


def _replicates(stats: UnitStatistics, counts: np.ndarray, rng: np.random.Generator,
                resample_seeds: bool) -> np.ndarray:
    weights = None
    if resample_seeds and stats.n_seeds > 1:
        weights = resample_counts(stats.n_seeds, len(counts), rng)
    return _seed_mean(stats.ccc(counts), weights)


def _jackknife(stats: UnitStatistics) -> np.ndarray:
    """Leave-one-unit-out estimates (seeds averaged), ``(units,)``."""
    return stats.ccc(1.0 - np.eye(stats.n_units)).mean(axis=1)


def _bounds(replicates: np.ndarray, estimate: float, level: float, method: CIMethod,
            jackknife: np.ndarray) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    reps = replicates[~np.isnan(replicates)]
    if reps.size == 0:
        return float("nan"), float("nan")
    if method is CIMethod.EXPANDED:
        from scipy.stats import t as student_t

        n = jackknife.size
        alpha = NormalDist().cdf(-np.sqrt(n / (n - 1)) * float(student_t.ppf(1.0 - alpha, n - 1)))
    probs = np.array([alpha, 1.0 - alpha])
    if method is CIMethod.BCA and np.ptp(reps) > 0:
        normal = NormalDist()
        below = np.clip(np.mean(reps < estimate), 1.0 / (reps.size + 1), reps.size / (reps.size + 1))
        z0 = normal.inv_cdf(float(below))
        d = np.nanmean(jackknife) - jackknife
        spread = np.nansum(d ** 2)
        a = np.nansum(d ** 3) / (6.0 * spread ** 1.5) if spread > 0 else 0.0
        z = np.array([normal.inv_cdf(q) for q in probs])
        probs = np.array([normal.cdf(v) for v in z0 + (z0 + z) / (1.0 - a * (z0 + z))])
    low, high = np.quantile(reps, probs)
    return float(low), float(high)


@dataclass(frozen=True)
class _Options:
    n_resamples: int
    level: float
    seed: int
    method: CIMethod
    resample_seeds: bool

    @classmethod
    def check(cls, n_resamples: int, level: float, seed: int, method: CIMethod | str,
              resample_seeds: bool) -> _Options:
        if not 0.0 < level < 1.0:
            raise StatsError("level", f"must lie in (0, 1), got {level}")
        if n_resamples < 1:
            raise StatsError("n_resamples", f"must be positive, got {n_resamples}")
        try:
            method = CIMethod(method)
        except ValueError:
            raise StatsError("method", f"unknown {method!r}: use 'percentile', 'bca' or 'expanded'") from None
        return cls(int(n_resamples), float(level), int(seed), method, bool(resample_seeds))


def _interval(stats: UnitStatistics, replicates: np.ndarray, estimate: float, jackknife: np.ndarray,
              opts: _Options, unit: str, label: str) -> Interval:
    low, high = _bounds(replicates, estimate, opts.level, opts.method, jackknife)
    return Interval(float(estimate), low, high, opts.level, unit, stats.n_units, opts.n_resamples,
                    opts.method.value, stats.ccc_protocol.value, stats.n_seeds,
                    opts.resample_seeds and stats.n_seeds > 1, label)


def _unit_name(unit: str | None, units: Sequence[Hashable] | None) -> str:
    return unit if unit is not None else ("recording" if units is None else "speaker")


# --------------------------------------------------------------------------- public API


def bootstrap_mean(values: Sequence[float] | np.ndarray, *, unit: str = "unit", n_resamples: int = 2000,
                   level: float = 0.95, seed: int = 0, method: CIMethod | str = CIMethod.PERCENTILE) -> Interval:
    """Bootstrap CI of the mean of per-unit values (e.g. per-speaker CCCs, or per-seed CCCs with unit="seed").

    Resampling unit: the values themselves (one per unit), with replacement;
    a replicate is ``mean(values[draw])``. NaN values are dropped first.

    Raises:
        StatsError: fewer than 2 values, a bad level, method or n_resamples.
    """
    opts = _Options.check(n_resamples, level, seed, method, False)
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size < 2:
        raise StatsError("values", f"need at least 2 non-NaN values to resample, got {v.size}")
    counts = resample_counts(v.size, opts.n_resamples, np.random.default_rng(opts.seed))
    reps = counts @ v / v.size
    jack = (v.sum() - v) / (v.size - 1)
    low, high = _bounds(reps, float(v.mean()), opts.level, opts.method, jack)
    return Interval(float(v.mean()), low, high, opts.level, unit, int(v.size), opts.n_resamples, opts.method.value)


def bootstrap_ccc(truths: Sequence[np.ndarray], predictions: Predictions, *,
                  units: Sequence[Hashable] | None = None, unit: str | None = None, target: int | None = None,
                  ccc_protocol: CCCProtocol | str = CCCProtocol.CONCAT, n_resamples: int = 2000,
                  level: float = 0.95, seed: int = 0, method: CIMethod | str = CIMethod.PERCENTILE,
                  resample_seeds: bool = True, label: str = "") -> Interval:
    """Bootstrap CI of one system's test CCC, resampling test units (and seeds).

    Args:
        truths: per test recording, ``(frames,)`` or ``(frames, targets)``.
        predictions: per recording, same shapes; or ``{seed: per-recording list}``.
        units: the unit of each recording (e.g. ``[r.speaker for r in records]``);
            None: recordings are the units.
        unit: the unit's name in the result (default "speaker" when ``units``
            is given, else "recording").
        target: the column when arrays have several.
        ccc_protocol: ``"concat"`` (CCC of the resampled recordings
            concatenated) or ``"per_recording"`` (mean per-recording CCC).
        n_resamples, level, seed, method: bootstrap size, coverage,
            ``np.random.default_rng`` seed, :class:`CIMethod`.
        resample_seeds: with several seeds, also resample seeds (hierarchical);
            False: the CI is conditional on these seeds (their mean).
        label: a name for the estimate, shown by ``str``.

    Returns:
        The :class:`Interval`; ``estimate`` is the mean over seeds of the
        per-seed CCC on all test units (for one seed: the project's score).
    """
    opts = _Options.check(n_resamples, level, seed, method, resample_seeds)
    stats = UnitStatistics.from_recordings(truths, predictions, units=units, target=target,
                                           ccc_protocol=ccc_protocol)
    rng = np.random.default_rng(opts.seed)
    counts = resample_counts(stats.n_units, opts.n_resamples, rng)
    reps = _replicates(stats, counts, rng, opts.resample_seeds)
    estimate = float(stats.ccc(np.ones(stats.n_units)).mean())
    return _interval(stats, reps, estimate, _jackknife(stats), opts, _unit_name(unit, units), label)


def _compare(truths: Sequence[np.ndarray], systems: Mapping[str, Predictions], units: Sequence[Hashable] | None,
             target: int | None, ccc_protocol: CCCProtocol | str,
             opts: _Options) -> tuple[dict[str, UnitStatistics], dict[str, np.ndarray], dict[str, float]]:
    """Statistics, replicates and estimates of several systems on the same unit resamples.

    Unit draws are shared (paired); seed draws are independent per system,
    since seed k of one system has nothing in common with seed k of another.
    """
    if len(systems) < 2:
        raise StatsError("systems", f"need at least 2 systems to compare, got {len(systems)}")
    stats = {name: UnitStatistics.from_recordings(truths, p, units=units, target=target, ccc_protocol=ccc_protocol)
             for name, p in systems.items()}
    rng = np.random.default_rng(opts.seed)
    n_units = next(iter(stats.values())).n_units
    counts = resample_counts(n_units, opts.n_resamples, rng)
    reps = {name: _replicates(s, counts, rng, opts.resample_seeds) for name, s in stats.items()}
    estimates = {name: float(s.ccc(np.ones(n_units)).mean()) for name, s in stats.items()}
    return stats, reps, estimates


def _difference(a: str, b: str, stats: Mapping[str, UnitStatistics], reps: Mapping[str, np.ndarray],
                estimates: Mapping[str, float], opts: _Options, unit: str) -> Interval:
    jack = _jackknife(stats[a]) - _jackknife(stats[b])
    seeds = max(stats[a].n_seeds, stats[b].n_seeds)
    iv = _interval(stats[a], reps[a] - reps[b], estimates[a] - estimates[b], jack, opts, unit, f"{a} - {b}")
    return Interval(**{**iv.to_dict(), "n_seeds": seeds, "seeds_resampled": opts.resample_seeds and seeds > 1})


def paired_difference(truths: Sequence[np.ndarray], predictions_a: Predictions, predictions_b: Predictions, *,
                      names: tuple[str, str] = ("a", "b"), units: Sequence[Hashable] | None = None,
                      unit: str | None = None, target: int | None = None,
                      ccc_protocol: CCCProtocol | str = CCCProtocol.CONCAT, n_resamples: int = 2000,
                      level: float = 0.95, seed: int = 0, method: CIMethod | str = CIMethod.PERCENTILE,
                      resample_seeds: bool = True) -> Interval:
    """Bootstrap CI of ``CCC(a) - CCC(b)`` for two systems scored on the same test recordings.

    Both systems are scored on the *same* resampled units in every replicate
    (paired), so what the two share (hard speakers, easy recordings) cancels.
    ``result.excludes(0)`` says whether the difference is resolved at ``level``.
    Arguments as :func:`bootstrap_ccc`; ``names`` label the result ``"a - b"``.
    """
    opts = _Options.check(n_resamples, level, seed, method, resample_seeds)
    stats, reps, est = _compare(truths, dict(zip(names, (predictions_a, predictions_b))), units, target,
                                ccc_protocol, opts)
    return _difference(names[0], names[1], stats, reps, est, opts, _unit_name(unit, units))


def separable_from_best(truths: Sequence[np.ndarray], systems: Mapping[str, Predictions], *,
                        units: Sequence[Hashable] | None = None, unit: str | None = None,
                        target: int | None = None, ccc_protocol: CCCProtocol | str = CCCProtocol.CONCAT,
                        n_resamples: int = 2000, level: float = 0.95, seed: int = 0,
                        method: CIMethod | str = CIMethod.PERCENTILE, resample_seeds: bool = True) -> Separability:
    """Each system's CCC CI and the paired CI of ``best - system`` for every other system.

    The best is the highest point estimate; every comparison uses the same
    unit resamples. Arguments as :func:`bootstrap_ccc`; ``systems`` maps a
    name (e.g. an architecture) to its predictions.
    """
    opts = _Options.check(n_resamples, level, seed, method, resample_seeds)
    stats, reps, est = _compare(truths, systems, units, target, ccc_protocol, opts)
    name = _unit_name(unit, units)
    ranked = sorted(est, key=lambda k: -est[k])
    intervals = {k: _interval(stats[k], reps[k], est[k], _jackknife(stats[k]), opts, name, k) for k in ranked}
    differences = {k: _difference(ranked[0], k, stats, reps, est, opts, name) for k in ranked[1:]}
    return Separability(ranked[0], ranked[1], intervals, differences)

