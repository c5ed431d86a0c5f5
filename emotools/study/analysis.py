"""Analysis of the long-context study: tables computed from a sweep's results and costs.

Context curves (:func:`context_curve`), where context stops helping
(:func:`saturation`), the lag table (:func:`lag_table`), how far short
contexts fall behind as the lag grows (:func:`shortfall`), the efficiency
frontier (:func:`frontier_table`, :func:`pareto_front`), everything the
poster draws (:func:`study_views`) and one recording's trajectories
(:func:`trajectory_frame`). Tables only: figures are :mod:`emotools.plots`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..sequences import SequenceRecord
from .settings import StudyError

__all__ = ["context_curve", "saturation", "lag_table", "shortfall", "pareto_front", "frontier_table", "study_lag",
           "StudyViews", "study_views", "ceiling_table", "ceilings_from_table", "TRAJECTORY_COLUMNS",
           "trajectory_frame"]


_CURVE_KEYS = ["lag_s", "family", "setting", "knob", "value", "context_s", "receptive_field_s", "target"]


def _mean_over_seeds(results: pd.DataFrame, split: str, postprocess: str) -> pd.DataFrame:
    r = results[(results["split"] == split) & (results["postprocess"] == postprocess)]
    g = r.assign(value=r["value"].astype(float)).groupby(_CURVE_KEYS, dropna=False)["ccc"]
    return g.agg(ccc="mean", ccc_sd="std", seeds="count").reset_index()


def context_curve(results: pd.DataFrame, *, split: str = "test", postprocess: str = "none") -> pd.DataFrame:
    """Mean and sd over seeds of CCC per (lag, family, setting, target), ordered by context.

    Columns: ``lag_s, family, setting, knob, value, context_s,
    receptive_field_s, target, ccc, ccc_sd, seeds, ccc_dev``. ``ccc_dev`` is
    the dev CCC (mean over seeds) of the same rows, what every choice made
    from the curve is made on (NaN where the results have no dev rows, as for
    the delay-only post-processing).
    """
    out = _mean_over_seeds(results, split, postprocess)
    if out.empty:
        raise StudyError("results", f"no rows with split={split!r} and postprocess={postprocess!r}")
    out["ccc_sd"] = out["ccc_sd"].fillna(0.0)
    dev = _mean_over_seeds(results, "dev", postprocess)[_CURVE_KEYS + ["ccc"]].rename(columns={"ccc": "ccc_dev"})
    out = out.merge(dev, on=_CURVE_KEYS, how="left")
    return out.sort_values(["lag_s", "target", "family", "context_s"]).reset_index(drop=True)


def _dev_column(table: pd.DataFrame, what: str) -> pd.Series:
    """The ``ccc_dev`` column every choice is made on; a clear error where the results have none."""
    if "ccc_dev" not in table or table["ccc_dev"].isna().all():
        raise StudyError(what, "no dev CCC to choose on (the results need split='dev' rows)")
    return table["ccc_dev"]


def saturation(curve: pd.DataFrame, *, tolerance: float = 0.02) -> pd.DataFrame:
    """Where context stops helping, per (lag, family, target) of a :func:`context_curve`; chosen on dev.

    ``best_setting`` is the family's best on dev (``best_dev_ccc``);
    ``saturation_s`` the smallest context whose dev CCC is within
    ``tolerance`` of it. ``best_ccc``, ``saturation_ccc`` and ``ccc_smallest``
    are the test CCCs of those settings (reported once, never chosen on);
    ``gain`` is ``best_ccc - ccc_smallest`` (test). Families with one setting
    have gain 0. Whether a gain is resolved is for the intervals
    (:func:`emotools.study.intervals.study_intervals`) to say.
    """
    _dev_column(curve, "saturation")
    rows = []
    for (lag, family, target), part in curve.groupby(["lag_s", "family", "target"], sort=False):
        part = part.sort_values("context_s")
        best = part.loc[part["ccc_dev"].idxmax()]
        enough = part[part["ccc_dev"] >= best["ccc_dev"] - tolerance].iloc[0]
        rows.append({
            "lag_s": lag, "family": family, "target": target, "settings": len(part),
            "smallest_context_s": float(part["context_s"].iloc[0]), "smallest_setting": part["setting"].iloc[0],
            "ccc_smallest": float(part["ccc"].iloc[0]), "largest_context_s": float(part["context_s"].iloc[-1]),
            "best_setting": best["setting"], "best_context_s": float(best["context_s"]),
            "best_dev_ccc": float(best["ccc_dev"]), "best_ccc": float(best["ccc"]),
            "saturation_s": float(enough["context_s"]), "saturation_setting": enough["setting"],
            "saturation_ccc": float(enough["ccc"]), "gain": float(best["ccc"] - part["ccc"].iloc[0]),
        })
    return pd.DataFrame(rows)


def _split_means(results: pd.DataFrame) -> pd.DataFrame:
    """Mean CCC over seeds per (split, lag, target, postprocess, setting, family)."""
    keys = ["split", "lag_s", "target", "postprocess", "setting", "family"]
    return results.groupby(keys)["ccc"].mean().reset_index()


def _chosen(means: pd.DataFrame, lag: float, target: str, post: str, keep) -> str | None:
    """The setting with the best dev CCC among ``keep(rows)`` at (lag, target, post); None if none."""
    dev = means[(means["split"] == "dev") & (means["lag_s"] == lag) & (means["target"] == target)
                & (means["postprocess"] == post)]
    dev = dev[keep(dev)]
    return None if dev.empty else str(dev.loc[dev["ccc"].idxmax(), "setting"])


def lag_table(results: pd.DataFrame, *, floor: str = "mlp", ceilings: Mapping[float, Mapping[str, float]] | None = None
              ) -> pd.DataFrame:
    """Per (lag, target): the floor and the best context model, raw and post-processed; chosen on dev.

    Every choice is made on dev and its *test* CCC reported (mean over seeds):
    ``floor_setting`` (the floor family's best raw dev CCC) with ``floor_raw``,
    ``floor_delay`` (delay step only), ``floor_delay_s`` (the delay it chose,
    seconds) and ``floor_avec`` (the whole AVEC chain: delay, smoothing, bias,
    scale); ``best_setting`` (the context model with the best raw dev CCC,
    ``best_dev``) with ``best_raw``, ``best_delay`` and ``best_avec`` (that
    setting post-processed); ``best_avec_setting`` (the context model with
    the best dev CCC after the chain) with ``best_avec_any``; ``ceiling``.
    A column is NaN where its rows are missing.
    """
    m = _split_means(results)
    test = m[m["split"] == "test"].set_index(["lag_s", "target", "postprocess", "setting"])["ccc"]
    dev = m[m["split"] == "dev"].set_index(["lag_s", "target", "postprocess", "setting"])["ccc"]
    delays = results[results["postprocess"] == "delay"].groupby(["lag_s", "target", "setting"])["delay_s"].mean() \
        if "delay_s" in results else pd.Series(dtype=float)
    is_floor = lambda d: d["family"] == floor  # noqa: E731
    rows = []
    for lag, target in m[["lag_s", "target"]].drop_duplicates().sort_values(["lag_s", "target"]).itertuples(False):
        row: dict[str, Any] = {"lag_s": lag, "target": target}
        name = _chosen(m, lag, target, "none", is_floor)
        if name is not None:
            row.update(floor_setting=name, floor_raw=test.get((lag, target, "none", name), np.nan),
                       floor_delay=test.get((lag, target, "delay", name), np.nan),
                       floor_delay_s=delays.get((lag, target, name), np.nan),
                       floor_avec=test.get((lag, target, "avec", name), np.nan))
        name = _chosen(m, lag, target, "none", lambda d: ~is_floor(d))
        if name is not None:
            row.update(best_setting=name, best_dev=dev.get((lag, target, "none", name), np.nan),
                       **{f"best_{col}": test.get((lag, target, post, name), np.nan)
                          for col, post in (("raw", "none"), ("delay", "delay"), ("avec", "avec"))})
        name = _chosen(m, lag, target, "avec", lambda d: ~is_floor(d))
        if name is not None:
            row.update(best_avec_setting=name, best_avec_any=test.get((lag, target, "avec", name), np.nan))
        if ceilings is not None and lag in ceilings:
            row["ceiling"] = ceilings[lag].get(target, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def shortfall(curve: pd.DataFrame, *, floor: str = "mlp") -> pd.DataFrame:
    """How far each smaller context falls short of its family's largest, per lag.

    Only settings trained at more than one lag count (the lag sweep). If the
    context a model needs grows with the raters' lag, a short context's
    shortfall grows with the lag.

    Returns:
        ``family, target, setting, context_s, reference, reference_context_s,
        lag_s, shortfall`` (CCC of the reference minus CCC of the setting).
    """
    swept = curve.groupby("setting")["lag_s"].nunique()
    part = curve[curve["setting"].isin(swept[swept > 1].index) & (curve["family"] != floor)]
    rows = []
    for (family, target), fam in part.groupby(["family", "target"], sort=False):
        finite = fam[np.isfinite(fam["context_s"].astype(float))]
        if finite["setting"].nunique() < 2:
            continue
        ref = finite.loc[finite["context_s"].idxmax()]
        ref_ccc = finite[finite["setting"] == ref["setting"]].set_index("lag_s")["ccc"]
        for setting, rows_s in finite[finite["setting"] != ref["setting"]].groupby("setting", sort=False):
            for _, r in rows_s.iterrows():
                if r["lag_s"] in ref_ccc.index:
                    rows.append({"family": family, "target": target, "setting": setting,
                                 "context_s": float(r["context_s"]), "reference": ref["setting"],
                                 "reference_context_s": float(ref["context_s"]), "lag_s": float(r["lag_s"]),
                                 "shortfall": float(ref_ccc[r["lag_s"]] - r["ccc"])})
    return pd.DataFrame(rows, columns=["family", "target", "setting", "context_s", "reference",
                                       "reference_context_s", "lag_s", "shortfall"])


def _no_error(costs: pd.DataFrame) -> pd.Series:
    """Rows of a cost table whose measurement succeeded (``error`` empty or missing)."""
    if "error" not in costs:
        return pd.Series(True, index=costs.index)
    return costs["error"].isna() | (costs["error"].astype(str) == "")


def pareto_front(cost: Sequence[float], score: Sequence[float]) -> np.ndarray:
    """Boolean mask of the points no other point beats: cheaper-or-equal *and* better-or-equal, one strictly.

    NaN points are never on the front.

    >>> pareto_front([1, 2, 3, 2], [0.5, 0.4, 0.9, 0.6]).tolist()
    [True, False, True, True]
    """
    c, s = np.asarray(cost, float), np.asarray(score, float)
    if c.shape != s.shape:
        raise StudyError("frontier", f"cost and score differ in length: {c.shape} vs {s.shape}")
    ok = np.isfinite(c) & np.isfinite(s)
    front = np.zeros(len(c), bool)
    for i in np.flatnonzero(ok):
        dominated = ok & (c <= c[i]) & (s >= s[i]) & ((c < c[i]) | (s > s[i]))
        front[i] = not dominated.any()
    return front


def frontier_table(results: pd.DataFrame, costs: pd.DataFrame, *, lag_s: float | None = None,
                   split: str = "test", postprocess: str = "none") -> pd.DataFrame:
    """Test CCC against inference cost per setting, with the Pareto front marked.

    Args:
        results: :attr:`emotools.study.sweep.Sweep.results`.
        costs: :func:`emotools.study.cost.measure_costs` output; the longest measured length of
            each setting gives its cost, scaled to one hour of audio.
        lag_s: the lag whose results count (default: the lag with most settings).

    Returns:
        One row per setting: ``family, setting, context_s, ccc`` (mean over
        targets and seeds), ``ccc_<target>``, ``ccc_dev`` (the same on dev, what
        the findings choose the best on; NaN without dev rows), ``infer_seconds_per_hour``,
        ``infer_peak_mb`` and ``train_epoch_seconds_per_hour`` at the longest
        length, ``minutes``, ``parameters``, ``on_front``; sorted by cost.
    """
    r = results[(results["split"] == split) & (results["postprocess"] == postprocess)]
    if lag_s is None:
        lag_s = float(r.groupby("lag_s")["setting"].nunique().idxmax())
    r = r[r["lag_s"] == lag_s]
    if r.empty:
        raise StudyError("results", f"no results at lag {lag_s} s")
    per_target = r.groupby(["family", "setting", "context_s", "target"])["ccc"].mean().unstack("target")
    per_target.columns = [f"ccc_{t}" for t in per_target.columns]
    score = per_target.mean(axis=1).rename("ccc")
    ok = costs[_no_error(costs)]
    longest = ok.sort_values("minutes").groupby("setting").tail(1).set_index("setting")
    dev = results[(results["split"] == "dev") & (results["postprocess"] == postprocess) & (results["lag_s"] == lag_s)]
    dev_score = dev.groupby(["family", "setting", "context_s", "target"])["ccc"].mean().groupby(
        ["family", "setting", "context_s"]).mean().rename("ccc_dev")
    table = pd.concat([score, per_target], axis=1).join(dev_score).reset_index()
    table = table.join(longest[["minutes", "infer_seconds_per_hour", "infer_peak_mb", "train_epoch_seconds",
                                "parameters"]], on="setting")
    table["train_epoch_seconds_per_hour"] = table.pop("train_epoch_seconds") * 60.0 / table["minutes"]
    table["on_front"] = pareto_front(table["infer_seconds_per_hour"], table["ccc"])
    table.insert(0, "lag_s", lag_s)
    return table.sort_values("infer_seconds_per_hour").reset_index(drop=True)


def study_lag(results: pd.DataFrame) -> float:
    """The lag of the context sweep: the lag at which most settings were trained."""
    return float(results.groupby("lag_s")["setting"].nunique().idxmax())


@dataclass
class StudyViews:
    """The tables the figures of a finished study are drawn from (see :func:`study_views`)."""

    study_lag_s: float
    curve: pd.DataFrame  #: context curve at the study's lag
    lag_curve: pd.DataFrame  #: context curve of the settings trained at several lags
    delay_curve: pd.DataFrame  #: the same after delay compensation only
    chain_curve: pd.DataFrame  #: the same after the whole AVEC post-processing chain
    frontier: pd.DataFrame | None  #: efficiency frontier (None without costs)
    ceilings: dict[str, float]  #: annotation ceiling per target at the study's lag
    lag_ceilings: dict[float, dict[str, float]]  #: the ceiling per lag and target


def study_views(results: pd.DataFrame, *, costs: pd.DataFrame | None = None,
                ceilings: pd.DataFrame | None = None) -> StudyViews:
    """Everything the poster draws from a saved study (``long_context.csv`` and its companions)."""
    lag = study_lag(results)
    full = context_curve(results)
    swept = results.groupby("setting")["lag_s"].nunique()
    delay = results[results["postprocess"] == "delay"]
    lag_ceilings = ceilings_from_table(ceilings) if ceilings is not None else {}
    return StudyViews(
        study_lag_s=lag, curve=full[full["lag_s"] == lag],
        lag_curve=full[full["setting"].isin(swept[swept > 1].index)],
        delay_curve=context_curve(results, postprocess="delay") if len(delay) else full.iloc[:0],
        chain_curve=context_curve(results, postprocess="avec") if (results["postprocess"] == "avec").any()
        else full.iloc[:0],
        frontier=frontier_table(results, costs, lag_s=lag) if costs is not None else None,
        ceilings=lag_ceilings.get(lag, {}), lag_ceilings=lag_ceilings,
    )


#: Columns of a trajectory table that are not model predictions.
TRAJECTORY_COLUMNS: tuple[str, ...] = ("recording", "speaker", "time", "target", "gold", "raters_min", "raters_max",
                                       "latent")


def trajectory_frame(record: SequenceRecord, predictions: Mapping[str, np.ndarray], *,
                     frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """One test recording's gold standard, raters' band, latent and predictions, one row per (time, target).

    Columns ``recording, speaker, time, target, gold``, then ``raters_min``,
    ``raters_max`` and ``latent`` where ``frame`` (the recording's label
    frame) holds rater and latent columns, then one column per model.
    """
    if record.y is None:
        raise StudyError(record.id, "an unlabelled record has no trajectory to show")
    idx = None
    if frame is not None:
        idx = np.clip(np.searchsorted(frame["time"].to_numpy(), record.time - 1e-6), 0, len(frame) - 1)
    parts = []
    for k, target in enumerate(record.target_names):
        columns: dict[str, Any] = {"recording": record.id, "speaker": record.speaker, "time": record.time,
                                   "target": target, "gold": record.y[:, k]}
        if frame is not None:
            raters = [c for c in frame.columns if c.startswith(f"{target}_r") and c[len(target) + 2:].isdigit()]
            if raters:
                r = frame[raters].to_numpy()[idx]
                columns.update(raters_min=r.min(axis=1), raters_max=r.max(axis=1))
            if f"{target}_latent" in frame:
                columns["latent"] = frame[f"{target}_latent"].to_numpy()[idx]
        for name, pred in predictions.items():
            columns[name] = np.asarray(pred).reshape(len(record), -1)[:, k]
        parts.append(pd.DataFrame(columns))
    return pd.concat(parts, ignore_index=True)


def ceiling_table(ceilings: Mapping[float, Mapping[str, float]]) -> pd.DataFrame:
    """``{lag_s: {target: ceiling}}`` as a table (``lag_s, target, ceiling``) for saving."""
    return pd.DataFrame([{"lag_s": float(lag), "target": t, "ceiling": float(c)}
                         for lag, per in ceilings.items() for t, c in per.items()])


def ceilings_from_table(table: pd.DataFrame) -> dict[float, dict[str, float]]:
    """Inverse of :func:`ceiling_table`."""
    out: dict[float, dict[str, float]] = {}
    for row in table.to_dict("records"):
        out.setdefault(float(row["lag_s"]), {})[str(row["target"])] = float(row["ceiling"])
    return out
