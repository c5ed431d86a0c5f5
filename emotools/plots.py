"""Figure style, one colour per architecture, and the one ``savefig`` helper.

Every figure of the project goes through :func:`savefig`, which writes PNG
and PDF into ``figures/<notebook>/``. Colours come from :func:`arch_color`
so an architecture looks the same in every figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402

from . import paths  # noqa: E402

#: Display order and colour of every architecture known to the project
#: (tab10 plus two extras); unknown names get a deterministic grey shade.
ARCH_COLORS: dict[str, str] = {
    "mlp": "#7f7f7f",
    "lstm": "#1f77b4",
    "tdnn": "#ff7f0e",
    "attention": "#2ca02c",
    "tdnn_lstm": "#d62728",
    "attention_tdnn": "#9467bd",
    "attention_lstm": "#8c564b",
    "attention_tdnn_lstm": "#e377c2",
    "tcn": "#17becf",
    "dsus": "#bcbd22",
}

#: Colours for non-architecture series that recur across figures.
SERIES_COLORS: dict[str, str] = {
    "gold": "#000000",
    "latent": "#555555",
    "raters": "#bbbbbb",
    "ceiling": "#000000",
    "arousal": "#d62728",
    "valence": "#1f77b4",
}


def arch_color(name: str) -> str:
    """The colour of an architecture, stable across figures and runs."""
    if name in ARCH_COLORS:
        return ARCH_COLORS[name]
    shade = 0x40 + (sum(map(ord, name)) * 37) % 0x80
    return f"#{shade:02x}{shade:02x}{shade:02x}"


def arch_palette(names: Iterable[str]) -> dict[str, str]:
    """``{name: colour}`` for seaborn's ``palette=`` argument."""
    return {n: arch_color(n) for n in names}


def arch_order(names: Iterable[str]) -> list[str]:
    """Known architectures in their canonical order, then the rest sorted."""
    names = set(names)
    known = [n for n in ARCH_COLORS if n in names]
    return known + sorted(names - set(known))


def set_style(*, context: str = "talk") -> None:
    """Seaborn style readable at poster size (``context='poster'``) or on screen."""
    import seaborn as sns

    sns.set_theme(context=context, style="whitegrid")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "axes.titleweight": "bold"})


def savefig(fig: plt.Figure, name: str, *, notebook: str, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Write ``fig`` as ``figures/<notebook>/<name>.<fmt>`` for each format.

    Args:
        fig: the figure.
        name: file stem, e.g. ``"ccc_bars"``.
        notebook: the notebook's stem, e.g. ``"00_metrics"``; the sub-folder.
        formats: file formats to write.

    Returns:
        The written paths.
    """
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"figure name must be a plain file stem, got {name!r}")
    folder = paths.figures_dir() / notebook
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = folder / f"{name}.{fmt}"
        # PDFs embed a creation date by default; drop it so reruns are identical.
        metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None} if fmt == "png" else None
        fig.savefig(path, bbox_inches="tight", metadata=metadata)
        written.append(path)
    return written


# ------------------------------------------------------------- standard figures

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


def plot_metric_bars(results, *, metric: str = "ccc", x: str = "target", title: str | None = None,
                     reference: dict | None = None) -> plt.Figure:
    """Bars of a metric per architecture, grouped by ``x``, error bars = sd over seeds.

    Args:
        results: tidy results with columns ``architecture``, ``x``, ``metric``
            (one row per seed).
        reference: optional ``{x value: level}`` drawn as black ticks, e.g. the
            annotation ceiling per target.
    """
    import numpy as np
    import pandas as pd

    results = pd.DataFrame(results)
    archs = arch_order(results["architecture"].unique())
    groups = list(dict.fromkeys(results[x]))
    stats = results.groupby([x, "architecture"])[metric].agg(["mean", "std"]).fillna(0.0)
    width = 0.8 / max(len(archs), 1)
    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(archs) * len(groups)), 5.5))
    for i, arch in enumerate(archs):
        means = [stats.loc[(g, arch), "mean"] if (g, arch) in stats.index else np.nan for g in groups]
        stds = [stats.loc[(g, arch), "std"] if (g, arch) in stats.index else 0.0 for g in groups]
        pos = np.arange(len(groups)) - 0.4 + width * (i + 0.5)
        ax.bar(pos, means, width, yerr=stds, capsize=3, color=arch_color(arch), label=arch)
    if reference:
        for j, g in enumerate(groups):
            if g in reference:
                ax.hlines(reference[g], j - 0.45, j + 0.45, color=SERIES_COLORS["ceiling"], lw=2.5,
                          label="annotation ceiling" if j == 0 else None)
    ax.set_xticks(np.arange(len(groups)), [str(g) for g in groups])
    ax.set_xlabel(x)
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.axhline(0, color="black", lw=0.8)
    ax.set_title(title or f"{metric.upper()} per architecture")
    ax.legend(fontsize=9, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig
