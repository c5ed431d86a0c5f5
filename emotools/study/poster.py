"""Reading every notebook's results for the poster: missing tables are noted, never fatal.

Which tables exist and which of them compare architectures is the poster
notebook's knowledge, so every function here takes the names as arguments.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from .. import experiments, paths

__all__ = ["collect_results", "architecture_results"]


def collect_results(names: Iterable[str], *, folder: str | os.PathLike | None = None
                    ) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Read ``<folder>/<name>.csv`` for each name; missing or unreadable ones are noted, not raised.

    Args:
        names: results tables to read, e.g. ``["00_metrics", "long_context"]``.
        folder: where they are (default: ``results/``, :func:`emotools.paths.results_dir`).

    Returns:
        ``({name: table}, notes)``, one note per table that was not found or
        could not be read.
    """
    folder = Path(folder) if folder is not None else paths.results_dir()
    found, notes = {}, []
    for name in names:
        path = folder / f"{name}.csv"
        if not path.is_file():
            notes.append(f"{name}: no results/{name}.csv yet (run its notebook); its panels are skipped")
            continue
        try:
            found[name] = pd.read_csv(path)
        except (OSError, ValueError) as error:
            notes.append(f"{name}: results/{name}.csv is unreadable ({type(error).__name__}: {error}); skipped")
    return found, notes


def architecture_results(found: Mapping[str, pd.DataFrame], *, names: Sequence[str], split: str = "test",
                         postprocess: str = "none") -> pd.DataFrame:
    """Test rows of the dataset notebooks' tables ``names``, one training mode per (dataset, label_protocol).

    Where a notebook trained both modes, ``joint`` is kept (``separate``
    otherwise), so each architecture has one bar per target. Tables missing
    from ``found`` or without the tidy results columns are skipped.
    """
    frames = [found[n] for n in names if n in found and set(experiments.RESULT_COLUMNS) <= set(found[n].columns)]
    if not frames:
        return pd.DataFrame(columns=experiments.RESULT_COLUMNS)
    r = pd.concat(frames, ignore_index=True)
    r = r[(r["split"] == split) & (r["postprocess"] == postprocess)]
    keep = []
    for _, part in r.groupby(["dataset", "label_protocol"], sort=False):
        mode = "joint" if (part["mode"] == "joint").any() else part["mode"].iloc[0]
        keep.append(part[part["mode"] == mode])
    return pd.concat(keep, ignore_index=True) if keep else r
