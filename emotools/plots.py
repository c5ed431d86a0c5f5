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
