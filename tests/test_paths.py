from __future__ import annotations

from pathlib import Path

import emotools
from emotools import paths


def test_project_root_is_anchored_at_the_package(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert paths.PROJECT_ROOT == Path(emotools.__file__).resolve().parent.parent
    assert (paths.PROJECT_ROOT / "emotools" / "paths.py").is_file()
    monkeypatch.delenv("EMOTOOLS_DATA_DIR", raising=False)
    assert paths.DATA_DIR == paths.PROJECT_ROOT / "data"


def test_environment_overrides(monkeypatch, tmp_path: Path) -> None:
    for var, fn in [("EMOTOOLS_DATA_DIR", paths.data_dir), ("EMOTOOLS_CACHE_DIR", paths.cache_dir),
                    ("EMOTOOLS_FIGURES_DIR", paths.figures_dir), ("EMOTOOLS_RESULTS_DIR", paths.results_dir)]:
        monkeypatch.setenv(var, str(tmp_path / var))
        assert fn() == (tmp_path / var).resolve()
    assert paths.FIGURES_DIR == (tmp_path / "EMOTOOLS_FIGURES_DIR").resolve()
