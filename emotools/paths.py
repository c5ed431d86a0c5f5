"""Where things live.

Every location is anchored at the package (never the working directory) and
can be moved with an environment variable, read at call time so tests and
runs can redirect output without re-importing the package.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT: Path = Path(__file__).resolve().parent.parent
"""The repository root: the folder that holds ``emotools/`` and ``notebooks/``."""

NOTEBOOKS_DIR: Path = PROJECT_ROOT / "notebooks"

_DEFAULTS = {
    "EMOTOOLS_DATA_DIR": "data",
    "EMOTOOLS_CACHE_DIR": ".cache",
    "EMOTOOLS_FIGURES_DIR": "figures",
    "EMOTOOLS_RESULTS_DIR": "results",
}


def _dir(variable: str) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser().resolve() if value else PROJECT_ROOT / _DEFAULTS[variable]


def data_dir() -> Path:
    """Generated corpora, samples and feature stores (``EMOTOOLS_DATA_DIR``)."""
    return _dir("EMOTOOLS_DATA_DIR")


def cache_dir() -> Path:
    """Disposable caches (``EMOTOOLS_CACHE_DIR``)."""
    return _dir("EMOTOOLS_CACHE_DIR")


def figures_dir() -> Path:
    """Figures, one sub-folder per notebook (``EMOTOOLS_FIGURES_DIR``)."""
    return _dir("EMOTOOLS_FIGURES_DIR")


def results_dir() -> Path:
    """Results tables, executed notebooks and checkpoints (``EMOTOOLS_RESULTS_DIR``)."""
    return _dir("EMOTOOLS_RESULTS_DIR")


def shown(path: str | os.PathLike) -> str:
    """``path`` as messages print it: relative to the repository root, or as
    ``$EMOTOOLS_..._DIR/rest`` under a moved folder, so outputs carry no
    machine's absolute paths; any other path unchanged."""
    path = Path(path)
    bases = [("", PROJECT_ROOT)] + [(f"${v}/", Path(os.environ[v]).expanduser().resolve())
                                    for v in _DEFAULTS if os.environ.get(v)]
    for prefix, base in sorted(bases, key=lambda b: -len(b[1].parts)):
        if path.is_relative_to(base):
            return prefix + path.relative_to(base).as_posix()
    return str(path)


def __getattr__(name: str) -> Path:
    # DATA_DIR, CACHE_DIR, FIGURES_DIR, RESULTS_DIR as module attributes that
    # follow the environment at access time.
    lookup = {
        "DATA_DIR": data_dir,
        "CACHE_DIR": cache_dir,
        "FIGURES_DIR": figures_dir,
        "RESULTS_DIR": results_dir,
    }
    if name in lookup:
        return lookup[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
