"""Style: the backend choice, one colour per architecture, ``set_style`` and the one ``savefig``.

Every figure of the project goes through :func:`savefig`, which writes PNG
and PDF into ``figures/<notebook>/`` and, inside a Jupyter kernel, shows the
figure inline (interactive sessions and papermill's executed copies alike).
Colours come from :func:`arch_color` so an architecture looks the same in
every figure.

The matplotlib backend is left to whoever chose one: a kernel's inline
backend, ``MPLBACKEND``, ``matplotlib.use``, an IPython ``%matplotlib``. Only
a plain process with no choice made (scripts, the CLI, tests) gets the
headless ``Agg``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import matplotlib

from ..progress import in_kernel, ipython_shell

# No backend chosen (MPLBACKEND, matplotlibrc, matplotlib.use) and no IPython to choose one: headless.
if matplotlib.rcParams._get_backend_or_none() is None and ipython_shell() is None:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .. import paths  # noqa: E402
from ..fileio import atomic_write  # noqa: E402

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
    """The colour of an architecture, stable across figures and runs.

    A causal variant (``"tcn:causal"``, ``"lstm:lookahead=5"``) has its
    family's colour: figures tell variants apart by marker or line style.
    """
    family = name.partition(":")[0]
    if family in ARCH_COLORS:
        return ARCH_COLORS[family]
    shade = 0x40 + (sum(map(ord, name)) * 37) % 0x80
    return f"#{shade:02x}{shade:02x}{shade:02x}"


def arch_palette(names: Iterable[str]) -> dict[str, str]:
    """``{name: colour}`` for seaborn's ``palette=`` argument."""
    return {n: arch_color(n) for n in names}


def set_style(*, context: str = "talk") -> None:
    """Seaborn style readable at poster size (``context='poster'``) or on screen."""
    import seaborn as sns

    sns.set_theme(context=context, style="whitegrid")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "axes.titleweight": "bold"})


class SavedFigure(list):
    """The paths :func:`savefig` wrote (a ``list[Path]``), shown relative to the repository root."""

    def __repr__(self) -> str:
        return "saved " + ", ".join(paths.shown(p) for p in self)


def _png_bytes(fig: plt.Figure, written: list[Path]) -> tuple[bytes, float]:
    """The PNG of ``fig`` (the file just written, else rendered in memory) and its dpi."""
    png = next((p for p in written if p.suffix == ".png"), None)
    if png is not None:
        dpi = plt.rcParams["savefig.dpi"]
        return png.read_bytes(), fig.dpi if dpi == "figure" else float(dpi)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", dpi=fig.dpi)
    return buffer.getvalue(), fig.dpi


def show_inline(fig: plt.Figure, written: Iterable[Path] = ()) -> None:
    """Show ``fig`` as an ``image/png`` output of the running kernel, then close it.

    Whatever matplotlib backend the kernel has, the figure appears in the
    notebook (and in papermill's executed copy) exactly as saved; closing it
    keeps the inline backend from showing it a second time at the end of the cell.
    """
    from IPython.display import Image, display

    data, dpi = _png_bytes(fig, list(written))
    width_px = int.from_bytes(data[16:20], "big")  # PNG IHDR: width
    display(Image(data=data, format="png", width=round(width_px * fig.dpi / dpi)))
    plt.close(fig)


def savefig(fig: plt.Figure, name: str, *, notebook: str, formats: tuple[str, ...] = ("png", "pdf")) -> SavedFigure:
    """Write ``fig`` as ``figures/<notebook>/<name>.<fmt>`` for each format.

    Inside a Jupyter kernel the figure is also shown inline (and closed):
    see :func:`show_inline`. Elsewhere it stays open.

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
    written = SavedFigure()
    for fmt in formats:
        path = folder / f"{name}.{fmt}"
        # PDFs embed a creation date by default; drop it so reruns are identical.
        metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None} if fmt == "png" else None
        with atomic_write(path, mkdir=False) as temporary:  # a reader never sees half a figure
            fig.savefig(temporary, format=fmt, bbox_inches="tight", metadata=metadata)
        written.append(path)
    if in_kernel():
        show_inline(fig, written)
    return written
