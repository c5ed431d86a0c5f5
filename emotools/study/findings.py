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
best           target, lag_s, setting, context_s, ccc, reference (floor), reference_ccc,
               ceiling, remaining (ceiling - ccc)
saturation     family, target, lag_s, smallest_context_s, largest_context_s, saturation_s,
               ccc_smallest, ccc (family's best), gain
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

Every row also carries ``tolerance``, the CCC margin of "stops helping"
and "as good as".
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


# --------------------------------------------------------------------------- rows per kind


def _best_rows(curve: pd.DataFrame, ceilings: Mapping[str, float], study_lag_s: float, floor: str) -> Iterator[Row]:
    at = curve[curve["lag_s"] == study_lag_s]
    for target, part in at.groupby("target"):
        best = part.loc[part["ccc"].idxmax()]
        floor_rows = part[part["family"] == floor]
        ceil = ceilings.get(target, float("nan"))
        yield {"kind": "best", "subject": target, "finding": "best setting against floor and ceiling",
               "target": target, "lag_s": study_lag_s, "setting": best["setting"], "context_s": best["context_s"],
               "ccc": best["ccc"], "reference": floor,
               "reference_ccc": floor_rows["ccc"].max() if not floor_rows.empty else np.nan,
               "ceiling": ceil, "remaining": ceil - best["ccc"]}


def _saturation_rows(saturated: pd.DataFrame, study_lag_s: float, tolerance: float) -> Iterator[Row]:
    sat = saturated[saturated["lag_s"] == study_lag_s]
    for family, part in sat[sat["settings"] > 1].groupby("family"):
        for _, r in part.iterrows():
            verdict = ("no gain from more context" if r["gain"] <= tolerance else
                       "still rising at the largest context tried" if r["saturation_s"] >= r["largest_context_s"]
                       else "stops helping")
            yield {"kind": "saturation", "subject": family, "finding": verdict, "family": family,
                   "target": r["target"], "lag_s": study_lag_s, "smallest_context_s": r["smallest_context_s"],
                   "largest_context_s": r["largest_context_s"], "saturation_s": r["saturation_s"],
                   "ccc_smallest": r["ccc_smallest"], "ccc": r["best_ccc"], "gain": r["gain"]}


def _lag_rows(lags: pd.DataFrame, floor: str) -> Iterator[Row]:
    for target, part in lags.groupby("target"):
        for _, r in part.sort_values("lag_s").iterrows():
            best = r.get("best_setting")
            yield {"kind": "lag", "subject": target, "finding": "floor against the best context model",
                   "target": target, "lag_s": r["lag_s"], "reference": floor, "reference_ccc": r["floor_raw"],
                   "reference_delay_ccc": r.get("floor_delay", np.nan), "delay_s": r.get("floor_delay_s", np.nan),
                   "setting": best if isinstance(best, str) else None,
                   "ccc": r.get("best_raw", np.nan) if isinstance(best, str) else np.nan}


def _delay_rows(lags: pd.DataFrame, tolerance: float) -> Iterator[Row]:
    both = lags.dropna(subset=["floor_delay", "best_raw"]) if "best_raw" in lags else pd.DataFrame()
    if both.empty:
        return
    gap = both["best_raw"] - both["floor_delay"]
    verdict = _verdict(gap, tolerance, "substitute for context", partly="substitutes for context only in part")
    yield {"kind": "delay", "subject": "delay compensation", "finding": verdict,
           "gap_min": gap.min(), "gap_max": gap.max()}


def _chain_rows(lags: pd.DataFrame, tolerance: float) -> Iterator[Row]:
    if not {"floor_avec", "best_avec_any"} <= set(lags.columns):
        return
    chain = lags.dropna(subset=["floor_avec", "best_raw", "best_avec_any"])
    if chain.empty:
        return
    raw_gap = chain["best_raw"] - chain["floor_avec"]
    gap = chain["best_avec_any"] - chain["floor_avec"]
    verdict = _verdict(gap, tolerance, "substitute for learnt context",
                       partly="substitutes for most of the learnt context")
    worst = chain.loc[gap.idxmax()]
    yield {"kind": "chain", "subject": "AVEC chain", "finding": verdict,
           "floor_avec_min": chain["floor_avec"].min(), "floor_avec_max": chain["floor_avec"].max(),
           "raw_gap_min": raw_gap.min(), "raw_gap_max": raw_gap.max(), "gap_min": gap.min(), "gap_max": gap.max(),
           "lag_s": worst["lag_s"], "target": worst["target"]}


def _growth_rows(curve: pd.DataFrame, floor: str, tolerance: float) -> Iterator[Row]:
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
        yield {"kind": "growth", "subject": subject,
               "finding": ("the context needed grows with the lag" if grows else
                           "no clear growth of the context needed with the lag"),
               "family": family, "target": target, "setting": worst, "context_s": w["context_s"].iloc[0],
               "reference": w["reference"].iloc[0], "reference_context_s": w["reference_context_s"].iloc[0],
               "from_lag_s": w["lag_s"].iloc[0], "shortfall_from": w["shortfall"].iloc[0],
               "to_lag_s": w["lag_s"].iloc[-1], "shortfall_to": w["shortfall"].iloc[-1]}


def _efficiency_rows(frontier: pd.DataFrame, floor: str, tolerance: float) -> Iterator[Row]:
    if frontier.empty or not frontier["infer_seconds_per_hour"].notna().any():
        return
    f = frontier.dropna(subset=["infer_seconds_per_hour", "ccc"])
    best = f.loc[f["ccc"].idxmax()]
    good = f[f["ccc"] >= best["ccc"] - tolerance].sort_values("infer_seconds_per_hour").iloc[0]
    yield {"kind": "efficiency", "subject": "inference cost",
           "finding": "cheapest setting within tolerance of the best",
           "setting": best["setting"], "ccc": best["ccc"], "cost_s_per_h": best["infer_seconds_per_hour"],
           "reference": good["setting"], "reference_ccc": good["ccc"],
           "reference_cost_s_per_h": good["infer_seconds_per_hour"], "minutes": f["minutes"].max(),
           "front": "; ".join(f[f["on_front"]]["setting"])}
    fl = f[f["family"] == floor]
    if fl.empty:
        return
    base = fl["ccc"].max()
    gain = f[f["family"] != floor].assign(per_cost=lambda d: (d["ccc"] - base) / d["infer_seconds_per_hour"])
    if not gain.empty:
        top = gain.loc[gain["per_cost"].idxmax()]
        yield {"kind": "cost_gain", "subject": "inference cost", "finding": "best CCC gain per unit of cost",
               "setting": top["setting"], "reference": floor, "gain": top["ccc"] - base,
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
    """
    rows = [*_best_rows(curve, ceilings, study_lag_s, floor), *_saturation_rows(saturated, study_lag_s, tolerance)]
    if not lags.empty and "floor_raw" in lags:
        rows += [*_lag_rows(lags, floor), *_delay_rows(lags, tolerance), *_chain_rows(lags, tolerance),
                 *_growth_rows(curve, floor, tolerance)]
    rows += _efficiency_rows(frontier, floor, tolerance)
    table = pd.DataFrame(rows, columns=None if rows else list(FINDING_COLUMNS))
    table["tolerance"] = float(tolerance)
    return table


# --------------------------------------------------------------------------- rendering


def _render_best(part: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    lines = []
    for _, r in part.iterrows():
        floor_txt = (f"; the frame-local {r['reference']} scores {r['reference_ccc']:.3f}"
                     if pd.notna(r["reference_ccc"]) else "")
        lines.append(f"- **{r['target']}** (raters' lag {r['lag_s']:g} s): best test CCC {r['ccc']:.3f} by "
                     f"`{r['setting']}` (context {_fmt_s(r['context_s'])}){floor_txt}; the annotation "
                     f"ceiling is {r['ceiling']:.3f}, so {r['remaining']:.3f} remains.")
    return lines


def _saturation_bit(r: pd.Series) -> str:
    tol = r["tolerance"]
    if r["finding"] == "no gain from more context":
        return (f"{r['target']}: no gain above {tol:g} CCC from {_fmt_s(r['smallest_context_s'])} to "
                f"{_fmt_s(r['largest_context_s'])} ({r['ccc_smallest']:.3f} -> best {r['ccc']:.3f})")
    if r["finding"] == "still rising at the largest context tried":
        return (f"{r['target']}: +{r['gain']:.3f} CCC from {_fmt_s(r['smallest_context_s'])} to "
                f"{_fmt_s(r['largest_context_s'])}, still rising at the largest context tried")
    return (f"{r['target']}: +{r['gain']:.3f} CCC from {_fmt_s(r['smallest_context_s'])} to "
            f"{_fmt_s(r['saturation_s'])}; beyond it, up to {_fmt_s(r['largest_context_s'])}, less than {tol:g} more")


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
                txt += f", best context model `{r['setting']}` {r['ccc']:.3f}"
            cells.append(txt)
        lines.append(f"- **{target} against the raters' lag**: " + "; ".join(cells) + ".")
    return lines


def _render_delay(part: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    return [f"- Delay compensation {r['finding']}: the best context model beats the delay-compensated "
            f"frame-local model by {r['gap_min']:+.3f} to {r['gap_max']:+.3f} CCC across lags and targets."
            for _, r in part.iterrows()]


def _render_chain(part: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    return [f"- The whole AVEC chain (delay, then smoothing, bias and scale, all tuned on dev; the smoothing is "
            f"itself a fixed temporal context) {r['finding']}: it lifts the frame-local model to "
            f"{r['floor_avec_min']:.3f}-{r['floor_avec_max']:.3f}, which the best context model's raw "
            f"predictions beat by {r['raw_gap_min']:+.3f} to {r['raw_gap_max']:+.3f} CCC; with the same chain the "
            f"context models stay ahead by {r['gap_min']:+.3f} to {r['gap_max']:+.3f} (most at lag "
            f"{r['lag_s']:g} s, {r['target']})." for _, r in part.iterrows()]


def _render_growth(part: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    needed = table[table["kind"] == "context_needed"]
    bits = []
    for _, r in part.iterrows():
        mine = needed[needed["subject"] == r["subject"]]
        at = ", ".join(f"{_fmt_s(s)} at lag {lag:g} s" for lag, s in zip(mine["lag_s"], mine["saturation_s"]))
        bits.append(f"{r['subject']}: {at}; `{r['setting']}` ({_fmt_s(r['context_s'])}) falls short of "
                    f"`{r['reference']}` ({_fmt_s(r['reference_context_s'])}) by {r['shortfall_from']:.3f} at lag "
                    f"{r['from_lag_s']:g} s and {r['shortfall_to']:.3f} at {r['to_lag_s']:g} s -> {r['finding']}")
    return [f"- **Context needed against the raters' lag** (shortest context within {part['tolerance'].iloc[0]:g} "
            "CCC of the family's best): " + "; ".join(bits) + "."]


def _render_efficiency(part: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    lines = []
    for _, r in part.iterrows():
        front = ", ".join(f"`{s}`" for s in str(r["front"]).split("; ") if s)
        lines.append(f"- **Efficiency** (mean CCC over targets; inference seconds per hour of audio, measured at "
                     f"{r['minutes']:g} min): the best is `{r['setting']}` ({r['ccc']:.3f}, "
                     f"{r['cost_s_per_h']:.3g} s/h); the cheapest within {r['tolerance']:g} CCC of it is "
                     f"`{r['reference']}` ({r['reference_ccc']:.3f}, {r['reference_cost_s_per_h']:.3g} s/h). "
                     f"On the efficiency frontier: {front}.")
    return lines


def _render_cost_gain(part: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    return [f"- Best CCC per unit of cost: `{r['setting']}` gains {r['gain']:+.3f} CCC over the frame-local floor "
            f"for {r['cost_s_per_h']:.3g} s of inference per hour of audio ({r['per_cost']:.3g} CCC per s/h)."
            for _, r in part.iterrows()]


_RENDER: dict[str, Callable[[pd.DataFrame, pd.DataFrame], list[str]]] = {
    "best": _render_best, "saturation": _render_saturation, "lag": _render_lag, "delay": _render_delay,
    "chain": _render_chain, "growth": _render_growth, "efficiency": _render_efficiency,
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
                floor: str = "mlp") -> str:
    """Markdown conclusions written from the study's own numbers: :func:`render_findings` of :func:`findings_table`."""
    return render_findings(findings_table(curve, saturated, lags, frontier, ceilings=ceilings,
                                          study_lag_s=study_lag_s, tolerance=tolerance, floor=floor))
