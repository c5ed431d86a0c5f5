"""The mechanism study's figure: per corpus preset, frame-local vs the best context model against the ceiling."""

from __future__ import annotations

import matplotlib.pyplot as plt

from .style import SERIES_COLORS, arch_color

#: The four systems of a row of :func:`emotools.study.mechanisms.mechanism_table`: (column prefix, label, marker).
_SYSTEMS = (("frame_local_raw", "raw", "o"), ("frame_local_chain", "+ chain", "s"),
            ("context_raw", "raw", "o"), ("context_chain", "+ chain", "s"))


def plot_mechanisms(table, *, title: str = "What each mechanism demands (test)") -> plt.Figure:
    """Test CCC per corpus preset, one panel per target: four systems with their CIs, the ceiling as a black tick.

    Colour = architecture (:func:`arch_color`, the context model is the dev
    choice, so it may differ between presets); marker = raw (circle, hollow)
    or after the AVEC chain (square, filled). Error bars are the 95% CIs of
    the table (bootstrap over test speakers and seeds; none where the table
    has no CI); the legend title says so.

    Args:
        table: :func:`emotools.study.mechanisms.mechanism_table` (also one read back from CSV).
        title: the figure's title.
    """
    import numpy as np

    targets = list(dict.fromkeys(table["target"]))
    presets = list(dict.fromkeys(table["preset"]))
    fig, axes = plt.subplots(1, len(targets), figsize=(max(7.0, 1.9 * len(presets)) * len(targets) / 1.4, 5),
                             sharey=True, squeeze=False)
    width = 0.8 / len(_SYSTEMS)
    handles: dict[str, object] = {}
    for ax, target in zip(axes[0], targets):
        part = table[table["target"] == target].set_index("preset").reindex(presets)
        for i, (prefix, kind, marker) in enumerate(_SYSTEMS):
            x = np.arange(len(presets)) - 0.4 + width * (i + 0.5)
            for xi, (_, row) in zip(x, part.iterrows()):
                colour = arch_color(str(row[f"{prefix}_model"]))
                low = max(row[prefix] - row[f"{prefix}_low"], 0) if np.isfinite(row[f"{prefix}_low"]) else 0
                high = max(row[f"{prefix}_high"] - row[prefix], 0) if np.isfinite(row[f"{prefix}_high"]) else 0
                bar = ax.errorbar([xi], [row[prefix]], yerr=[[low], [high]], fmt=marker, ms=7, capsize=0, lw=1.5,
                                  color=colour, mfc=colour if kind != "raw" else "white", mew=1.5)
                handles.setdefault(f"{row[f'{prefix}_model']} {kind}", bar)
        ceiling = ax.hlines(part["ceiling"], np.arange(len(presets)) - 0.45, np.arange(len(presets)) + 0.45,
                            color=SERIES_COLORS["ceiling"], lw=2.5)
        handles.setdefault("annotation ceiling", ceiling)
        ax.set_xticks(np.arange(len(presets)), presets)
        ax.grid(False, axis="x")
        ax.set_xlabel("corpus preset")
        ax.set_title(target)
        ax.axhline(0, color="black", lw=0.8)
    axes[0][0].set_ylabel("test CCC")
    handles["annotation ceiling"] = handles.pop("annotation ceiling")  # last in the legend
    fig.legend(list(handles.values()), list(handles), title="error bars: 95% CI", fontsize=9, title_fontsize=9,
               bbox_to_anchor=(1.0, 0.5), loc="center left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
