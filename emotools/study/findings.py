"""Findings of the long-context study: a table of claims with their evidence, and prose rendered from it.

:func:`findings_table` turns the analysis tables into one row per finding:
``kind`` (what is claimed about), ``subject`` (the target, family or step
it is about), ``finding`` (the verdict) and evidence columns (the numbers
the verdict rests on; NaN where a column does not apply to that kind).
:func:`render_findings` writes the Markdown bullets from that table alone,
so the prose can never say more than the numbers. Kinds, in order:

============== =================================================================================
kind           evidence
============== =================================================================================
best           target, lag_s, setting (chosen on dev), context_s, ccc_dev, ccc (its test CCC),
               reference (floor), reference_ccc, ceiling, remaining (ceiling - ccc)
family         target, lag_s, setting (the best on dev), ccc, reference (another family's best
               on dev), reference_ccc
saturation     family, target, lag_s, setting (family's best on dev), context_s,
               smallest_context_s, largest_context_s, saturation_s, saturation_rule, ccc_smallest,
               ccc (test CCC of the dev choice), gain
lag            target, lag_s, reference (floor), reference_ccc (raw), reference_delay_ccc
               (delay step only), delay_s, setting (best other), ccc
delay          gap_min, gap_max (best context model minus the delay-compensated floor)
chain          floor_avec_min, floor_avec_max, raw_gap_min, raw_gap_max, gap_min, gap_max,
               lag_s and target of the largest gap
context_needed family, target, lag_s, saturation_s (shortest context within tolerance)
growth         family, target, setting, context_s, reference, reference_context_s,
               from_lag_s, shortfall_from, to_lag_s, shortfall_to
efficiency     setting, ccc, cost_s_per_h (best); reference, reference_ccc,
               reference_cost_s_per_h (cheapest within tolerance); minutes, front
cost_gain      setting, reference (floor), gain, cost_s_per_h, per_cost
============== =================================================================================

Every choice is made on dev; the CCCs are the test CCCs of what dev chose.
Rows that compare two systems carry ``diff, diff_low, diff_high, resolved``:
the paired bootstrap CI of the test difference (test speakers and seeds
resampled; :mod:`emotools.study.intervals`); a difference is stated only
where ``resolved`` (its CI excludes 0), otherwise rendered "not resolved"
with its interval. The saturation point (``saturation_rule = "CI"``) is
the smallest context whose shortfall to the family's dev-chosen best is not
resolved; without intervals it falls back to the smallest context within
``tolerance`` dev CCC of the best (``"tolerance"``), and the prose says "no
interval". Every row also carries ``tolerance``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from .analysis import saturation, shortfall

__all__ = ["FINDING_COLUMNS", "findings_table", "render_findings", "conclusions"]

#: The leading columns of every findings table; evidence columns follow.
FINDING_COLUMNS: tuple[str, ...] = ("kind", "subject", "finding")

Row = dict[str, Any]


def _fmt_s(x: float) -> str:
    return "unbounded" if not math.isfinite(x) else f"{x:g} s"


def _verdict(gap: pd.Series, tolerance: float, claim: str, *, partly: str) -> str:
    """``does not <claim>`` if every gap exceeds ``tolerance``, ``<claim>s`` if none does, else ``partly``."""
    if (gap > tolerance).all():
        return f"does not {claim}"
    if (gap <= tolerance).all():
        return claim.replace("substitute", "substitutes", 1)
    return partly


def _interval(intervals: pd.DataFrame | None, kind: str, lag: float, target: str, a: str | None,
              b: str | None) -> Row:
    """``diff, diff_low, diff_high, resolved`` of one comparison of ``intervals`` (NaN / None if absent)."""
    none: Row = {"diff": np.nan, "diff_low": np.nan, "diff_high": np.nan, "resolved": None}
    if intervals is None or intervals.empty or not isinstance(a, str) or not isinstance(b, str):
        return none
    m = intervals[(intervals["kind"] == kind) & (intervals["lag_s"] == lag) & (intervals["target"] == target)
                  & (intervals["a"] == a) & (intervals["b"] == b)]
    if m.empty or pd.isna(m["low"].iloc[0]):
        return none
    r = m.iloc[0]
    return {"diff": r["estimate"], "diff_low": r["low"], "diff_high": r["high"], "resolved": bool(r["resolved"])}


def _ci_verdict(diff: pd.Series, resolved: pd.Series, claim: str, *, partly: str) -> str:
    """``does not <claim>`` if every difference is resolved above 0, ``<claim>s`` if none is, else ``partly``."""
    ahead = (resolved.astype(bool) & (diff > 0)) if len(resolved) else resolved
    if ahead.all():
        return f"does not {claim}"
    if not ahead.any():
        return claim.replace("substitute", "substitutes", 1) + " (no difference resolved)"
    return partly


def _has_ci(rows: pd.DataFrame, column: str = "resolved") -> bool:
    return column in rows and rows[column].notna().all() and len(rows) > 0


# --------------------------------------------------------------------------- rows per kind


def _best_rows(curve: pd.DataFrame, ceilings: Mapping[str, float], study_lag_s: float, floor: str,
               intervals: pd.DataFrame | None) -> Iterator[Row]:
    at = curve[curve["lag_s"] == study_lag_s]
    for target, part in at.groupby("target"):
        best = part.loc[part["ccc_dev"].idxmax()]
        floor_rows = part[part["family"] == floor]
        floor_row = floor_rows.loc[floor_rows["ccc_dev"].idxmax()] if not floor_rows.empty else None
        ceil = ceilings.get(target, float("nan"))
        yield {"kind": "best", "subject": target, "finding": "setting chosen on dev against floor and ceiling",
               "target": target, "lag_s": study_lag_s, "setting": best["setting"], "context_s": best["context_s"],
               "ccc_dev": best["ccc_dev"], "ccc": best["ccc"], "reference": floor,
               "reference_ccc": np.nan if floor_row is None else floor_row["ccc"],
               "ceiling": ceil, "remaining": ceil - best["ccc"],
               **_interval(intervals, "family", study_lag_s, target, best["setting"],
                           None if floor_row is None else floor_row["setting"])}


def _family_rows(saturated: pd.DataFrame, study_lag_s: float, intervals: pd.DataFrame | None) -> Iterator[Row]:
    sat = saturated[saturated["lag_s"] == study_lag_s]
    for target, part in sat.groupby("target", sort=False):
        best = part.loc[part["best_dev_ccc"].idxmax()]
        for r in part.sort_values("best_dev_ccc", ascending=False).to_dict("records"):
            if r["family"] == best["family"]:
                continue
            iv = _interval(intervals, "family", study_lag_s, target, best["best_setting"], r["best_setting"])
            verdict = ("no interval" if iv["resolved"] is None else
                       "resolved" if iv["resolved"] else "not resolved")
            yield {"kind": "family", "subject": target, "finding": verdict, "target": target, "lag_s": study_lag_s,
                   "setting": best["best_setting"], "ccc": best["best_ccc"], "reference": r["best_setting"],
                   "reference_ccc": r["best_ccc"], **iv}


def _saturation_point(part: pd.DataFrame, r: pd.Series, intervals: pd.DataFrame | None) -> tuple[float, bool]:
    """Smallest context whose test shortfall to the dev-chosen best is not resolved; False: no intervals."""
    rows = part.sort_values("context_s")
    for setting, context in zip(rows["setting"], rows["context_s"]):
        if setting == r["best_setting"]:
            return float(context), True
        iv = _interval(intervals, "saturation", r["lag_s"], r["target"], r["best_setting"], setting)
        if iv["resolved"] is None:
            return float(r["saturation_s"]), False
        if not iv["resolved"]:
            return float(context), True
    return float(r["best_context_s"]), True


def _saturation_rows(curve: pd.DataFrame, saturated: pd.DataFrame, study_lag_s: float, tolerance: float,
                     intervals: pd.DataFrame | None) -> Iterator[Row]:
    sat = saturated[saturated["lag_s"] == study_lag_s]
    at = curve[curve["lag_s"] == study_lag_s]
    for family, part in sat[sat["settings"] > 1].groupby("family"):
        for _, r in part.iterrows():
            settings = at[(at["family"] == family) & (at["target"] == r["target"])]
            iv = _interval(intervals, "saturation", study_lag_s, r["target"], r["best_setting"],
                           r["smallest_setting"])
            point, by_ci = _saturation_point(settings, r, intervals)
            if by_ci:
                verdict = ("no resolved gain from more context" if iv["resolved"] is not True or iv["diff"] <= 0
                           else "still rising at the largest context tried" if point >= r["largest_context_s"]
                           else "stops helping")
            else:
                verdict = ("no gain from more context" if r["gain"] <= tolerance else
                           "still rising at the largest context tried" if r["saturation_s"] >= r["largest_context_s"]
                           else "stops helping")
            yield {"kind": "saturation", "subject": family, "finding": verdict, "family": family,
                   "target": r["target"], "lag_s": study_lag_s, "smallest_context_s": r["smallest_context_s"],
                   "largest_context_s": r["largest_context_s"], "saturation_s": point,
                   "saturation_rule": "CI" if by_ci else "tolerance", "setting": r["best_setting"],
                   "context_s": r["best_context_s"], "ccc_smallest": r["ccc_smallest"], "ccc": r["best_ccc"],
                   "gain": r["gain"], **iv}


def _lag_rows(lags: pd.DataFrame, floor: str, intervals: pd.DataFrame | None) -> Iterator[Row]:
    for target, part in lags.groupby("target"):
        for _, r in part.sort_values("lag_s").iterrows():
            best = r.get("best_setting")
            best = best if isinstance(best, str) else None
            raw = _interval(intervals, "context_vs_floor", r["lag_s"], target, best, r.get("floor_setting"))
            chain = _interval(intervals, "context_vs_floor_avec", r["lag_s"], target, r.get("best_avec_setting"),
                              r.get("floor_setting"))
            yield {"kind": "lag", "subject": target, "finding": "floor against the context model chosen on dev",
                   "target": target, "lag_s": r["lag_s"], "reference": floor, "reference_ccc": r["floor_raw"],
                   "reference_delay_ccc": r.get("floor_delay", np.nan), "delay_s": r.get("floor_delay_s", np.nan),
                   "setting": best, "ccc": r.get("best_raw", np.nan) if best else np.nan, **raw,
                   **{f"avec_{k}": v for k, v in chain.items()}}


def _gap_rows(lags: pd.DataFrame, kind: str, a: str, b: str, intervals: pd.DataFrame | None) -> pd.DataFrame:
    """Per (lag, target): the point gap ``lags[a] - lags[b]`` and its interval of ``kind``."""
    rows = []
    for r in lags.to_dict("records"):
        setting = r.get("best_avec_setting" if kind == "context_vs_floor_avec" else "best_setting")
        iv = _interval(intervals, kind, r["lag_s"], r["target"], setting, r.get("floor_setting"))
        rows.append({"lag_s": r["lag_s"], "target": r["target"], "gap": r[a] - r[b], **iv})
    return pd.DataFrame(rows)


def _delay_rows(lags: pd.DataFrame, tolerance: float, intervals: pd.DataFrame | None) -> Iterator[Row]:
    both = lags.dropna(subset=["floor_delay", "best_raw"]) if "best_raw" in lags else pd.DataFrame()
    if both.empty:
        return
    g = _gap_rows(both, "context_vs_floor_delay", "best_raw", "floor_delay", intervals)
    claim, partly = "substitute for context", "substitutes for context only in part"
    verdict = (_ci_verdict(g["diff"], g["resolved"], claim, partly=partly) if _has_ci(g)
               else _verdict(g["gap"], tolerance, claim, partly=partly))
    yield {"kind": "delay", "subject": "delay compensation", "finding": verdict,
           "gap_min": g["gap"].min(), "gap_max": g["gap"].max(), "resolved_count": _count(g), "compared": len(g),
           "diff_low": g["diff_low"].min(), "diff_high": g["diff_high"].max()}


def _count(g: pd.DataFrame) -> float:
    return float((g["resolved"].astype(bool) & (g["diff"] > 0)).sum()) if _has_ci(g) else np.nan


def _chain_rows(lags: pd.DataFrame, tolerance: float, intervals: pd.DataFrame | None) -> Iterator[Row]:
    if not {"floor_avec", "best_avec_any"} <= set(lags.columns):
        return
    chain = lags.dropna(subset=["floor_avec", "best_raw", "best_avec_any"])
    if chain.empty:
        return
    raw = _gap_rows(chain, "context_raw_vs_floor_avec", "best_raw", "floor_avec", intervals)
    g = _gap_rows(chain, "context_vs_floor_avec", "best_avec_any", "floor_avec", intervals)
    claim, partly = "substitute for learnt context", "substitutes for most of the learnt context"
    verdict = (_ci_verdict(g["diff"], g["resolved"], claim, partly=partly) if _has_ci(g)
               else _verdict(g["gap"], tolerance, claim, partly=partly))
    worst = g.loc[g["gap"].idxmax()]
    yield {"kind": "chain", "subject": "AVEC chain", "finding": verdict,
           "floor_avec_min": chain["floor_avec"].min(), "floor_avec_max": chain["floor_avec"].max(),
           "raw_gap_min": raw["gap"].min(), "raw_gap_max": raw["gap"].max(), "raw_resolved_count": _count(raw),
           "gap_min": g["gap"].min(), "gap_max": g["gap"].max(), "resolved_count": _count(g), "compared": len(g),
           "lag_s": worst["lag_s"], "target": worst["target"], "diff": worst["diff"],
           "diff_low": worst["diff_low"], "diff_high": worst["diff_high"], "resolved": worst["resolved"]}


def _growth_rows(curve: pd.DataFrame, floor: str, tolerance: float,
                 intervals: pd.DataFrame | None = None) -> Iterator[Row]:
    short = shortfall(curve, floor=floor)
    if short.empty:
        return
    swept = saturation(curve[curve["setting"].isin(set(short["setting"]) | set(short["reference"]))],
                       tolerance=tolerance)
    for (family, target), part in short.groupby(["family", "target"], sort=False):
        subject = f"{family}/{target}"
        sat_t = swept[(swept["family"] == family) & (swept["target"] == target)].sort_values("lag_s")
        for lag, needed in zip(sat_t["lag_s"], sat_t["saturation_s"]):
            yield {"kind": "context_needed", "subject": subject, "finding": "shortest context within tolerance",
                   "family": family, "target": target, "lag_s": lag, "saturation_s": needed}
        ends = part.sort_values("lag_s").groupby("setting", sort=False)["shortfall"].agg(["first", "last"])
        ends = ends.assign(rise=ends["last"] - ends["first"])
        worst = ends["rise"].idxmax()
        w = part[part["setting"] == worst].sort_values("lag_s")
        grows = (ends["rise"].max() > tolerance) or (sat_t["saturation_s"].iloc[-1] > sat_t["saturation_s"].iloc[0])
        # with intervals: the shortfall at the largest lag resolved above 0 and its CI above the smallest lag's
        ref = w["reference"].iloc[0]
        first = _interval(intervals, "saturation", w["lag_s"].iloc[0], target, ref, worst)
        last = _interval(intervals, "saturation", w["lag_s"].iloc[-1], target, ref, worst)
        if last["resolved"] is None:
            finding = ("the context needed grows with the lag (point estimates, no interval)" if grows else
                       "no clear growth of the context needed with the lag (point estimates, no interval)")
        elif last["resolved"] and last["diff_low"] > 0 and not first["diff_high"] >= last["diff_low"]:
            finding = "the context needed grows with the lag (the shortfalls' CIs do not overlap)"
        else:
            finding = "growth of the context needed with the lag not resolved (the shortfalls' CIs overlap)"
        yield {"kind": "growth", "subject": subject, "finding": finding,
               "first_low": first["diff_low"], "first_high": first["diff_high"],
               "last_low": last["diff_low"], "last_high": last["diff_high"],
               "family": family, "target": target, "setting": worst, "context_s": w["context_s"].iloc[0],
               "reference": w["reference"].iloc[0], "reference_context_s": w["reference_context_s"].iloc[0],
               "from_lag_s": w["lag_s"].iloc[0], "shortfall_from": w["shortfall"].iloc[0],
               "to_lag_s": w["lag_s"].iloc[-1], "shortfall_to": w["shortfall"].iloc[-1]}


def _efficiency_rows(frontier: pd.DataFrame, floor: str, tolerance: float) -> Iterator[Row]:
    if frontier.empty or not frontier["infer_seconds_per_hour"].notna().any():
        return
    if "ccc_dev" not in frontier:
        return
    f = frontier.dropna(subset=["infer_seconds_per_hour", "ccc", "ccc_dev"])
    if f.empty:
        return
    best = f.loc[f["ccc_dev"].idxmax()]
    good = f[f["ccc_dev"] >= best["ccc_dev"] - tolerance].sort_values("infer_seconds_per_hour").iloc[0]
    yield {"kind": "efficiency", "subject": "inference cost",
           "finding": "cheapest setting within tolerance of the best on dev",
           "setting": best["setting"], "ccc": best["ccc"], "cost_s_per_h": best["infer_seconds_per_hour"],
           "reference": good["setting"], "reference_ccc": good["ccc"],
           "reference_cost_s_per_h": good["infer_seconds_per_hour"], "minutes": f["minutes"].max(),
           "front": "; ".join(f[f["on_front"]]["setting"])}
    fl = f[f["family"] == floor]
    if fl.empty:
        return
    floor_row = fl.loc[fl["ccc_dev"].idxmax()]  # the floor's setting and the best gain per cost: chosen on dev
    gain = f[f["family"] != floor].assign(
        per_cost_dev=lambda d: (d["ccc_dev"] - floor_row["ccc_dev"]) / d["infer_seconds_per_hour"],
        per_cost=lambda d: (d["ccc"] - floor_row["ccc"]) / d["infer_seconds_per_hour"])
    if not gain.empty:
        top = gain.loc[gain["per_cost_dev"].idxmax()]
        yield {"kind": "cost_gain", "subject": "inference cost", "finding": "best CCC gain per unit of cost (on dev)",
               "setting": top["setting"], "reference": floor, "gain": top["ccc"] - floor_row["ccc"],
               "cost_s_per_h": top["infer_seconds_per_hour"], "per_cost": top["per_cost"]}


def findings_table(
    curve: pd.DataFrame,
    saturated: pd.DataFrame,
    lags: pd.DataFrame,
    frontier: pd.DataFrame,
    *,
    ceilings: Mapping[str, float],
    study_lag_s: float,
    tolerance: float = 0.02,
    floor: str = "mlp",
    intervals: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The study's findings, one row per claim with the numbers it rests on (see the module docstring).

    Args:
        curve: :func:`~emotools.study.analysis.context_curve` (raw test CCC).
        saturated: :func:`~emotools.study.analysis.saturation` of that curve.
        lags: :func:`~emotools.study.analysis.lag_table`.
        frontier: :func:`~emotools.study.analysis.frontier_table`.
        ceilings: annotation ceiling per target at ``study_lag_s``.
        study_lag_s: the lag of the context sweep (the corpus' own labels).
        tolerance: the CCC margin used for "stops helping" and "as good as".
        floor: the frame-local family every context model is compared with.
        intervals: :func:`~emotools.study.intervals.study_intervals` of the
            same tables; a difference is then claimed only where its CI
            excludes 0. Without it the verdicts fall back to ``tolerance`` on
            point estimates (and the prose says "no interval").
    """
    rows = [*_best_rows(curve, ceilings, study_lag_s, floor, intervals),
            *_family_rows(saturated, study_lag_s, intervals),
            *_saturation_rows(curve, saturated, study_lag_s, tolerance, intervals)]
    if not lags.empty and "floor_raw" in lags:
        rows += [*_lag_rows(lags, floor, intervals), *_delay_rows(lags, tolerance, intervals),
                 *_chain_rows(lags, tolerance, intervals), *_growth_rows(curve, floor, tolerance, intervals)]
    rows += _efficiency_rows(frontier, floor, tolerance)
    table = pd.DataFrame(rows, columns=None if rows else list(FINDING_COLUMNS))
    table["tolerance"] = float(tolerance)
    return table


# --------------------------------------------------------------------------- rendering


def _diff_txt(r: Mapping[str, Any], prefix: str = "") -> str:
    """``+0.123 [+0.100, +0.150]`` where resolved; ``not resolved (+0.010 [-0.020, +0.040])``; or no interval."""
    diff, low, high = r.get(f"{prefix}diff", np.nan), r.get(f"{prefix}diff_low", np.nan), r.get(f"{prefix}diff_high",
                                                                                                  np.nan)
    if pd.isna(low) or pd.isna(diff):
        return "no interval"
    ci = f"{diff:+.3f} [{low:+.3f}, {high:+.3f}]"
    return ci if bool(r.get(f"{prefix}resolved")) else f"not resolved ({ci})"


def _render_best(part: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    lines = []
    for _, r in part.iterrows():
        floor_txt = (f"; the frame-local {r['reference']} scores {r['reference_ccc']:.3f}, difference "
                     f"{_diff_txt(r)}" if pd.notna(r["reference_ccc"]) else "")
        lines.append(f"- **{r['target']}** (raters' lag {r['lag_s']:g} s): chosen on dev, `{r['setting']}` "
                     f"(context {_fmt_s(r['context_s'])}) scores test CCC {r['ccc']:.3f}{floor_txt}; the annotation "
                     f"ceiling is {r['ceiling']:.3f}, so {r['remaining']:.3f} remains.")
    return lines


def _render_family(part: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    lines = []
    for target, rows in part.groupby("subject", sort=False):
        first = rows.iloc[0]
        bits = [f"`{r['reference']}` {r['reference_ccc']:.3f}: {_diff_txt(r)}" for _, r in rows.iterrows()]
        lines.append(f"- **{target}, family against family** (each family's best on dev; test CCC difference of "
                     f"`{first['setting']}` ({first['ccc']:.3f}), the best on dev, to): " + "; ".join(bits) + ".")
    return lines


def _saturation_bit(r: pd.Series) -> str:
    tol = r["tolerance"]
    gain = (f"{r['gain']:+.3f} CCC from {_fmt_s(r['smallest_context_s'])} to `{r['setting']}` "
            f"({_fmt_s(r['context_s'])}, best on dev)")
    if r.get("saturation_rule") != "CI":
        if r["finding"] == "no gain from more context":
            return f"{r['target']}: {gain}, no gain above {tol:g} CCC (no interval)"
        if r["finding"] == "still rising at the largest context tried":
            return f"{r['target']}: {gain}, still rising at the largest context tried (no interval)"
        return (f"{r['target']}: {gain}; within {tol:g} on dev from {_fmt_s(r['saturation_s'])} "
                f"(no interval)")
    ci = _diff_txt(r)
    if r["finding"] == "no resolved gain from more context":
        return f"{r['target']}: gain {ci}, no resolved gain from more context"
    if r["finding"] == "still rising at the largest context tried":
        return (f"{r['target']}: gain {ci} from {_fmt_s(r['smallest_context_s'])} to {_fmt_s(r['context_s'])}; "
                "every smaller context falls short (resolved): still rising at the largest context tried")
    return (f"{r['target']}: gain {ci} from {_fmt_s(r['smallest_context_s'])} to {_fmt_s(r['context_s'])}; "
            f"from {_fmt_s(r['saturation_s'])} on, the shortfall to it is not resolved")


def _render_saturation(part: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    lines = []
    for family, rows in part.groupby("subject", sort=False):
        knob = "training chunk" if family == "lstm" else "receptive field"
        lines.append(f"- **{family}** ({knob}): " + "; ".join(_saturation_bit(r) for _, r in rows.iterrows()) + ".")
    return lines


def _render_lag(part: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    lines = []
    for target, rows in part.groupby("subject", sort=False):
        cells = []
        for _, r in rows.iterrows():
            txt = f"lag {r['lag_s']:g} s: {r['reference']} {r['reference_ccc']:.3f}"
            if pd.notna(r["reference_delay_ccc"]):
                txt += f" -> {r['reference_delay_ccc']:.3f} with delay compensation ({r['delay_s']:g} s)"
            if isinstance(r["setting"], str):
                txt += f", context model chosen on dev `{r['setting']}` {r['ccc']:.3f} (raw difference "
                txt += f"{_diff_txt(r)}; after the AVEC chain {_diff_txt(r, 'avec_')})"
            cells.append(txt)
        lines.append(f"- **{target} against the raters' lag**: " + "; ".join(cells) + ".")
    return lines


def _resolved_txt(r: pd.Series, key: str = "resolved_count") -> str:
    n = r.get(key, np.nan)
    if pd.isna(n):
        return "no intervals"
    return f"resolved above 0 in {int(n)} of {int(r['compared'])} (lag, target) pairs"


def _render_delay(part: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    return [f"- Delay compensation {r['finding']}: the context model chosen on dev beats the delay-compensated "
            f"frame-local model by {r['gap_min']:+.3f} to {r['gap_max']:+.3f} CCC across lags and targets "
            f"({_resolved_txt(r)})." for _, r in part.iterrows()]


def _render_chain(part: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    return [f"- The whole AVEC chain (delay, then smoothing, bias and scale, all tuned on dev; the smoothing is "
            f"itself a fixed temporal context) {r['finding']}: it lifts the frame-local model to "
            f"{r['floor_avec_min']:.3f}-{r['floor_avec_max']:.3f}; the raw predictions of the context model chosen "
            f"on dev differ from it by {r['raw_gap_min']:+.3f} to {r['raw_gap_max']:+.3f} CCC "
            f"({_resolved_txt(r, 'raw_resolved_count')}); with the same chain the context models differ by "
            f"{r['gap_min']:+.3f} to {r['gap_max']:+.3f} ({_resolved_txt(r)}; largest at lag {r['lag_s']:g} s, "
            f"{r['target']}: {_diff_txt(r)})." for _, r in part.iterrows()]


def _render_growth(part: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    needed = table[table["kind"] == "context_needed"]
    bits = []
    for _, r in part.iterrows():
        mine = needed[needed["subject"] == r["subject"]]
        at = ", ".join(f"{_fmt_s(s)} at lag {lag:g} s" for lag, s in zip(mine["lag_s"], mine["saturation_s"]))
        ci_from, ci_to = (f" [{r[f'{e}_low']:+.3f}, {r[f'{e}_high']:+.3f}]" if pd.notna(r.get(f"{e}_low")) else ""
                          for e in ("first", "last"))
        bits.append(f"{r['subject']}: {at}; `{r['setting']}` ({_fmt_s(r['context_s'])}) falls short of "
                    f"`{r['reference']}` ({_fmt_s(r['reference_context_s'])}) by {r['shortfall_from']:.3f}{ci_from} "
                    f"at lag {r['from_lag_s']:g} s and {r['shortfall_to']:.3f}{ci_to} at {r['to_lag_s']:g} s -> "
                    f"{r['finding']}")
    return [f"- **Context needed against the raters' lag** (shortest context within {part['tolerance'].iloc[0]:g} "
            "CCC of the family's best): " + "; ".join(bits) + "."]


def _render_efficiency(part: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    lines = []
    for _, r in part.iterrows():
        front = ", ".join(f"`{s}`" for s in str(r["front"]).split("; ") if s)
        lines.append(f"- **Efficiency** (mean CCC over targets; inference seconds per hour of audio, measured at "
                     f"{r['minutes']:g} min): the best on dev is `{r['setting']}` (test {r['ccc']:.3f}, "
                     f"{r['cost_s_per_h']:.3g} s/h); the cheapest within {r['tolerance']:g} dev CCC of it is "
                     f"`{r['reference']}` ({r['reference_ccc']:.3f}, {r['reference_cost_s_per_h']:.3g} s/h). "
                     f"On the efficiency frontier: {front}.")
    return lines


def _render_cost_gain(part: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    return [f"- Best CCC per unit of cost (chosen on dev): `{r['setting']}` gains {r['gain']:+.3f} test CCC over the "
            f"frame-local floor "
            f"for {r['cost_s_per_h']:.3g} s of inference per hour of audio ({r['per_cost']:.3g} CCC per s/h)."
            for _, r in part.iterrows()]


_RENDER: dict[str, Callable[[pd.DataFrame, pd.DataFrame], list[str]]] = {
    "best": _render_best, "family": _render_family, "saturation": _render_saturation, "lag": _render_lag,
    "delay": _render_delay, "chain": _render_chain, "growth": _render_growth, "efficiency": _render_efficiency,
    "cost_gain": _render_cost_gain,
}


def render_findings(table: pd.DataFrame) -> str:
    """Markdown bullets written from a :func:`findings_table` (also one read back from CSV), in its row order."""
    lines: list[str] = []
    for kind, part in table.groupby("kind", sort=False):
        lines += _RENDER.get(str(kind), lambda *_: [])(part, table)  # context_needed rows feed "growth"
    return "\n".join(lines)


def conclusions(curve: pd.DataFrame, saturated: pd.DataFrame, lags: pd.DataFrame, frontier: pd.DataFrame, *,
                ceilings: Mapping[str, float], study_lag_s: float, tolerance: float = 0.02,
                floor: str = "mlp", intervals: pd.DataFrame | None = None) -> str:
    """Markdown conclusions written from the study's own numbers: :func:`render_findings` of :func:`findings_table`."""
    return render_findings(findings_table(curve, saturated, lags, frontier, ceilings=ceilings,
                                          study_lag_s=study_lag_s, tolerance=tolerance, floor=floor,
                                          intervals=intervals))
