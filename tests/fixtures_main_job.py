"""The smoke main job, run as users run it, for tests of what it writes (its predictors)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_smoke_main_job(notebook: str, run_dirs: dict[str, Path], home: Path) -> Path:
    """``python -m emotools run --smoke --only <notebook>`` with results and figures under ``home``.

    The data and cache folders are the test session's (``run_dirs``), so the
    smoke corpus is rendered once. Returns ``home / "results"``; fails the
    test with the run's stderr when the run fails.
    """
    env = {**os.environ, "EMOTOOLS_DATA_DIR": str(run_dirs["data"]), "EMOTOOLS_CACHE_DIR": str(run_dirs["cache"]),
           "EMOTOOLS_RESULTS_DIR": str(home / "results"), "EMOTOOLS_FIGURES_DIR": str(home / "figures"),
           "MPLBACKEND": "Agg"}
    run = subprocess.run([sys.executable, "-m", "emotools", "run", "--smoke", "--only", notebook],
                         capture_output=True, text=True, env=env, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    return home / "results"
