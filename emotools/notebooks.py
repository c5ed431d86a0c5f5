"""The notebook runner: papermill over ``notebooks/*.ipynb`` (the main job).

Each notebook's first code cell is tagged ``parameters`` and holds typed
literal assignments with a help comment::

    epochs: int = 40  # maximum epochs (early stopping on dev CCC) [≥ 1]

:func:`notebook_parameters` reads them with :mod:`ast` (never ``eval``), so
overrides are type-checked *before* a kernel starts and a wrong type fails
early with a message naming the parameter. A help comment may end with a
range, one or more bounds in brackets, checked the same way (on every item
of a list)::

    jobs: int = 0  # worker processes (0: all cores) [≥ 0]
    share: float = 0.5  # fraction of the data [> 0, ≤ 1]

Smoke runs: a notebook declares its tiny configuration as a *smoke preset*,
parameter values in its metadata (``"emotools": {"smoke": {"epochs": 2}}``,
see :func:`smoke_preset`). ``python -m emotools run --smoke`` (or
``run_all(smoke=True)``) passes each notebook its preset, and explicit
``-p KEY VALUE`` overrides win over it: ``--smoke -p epochs 3`` trains 3
epochs on the smoke corpus. There is no ``smoke`` parameter: a notebook
never overrides its own parameters. Run by ``papermill`` alone, a notebook
gets its defaults; give the preset's values with ``-p`` (``python -m emotools
run --list`` prints every notebook's preset).
"""

from __future__ import annotations

import ast
import contextlib
import json
import operator
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import paths
from .errors import EmotoolsError
from .fileio import write_text
from .progress import BATCH_ENV

KERNEL_NAME = "emotools-python3"


class NotebookError(EmotoolsError, RuntimeError):
    """A notebook failed, or was asked to run with bad parameters; ``(subject, reason)`` like every error."""


class ParameterError(NotebookError):
    """A parameter override is unknown, of the wrong type or out of its declared range."""


class NotebookInterrupted(NotebookError):
    """The run was interrupted (Ctrl-C) while a notebook was executing."""


#: Comparison operators a range may use, e.g. ``[≥ 0]`` or ``[> 0, ≤ 1]``. Notebooks write ``≥`` / ``≤``:
#: papermill skips a parameter line holding a second ``=`` (``>=``), so it would not know that parameter.
_BOUND_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
}
_SPELLINGS = {"≥": ">=", "≤": "<="}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_BOUND = rf"(>=|<=|≥|≤|>|<)\s*({_NUMBER})"
_RANGE = re.compile(rf"\[\s*({_BOUND}(?:\s*,\s*{_BOUND})*)\s*\]\s*$")


@dataclass(frozen=True)
class Parameter:
    """One declared notebook parameter."""

    name: str
    type: str  # the annotation as written, e.g. "bool", "list[str]", "str | None"
    default: Any
    help: str
    bounds: tuple[tuple[str, float], ...] = ()  # e.g. ((">=", 0.0),) from a trailing "[≥ 0]"

    def range_text(self) -> str:
        """The range as declared, e.g. ``>= 0, <= 1``."""
        return ", ".join(f"{op} {limit:g}" for op, limit in self.bounds)

    def in_range(self, value: Any) -> bool:
        """Whether ``value`` (each item of a list or tuple; None passes) meets every bound."""
        if isinstance(value, (list, tuple)):
            return all(self.in_range(v) for v in value)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return True
        return all(_BOUND_OPERATORS[op](value, limit) for op, limit in self.bounds)


def parse_range(comment: str) -> tuple[tuple[str, float], ...]:
    """The bounds of a help comment's trailing range, e.g. ``"... [> 0, ≤ 1]"``; () when none (``≥`` reads ``>=``)."""
    match = _RANGE.search(comment)
    if not match:
        return ()
    return tuple((_SPELLINGS.get(op, op), float(limit)) for op, limit in re.findall(_BOUND, match.group(1)))


# --------------------------------------------------------------------- discovery


def list_notebooks(folder: str | os.PathLike | None = None) -> list[Path]:
    """All notebooks in ``folder`` (default ``notebooks/``) in name order."""
    folder = Path(folder or paths.NOTEBOOKS_DIR)
    return sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))


def select_notebooks(only: Sequence[str] | None, folder: str | os.PathLike | None = None) -> list[Path]:
    """Notebooks whose stem or file name is in ``only`` (all when empty)."""
    available = list_notebooks(folder)
    if not only:
        return available
    by_name = {p.stem: p for p in available} | {p.name: p for p in available}
    unknown = [n for n in only if n not in by_name]
    if unknown:
        names = ", ".join(p.stem for p in available)
        raise NotebookError(paths.shown(folder or paths.NOTEBOOKS_DIR),
                            f"unknown notebook(s) {', '.join(unknown)}; available: {names}")
    chosen = {by_name[n] for n in only}
    return [p for p in available if p in chosen]


def _parameters_source(notebook: Path) -> str:
    try:
        nb = json.loads(notebook.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise NotebookError(notebook, f"cannot read notebook ({error})") from error
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            source = cell.get("source", "")
            return "".join(source) if isinstance(source, list) else source
    raise NotebookError(notebook, "no code cell tagged 'parameters'")


def notebook_parameters(notebook: str | os.PathLike) -> dict[str, Parameter]:
    """The typed parameters declared in a notebook's ``parameters`` cell.

    Raises:
        NotebookError: no such cell, not typed literals, or a default outside its declared range.
    """
    notebook = Path(notebook)
    source = _parameters_source(notebook)
    lines = source.splitlines()
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise NotebookError(notebook, f"parameters cell is not valid Python ({error})") from error
    declared: dict[str, Parameter] = {}
    for node in tree.body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name) or node.value is None:
            raise NotebookError(
                notebook, f"parameters cell line {node.lineno}: only typed literal assignments "
                "like `name: int = 3  # help` are allowed"
            )
        try:
            default = ast.literal_eval(node.value)
        except ValueError as error:
            raise NotebookError(notebook, f"parameter {node.target.id!r} default is not a literal") from error
        line = lines[node.lineno - 1]
        comment = line.split("#", 1)[1].strip() if "#" in line else ""
        parameter = Parameter(node.target.id, ast.unparse(node.annotation), default, comment, parse_range(comment))
        if not parameter.in_range(default):
            raise NotebookError(notebook, f"parameter {parameter.name!r} default {default!r} is outside its "
                                          f"declared range [{parameter.range_text()}]")
        declared[node.target.id] = parameter
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


def check_parameters(notebook: str | os.PathLike, overrides: dict[str, Any], *, from_text: bool = False
                     ) -> dict[str, Any]:
    """Validate overrides against the declared parameters.

    Args:
        notebook: the notebook.
        overrides: ``{name: value}``; strings are converted first when
            ``from_text`` is set (command-line ``-p KEY VALUE``).
        from_text: convert string values according to the declared type.

    Returns:
        The overrides with converted values.

    Raises:
        ParameterError: an unknown name, a value of the wrong type or outside
            the declared range, naming the notebook and the parameter.
    """
    notebook = Path(notebook)
    declared = notebook_parameters(notebook)
    checked: dict[str, Any] = {}
    for name, value in overrides.items():
        if name not in declared:
            known = ", ".join(declared)
            raise ParameterError(notebook.name, f"unknown parameter {name!r} (declared: {known})")
        annotation = declared[name].type
        if from_text and isinstance(value, str):
            value = _from_text(value, annotation)
        if not _matches(value, annotation):
            raise ParameterError(
                notebook.name, f"parameter {name!r} expects {annotation}, got {type(value).__name__} {value!r}"
            )
        if not declared[name].in_range(value):
            raise ParameterError(
                notebook.name, f"parameter {name!r} must be {declared[name].range_text()}, got {value!r}"
            )
        if annotation == "float" and isinstance(value, int):
            value = float(value)
        checked[name] = value
    return checked


# ------------------------------------------------------------------ smoke presets

#: Where a notebook declares its smoke preset: ``metadata["emotools"]["smoke"]``.
SMOKE_METADATA = ("emotools", "smoke")


def smoke_preset(notebook: str | os.PathLike) -> dict[str, Any]:
    """The notebook's smoke preset: parameter values of a tiny configuration, checked like overrides.

    Declared in the notebook's metadata (``{"emotools": {"smoke": {"epochs": 2,
    ...}}}``; :data:`SMOKE_METADATA`), beside the parameters it sets; ``{}``
    when the notebook declares none (its defaults are already small).

    Raises:
        NotebookError: unreadable notebook, or a preset that is not a mapping.
        ParameterError: the preset names an undeclared parameter or a value of the wrong type or range.
    """
    notebook = Path(notebook)
    try:
        metadata = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, json.JSONDecodeError) as error:
        raise NotebookError(notebook, f"cannot read notebook ({error})") from error
    section, key = SMOKE_METADATA
    preset = metadata.get(section, {}).get(key, {})
    if not isinstance(preset, dict):
        raise NotebookError(notebook, f"metadata {section}.{key} must map parameter names to values, got {preset!r}")
    return check_parameters(notebook, preset)


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


def executed_path(notebook: str | os.PathLike) -> Path:
    """Where the executed copy of a notebook goes."""
    return paths.results_dir() / "notebooks" / Path(notebook).name


class CellProgress:
    """Cell N of M and the elapsed time of one executing notebook (a bar on stderr).

    Its methods are nbclient's ``on_notebook_start`` and ``on_cell_start``
    hooks; on a terminal a ticker redraws the elapsed time every second, so a
    long cell does not look like a hang.
    """

    def __init__(self, label: str, *, enabled: bool = True) -> None:
        from .progress import tqdm

        self.bar = tqdm(total=0, desc=label, unit="cell", file=sys.stderr, disable=not enabled, mininterval=0,
                        miniters=1, bar_format="{desc}: cell {n}/{total} |{bar:20}| {elapsed}")
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if enabled and sys.stderr.isatty():
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self.bar.refresh()

    def on_notebook_start(self, notebook: Any, **_: Any) -> None:
        """Count the code cells that will run (papermill's injected parameters included)."""
        self.bar.total = sum(1 for c in notebook.cells if c.cell_type == "code" and c.source.strip())
        self.bar.refresh()

    def on_cell_start(self, cell: Any, **_: Any) -> None:
        """Advance to the cell about to run (markdown and empty cells do not count)."""
        if cell.cell_type == "code" and cell.source.strip():
            self.bar.update(1)

    @property
    def position(self) -> str:
        """``"cell N of M"``: where the notebook is (or that its kernel was still starting)."""
        return f"cell {self.bar.n} of {self.bar.total}" if self.bar.n else "before its first cell"

    def close(self) -> None:
        """Stop the ticker and leave the bar's final line."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        self.bar.close()


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables (inherited by kernels started inside), restore them afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _kernel_config() -> Any:
    """IPC transport: local sockets, so the kernel has nothing to warn about (no TCP in plain text).

    The sockets get a unique absolute name in the temporary folder (jupyter_client's
    default, ``kernel-ipc-N``, is relative to the working directory, shared by
    every run in the repository); jupyter_client removes them with the kernel.
    """
    from traitlets.config import Config

    if os.name != "posix":
        return Config()
    name = Path(tempfile.gettempdir()) / f"emotools-kernel-{uuid.uuid4().hex[:12]}"
    return Config({"KernelManager": {"transport": "ipc", "ip": str(name)}})


def run_notebook(notebook: str | os.PathLike, parameters: dict[str, Any] | None = None, *, from_text: bool = False,
                 progress: CellProgress | None = None) -> Path:
    """Execute one notebook with papermill; return the executed copy's path.

    The kernel runs with the repository root as working directory and
    :data:`~emotools.progress.BATCH_ENV` set, so progress bars inside it
    print one line each; the matplotlib backend is the kernel's own (inline).

    Raises:
        ParameterError: before execution, for a bad override.
        NotebookError: the notebook failed; names the cell and the error. The
            executed copy is kept for inspection.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    notebook = Path(notebook)
    params = check_parameters(notebook, parameters or {}, from_text=from_text)
    output = executed_path(notebook)
    output.parent.mkdir(parents=True, exist_ok=True)
    hooks = ({"on_notebook_start": progress.on_notebook_start, "on_cell_start": progress.on_cell_start}
             if progress else {})
    try:
        with _environment(**{BATCH_ENV: "1"}):
            papermill.execute_notebook(
                str(notebook),
                str(output),
                parameters=params,
                kernel_name=ensure_kernel(),
                language="python",  # the kernel's, whatever the notebook's metadata says (or lacks)
                cwd=str(paths.PROJECT_ROOT),
                progress_bar=False,
                log_output=False,
                config=_kernel_config(),
                shutdown_kernel="immediate",  # also on Ctrl-C: no half-shut kernel printing tracebacks
                **hooks,
            )
    except PapermillExecutionError as error:
        failure = NotebookError(
            f"{notebook.name} failed in cell {error.cell_index} (execution count {error.exec_count})",
            f"{error.ename}: {error.evalue}\n  executed copy kept at {paths.shown(output)}",
        )
        failure.cell = error.cell_index  # for the run manifest
        raise failure from error
    return output


def _plan(notebooks: list[Path], overrides: dict[str, Any], from_text: bool, smoke: bool
          ) -> list[tuple[Path, dict[str, Any]]]:
    """Each notebook with its parameters (its smoke preset, then the overrides it declares), all checked first."""
    plan = []
    for nb in notebooks:
        declared = notebook_parameters(nb)
        mine = check_parameters(nb, {k: v for k, v in overrides.items() if k in declared}, from_text=from_text)
        plan.append((nb, (smoke_preset(nb) if smoke else {}) | mine))
    unused = set(overrides) - {k for nb in notebooks for k in notebook_parameters(nb)}
    if unused:
        raise ParameterError(f"parameter(s) {', '.join(sorted(unused))}", "declared by none of the selected notebooks")
    return plan


def run_all(
    only: Sequence[str] | None = None,
    *,
    smoke: bool = False,
    parameters: dict[str, Any] | None = None,
    from_text: bool = False,
    folder: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[Path]:
    """Run the selected notebooks in name order (the main job).

    Parameter overrides apply to every notebook that declares them. With
    ``smoke`` each notebook runs with its smoke preset (:func:`smoke_preset`)
    and the overrides on top: ``parameters={"epochs": 3}, smoke=True`` trains
    3 epochs on the smoke corpus. All parameters are checked before anything
    runs. A log of parameters and wall times goes to
    ``results/notebooks/run_log.json``, and each notebook's entry in the run
    manifest ``results/manifest.json`` (:func:`update_manifest`) is replaced
    as soon as it ends; with ``progress``, stderr shows
    ``[i/n] notebook: cell N/M  elapsed``.

    Raises:
        ParameterError: a bad override or preset, before any kernel starts.
        NotebookError: a notebook failed (the run stops there).
        NotebookInterrupted: Ctrl-C; names the notebook and the cell it was in.
    """
    notebooks = select_notebooks(only, folder)
    if not notebooks:
        raise NotebookError(paths.shown(folder or paths.NOTEBOOKS_DIR), "no notebooks to run")
    plan = _plan(notebooks, dict(parameters or {}), from_text, smoke)
    from .features.store import STORE_LOG_ENV

    run = run_facts(only=only, smoke=smoke, overrides=dict(parameters or {}), folder=folder)
    log_path = paths.results_dir() / "notebooks" / "run_log.json"
    log: list[dict[str, Any]] = []
    outputs = []
    for i, (nb, params) in enumerate(plan, 1):
        bar = CellProgress(f"[{i}/{len(plan)}] {nb.stem}", enabled=progress)
        started, start, load_start = _utc_now(), time.perf_counter(), _load_average()
        status, failed_cell = "failed", None
        handle, name = tempfile.mkstemp(prefix="emotools-stores-", suffix=".txt")
        os.close(handle)  # the stores append to it by name
        store_log = Path(name)
        try:
            with _environment(**{STORE_LOG_ENV: str(store_log)}):
                outputs.append(run_notebook(nb, params, progress=bar))
            status = "ok"
        except KeyboardInterrupt:
            status, failed_cell = "interrupted", bar.position
            raise NotebookInterrupted(
                "interrupted", f"{nb.name} in {bar.position} after {time.perf_counter() - start:.0f} s "
                               f"(partial copy: {paths.shown(executed_path(nb))})"
            ) from None
        except NotebookError as error:
            failed_cell = getattr(error, "cell", None)
            raise
        finally:
            bar.close()
            seconds = round(time.perf_counter() - start, 1)
            log.append({"notebook": nb.name, "smoke": smoke, "parameters": params, "status": status,
                        "seconds": seconds})
            write_text(log_path, json.dumps(log, indent=1, default=str))
            update_manifest(nb.stem, run, {
                "started": started, "seconds": seconds, "load_average": {"start": load_start, "end": _load_average()},
                "status": status, "failed_cell": failed_cell,
                "smoke": smoke, "parameters": _as_executed(nb, params), "feature_stores": _stores_opened(store_log),
            })
            store_log.unlink(missing_ok=True)
    return outputs


# ---------------------------------------------------------------------- run manifest

MANIFEST_FORMAT = "emotools.run-manifest"
MANIFEST_PACKAGES: tuple[str, ...] = ("emotools", "torch", "numpy", "pandas", "opensmile", "papermill")


def manifest_path() -> Path:
    """``results/manifest.json``: what produced the committed results, one entry per notebook."""
    return paths.results_dir() / "manifest.json"


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages the results depend on, and Python's (None: not installed)."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in MANIFEST_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions | {"python": platform.python_version()}


def git_state(root: str | os.PathLike = paths.PROJECT_ROOT) -> dict[str, Any]:
    """The checkout's revision and whether its sources differ from it (``results/``, ``figures/`` are outputs
    and do not count); None for both outside a git checkout or without git."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", os.fspath(root), *args], capture_output=True, text=True, timeout=60)

    try:
        head = git("rev-parse", "HEAD")
        status = git("status", "--porcelain", "--", ".", ":!results", ":!figures")
    except (OSError, subprocess.TimeoutExpired):
        return {"revision": None, "dirty": None}
    if head.returncode or status.returncode:
        return {"revision": None, "dirty": None}
    return {"revision": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def _load_average() -> list[float]:
    """The machine's 1-, 5- and 15-minute load averages: a wall time means little without them ([] where unknown)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def machine_facts() -> dict[str, Any]:
    """Cores and the operating system (no host name, no paths).

    The runner does not import torch (the kernels and their workers do): a
    notebook's device and threads are in its parameters and its output.
    """
    return {"cpu_count": os.cpu_count(), "system": platform.system(), "release": platform.release(),
            "machine": platform.machine()}


def run_facts(*, only: Sequence[str] | None, smoke: bool, overrides: dict[str, Any],
              folder: str | os.PathLike | None) -> dict[str, Any]:
    """What one ``run`` shares across its notebooks: the command's options, git, packages, machine."""
    started = _utc_now()
    return {"id": f"{started}-{uuid.uuid4().hex[:6]}", "started": started,
            "command": {"only": list(only or []), "smoke": smoke, "parameters": overrides,
                        "folder": Path(folder).name if folder else None},
            "git": git_state(), "packages": package_versions(), "machine": machine_facts()}


def _as_executed(notebook: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Every declared parameter with the value the notebook ran with (defaults, preset, overrides)."""
    return {name: p.default for name, p in notebook_parameters(notebook).items()} | params


def _stores_opened(log: Path) -> list[str]:
    """The feature stores a notebook opened (the runner's store log), as folders relative to the data folder:
    their names are the corpus and feature keys (``features/ground_truth-default-seed0-<spec slug>``)."""
    try:
        lines = log.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    data = paths.data_dir()
    folders = (Path(line).resolve() for line in lines if line.strip())
    return list(dict.fromkeys(f.relative_to(data).as_posix() if f.is_relative_to(data) else f.name for f in folders))


def read_manifest(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The run manifest (empty when there is none; one warning line and empty when it cannot be read)."""
    path = Path(path or manifest_path())
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"not a {MANIFEST_FORMAT} file")
    except (OSError, ValueError) as error:
        print(f"warning: {paths.shown(path)}: unreadable run manifest ({error}); starting a new one",
              file=sys.stderr)
        return {}
    return manifest


def update_manifest(notebook: str, run: dict[str, Any], entry: dict[str, Any]) -> Path:
    """Replace ``notebook``'s entry in the run manifest, keep the others' (merged), write it atomically.

    Each entry names its ``run``; ``runs`` keeps the facts (command, git,
    packages, machine) of every run some entry still comes from.
    """
    manifest = read_manifest()
    notebooks = {**manifest.get("notebooks", {}), notebook: {"run": run["id"], **entry}}
    runs = {**manifest.get("runs", {}), run["id"]: {k: v for k, v in run.items() if k != "id"}}
    used = {e.get("run") for e in notebooks.values()}
    manifest = {"format": MANIFEST_FORMAT, "version": 1, "updated": _utc_now(),
                "notebooks": dict(sorted(notebooks.items())),
                "runs": {k: v for k, v in sorted(runs.items()) if k in used}}
    return write_text(manifest_path(), json.dumps(manifest, indent=1, default=str) + "\n")


def parse_overrides(pairs: Iterable[Sequence[str]]) -> dict[str, str]:
    """``[("KEY", "VALUE"), ...]`` from ``-p KEY VALUE`` into a dict."""
    return {key: value for key, value in pairs}
