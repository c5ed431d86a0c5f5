"""Figures of the long-context study and the poster.

Each ``draw_*`` draws one panel on a given axis (so the poster can compose
them); each ``plot_*`` makes a complete figure.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

from ..models import arch_order
from .standard import METRIC_LABELS
from .style import SERIES_COLORS, arch_color

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_LINESTYLES = ("-", "--", ":", "-.")


def _plain_log_axis(ax, which: str = "x") -> None:
    # Log scale with plain numbers (0.5, 1, 10) instead of powers of ten, no minor labels.
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _finite(df, column: str):
    import numpy as np

    return df[np.isfinite(df[column].astype(float))]


def _ci_yerr(rows):
    """Asymmetric error bars from the ``ccc_low`` / ``ccc_high`` CI columns; None (no bars) without them."""
    if "ccc_low" not in rows or rows["ccc_low"].isna().all():
        return None
    return [(rows["ccc"] - rows["ccc_low"]).to_numpy(float), (rows["ccc_high"] - rows["ccc"]).to_numpy(float)]


def draw_context_curve(ax, curve, *, target: str, ceiling: float | None = None, floor_family: str = "mlp",
                       legend: bool = True) -> None:
    """Test CCC against context (s, log axis) for one target: a line per family, floor and ceiling as levels.

    Args:
        curve: rows of ``emotools.study.context_curve`` for one lag; error bars
            are the 95% CIs of ``ccc_low`` / ``ccc_high``
            (``emotools.study.with_intervals``: test speakers and seeds
            resampled), none without those columns.
        target: ``"arousal"`` or ``"valence"``.
        ceiling: the annotation ceiling (black line).
        floor_family: the frame-local family, drawn as a dashed level.
    """
    part = curve[curve["target"] == target]
    for family in arch_order(part["family"].unique()):
        rows = _finite(part[part["family"] == family], "context_s").sort_values("context_s")
        if rows.empty:
            continue
        colour = arch_color(family)
        if family == floor_family:
            ax.axhline(rows["ccc"].max(), color=colour, lw=2, ls="--", label=f"{family} (frame-local floor)")
            continue
        lstm_like = (rows["knob"] == "chunk_s").all()
        ax.errorbar(rows["context_s"], rows["ccc"], yerr=_ci_yerr(rows), color=colour, lw=2.2, capsize=3,
                    marker="s" if lstm_like else "o", ms=8, ls="--" if lstm_like else "-",
                    label=f"{family} (x: training chunk)" if lstm_like else family)
    if ceiling is not None:
        ax.axhline(ceiling, color=SERIES_COLORS["ceiling"], lw=2.5, label="annotation ceiling")
    _plain_log_axis(ax, "x")
    ax.set_xlabel("receptive field (s, log scale)")
    ax.set_ylabel(f"test CCC, {target}")
    ax.set_title(f"{target}: CCC against context")
    if legend:
        ax.legend(fontsize=10, loc="lower right")


def plot_context_curves(curve, *, ceilings: dict | None = None, title: str = "How much context each architecture uses"
                        ) -> plt.Figure:
    """One :func:`draw_context_curve` panel per target."""
    targets = list(dict.fromkeys(curve["target"]))
    fig, axes = plt.subplots(1, len(targets), figsize=(8 * len(targets), 6), squeeze=False, sharey=True)
    for ax, target in zip(axes[0], targets):
        draw_context_curve(ax, curve, target=target, ceiling=(ceilings or {}).get(target))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def draw_lag_curves(ax, curve, *, target: str, delay_curve=None, chain_curve=None, chain_family: str = "mlp",
                    ceilings: dict | None = None, legend: bool = True) -> None:
    """Test CCC against the raters' mean lag for one target: a line per setting.

    Settings of one family share its colour, larger contexts get other
    markers and dash patterns (legend gives the receptive field); with
    ``delay_curve`` (the same curve after delay compensation only) the
    settings are repeated as thin dotted lines.

    Args:
        curve: ``context_curve`` rows over several lags (raw predictions).
        delay_curve: optional ``context_curve(..., postprocess="delay")``.
        chain_curve: optional ``context_curve(..., postprocess="avec")``,
            drawn (dash-dot) for ``chain_family`` only.
        ceilings: ``{lag_s: {target: ceiling}}``.
    """
    import math

    part = curve[curve["target"] == target]
    for family in arch_order(part["family"].unique()):
        fam = part[part["family"] == family]
        settings = fam.drop_duplicates("setting").sort_values("context_s")["setting"].tolist()
        for i, setting in enumerate(settings):
            rows = fam[fam["setting"] == setting].sort_values("lag_s")
            if rows["lag_s"].nunique() < 2:
                continue
            ctx = rows["context_s"].iloc[0]
            label = setting + ("" if not math.isfinite(ctx) or setting == family else f", {ctx:g} s")
            ax.plot(rows["lag_s"], rows["ccc"], color=arch_color(family), lw=2.2, marker=_MARKERS[i % len(_MARKERS)],
                    ms=8, ls=_LINESTYLES[i % len(_LINESTYLES)], label=label)
            style = {"color": arch_color(family), "marker": _MARKERS[i % len(_MARKERS)]}
            if delay_curve is not None:
                _lag_variant(ax, delay_curve, target=target, setting=setting, lw=1.2, ls=":", ms=5, mfc="none",
                             label=f"{setting} + delay compensation", **style)
            if chain_curve is not None and family == chain_family:
                _lag_variant(ax, chain_curve, target=target, setting=setting, lw=1.6, ls="-.", ms=6, mfc="white",
                             label=f"{setting} + AVEC chain (delay, smoothing, bias, scale)", **style)
    if ceilings:
        lags = sorted(ceilings)
        ax.plot(lags, [ceilings[lag].get(target) for lag in lags], color=SERIES_COLORS["ceiling"], lw=2.5,
                label="annotation ceiling")
    ax.set_xlabel("raters' mean lag (s)")
    ax.set_ylabel(f"test CCC, {target}")
    ax.set_title(f"{target}: CCC against the raters' lag")
    if legend:
        ax.legend(fontsize=9, loc="lower left")


def _lag_variant(ax, curve, *, target: str, setting: str, **style: Any) -> None:
    # One setting of a post-processed curve against the raters' lag (drawn only where it has two lags or more).
    rows = curve[(curve["target"] == target) & (curve["setting"] == setting)].sort_values("lag_s")
    if len(rows) > 1:
        ax.plot(rows["lag_s"], rows["ccc"], **style)


def plot_lag_curves(curve, *, delay_curve=None, chain_curve=None, ceilings: dict | None = None,
                    title: str = "Longer rater lags need longer context") -> plt.Figure:
    """One :func:`draw_lag_curves` panel per target."""
    targets = list(dict.fromkeys(curve["target"]))
    fig, axes = plt.subplots(1, len(targets), figsize=(8.5 * len(targets), 6.5), squeeze=False, sharey=True)
    for ax, target in zip(axes[0], targets):
        draw_lag_curves(ax, curve, target=target, delay_curve=delay_curve, chain_curve=chain_curve,
                        ceilings=ceilings)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


_COST_PANELS = {
    "infer_seconds": ("inference time (s, one recording)", True),
    "infer_peak_mb": ("peak extra memory at inference (MB)", False),
    "train_epoch_seconds": ("training time per epoch (s)", True),
}


def draw_cost(ax, costs, *, column: str, legend: bool = False) -> None:
    """One cost measure against recording length (minutes), log-log, a line per setting."""
    ylabel, log = _COST_PANELS.get(column, (column, True))
    ok = costs[costs["error"].isna() | (costs["error"].astype(str) == "")] if "error" in costs else costs
    for family in arch_order(ok["family"].unique()):
        fam = ok[ok["family"] == family]
        for i, setting in enumerate(dict.fromkeys(fam["setting"])):
            rows = fam[fam["setting"] == setting].sort_values("minutes")
            ax.plot(rows["minutes"], rows[column], color=arch_color(family), marker=_MARKERS[i % len(_MARKERS)],
                    ms=7, lw=1.8, ls=_LINESTYLES[i % len(_LINESTYLES)], label=setting)
    _plain_log_axis(ax, "x")
    if log:
        _plain_log_axis(ax, "y")
    ax.set_xlabel("recording length (min, log scale)")
    ax.set_ylabel(ylabel)
    if legend:
        ax.legend(fontsize=8, ncol=2, loc="upper left")


def plot_costs(costs, *, title: str = "Cost against recording length") -> plt.Figure:
    """Inference time, peak inference memory and training time per epoch against recording length."""
    columns = [c for c in _COST_PANELS if c in costs and costs[c].notna().any()]
    if not columns:  # every measurement failed: say so instead of failing the notebook
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.axis("off")
        ax.text(0.5, 0.5, "no cost measurement succeeded (see the table's error column)", ha="center", va="center")
        ax.set_title(title)
        return fig
    fig, axes = plt.subplots(1, len(columns), figsize=(7 * len(columns), 6), squeeze=False)
    for ax, column in zip(axes[0], columns):
        draw_cost(ax, costs, column=column)
        ax.set_title(_COST_PANELS[column][0].split(" (")[0])
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=9, ncol=1, bbox_to_anchor=(1.0, 0.5), loc="center left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def draw_frontier(ax, frontier, *, legend: bool = True, annotate: bool = True) -> None:
    """Test CCC (mean over targets) against inference seconds per hour of audio; the Pareto front as a step line."""
    ok = frontier.dropna(subset=["infer_seconds_per_hour", "ccc"])
    for family in arch_order(ok["family"].unique()):
        rows = ok[ok["family"] == family]
        ax.scatter(rows["infer_seconds_per_hour"], rows["ccc"], s=110, color=arch_color(family), label=family,
                   edgecolor="black", linewidth=[1.8 if f else 0.3 for f in rows["on_front"]], zorder=3)
        if annotate:
            for _, r in rows.iterrows():
                label = r["setting"].replace(family, "").strip(" ()") or family
                ax.annotate(label, (r["infer_seconds_per_hour"], r["ccc"]), textcoords="offset points",
                            xytext=(6, 4), fontsize=8)
    front = ok[ok["on_front"]].sort_values("infer_seconds_per_hour")
    if len(front):
        ax.step(front["infer_seconds_per_hour"], front["ccc"], where="post", color="black", lw=1.2, ls="--",
                label="efficiency frontier", zorder=2)
    _plain_log_axis(ax, "x")
    ax.set_xlabel("inference time per hour of audio (s, log scale)")
    ax.set_ylabel("test CCC (mean of arousal, valence)")
    ax.set_title("Efficiency frontier")
    if legend:
        ax.legend(fontsize=9, loc="best")


def plot_frontier(frontier, *, title: str = "Efficiency frontier: test CCC against inference cost") -> plt.Figure:
    """A figure of :func:`draw_frontier`."""
    fig, ax = plt.subplots(figsize=(10, 6.5))
    draw_frontier(ax, frontier)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def draw_trajectory(ax, trajectory, *, target: str, legend: bool = True) -> None:
    """Gold standard, raters' band, latent and predictions over time, from ``emotools.study.trajectory_frame``.

    Columns other than ``recording, speaker, time, target, gold,
    raters_min, raters_max, latent`` are predictions, named by setting
    (coloured by the architecture before any `` (``).
    """
    part = trajectory[trajectory["target"] == target].sort_values("time")
    t = part["time"]
    if {"raters_min", "raters_max"} <= set(part.columns):
        ax.fill_between(t, part["raters_min"], part["raters_max"], color=SERIES_COLORS["raters"], alpha=0.6, lw=0,
                        label="raters (min-max)")
    if "latent" in part:
        ax.plot(t, part["latent"], color=SERIES_COLORS["latent"], lw=1.2, ls="--", label="latent (rendered)")
    ax.plot(t, part["gold"], color=SERIES_COLORS["gold"], lw=2.2, label="gold standard")
    fixed = {"recording", "speaker", "time", "target", "gold", "raters_min", "raters_max", "latent"}
    for name in [c for c in part.columns if c not in fixed]:
        ax.plot(t, part[name], color=arch_color(name.split(" (")[0]), lw=1.6, label=name)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"{target} (scale -1 to 1)")
    ax.set_title(f"{target}: ground truth and predictions")
    if legend:
        ax.legend(fontsize=9, ncol=2, loc="lower left")


def plot_trajectory_panels(trajectory, *, title: str = "Example test recording") -> plt.Figure:
    """One :func:`draw_trajectory` panel per target, stacked."""
    targets = list(dict.fromkeys(trajectory["target"]))
    fig, axes = plt.subplots(len(targets), 1, figsize=(14, 4.2 * len(targets)), squeeze=False, sharex=True)
    for ax, target in zip(axes[:, 0], targets):
        draw_trajectory(ax, trajectory, target=target)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def draw_arch_bars(ax, results, *, metric: str = "ccc", reference: dict | None = None, legend: bool = False) -> None:
    """Mean test ``metric`` per architecture (bars; error bars: sd over seeds, none for a single seed), by target."""
    import numpy as np

    archs = arch_order(results["architecture"].unique())
    targets = list(dict.fromkeys(results["target"]))
    stats = results.groupby(["target", "architecture"])[metric].agg(["mean", "std", "count"]).rename(
        columns={"count": "n"})
    width = 0.8 / max(len(archs), 1)
    for i, arch in enumerate(archs):
        keys = [(t, arch) for t in targets]
        means = [stats.loc[k, "mean"] if k in stats.index else np.nan for k in keys]
        sds = [stats.loc[k, "std"] if k in stats.index and stats.loc[k, "n"] > 1 else np.nan for k in keys]
        ax.bar(np.arange(len(targets)) - 0.4 + width * (i + 0.5), means, width, yerr=sds, capsize=2,
               color=arch_color(arch), label=arch)
    for j, t in enumerate(targets):
        if reference and t in reference:
            ax.hlines(reference[t], j - 0.45, j + 0.45, color=SERIES_COLORS["ceiling"], lw=2.5,
                      label="annotation ceiling" if j == 0 else None)
    ax.set_xticks(np.arange(len(targets)), targets)
    ax.set_xlabel("target")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    if legend:
        ax.legend(fontsize=9, ncol=2)


def plot_architecture_panels(results, *, metric: str = "ccc", references: dict | None = None, ncols: int = 3,
                             title: str = "Architectures per dataset and label protocol (test, raw predictions)"
                             ) -> plt.Figure:
    """One :func:`draw_arch_bars` panel per (dataset, label protocol), a shared legend.

    Args:
        results: tidy results (``dataset``, ``label_protocol``, ``architecture``,
            ``target``, ``metric``), test rows only.
        references: ``{(dataset, label_protocol): {target: level}}``, e.g. the
            annotation ceiling of the ground-truth corpus.
    """
    groups = list(dict.fromkeys(zip(results["dataset"], results["label_protocol"])))
    ncols = max(1, min(ncols, len(groups)))
    nrows = -(-len(groups) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.5 * ncols, 5.2 * nrows), squeeze=False, sharey=True)
    for ax, (dataset, protocol) in zip(axes.flat, groups):
        part = results[(results["dataset"] == dataset) & (results["label_protocol"] == protocol)]
        draw_arch_bars(ax, part, metric=metric, reference=(references or {}).get((dataset, protocol)))
        ax.set_title(f"{dataset} · {protocol}")
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    handles: dict = {}
    for ax in axes.flat:
        for h, n in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(n, h)
    names = arch_order(n for n in handles if n != "annotation ceiling")
    names += ["annotation ceiling"] if "annotation ceiling" in handles else []
    fig.legend([handles[n] for n in names], names, fontsize=10, ncol=1, bbox_to_anchor=(1.0, 0.5), loc="center left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def draw_metric_demo(ax, table, *, metrics_: tuple[str, ...] = ("ccc", "pearson", "mse")) -> None:
    """The toy predictions of the metrics notebook: a bar group per prediction, one bar per metric."""
    import numpy as np

    names = table["prediction"].tolist()
    width = 0.8 / len(metrics_)
    palette = plt.get_cmap("Set2")
    for i, m in enumerate(metrics_):
        ax.bar(np.arange(len(names)) - 0.4 + width * (i + 0.5), table[m], width, color=palette(i), label=m.upper())
    ax.set_xticks(np.arange(len(names)), names, rotation=25, ha="right")
    ax.set_xlabel("toy prediction of the trajectory")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("score (unitless)")
    ax.set_title("Why CCC: toy predictions of a known trajectory")
    ax.legend(fontsize=9)


def draw_missing(ax, note: str) -> None:
    """An empty panel that says why it is empty (e.g. a notebook that has not run yet)."""
    ax.axis("off")
    ax.text(0.5, 0.5, note, ha="center", va="center", fontsize=12, wrap=True, color="#555555",
            transform=ax.transAxes)


def plot_long_context_summary(curve, *, lag_curve=None, delay_curve=None, chain_curve=None, frontier=None,
                              ceilings: dict | None = None, lag_ceilings: dict | None = None,
                              title: str = "Efficient modelling of long temporal contexts") -> plt.Figure:
    """Poster figure: context curves per target, lag curves (arousal), efficiency frontier.

    Args:
        curve: ``context_curve`` rows at the study's lag.
        lag_curve, delay_curve, chain_curve: ``context_curve`` rows of the lag sweep (raw; delay
            compensation only; the whole AVEC chain).
        frontier: ``frontier_table``.
        ceilings: ``{target: ceiling}`` at the study's lag.
        lag_ceilings: ``{lag_s: {target: ceiling}}``.
    """
    targets = list(dict.fromkeys(curve["target"]))
    fig, axes = plt.subplots(2, 2, figsize=(18, 13))
    for ax, target in zip(axes[0], targets[:2]):
        draw_context_curve(ax, curve, target=target, ceiling=(ceilings or {}).get(target))
    if lag_curve is not None and len(lag_curve):
        draw_lag_curves(axes[1][0], lag_curve, target=targets[0], delay_curve=delay_curve, chain_curve=chain_curve,
                        ceilings=lag_ceilings)
    else:
        draw_missing(axes[1][0], "no lag sweep in the results")
    if frontier is not None and frontier["infer_seconds_per_hour"].notna().any():
        draw_frontier(axes[1][1], frontier)
    else:
        draw_missing(axes[1][1], "no cost measurements in the results")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_poster_overview(*, metrics_table=None, architectures=None, curve=None, ceilings: dict | None = None,
                         frontier=None, trajectory=None, notes: dict | None = None,
                         title: str = "emotools: continuous emotion recognition with long temporal contexts"
                         ) -> plt.Figure:
    """One poster page: why CCC, architectures on the ground truth, context, efficiency, an example.

    Every input is optional; a missing one leaves its panel with the note
    ``notes[panel]`` (panels: ``metrics``, ``architectures``, ``context``,
    ``frontier``, ``trajectory``).
    """
    notes = notes or {}
    fig = plt.figure(figsize=(24, 17))
    grid = fig.add_gridspec(3, 3, height_ratios=[1, 1, 0.8])
    ax_metrics = fig.add_subplot(grid[0, 0])
    ax_arch = fig.add_subplot(grid[0, 1:])
    ax_ctx = [fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])]
    ax_front = fig.add_subplot(grid[1, 2])
    ax_traj = fig.add_subplot(grid[2, :])
    if metrics_table is not None and len(metrics_table):
        draw_metric_demo(ax_metrics, metrics_table)
    else:
        draw_missing(ax_metrics, notes.get("metrics", "metrics notebook not run yet"))
    if architectures is not None and len(architectures):
        groups = list(dict.fromkeys(zip(architectures["dataset"], architectures["label_protocol"])))
        dataset, protocol = groups[0]
        part = architectures[(architectures["dataset"] == dataset) & (architectures["label_protocol"] == protocol)]
        draw_arch_bars(ax_arch, part, reference=ceilings if dataset == "ground_truth" else None)
        ax_arch.set_title(f"Architectures on {dataset} ({protocol}), test")
        ax_arch.legend(fontsize=10, ncol=1, bbox_to_anchor=(1.01, 1), loc="upper left")
    else:
        draw_missing(ax_arch, notes.get("architectures", "no architecture results yet"))
    if curve is not None and len(curve):
        for ax, target in zip(ax_ctx, list(dict.fromkeys(curve["target"]))[:2]):
            draw_context_curve(ax, curve, target=target, ceiling=(ceilings or {}).get(target), legend=ax is ax_ctx[0])
    else:
        for ax in ax_ctx:
            draw_missing(ax, notes.get("context", "long-context study not run yet"))
    if frontier is not None and frontier["infer_seconds_per_hour"].notna().any():
        draw_frontier(ax_front, frontier, annotate=False)
    else:
        draw_missing(ax_front, notes.get("frontier", "no cost measurements yet"))
    if trajectory is not None and len(trajectory):
        draw_trajectory(ax_traj, trajectory, target=str(trajectory["target"].iloc[0]))
        ax_traj.legend(fontsize=10, ncol=1, bbox_to_anchor=(1.01, 1), loc="upper left")
    else:
        draw_missing(ax_traj, notes.get("trajectory", "no example trajectory yet"))
    fig.suptitle(title, fontsize=24, fontweight="bold")
    fig.tight_layout()
    return fig
