"""The notebook runner, and every notebook run in its smoke configuration."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from emotools import notebooks, paths, pipeline
from emotools.original import ORIGINAL_ARCHITECTURES, original_results

ALL = notebooks.list_notebooks()
DATASET_NOTEBOOKS = ("LibriSpeech", "VoxCeleb1", "VoxCeleb2")


def test_there_are_notebooks() -> None:
    assert any(p.stem == "00_metrics" for p in ALL)


@pytest.mark.parametrize("notebook", ALL, ids=[p.stem for p in ALL])
def test_parameters_are_typed_documented_and_smoke_is_a_preset(notebook: Path) -> None:
    declared = notebooks.notebook_parameters(notebook)
    assert "smoke" not in declared, "smoke settings are the notebook's preset, not a parameter"
    for p in declared.values():
        assert p.help, f"{notebook.name}: parameter {p.name} has no help comment"
    preset = notebooks.smoke_preset(notebook)  # checked like -p overrides: declared names, types, ranges
    assert set(preset) <= set(declared)
    assert all(preset[k] != declared[k].default for k in preset), "a preset value equal to the default"
    if "epochs" in declared:  # every notebook that trains is made tiny
        assert preset["epochs"] < declared["epochs"].default
    code = [c.source for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
    names = {node.id for source in code for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}
    assert "smoke" not in names, "a code cell still overrides parameters for smoke runs"


def test_smoke_preset_is_checked_like_overrides(tmp_path: Path) -> None:
    path = tmp_path / "p.ipynb"
    params = "epochs: int = 40  # maximum epochs [>= 1]\nsize: str = 'default'  # corpus preset"
    _write_notebook(path, [], params=params, preset={"epochs": 2, "size": "smoke"})
    assert notebooks.smoke_preset(str(path)) == {"epochs": 2, "size": "smoke"}
    _write_notebook(path, [], params=params)
    assert notebooks.smoke_preset(path) == {}
    for preset, error, message in [
        ({"epochs": "two"}, notebooks.ParameterError, "p.ipynb: parameter 'epochs' expects int, got str 'two'"),
        ({"epochs": 0}, notebooks.ParameterError, "p.ipynb: parameter 'epochs' must be >= 1, got 0"),
        ({"epoch": 2}, notebooks.ParameterError, "p.ipynb: unknown parameter 'epoch'"),
        (["epochs", 2], notebooks.NotebookError, "metadata emotools.smoke must map parameter names to values"),
    ]:
        _write_notebook(path, [], params=params, preset=preset)
        with pytest.raises(error, match=re.escape(message)):
            notebooks.smoke_preset(path)


@pytest.mark.slow  # starts Jupyter kernels
def test_explicit_parameters_win_over_the_smoke_preset(tmp_path: Path, isolated_dirs: dict[str, Path]) -> None:
    folder = tmp_path / "nbs"
    folder.mkdir()
    params = "epochs: int = 40  # maximum epochs [>= 1]\nsize: str = 'default'  # corpus preset"
    _write_notebook(folder / "p.ipynb", ["print(epochs, size)"], params=params, preset={"epochs": 2, "size": "smoke"})
    runs = {"smoke": ({}, True, "2 smoke"), "smoke, -p epochs 3": ({"epochs": "3"}, True, "3 smoke"),
            "defaults": ({}, False, "40 default"), "-p epochs 3": ({"epochs": "3"}, False, "3 default")}
    for name, (overrides, smoke, printed) in runs.items():
        [out] = notebooks.run_all(folder=folder, smoke=smoke, parameters=overrides, from_text=True, progress=False)
        assert _stream_lines(nbformat.read(out, as_version=4)) == [printed], name
        log = json.loads((isolated_dirs["results"] / "notebooks" / "run_log.json").read_text())
        assert log[-1]["smoke"] is smoke


@pytest.mark.slow
def test_cli_smoke_with_epochs_3_trains_3_epochs_on_the_smoke_corpus(tmp_path: Path, isolated_dirs: dict[str, Path],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results"  # fresh: no cached grid cell from another epoch count
    monkeypatch.setenv("EMOTOOLS_RESULTS_DIR", str(results))
    result = subprocess.run(
        [sys.executable, "-m", "emotools", "run", "--only", "01_ground_truth", "--smoke", "--no-progress",
         "-p", "epochs", "3", "-p", "architectures", '["mlp"]'],
        capture_output=True, text=True, cwd=paths.PROJECT_ROOT, timeout=1200,
    )
    assert result.returncode == 0, result.stderr
    [entry] = json.loads((results / "notebooks" / "run_log.json").read_text())
    preset = notebooks.smoke_preset(paths.NOTEBOOKS_DIR / "01_ground_truth.ipynb")
    assert preset["epochs"] != 3 and preset["corpus_size"] == "smoke"  # -p must override the preset, not match it
    assert entry["parameters"] == {**preset, "epochs": 3, "architectures": ["mlp"]}
    [history] = (results / "checkpoints" / "01_ground_truth-smoke").rglob("history.csv")
    assert sorted(pd.read_csv(history)["epoch"]) == [1, 2, 3]


def _outputs(executed: nbformat.NotebookNode) -> list[dict]:
    return [o for c in executed.cells for o in c.get("outputs", [])]


def _output_text(output: dict) -> str:
    """Everything an output shows as text (stream text, tracebacks, text/* data)."""
    data = output.get("data", {})
    parts = [output.get("text", ""), "\n".join(output.get("traceback", []))]
    parts += [v if isinstance(v, str) else "".join(v) for k, v in data.items() if k.startswith("text/")]
    return "\n".join(parts)


@pytest.mark.slow
@pytest.mark.parametrize("notebook", ALL, ids=[p.stem for p in ALL])
def test_notebook_runs_in_smoke_mode(notebook: Path, isolated_dirs: dict[str, Path]) -> None:
    [out] = notebooks.run_all([notebook.stem], smoke=True)
    assert out == isolated_dirs["results"] / "notebooks" / notebook.name
    executed = nbformat.read(out, as_version=4)
    outputs = _outputs(executed)
    assert executed.cells and not any(o.get("output_type") == "error" for o in outputs)
    saved = list((isolated_dirs["figures"] / notebook.stem).glob("*.png"))
    assert saved, "no figure written"
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= len(saved), f"{len(saved)} figures saved, {len(images)} shown inline"
    log = json.loads((isolated_dirs["results"] / "notebooks" / "run_log.json").read_text())
    assert log[-1]["status"] == "ok" and log[-1]["smoke"] is True
    assert log[-1]["parameters"] == notebooks.smoke_preset(notebook)
    text = "\n".join(_output_text(o) for o in outputs)
    assert "TqdmWarning" not in text and "IProgress" not in text
    assert not [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    for root in {paths.PROJECT_ROOT, *isolated_dirs.values()}:
        assert str(root) not in text, f"an output names the absolute path {root}"
    if notebook.stem in DATASET_NOTEBOOKS:  # opens with the original protocol beside its published numbers
        results = isolated_dirs["results"]
        flaws = pd.read_csv(results / f"{notebook.stem}_flaws.csv")
        assert list(dict.fromkeys(flaws["step"])) == [step for step, _ in pipeline.FLAW_STEPS]
        assert set(flaws["architecture"]) <= set(ORIGINAL_ARCHITECTURES) and flaws["ccc"].notna().all()
        ours = pd.read_csv(results / f"{notebook.stem}_original.csv")
        assert set(ours["architecture"]) == set(notebooks.smoke_preset(notebook)["original_architectures"])
        report = (results / f"{notebook.stem}.md").read_text()
        published = original_results(notebook.stem.lower())
        tdnn = published[published["model"] == "TDNN"]["mse"].iloc[0]
        assert re.search(rf"\|\s*{tdnn:.4f}\s*\|", report)  # the original's TDNN MSE (saturated sigmoid), beside ours
        assert "## Fix one flaw at a time" in report and "## Random-label controls" in report


def _stream_lines(executed: nbformat.NotebookNode) -> list[str]:
    return [line for o in _outputs(executed) if o.get("output_type") == "stream" for line in o["text"].splitlines()]


@pytest.mark.slow  # starts Jupyter kernels
def test_progress_bars_leave_one_line_each_in_executed_copy(tmp_path: Path, isolated_dirs: dict[str, Path]) -> None:
    folder = tmp_path / "nbs"
    folder.mkdir()
    _write_notebook(folder / "bars.ipynb", [
        "from emotools.progress import tqdm\n"
        "for _ in tqdm(range(300), desc='outer', mininterval=0):\n"
        "    for _ in tqdm(range(3), desc='inner', leave=False, mininterval=0):\n"
        "        pass\n"
        "with tqdm(total=50, desc='manual', mininterval=0) as bar:\n"
        "    for _ in range(50):\n"
        "        bar.update()",
    ])
    [out] = notebooks.run_all(folder=folder)
    lines = [line.lstrip("\r") for line in _stream_lines(nbformat.read(out, as_version=4))]
    assert len(lines) == 2, lines
    assert lines[0].startswith("outer: 100%") and "300/300" in lines[0]
    assert lines[1].startswith("manual: 100%") and "50/50" in lines[1]


@pytest.mark.slow  # starts Jupyter kernels
def test_figures_are_shown_inline_once_per_savefig(tmp_path: Path, isolated_dirs: dict[str, Path]) -> None:
    folder = tmp_path / "nbs"
    folder.mkdir()
    _write_notebook(folder / "figs.ipynb", [
        "import matplotlib.pyplot as plt\nfrom emotools import plots",
        "fig, ax = plt.subplots(figsize=(4, 3))\nax.plot([0, 1], [1, 0])\n"
        "plots.savefig(fig, 'line', notebook='figs_test')",
        "for k in range(2):\n    fig, ax = plt.subplots(figsize=(2, 2))\n    ax.bar([0], [k])\n"
        "    plots.savefig(fig, f'bar{k}', notebook='figs_test', formats=('pdf',))\n    plt.close(fig)",
        "import matplotlib\nprint(matplotlib.get_backend())",
    ])
    [out] = notebooks.run_all(folder=folder)
    cells = nbformat.read(out, as_version=4).cells
    per_cell = [sum("image/png" in o.get("data", {}) for o in c.get("outputs", [])) for c in cells]
    assert per_cell[2:4] == [1, 2], per_cell
    assert cells[2].outputs[-1]["data"]["text/plain"] == (
        "saved $EMOTOOLS_FIGURES_DIR/figs_test/line.png, $EMOTOOLS_FIGURES_DIR/figs_test/line.pdf")
    assert "inline" in cells[4].outputs[0]["text"], "the runner replaced the kernel's inline backend"
    assert (isolated_dirs["figures"] / "figs_test" / "line.png").is_file()
    assert (isolated_dirs["figures"] / "figs_test" / "bar1.pdf").is_file()


@pytest.fixture()
def empty_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A results folder of its own, so a test can see that nothing was written into it."""
    folder = tmp_path / "results"
    monkeypatch.setenv("EMOTOOLS_RESULTS_DIR", str(folder))
    return folder


@pytest.mark.parametrize(("notebook", "parameters", "message"), [
    ("00_metrics", {"seed": "three"}, "'seed' expects int, got str"),
    ("00_metrics", {"seed": True}, "'seed' expects int, got bool True"),
    ("00_metrics", {"duration_s": -60.0}, "'duration_s' must be > 0, got -60.0"),
    ("01_ground_truth", {"jobs": -1}, "'jobs' must be >= 0, got -1"),
    ("01_ground_truth", {"seeds": [0, -2]}, r"'seeds' must be >= 0, got \[0, -2\]"),
])
def test_bad_parameter_fails_before_any_kernel_starts(notebook: str, parameters: dict, message: str,
                                                      empty_results: Path) -> None:
    with pytest.raises(notebooks.ParameterError, match=message):
        notebooks.run_all([notebook], parameters=parameters)
    assert not empty_results.exists(), "the runner wrote results before refusing the parameters"


def test_ranges_are_read_from_the_end_of_help_comments(tmp_path: Path) -> None:
    assert notebooks.parse_range("worker processes (0: all cores) [>= 0]") == ((">=", 0.0),)
    assert notebooks.parse_range("a share [> 0, <= 1]") == ((">", 0.0), ("<=", 1.0))
    assert notebooks.parse_range("knob values ([]: default config)") == ()
    assert notebooks.parse_range("offset [>= -1.5e3] in seconds") == ()  # not at the end: plain help text
    assert notebooks.parse_range("a share [> 0, ≤ 1]") == ((">", 0.0), ("<=", 1.0))  # the notebooks' spelling
    assert notebooks.parse_range("epochs [≥ 1]") == ((">=", 1.0),)
    declared = notebooks.notebook_parameters(paths.NOTEBOOKS_DIR / "01_ground_truth.ipynb")
    assert declared["jobs"].bounds == ((">=", 0.0),) and declared["corpus_size"].bounds == ()
    assert declared["jobs"].in_range(0) and not declared["jobs"].in_range(-1)
    path = tmp_path / "x.ipynb"
    _write_notebook(path, [], params="share: float = 1.5  # a share [> 0, <= 1]")
    with pytest.raises(notebooks.NotebookError, match="'share' default 1.5 is outside its declared range"):
        notebooks.notebook_parameters(str(path))


def test_papermill_sees_every_declared_parameter() -> None:
    # papermill skips a parameter line with a second "=" (a range written ">="): it would warn
    # "Passed unknown parameter" and its own inspection would miss the parameter.
    import papermill

    for path in notebooks.select_notebooks(None, None):
        declared = notebooks.notebook_parameters(path)
        seen = papermill.inspect_notebook(str(path))
        assert set(seen) == set(declared), (path.name, sorted(set(declared) - set(seen)))


@pytest.mark.slow  # starts Jupyter kernels
def test_first_cell_refuses_inconsistent_parameters(isolated_dirs: dict[str, Path]) -> None:
    with pytest.raises(notebooks.NotebookError, match="lag_s=90 must be at least one frame .* shorter than"):
        notebooks.run_all(["00_metrics"], smoke=True, parameters={"lag_s": 90.0})


def test_command_line_values_are_converted_by_declared_type() -> None:
    nb = paths.NOTEBOOKS_DIR / "00_metrics.ipynb"
    checked = notebooks.check_parameters(nb, {"seed": "3", "duration_s": "20"}, from_text=True)
    assert checked == {"seed": 3, "duration_s": 20.0}
    with pytest.raises(notebooks.ParameterError, match="'seed' expects int"):
        notebooks.check_parameters(nb, {"seed": "3.5"}, from_text=True)
    with pytest.raises(notebooks.ParameterError, match="unknown parameter 'sead'"):
        notebooks.check_parameters(nb, {"sead": "3"}, from_text=True)


@pytest.mark.parametrize(("value", "message"), [("abc", "parameter 'seed' expects int, got str 'abc'"),
                                              ("-1", "parameter 'seed' must be >= 0, got -1")])
def test_cli_reports_bad_parameter_with_nonzero_exit(value: str, message: str, empty_results: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "emotools", "run", "--only", "00_metrics", "-p", "seed", value],
        capture_output=True, text=True, cwd=paths.PROJECT_ROOT, timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: 00_metrics.ipynb: {message}"
    assert not empty_results.exists()


@pytest.mark.slow  # starts Jupyter kernels
def test_ctrl_c_ends_with_one_line_naming_the_notebook(tmp_path: Path, empty_results: Path) -> None:
    folder = tmp_path / "nbs"
    folder.mkdir()
    _write_notebook(folder / "slow.ipynb", ["import time", "time.sleep(120)", "x = 1"])
    runtime = tmp_path / "tmp"  # where the kernel's connection file and IPC sockets live
    runtime.mkdir()
    # as from a terminal: SIGINT at its default even where this test runs as a background job (which ignores it)
    process = subprocess.Popen([sys.executable, "-m", "emotools", "run", "--folder", str(folder)],
                               stderr=subprocess.PIPE, stdout=subprocess.PIPE, cwd=paths.PROJECT_ROOT,
                               env=os.environ | {"TMPDIR": str(runtime)},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = b""
    try:
        while b"cell 3/" not in seen:  # the sleeping cell has started
            chunk = process.stderr.read1(4096)
            assert chunk, f"the run ended before the sleeping cell: {seen!r}"
            seen += chunk
        process.send_signal(signal.SIGINT)
        stdout, rest = process.communicate(timeout=60)
    finally:
        process.kill()
    stderr = (seen + rest).decode()
    lines = [line for line in stderr.splitlines() if line.strip() and "slow: cell" not in line]
    assert process.returncode == 130
    assert len(lines) == 1, stderr
    assert re.fullmatch(r"interrupted: slow\.ipynb in cell 3 of 4 after \d+ s "
                        r"\(partial copy: \$EMOTOOLS_RESULTS_DIR/notebooks/slow\.ipynb\)", lines[0]), lines[0]
    assert "Traceback" not in stderr and "without encryption" not in stderr
    assert not list(runtime.iterdir()), "the kernel's connection file or sockets were left behind"
    log = json.loads((empty_results / "notebooks" / "run_log.json").read_text())
    assert [e["status"] for e in log] == ["interrupted"]


def test_unknown_notebook_is_named() -> None:
    with pytest.raises(notebooks.NotebookError, match="unknown notebook.*nope"):
        notebooks.select_notebooks(["nope"])


def _write_notebook(path: Path, cells: list[str], *, params: str = "size: int = 1  # a size",
                    preset: object = None) -> None:
    nb = nbformat.v4.new_notebook()
    if preset is not None:
        nb.metadata["emotools"] = {"smoke": preset}
    params = nbformat.v4.new_code_cell(params)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


@pytest.mark.slow  # starts Jupyter kernels
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
    cell = nbformat.v4.new_code_cell("import os\nsize: int = 1  # x")
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


def _seed_control_grid(n_sessions: int, utterances: int, signal: float, rng) -> tuple:
    """Chained test sessions of ``utterances`` utterances with one U(0, 1) label each, predictions
    ``signal * label + noise`` per frame, as the dataset notebooks' seed grid and corpus hold them."""
    from emotools import pipeline
    from emotools.experiments import Cell, GridResult
    from emotools.sequences import SequenceRecord

    chains, records, predictions = [], [], []
    for s in range(n_sessions):
        lengths = rng.integers(30, 90, size=utterances)  # frames at 10 Hz
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) / 10.0
        chains += [{"chain": f"c{s}", "utterance": f"c{s}-{k}", "start": starts[k]} for k in range(utterances)]
        y = np.repeat(rng.uniform(0, 1, size=(utterances, 2)), lengths, axis=0).astype(np.float32)
        time = np.arange(len(y)) / 10.0 + 0.05
        records.append(SequenceRecord(f"c{s}", np.zeros((len(y), 1), np.float32), time, 10.0, y, split="test"))
        predictions.append(signal * y + rng.normal(0, 0.3, size=y.shape))
    cells = [Cell("mlp", "joint", 0, ("arousal", "valence"), [], pd.DataFrame(), predictions, None)]
    grid = GridResult(pd.DataFrame(), pd.DataFrame(), cells, records)
    corpus = pipeline.SessionCorpus("toy", pd.DataFrame(), pd.DataFrame(chains), pd.DataFrame(), None, None, True)
    return pipeline.DatasetGrids({"seed": grid}, pd.DataFrame()), corpus, records, predictions


def test_flaw_summary_counts_intervals_and_units() -> None:
    from emotools import pipeline

    steps = [step for step, _ in pipeline.FLAW_STEPS]
    table = pd.DataFrame({
        "step": [steps[0]] * 2 + [steps[4]] * 2, "architecture": ["lstm", "tdnn"] * 2,
        "target": ["arousal"] * 4, "ccc": [0.01, -0.03, 0.6, 0.2], "low": [-0.1, -0.2, 0.5, np.nan],
        "high": [0.1, 0.05, 0.7, np.nan], "mse": [0.08, 0.09, 0.02, 0.05],
        "unit": ["utterance"] * 2 + ["speaker"] * 2, "n_units": [10, 10, 4, 4]})
    summary = pipeline.flaw_summary(table).set_index("step")
    assert summary.loc[steps[0], "mean test CCC"] == pytest.approx(-0.01)
    assert summary.loc[steps[0], "CIs excluding 0"] == "0 of 2"
    assert summary.loc[steps[0], "widest half-width"] == pytest.approx(0.125)
    assert summary.loc[steps[4], "CIs excluding 0"] == "1 of 1"  # a NaN CI (one test unit) is not counted
    assert summary.loc[steps[4], "CI unit"] == "speaker (4)"
    assert summary.loc[steps[4], "what changes"] == dict(pipeline.FLAW_STEPS)[steps[4]]


def test_seed_control_interval_resamples_utterances_and_keeps_the_tables_ccc() -> None:
    from emotools import metrics, pipeline

    rng = np.random.default_rng(0)
    grids, corpus, records, predictions = _seed_control_grid(4, 30, 0.0, rng)
    table = pipeline.seed_control_intervals(grids, corpus, n_resamples=500)
    assert table[["architecture", "target"]].values.tolist() == [["mlp", "arousal"], ["mlp", "valence"]]
    assert (table["utterances"] == 120).all()  # the resampled unit: utterances, not sessions or frames
    for j, row in table.iterrows():  # the estimate is the CCC of the test sessions concatenated
        truth = np.concatenate([r.y[:, j] for r in records])
        assert row["ccc"] == pytest.approx(metrics.ccc(truth, np.concatenate([p[:, j] for p in predictions])))
        assert row["low"] <= row["ccc"] <= row["high"]
        assert row["half_width"] == pytest.approx((row["high"] - row["low"]) / 2)
        assert row["covers_0"] == (row["low"] <= 0 <= row["high"])
    assert (table["half_width"] < 0.1).all() and (table["ccc"].abs() < 0.05).all()  # no signal, 120 utterances
    covered = int(table["covers_0"].sum())
    assert pipeline.describe_seed_control(table) == (
        f"{covered} of 2 95% CIs cover 0 (120 test utterances resampled); every half-width is below 0.1: "
        "the control can tell its CCC from 0.")

    few, corpus, *_ = _seed_control_grid(1, 8, 1.0, rng)  # the built-in samples' test set: 8 utterances
    table = pipeline.seed_control_intervals(few, corpus, n_resamples=500)
    assert not table["covers_0"].any() and (table["utterances"] == 8).all()  # a real signal is told from 0
    assert pipeline.seed_control_intervals(pipeline.DatasetGrids({}, pd.DataFrame()), corpus).empty
