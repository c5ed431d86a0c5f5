"""Shared fixtures: every test writes into temporary folders, never the repository."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def run_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Session-wide data/results/figures/cache folders for runs of notebooks and CLIs."""
    root = tmp_path_factory.mktemp("emotools-run")
    return {name: root / name for name in ("data", "results", "figures", "cache")}


@pytest.fixture()
def isolated_dirs(run_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Point EMOTOOLS_*_DIR at the session's temporary folders (inherited by kernels)."""
    for name, path in run_dirs.items():
        monkeypatch.setenv(f"EMOTOOLS_{name.upper()}_DIR", str(path))
    return run_dirs
