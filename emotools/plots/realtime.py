"""Figures of the real-time study (``notebooks/realtime.ipynb``): CCC against lookahead, a live session."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from ..models import arch_order
from .study import _ci_yerr
from .style import SERIES_COLORS, arch_color


def _offline_x(lookaheads) -> float:
    """Where the non-causal models go on the lookahead axis: a step right of the longest lookahead."""
    finite = [v for v in lookaheads if math.isfinite(v)]
    top = max(finite, default=0.0)
    return top + max(1.0, 0.25 * top)


def draw_lookahead_curve(ax, curve, *, target: str, legend: bool = True) -> None:
    """Test CCC against lookahead for one target: a line per family, 95% CI error bars, offline at the right.

    Args:
        curve: rows of ``emotools.realtime.lookahead_curve``. A lookahead the
            family cannot use (``same_as_offline``) is drawn hollow: it is
            the offline model.
        target: ``"arousal"`` or ``"valence"``.
    """
    part = curve[curve["target"] == target]
    x_off = _offline_x(part["lookahead_s"])
    for family in arch_order(part["family"].unique()):
        rows = part[part["family"] == family].sort_values("lookahead_s")
        x = np.where(np.isinf(rows["lookahead_s"]), x_off, rows["lookahead_s"])
        colour = arch_color(family)
        ax.errorbar(x, rows["ccc"], yerr=_ci_yerr(rows), color=colour, lw=2, capsize=3, marker="o", ms=0,
                    label=family)
        hollow = rows["same_as_offline"].to_numpy(bool) & np.isfinite(rows["lookahead_s"]).to_numpy()
        ax.scatter(x[~hollow], rows["ccc"][~hollow], color=colour, s=55, zorder=3)
        ax.scatter(x[hollow], rows["ccc"][hollow], facecolor="white", edgecolor=colour, s=55, lw=2, zorder=3)
    ticks = sorted({v for v in part["lookahead_s"] if math.isfinite(v)})
    has_offline = bool(np.isinf(part["lookahead_s"]).any())
    ax.set_xticks(ticks + ([x_off] if has_offline else []))
    ax.set_xticklabels([f"{v:g}" for v in ticks] + (["offline"] if has_offline else []))
    ax.set_xlabel("lookahead (s)")
    ax.set_ylabel(f"test CCC, {target}")
    ax.set_title(f"{target}: CCC against lookahead")
    if legend:
        ax.legend(fontsize=10, loc="lower right")


def plot_lookahead_curves(curve, *, title: str = "What answering now costs: test CCC against lookahead"
                          ) -> plt.Figure:
    """One :func:`draw_lookahead_curve` panel per target, side by side."""
    targets = list(dict.fromkeys(curve["target"]))
    fig, axes = plt.subplots(1, len(targets), figsize=(7.5 * len(targets), 5.5), squeeze=False, sharey=True)
    for ax, target in zip(axes[0], targets):
        draw_lookahead_curve(ax, curve, target=target, legend=ax is axes[0, 0])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_live_session(frame, *, family: str, targets, title: str = "A streamed session") -> plt.Figure:
    """The trajectory as it appears live, beside the offline prediction, one panel per target.

    Args:
        frame: ``emotools.realtime.live_frame`` rows: ``time``, ``emitted_at``,
            ``live <target>`` and, where present, ``offline <target>`` (the
            non-causal model on the whole session at once) and ``gold <target>``.
        family: colours the model's lines.
        targets: the targets to draw.

    The live prediction is drawn twice: at its frame's time (solid), and
    thin, as a step at the audio time it came out (what a live display
    shows, later by the latency).
    """
    fig, axes = plt.subplots(len(targets), 1, figsize=(14, 4.2 * len(targets)), squeeze=False, sharex=True)
    colour = arch_color(family)
    for ax, target in zip(axes[:, 0], targets):
        if f"gold {target}" in frame:
            ax.plot(frame["time"], frame[f"gold {target}"], color=SERIES_COLORS["gold"], lw=2.2,
                    label="gold standard")
        if f"offline {target}" in frame:
            ax.plot(frame["time"], frame[f"offline {target}"], color=colour, lw=1.6, ls="--",
                    label=f"{family}, offline (non-causal, the session at once)")
        ax.plot(frame["time"], frame[f"live {target}"], color=colour, lw=2, label=f"{family}, streamed (causal)")
        ax.step(frame["emitted_at"], frame[f"live {target}"], where="post", color=colour, lw=1, alpha=0.45,
                label="streamed, at the time it appeared")
        ax.set_ylabel(f"{target} (scale -1 to 1)")
        ax.set_title(f"{target}: live against offline")
        ax.legend(fontsize=9, ncol=2, loc="lower left")
    axes[-1, 0].set_xlabel("time in the session (s)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
