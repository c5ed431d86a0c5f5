"""The notebook runner, and every notebook run in its smoke configuration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from emotools import notebooks, paths

ALL = notebooks.list_notebooks()


def test_there_are_notebooks() -> None:
    assert any(p.stem == "00_metrics" for p in ALL)


@pytest.mark.parametrize("notebook", ALL, ids=[p.stem for p in ALL])
def test_parameters_are_typed_documented_and_have_smoke(notebook: Path) -> None:
    declared = notebooks.notebook_parameters(notebook)
    assert "smoke" in declared and declared["smoke"].type == "bool" and declared["smoke"].default is False
    for p in declared.values():
        assert p.help, f"{notebook.name}: parameter {p.name} has no help comment"


@pytest.mark.parametrize("notebook", ALL, ids=[p.stem for p in ALL])
def test_notebook_runs_in_smoke_mode(notebook: Path, isolated_dirs: dict[str, Path]) -> None:
    [out] = notebooks.run_all([notebook.stem], smoke=True)
    assert out == isolated_dirs["results"] / "notebooks" / notebook.name
    executed = nbformat.read(out, as_version=4)
    assert executed.cells and not any(
        o.get("output_type") == "error" for c in executed.cells for o in c.get("outputs", [])
    )
    assert list((isolated_dirs["figures"] / notebook.stem).glob("*.png")), "no figure written"
    log = json.loads((isolated_dirs["results"] / "notebooks" / "run_log.json").read_text())
    assert log[-1]["status"] == "ok" and log[-1]["parameters"]["smoke"] is True


def test_wrong_parameter_type_fails_before_execution(isolated_dirs: dict[str, Path]) -> None:
    with pytest.raises(notebooks.ParameterError, match="'seed' expects int, got str"):
        notebooks.run_all(["00_metrics"], parameters={"seed": "three"})
    with pytest.raises(notebooks.ParameterError, match="'smoke' expects bool"):
        notebooks.run_all(["00_metrics"], parameters={"smoke": 1})
    assert not (isolated_dirs["results"] / "notebooks" / "never.ipynb").exists()


def test_command_line_values_are_converted_by_declared_type() -> None:
    nb = paths.NOTEBOOKS_DIR / "00_metrics.ipynb"
    checked = notebooks.check_parameters(nb, {"seed": "3", "smoke": "true", "duration_s": "20"}, from_text=True)
    assert checked == {"seed": 3, "smoke": True, "duration_s": 20.0}
    with pytest.raises(notebooks.ParameterError, match="'seed' expects int"):
        notebooks.check_parameters(nb, {"seed": "3.5"}, from_text=True)
    with pytest.raises(notebooks.ParameterError, match="unknown parameter 'sead'"):
        notebooks.check_parameters(nb, {"sead": "3"}, from_text=True)


def test_cli_reports_bad_parameter_with_nonzero_exit(isolated_dirs: dict[str, Path]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "emotools", "run", "--only", "00_metrics", "-p", "seed", "abc"],
        capture_output=True, text=True, cwd=paths.PROJECT_ROOT,
    )
    assert result.returncode == 1
    assert "parameter 'seed' expects int" in result.stderr


def test_unknown_notebook_is_named() -> None:
    with pytest.raises(notebooks.NotebookError, match="unknown notebook.*nope"):
        notebooks.select_notebooks(["nope"])


def _write_notebook(path: Path, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("smoke: bool = False  # tiny configuration")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


def test_failing_notebook_names_cell_and_keeps_executed_copy(tmp_path: Path, isolated_dirs: dict[str, Path]) -> None:
    folder = tmp_path / "nbs"
    folder.mkdir()
    _write_notebook(folder / "a_ok.ipynb", ["x = 1"])
    _write_notebook(folder / "b_bad.ipynb", ["y = 2", "raise ValueError('broken on purpose')", "z = 3"])
    _write_notebook(folder / "c_never.ipynb", ["w = 4"])
    with pytest.raises(notebooks.NotebookError) as info:
        notebooks.run_all(folder=folder)
    message = str(info.value)
    assert "b_bad.ipynb failed in cell" in message and "ValueError: broken on purpose" in message
    executed = isolated_dirs["results"] / "notebooks" / "b_bad.ipynb"
    assert executed.is_file()
    assert (isolated_dirs["results"] / "notebooks" / "a_ok.ipynb").is_file()
    assert not (isolated_dirs["results"] / "notebooks" / "c_never.ipynb").exists()
    log = json.loads((isolated_dirs["results"] / "notebooks" / "run_log.json").read_text())
    assert [e["status"] for e in log] == ["ok", "failed"]


def test_parameters_cell_must_hold_typed_literals(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("import os\nsmoke: bool = False  # x")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(notebooks.NotebookError, match="only typed literal assignments"):
        notebooks.notebook_parameters(path)


def test_kernel_points_at_this_interpreter() -> None:
    name = notebooks.ensure_kernel()
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(name)
    assert spec.argv[0] == sys.executable
