"""Standard figures of every notebook: learning curves, trajectories, metric bars."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import matplotlib.pyplot as plt

from ..models import arch_order
from .style import SERIES_COLORS, arch_color

METRIC_LABELS: dict[str, str] = {
    "ccc": "CCC (higher is better)",
    "pearson": "Pearson r",
    "mse": "MSE (lower is better)",
    "rmse": "RMSE (lower is better)",
}


def plot_history(history, *, metric: str = "loss", title: str = "Validation loss per architecture") -> plt.Figure:
    """Dev-set learning curves, one line per architecture (and panel per target group).

    Args:
        history: tidy DataFrame with columns ``architecture``, ``epoch``,
            ``dev_<metric>`` (and optionally ``train_<metric>``, ``group``).
        metric: ``"loss"`` or ``"ccc"``.
    """
    import pandas as pd

    history = pd.DataFrame(history)
    groups = list(dict.fromkeys(history["group"])) if "group" in history else [None]
    fig, axes = plt.subplots(1, len(groups), figsize=(7 * len(groups), 5), squeeze=False, sharey=True)
    for ax, group in zip(axes[0], groups):
        part = history if group is None else history[history["group"] == group]
        for arch in arch_order(part["architecture"].unique()):
            rows = part[part["architecture"] == arch]
            ax.plot(rows["epoch"], rows[f"dev_{metric}"], color=arch_color(arch), lw=2, label=arch)
            if f"train_{metric}" in rows:
                ax.plot(rows["epoch"], rows[f"train_{metric}"], color=arch_color(arch), lw=1, ls=":", alpha=0.7)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"dev {'1 - CCC loss' if metric == 'loss' else metric.upper()}")
        if group is not None:
            ax.set_title(str(group))
    axes[0][-1].legend(title="architecture (dotted: train)", fontsize=10, title_fontsize=10,
                       bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_trajectories(
    time,
    gold,
    predictions: dict,
    *,
    target: str,
    raters=None,
    latent=None,
    title: str | None = None,
) -> plt.Figure:
    """Ground truth against predictions over time for one recording and target.

    Args:
        time: ``(T,)`` seconds.
        gold: ``(T,)`` gold standard.
        predictions: ``{architecture: (T,) prediction}``.
        target: ``"arousal"`` or ``"valence"`` (axis label).
        raters: optional ``(K, T)`` individual ratings, drawn as a min-max band.
        latent: optional ``(T,)`` latent trajectory the speech was rendered from.
    """
    import numpy as np

    fig, ax = plt.subplots(figsize=(14, 4.5))
    if raters is not None:
        raters = np.asarray(raters)
        ax.fill_between(time, raters.min(axis=0), raters.max(axis=0), color=SERIES_COLORS["raters"],
                        alpha=0.6, lw=0, label="raters (min-max)")
    if latent is not None:
        ax.plot(time, latent, color=SERIES_COLORS["latent"], lw=1.2, ls="--", label="latent (rendered)")
    ax.plot(time, gold, color=SERIES_COLORS["gold"], lw=2, label="gold standard")
    for arch in arch_order(predictions):
        ax.plot(time, predictions[arch], color=arch_color(arch), lw=1.4, label=arch)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"{target} (scale -1 to 1)")
    ax.set_title(title or f"{target}: ground truth vs prediction")
    ax.legend(fontsize=9, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def _error_bars(stats, groups: list, arch: str, intervals) -> tuple[list[float], list[float]]:
    """Lower and upper ends of one architecture's error bars: the CI bounds, else mean ± sd over seeds.

    NaN (no bar drawn) where there is no CI, or only one seed to take an sd of.
    The ends are drawn as they are: a percentile CI need not contain the mean.
    """
    import numpy as np

    low, high = [], []
    for g in groups:
        if intervals is not None:
            lo, hi = intervals.loc[(g, arch)] if (g, arch) in intervals.index else (np.nan, np.nan)
        elif (g, arch) in stats.index and stats.loc[(g, arch), "count"] > 1:
            mean, sd = stats.loc[(g, arch), "mean"], stats.loc[(g, arch), "std"]
            lo, hi = mean - sd, mean + sd
        else:
            lo = hi = np.nan
        low.append(lo)
        high.append(hi)
    return low, high


def plot_metric_bars(results, *, metric: str = "ccc", x: str = "target", title: str | None = None,
                     reference: dict | None = None, intervals=None) -> plt.Figure:
    """Bars of a metric per architecture, grouped by ``x``; error bars = the 95% CIs when given.

    Bars are the mean over seeds. With ``intervals`` the error bars run from
    ``<metric>_low`` to ``<metric>_high`` (the legend says so: "error bars:
    95% CI"); without, they are ± sd over seeds and drawn only where there
    are several seeds. Error bars have no caps.

    Args:
        results: tidy results with columns ``architecture``, ``x``, ``metric``
            (one row per seed).
        reference: optional ``{x value: level}`` drawn as black ticks, e.g. the
            annotation ceiling per target.
        intervals: optional table with ``x``, ``architecture``,
            ``<metric>_low``, ``<metric>_high`` and ``level`` (one row per bar), e.g.
            :func:`emotools.experiments.interval_table` restricted to the bars shown.
    """
    import numpy as np
    import pandas as pd

    results = pd.DataFrame(results)
    archs = arch_order(results["architecture"].unique())
    groups = list(dict.fromkeys(results[x]))
    stats = results.groupby([x, "architecture"])[metric].agg(["mean", "std", "count"])
    bounds, legend_title = None, None
    if intervals is not None:
        intervals = pd.DataFrame(intervals)
        if intervals.duplicated([x, "architecture"]).any():
            raise ValueError(f"intervals: more than one row per ({x}, architecture)")
        bounds = intervals.set_index([x, "architecture"])[[f"{metric}_low", f"{metric}_high"]]
        level = intervals["level"].iloc[0] if len(intervals) else 0.95
        legend_title = f"error bars: {level:.0%} CI"
    elif (stats["count"] > 1).any():
        legend_title = "error bars: ± sd over seeds"
    width = 0.8 / max(len(archs), 1)
    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(archs) * len(groups)), 5.5))
    for i, arch in enumerate(archs):
        means = [stats.loc[(g, arch), "mean"] if (g, arch) in stats.index else np.nan for g in groups]
        pos = np.arange(len(groups)) - 0.4 + width * (i + 0.5)
        ax.bar(pos, means, width, color=arch_color(arch), label=arch)
        low, high = _error_bars(stats, groups, arch, bounds)
        ax.vlines(pos, low, high, color="black", lw=1.5, label="_error bars")  # no caps
    if reference:
        for j, g in enumerate(groups):
            if g in reference:
                ax.hlines(reference[g], j - 0.45, j + 0.45, color=SERIES_COLORS["ceiling"], lw=2.5,
                          label="annotation ceiling" if j == 0 else None)
    ax.set_xticks(np.arange(len(groups)), [str(g) for g in groups])
    ax.grid(False, axis="x")  # the style's x grid would draw a line through the middle of each group
    ax.set_xlabel(x)
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.axhline(0, color="black", lw=0.8)
    ax.set_title(title or f"{metric.upper()} per architecture")
    ax.legend(title=legend_title, fontsize=9, title_fontsize=9, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def plot_grid_history(grid, *, title: str) -> plt.Figure:
    """:func:`plot_history` of a trained grid's dev loss (1 - CCC), one panel per ``mode · target group``.

    Args:
        grid: an :class:`emotools.experiments.GridResult` (its ``histories``).
    """
    history = grid.histories
    return plot_history(history.assign(group=history["mode"] + " · " + history["group"]), metric="loss", title=title)


def dataset_figures(grids: Mapping[str, Any], *, name: str, mode: str,
                    intervals=None) -> Iterator[tuple[str, plt.Figure]]:
    """The dataset notebooks' figures, ``(file stem, figure)`` one at a time.

    Per label protocol: the dev loss per epoch (``validation_loss_<protocol>``)
    and the first test session's trajectories per target
    (``trajectory_<protocol>_<target>``); then test CCC and MSE per
    architecture over protocol x target (``ccc_bars``, ``mse_bars``). The CCC
    bars' error bars are the 95% CIs of ``intervals``.

    Args:
        grids: ``{label protocol: GridResult}``.
        name: the dataset's name in the titles.
        mode: the training mode whose predictions are drawn.
        intervals: :func:`emotools.experiments.interval_table` of the grids
            (default: computed here).
    """
    import pandas as pd

    for protocol, grid in grids.items():
        yield f"validation_loss_{protocol}", plot_grid_history(
            grid, title=f"{name}, {protocol} labels: dev loss (1 - CCC) per epoch")
        rec, preds = grid.test_records[0], grid.predictions(mode=mode)
        for k, target in enumerate(rec.target_names):
            yield f"trajectory_{protocol}_{target}", plot_trajectories(
                rec.time, rec.y[:, k], {a: p[0][:, k] for a, p in preds.items()}, target=target,
                title=f"{name}, {protocol} labels, test session {rec.id}: {target}")
    if intervals is None:
        from ..experiments import interval_table

        intervals = interval_table(list(grids.values()))
    results = pd.concat([g.results for g in grids.values()], ignore_index=True)
    test = results[(results["split"] == "test") & (results["postprocess"] == "none") & (results["mode"] == mode)]
    test = test.assign(group=test["label_protocol"] + " · " + test["target"])
    shown = intervals[(intervals["postprocess"] == "none") & (intervals["mode"] == mode)]
    shown = shown.assign(group=shown["label_protocol"] + " · " + shown["target"])
    for metric in ("ccc", "mse"):
        yield f"{metric}_bars", plot_metric_bars(
            test, metric=metric, x="group", intervals=shown if metric == "ccc" else None,
            title=f"{name}: test {metric.upper()} per architecture and label protocol")


def plot_flaw_steps(table, *, title: str) -> plt.Figure:
    """Test CCC per step of a flaw table (:func:`emotools.pipeline.flaw_table`), one panel per target.

    One point per architecture and step, its 95% CI as the error bar (the
    resampling unit is in each step's label), the architectures side by side
    within a step.
    """
    targets = list(dict.fromkeys(table["target"]))
    steps = list(dict.fromkeys(table["step"]))
    archs = arch_order(table["architecture"])
    fig, axes = plt.subplots(1, len(targets), figsize=(6.5 * len(targets), 4.6), sharey=True, squeeze=False)
    units = table.groupby("step", sort=False).first()
    labels = [f"{s}\n(CI over {units.loc[s, 'unit']}s, n={int(units.loc[s, 'n_units'])})" for s in steps]
    width = 0.8 / max(len(archs), 1)
    for ax, target in zip(axes[0], targets):
        for i, arch in enumerate(archs):
            rows = table[(table["target"] == target) & (table["architecture"] == arch)].set_index("step")
            rows = rows.reindex([s for s in steps if s in rows.index])
            x = [steps.index(s) - 0.4 + width * (i + 0.5) for s in rows.index]
            low = (rows["ccc"] - rows["low"]).clip(lower=0).fillna(0)
            high = (rows["high"] - rows["ccc"]).clip(lower=0).fillna(0)
            ax.errorbar(x, rows["ccc"], yerr=[low, high], fmt="o", ms=4, color=arch_color(arch), lw=1.4, capsize=0,
                        label=arch)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(steps)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(target)
        ax.set_ylabel("test CCC (point: estimate; bar: 95% CI)")
        ax.grid(axis="x", visible=False)
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="architecture")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
