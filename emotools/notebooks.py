"""The notebook runner: papermill over ``notebooks/*.ipynb`` (the main job).

Each notebook's first code cell is tagged ``parameters`` and holds typed
literal assignments with a help comment::

    smoke: bool = False  # tiny configuration for tests

:func:`notebook_parameters` reads them with :mod:`ast` (never ``eval``), so
overrides are type-checked *before* a kernel starts and a wrong type fails
early with a message naming the parameter.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from . import paths

KERNEL_NAME = "emotools-python3"


class NotebookError(RuntimeError):
    """A notebook failed, or was asked to run with bad parameters."""


class ParameterError(NotebookError):
    """A parameter override is unknown or of the wrong type."""


@dataclass(frozen=True)
class Parameter:
    """One declared notebook parameter."""

    name: str
    type: str  # the annotation as written, e.g. "bool", "list[str]", "str | None"
    default: Any
    help: str


# --------------------------------------------------------------------- discovery


def list_notebooks(folder: Path | None = None) -> list[Path]:
    """All notebooks in ``folder`` (default ``notebooks/``) in name order."""
    folder = folder or paths.NOTEBOOKS_DIR
    return sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))


def select_notebooks(only: Sequence[str] | None, folder: Path | None = None) -> list[Path]:
    """Notebooks whose stem or file name is in ``only`` (all when empty)."""
    available = list_notebooks(folder)
    if not only:
        return available
    by_name = {p.stem: p for p in available} | {p.name: p for p in available}
    unknown = [n for n in only if n not in by_name]
    if unknown:
        names = ", ".join(p.stem for p in available)
        raise NotebookError(f"unknown notebook(s) {', '.join(unknown)}; available: {names}")
    chosen = {by_name[n] for n in only}
    return [p for p in available if p in chosen]


def _parameters_source(notebook: Path) -> str:
    try:
        nb = json.loads(notebook.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise NotebookError(f"{notebook}: cannot read notebook ({error})") from error
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            source = cell.get("source", "")
            return "".join(source) if isinstance(source, list) else source
    raise NotebookError(f"{notebook}: no code cell tagged 'parameters'")


def notebook_parameters(notebook: Path) -> dict[str, Parameter]:
    """The typed parameters declared in a notebook's ``parameters`` cell."""
    source = _parameters_source(notebook)
    lines = source.splitlines()
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise NotebookError(f"{notebook}: parameters cell is not valid Python ({error})") from error
    declared: dict[str, Parameter] = {}
    for node in tree.body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name) or node.value is None:
            raise NotebookError(
                f"{notebook}: parameters cell line {node.lineno}: only typed literal assignments "
                "like `name: int = 3  # help` are allowed"
            )
        try:
            default = ast.literal_eval(node.value)
        except ValueError as error:
            raise NotebookError(f"{notebook}: parameter {node.target.id!r} default is not a literal") from error
        line = lines[node.lineno - 1]
        comment = line.split("#", 1)[1].strip() if "#" in line else ""
        declared[node.target.id] = Parameter(node.target.id, ast.unparse(node.annotation), default, comment)
    return declared


# ------------------------------------------------------------------- type checks

_SCALARS: dict[str, type | tuple[type, ...]] = {
    "bool": bool,
    "int": int,
    "float": (int, float),
    "str": str,
}


def _matches(value: Any, annotation: str) -> bool:
    """Whether ``value`` fits the annotation (scalars, ``X | None``, list/tuple/dict)."""
    options = [a.strip() for a in annotation.split("|")]
    if len(options) > 1:
        return any(_matches(value, o) for o in options)
    annotation = options[0]
    if annotation == "None":
        return value is None
    if annotation in _SCALARS:
        if annotation in ("int", "float") and isinstance(value, bool):
            return False
        return isinstance(value, _SCALARS[annotation])
    head, _, inner = annotation.partition("[")
    inner = inner[:-1] if inner.endswith("]") else ""
    containers = {"list": list, "tuple": (list, tuple), "dict": dict}
    if head in containers:
        if not isinstance(value, containers[head]):
            return False
        if head in ("list", "tuple") and inner and "," not in inner:
            return all(_matches(v, inner) for v in value)
        return True
    return True  # annotations we do not understand are not enforced


def _from_text(text: str, annotation: str) -> Any:
    """Turn a command-line string into a value of the declared type."""
    options = [a.strip() for a in annotation.split("|")]
    if "None" in options and text in ("None", "none", "null"):
        return None
    if "bool" in options:
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
    if "str" in options and not any(o.startswith(("list", "dict", "tuple", "int", "float")) for o in options):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def check_parameters(notebook: Path, overrides: dict[str, Any], *, from_text: bool = False) -> dict[str, Any]:
    """Validate overrides against the declared parameters.

    Args:
        notebook: the notebook.
        overrides: ``{name: value}``; strings are converted first when
            ``from_text`` is set (command-line ``-p KEY VALUE``).
        from_text: convert string values according to the declared type.

    Returns:
        The overrides with converted values.

    Raises:
        ParameterError: an unknown name or a value of the wrong type, naming
            the notebook and the parameter.
    """
    declared = notebook_parameters(notebook)
    checked: dict[str, Any] = {}
    for name, value in overrides.items():
        if name not in declared:
            known = ", ".join(declared)
            raise ParameterError(f"{notebook.name}: unknown parameter {name!r} (declared: {known})")
        annotation = declared[name].type
        if from_text and isinstance(value, str):
            value = _from_text(value, annotation)
        if not _matches(value, annotation):
            raise ParameterError(
                f"{notebook.name}: parameter {name!r} expects {annotation}, got {type(value).__name__} {value!r}"
            )
        if annotation == "float" and isinstance(value, int):
            value = float(value)
        checked[name] = value
    return checked


# ------------------------------------------------------------------------ kernel


def ensure_kernel(name: str = KERNEL_NAME) -> str:
    """Register a Jupyter kernel for *this* interpreter (once) and return its name.

    The kernelspec is written under ``sys.prefix`` so every virtual
    environment gets its own, pointing at its own Python.
    """
    folder = Path(sys.prefix) / "share" / "jupyter" / "kernels" / name
    spec_file = folder / "kernel.json"
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    try:
        if json.loads(spec_file.read_text())["argv"] == argv:
            return name
    except (OSError, ValueError, KeyError):
        pass
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"argv": argv, "display_name": "Python 3 (emotools)", "language": "python"}
    spec_file.write_text(json.dumps(spec, indent=1))
    return name


# ------------------------------------------------------------------------ runner


def executed_path(notebook: Path) -> Path:
    """Where the executed copy of a notebook goes."""
    return paths.results_dir() / "notebooks" / notebook.name


def run_notebook(notebook: Path, parameters: dict[str, Any] | None = None, *, from_text: bool = False) -> Path:
    """Execute one notebook with papermill; return the executed copy's path.

    Raises:
        ParameterError: before execution, for a bad override.
        NotebookError: the notebook failed; names the cell and the error. The
            executed copy is kept for inspection.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    params = check_parameters(notebook, parameters or {}, from_text=from_text)
    output = executed_path(notebook)
    output.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=params,
            kernel_name=ensure_kernel(),
            cwd=str(paths.PROJECT_ROOT),
            progress_bar=False,
            log_output=False,
        )
    except PapermillExecutionError as error:
        raise NotebookError(
            f"{notebook.name} failed in cell {error.cell_index} (execution count {error.exec_count}): "
            f"{error.ename}: {error.evalue}\n  executed copy kept at {output}"
        ) from error
    return output


def run_all(
    only: Sequence[str] | None = None,
    *,
    smoke: bool = False,
    parameters: dict[str, Any] | None = None,
    from_text: bool = False,
    folder: Path | None = None,
) -> list[Path]:
    """Run the selected notebooks in name order (the main job).

    Parameter overrides apply to every notebook that declares them; ``smoke``
    sets ``smoke=True``. All overrides are checked before anything runs.
    A log of wall times goes to ``results/notebooks/run_log.json``.
    """
    from tqdm.auto import tqdm

    notebooks = select_notebooks(only, folder)
    if not notebooks:
        raise NotebookError("no notebooks to run")
    overrides = dict(parameters or {})
    if smoke:
        overrides["smoke"] = True
    plan: list[tuple[Path, dict[str, Any]]] = []
    for nb in notebooks:
        declared = notebook_parameters(nb)
        mine = {k: v for k, v in overrides.items() if k in declared}
        plan.append((nb, check_parameters(nb, mine, from_text=from_text)))
    unused = set(overrides) - {k for nb, _ in plan for k in notebook_parameters(nb)}
    if unused:
        raise ParameterError(f"parameter(s) {', '.join(sorted(unused))} declared by none of the selected notebooks")

    log_path = paths.results_dir() / "notebooks" / "run_log.json"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log: list[dict[str, Any]] = []
    outputs = []
    bar = tqdm(plan, desc="notebooks", unit="nb")
    for nb, params in bar:
        bar.set_postfix_str(nb.stem)
        start = time.perf_counter()
        status = "failed"
        try:
            outputs.append(run_notebook(nb, params))
            status = "ok"
        finally:
            log.append({"notebook": nb.name, "parameters": params, "status": status,
                        "seconds": round(time.perf_counter() - start, 1)})
            log_path.write_text(json.dumps(log, indent=1, default=str))
    return outputs


def parse_overrides(pairs: Iterable[Sequence[str]]) -> dict[str, str]:
    """``[("KEY", "VALUE"), ...]`` from ``-p KEY VALUE`` into a dict."""
    return {key: value for key, value in pairs}
