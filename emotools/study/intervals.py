"""Bootstrap intervals for the long-context study's headline comparisons (test speakers and seeds resampled).

Every choice is made on dev before this module is reached (:func:`~emotools.study.analysis.lag_table`,
:func:`~emotools.study.analysis.saturation`); :func:`comparisons` lists what the findings compare,
:func:`study_intervals` computes each comparison's paired bootstrap CI on the test split with
:mod:`emotools.stats` from the sweep's test predictions (the AVEC and delay-only predictions are each
cell's own dev-tuned chain applied to them), and :func:`with_intervals` puts each setting's CCC interval
on a context curve for the figures. Kinds of comparison (``a - b``):

======================== ==========================================================================
kind                     a, b
======================== ==========================================================================
ccc                      one setting's raw test CCC (no b): the error bars of the figures
context_vs_floor         the dev-chosen context model, raw - the floor, raw (every lag)
context_vs_floor_delay   the dev-chosen context model, raw - the floor with the delay step only
context_vs_floor_avec    the context model chosen on dev after the chain - the floor after the chain
context_raw_vs_floor_avec the dev-chosen context model, raw - the floor after the chain
saturation               a family's dev-chosen best - each other setting of the family (study lag)
family                   the dev-chosen best setting overall - each family's dev-chosen best (study lag)
======================== ==========================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import stats
from .settings import StudyError
from .sweep import Sweep

__all__ = ["INTERVAL_COLUMNS", "Comparison", "comparisons", "study_intervals", "with_intervals"]

#: Columns of :func:`study_intervals`' table.
INTERVAL_COLUMNS: tuple[str, ...] = (
    "kind", "lag_s", "target", "a", "a_postprocess", "b", "b_postprocess", "estimate", "low", "high", "resolved",
    "level", "unit", "n_units", "n_seeds", "n_resamples", "ccc_protocol", "note")


@dataclass(frozen=True)
class Comparison:
    """One interval to compute: ``a`` (at ``a_postprocess``) minus ``b``; ``b`` None: ``a``'s CCC alone."""

    kind: str
    lag_s: float
    target: str
    a: str
    b: str | None = None
    a_postprocess: str = "none"
    b_postprocess: str = "none"


def _lag_comparisons(lags: pd.DataFrame) -> Iterable[Comparison]:
    for r in lags.to_dict("records"):
        lag, target, floor, best = float(r["lag_s"]), r["target"], r.get("floor_setting"), r.get("best_setting")
        if not isinstance(floor, str):
            continue
        if isinstance(best, str):
            yield Comparison("context_vs_floor", lag, target, best, floor)
            yield Comparison("context_vs_floor_delay", lag, target, best, floor, b_postprocess="delay")
            yield Comparison("context_raw_vs_floor_avec", lag, target, best, floor, b_postprocess="avec")
        if isinstance(r.get("best_avec_setting"), str):
            yield Comparison("context_vs_floor_avec", lag, target, r["best_avec_setting"], floor, "avec", "avec")


def comparisons(curve: pd.DataFrame, saturated: pd.DataFrame, lags: pd.DataFrame, *,
                study_lag_s: float) -> list[Comparison]:
    """The study's comparisons (see the module docstring), from tables whose choices were made on dev."""
    out = [Comparison("ccc", float(r["lag_s"]), r["target"], r["setting"]) for r in curve.to_dict("records")]
    out += _lag_comparisons(lags)
    for r in saturated.to_dict("records"):  # at every lag: the growth of the context needed compares lags
        at = curve[curve["lag_s"] == r["lag_s"]]
        family = at[(at["family"] == r["family"]) & (at["target"] == r["target"])]
        out += [Comparison("saturation", float(r["lag_s"]), r["target"], r["best_setting"], s)
                for s in family["setting"] if s != r["best_setting"]]
    sat = saturated[saturated["lag_s"] == study_lag_s]
    for target, part in sat.groupby("target", sort=False):
        best = part.loc[part["best_dev_ccc"].idxmax(), "best_setting"]
        out += [Comparison("family", study_lag_s, target, best, s) for s in part["best_setting"] if s != best]
    return out


def _row(c: Comparison, iv: stats.Interval | None, note: str = "") -> dict:
    base = {"kind": c.kind, "lag_s": c.lag_s, "target": c.target, "a": c.a, "a_postprocess": c.a_postprocess,
            "b": c.b, "b_postprocess": c.b_postprocess if c.b else None, "note": note}
    if iv is None:
        return base
    return {**base, "estimate": iv.estimate, "low": iv.low, "high": iv.high,
            "resolved": iv.excludes(0.0) if c.b else None, "level": iv.level, "unit": iv.unit,
            "n_units": iv.n_units, "n_seeds": iv.n_seeds, "n_resamples": iv.n_resamples,
            "ccc_protocol": iv.ccc_protocol}


def study_intervals(sweep: Sweep, wanted: Sequence[Comparison], *, n_resamples: int = 2000, level: float = 0.95,
                    seed: int = 0) -> pd.DataFrame:
    """Paired bootstrap CIs of ``wanted`` on the test split: test speakers resampled, and seeds where several.

    A comparison whose settings did not train, or that the bootstrap cannot
    use (fewer than 2 test speakers), gets a row with NaN numbers and the
    reason in ``note``; the others go on.

    Returns:
        One row per comparison, columns :data:`INTERVAL_COLUMNS`; ``estimate``
        is the mean over seeds of the test CCC (``b`` None) or of the CCC
        difference ``a - b``; ``resolved`` whether the CI excludes 0.
    """
    cache: dict[tuple[float, str, str], dict[int, list[np.ndarray]]] = {}

    def system(lag: float, setting: str, post: str) -> dict[int, list[np.ndarray]]:
        if (lag, setting, post) not in cache:
            cache[(lag, setting, post)] = sweep.seed_predictions(lag, setting, postprocess=post)
        return cache[(lag, setting, post)]

    rows = []
    options = {"n_resamples": n_resamples, "level": level, "seed": seed, "unit": "speaker"}
    for c in wanted:
        try:
            records = sweep.test_records(c.lag_s)
            truths, units = [r.y for r in records], [r.speaker for r in records]
            k = list(records[0].target_names).index(c.target)
            if c.b is None:
                iv = stats.bootstrap_ccc(truths, system(c.lag_s, c.a, c.a_postprocess), units=units, target=k,
                                         label=c.a, **options)
            else:
                iv = stats.paired_difference(truths, system(c.lag_s, c.a, c.a_postprocess),
                                             system(c.lag_s, c.b, c.b_postprocess), names=(c.a, c.b), units=units,
                                             target=k, **options)
        except (KeyError, StopIteration, ValueError, StudyError) as error:  # one bad comparison never stops the rest
            reason = "not trained" if isinstance(error, (KeyError, StopIteration)) else str(error)
            rows.append(_row(c, None, reason))
            continue
        rows.append(_row(c, iv))
    return pd.DataFrame(rows, columns=list(INTERVAL_COLUMNS))


def with_intervals(curve: pd.DataFrame, intervals: pd.DataFrame) -> pd.DataFrame:
    """``curve`` with ``ccc_low`` / ``ccc_high``: each setting's test CCC interval (kind ``ccc``; NaN if none)."""
    own = intervals[intervals["kind"] == "ccc"][["lag_s", "target", "a", "low", "high"]]
    own = own.rename(columns={"a": "setting", "low": "ccc_low", "high": "ccc_high"})
    return curve.drop(columns=["ccc_low", "ccc_high"], errors="ignore").merge(
        own, on=["lag_s", "target", "setting"], how="left")
