"""The run manifest the notebook runner writes next to the results (``results/manifest.json``)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from emotools import notebooks, paths

pytestmark = pytest.mark.slow  # starts Jupyter kernels


def _tiny_notebook(folder: Path) -> Path:
    """A notebook that opens one feature store, so the manifest has a store to name."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("size: int = 1  # a size [>= 1]\nseed: int = 0  # a seed [>= 0]")
    params.metadata["tags"] = ["parameters"]
    opened = ("from emotools import paths\nfrom emotools.features import FeatureStore\n"
              "FeatureStore(paths.data_dir() / 'features' / f'toy-seed{seed}-eGeMAPSv02-windowed-w1.00-h0.10')")
    nb.cells = [params, nbformat.v4.new_code_cell(opened)]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / "tiny.ipynb")
    return folder


def _strings(value: object) -> set[str]:
    """Every string (keys and values) in a JSON value."""
    if isinstance(value, dict):
        return set(value) | {s for v in value.values() for s in _strings(v)}
    if isinstance(value, list):
        return {s for v in value for s in _strings(v)}
    return {value} if isinstance(value, str) else set()


def _absolute_paths_in(text: str, roots: list[Path]) -> list[str]:
    return [str(r) for r in roots if str(r) in text]


def test_manifest_records_the_run_and_merges_runs_of_single_notebooks(tmp_path: Path,
                                                                      isolated_dirs: dict[str, Path]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "emotools", "run", "--only", "00_metrics", "--smoke", "--no-progress",
         "-p", "seed", "3"],
        capture_output=True, text=True, cwd=paths.PROJECT_ROOT, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    path = isolated_dirs["results"] / "manifest.json"
    first = json.loads(path.read_text())
    assert first["format"] == "emotools.run-manifest" and list(first["notebooks"]) == ["00_metrics"]
    entry = first["notebooks"]["00_metrics"]
    declared = notebooks.notebook_parameters(paths.NOTEBOOKS_DIR / "00_metrics.ipynb")
    preset = notebooks.smoke_preset(paths.NOTEBOOKS_DIR / "00_metrics.ipynb")
    assert entry["parameters"] == {k: p.default for k, p in declared.items()} | preset | {"seed": 3}
    assert entry["status"] == "ok" and entry["failed_cell"] is None and entry["smoke"] is True
    assert entry["seconds"] > 0 and entry["feature_stores"] == []
    load = entry["load_average"]  # 1-, 5- and 15-minute load averages beside the wall time
    assert len(load["start"]) == len(load["end"]) == 3 and min(load["start"] + load["end"]) >= 0
    run = first["runs"][entry["run"]]
    assert run["command"] == {"only": ["00_metrics"], "smoke": True, "parameters": {"seed": "3"}, "folder": None}
    assert run["packages"]["python"] == platform.python_version()
    assert all(run["packages"][name] for name in ("emotools", "torch", "numpy", "pandas", "opensmile", "papermill"))
    head = subprocess.run(["git", "-C", str(paths.PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a checkout: its revision; elsewhere None
        assert run["git"]["revision"] == head.stdout.strip() and isinstance(run["git"]["dirty"], bool)
    assert run["machine"]["cpu_count"] >= 1 and "torch" not in str(run["machine"])
    assert run["machine"]["system"] == platform.system()
    assert run["started"] <= entry["started"] <= first["updated"]  # ISO times, UTC

    # a second run of another notebook keeps the first entry and its run, and names the store it opened
    folder = _tiny_notebook(tmp_path / "nbs")
    notebooks.run_all(folder=folder, parameters={"seed": 7}, progress=False)
    second = json.loads(path.read_text())
    assert list(second["notebooks"]) == ["00_metrics", "tiny"]
    assert second["notebooks"]["00_metrics"] == entry
    tiny = second["notebooks"]["tiny"]
    assert tiny["parameters"] == {"size": 1, "seed": 7} and tiny["run"] != entry["run"]
    assert tiny["feature_stores"] == ["features/toy-seed7-eGeMAPSv02-windowed-w1.00-h0.10"]
    assert set(second["runs"]) == {entry["run"], tiny["run"]}
    assert second["runs"][tiny["run"]]["command"]["folder"] == "nbs"

    # the same notebook again replaces its entry; a run no entry comes from any more is dropped
    notebooks.run_all(folder=folder, parameters={"seed": 8}, progress=False)
    third = json.loads(path.read_text())
    assert third["notebooks"]["tiny"]["parameters"]["seed"] == 8
    assert set(third["runs"]) == {entry["run"], third["notebooks"]["tiny"]["run"]}

    text = path.read_text()
    roots = [paths.PROJECT_ROOT, tmp_path, Path.home(), *isolated_dirs.values()]
    assert not _absolute_paths_in(text, roots), "the manifest names an absolute path of this machine"
    assert platform.node() not in _strings(third), "the manifest names this machine"


def test_failed_notebook_is_recorded_with_its_cell(tmp_path: Path, isolated_dirs: dict[str, Path]) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("size: int = 1  # a size")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("raise ValueError('no')")]
    nbformat.write(nb, folder / "broken.ipynb")
    with pytest.raises(notebooks.NotebookError, match="broken.ipynb failed in cell"):
        notebooks.run_all(folder=folder, progress=False)
    entry = notebooks.read_manifest()["notebooks"]["broken"]
    assert entry["status"] == "failed"
    assert nb.cells[entry["failed_cell"]].source == "raise ValueError('no')"  # the cell the error message names


def test_unreadable_manifest_gives_one_warning_and_a_new_manifest(isolated_dirs: dict[str, Path],
                                                                  capsys: pytest.CaptureFixture) -> None:
    path = notebooks.manifest_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    assert notebooks.read_manifest() == {}
    assert capsys.readouterr().err.startswith("warning: $EMOTOOLS_RESULTS_DIR/manifest.json: unreadable run manifest")
    run = {"id": "r1", "started": "2000-01-01T00:00:00Z"}
    notebooks.update_manifest("x", run, {"status": "ok"})
    manifest = notebooks.read_manifest()
    assert manifest["notebooks"] == {"x": {"run": "r1", "status": "ok"}}
    assert manifest["runs"] == {"r1": {"started": "2000-01-01T00:00:00Z"}}
