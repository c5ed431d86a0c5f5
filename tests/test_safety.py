"""Safety: checkpoints never unpickle code, nothing evaluates parameters or file contents, corpus paths stay inside.

The source checks read the package with :mod:`ast` (not grep), so a call is
found however it is formatted, and a comment or docstring mentioning
``eval`` is not a false alarm.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures_bad import add_recording, labels, voiced

import emotools
from emotools import notebooks, paths, training
from emotools.corpora import scan
from emotools.features import FeatureSpec, extract
from emotools.predict import PredictorError, load_predictor, save_predictor
from emotools.sequences import SequenceRecord

PACKAGE = Path(emotools.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _trees() -> list[tuple[Path, ast.AST]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))) for path in SOURCES]


def _notebook_trees() -> list[tuple[str, ast.AST]]:
    """Code cells of every notebook (IPython magics and shell lines dropped)."""
    out = []
    for notebook in notebooks.list_notebooks():
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        for k, cell in enumerate(cells):
            if cell.get("cell_type") != "code":
                continue
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
            out.append((f"{notebook.name} cell {k}", ast.parse(code)))
    return out


def _dotted(node: ast.AST) -> str:
    """``torch.load`` for ``torch.load(...)``'s func, ``eval`` for ``eval(...)``'s; "" for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


# --------------------------------------------------------------------------- source checks


def test_every_torch_load_in_the_package_is_weights_only() -> None:
    found = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "torch":
                assert "load" not in {a.name for a in node.names}, f"{path}:{node.lineno}: from torch import load"
        for call in _calls(tree):
            name = _dotted(call.func)
            if name in ("torch.load", "torch.serialization.load"):
                where = f"{path.relative_to(PACKAGE.parent)}:{call.lineno}"
                value = _keyword(call, "weights_only")
                assert isinstance(value, ast.Constant) and value.value is True, (
                    f"{where}: {name} without weights_only=True")
                assert not any(k.arg is None for k in call.keywords), f"{where}: **kwargs could override weights_only"
                found.append(where)
    # the checkpoint loaders exist (model and resume): the check above is not vacuous
    assert len(found) >= 2 and all("training" in f for f in found[:2]), found


UNSAFE_CALLS = {
    "eval", "exec", "compile", "__import__", "execfile",
    "pickle.load", "pickle.loads", "pickle.Unpickler", "cPickle.loads", "marshal.load", "marshal.loads",
    "dill.load", "dill.loads", "cloudpickle.load", "cloudpickle.loads", "joblib.load", "shelve.open",
    "pd.read_pickle", "pandas.read_pickle", "yaml.unsafe_load", "os.system", "os.popen",
}


def test_nothing_evaluates_code_from_parameters_or_files() -> None:
    offenders = []
    for where, tree in [*((str(p.relative_to(PACKAGE.parent)), t) for p, t in _trees()), *_notebook_trees()]:
        for call in _calls(tree):
            name = _dotted(call.func)
            line = f"{where}:{call.lineno}: {name}"
            if name in UNSAFE_CALLS:
                offenders.append(line)
            elif name.endswith("yaml.load") and not isinstance(_keyword(call, "Loader"), (ast.Attribute, ast.Name)):
                offenders.append(line + " without a safe Loader")
            elif name in ("np.load", "numpy.load"):
                allow = _keyword(call, "allow_pickle")
                if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                    offenders.append(line + " with allow_pickle")
            elif _keyword(call, "shell") is not None:
                shell = _keyword(call, "shell")
                if not (isinstance(shell, ast.Constant) and shell.value is False):
                    offenders.append(line + " with shell=...")
    assert not offenders, "\n".join(offenders)
    # the scan sees what it must: the notebook runner parses parameters with ast.literal_eval
    names = {_dotted(c.func) for _, t in _trees() for c in _calls(t)}
    assert "ast.literal_eval" in names and "torch.load" in names


def test_a_parameter_value_is_data_never_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    notebook = paths.NOTEBOOKS_DIR / "00_metrics.ipynb"
    payload = f"__import__('os').mkdir({str(marker)!r})"
    for name in ("seed", "duration_s", "lag_s"):
        with pytest.raises(notebooks.ParameterError, match=f"parameter '{name}' expects"):
            notebooks.check_parameters(notebook, {name: payload}, from_text=True)
    assert not marker.exists()


# --------------------------------------------------------------------------- malicious checkpoints


class _Payload:
    """Pickles as a call to ``os.mkdir(marker)``: what a booby-trapped checkpoint does on an unsafe load."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _booby_trapped(path: Path, marker: Path, **content) -> Path:
    torch.save({"format": training.CHECKPOINT_FORMAT, **content, "payload": _Payload(marker)}, path)
    return path


def test_the_payload_is_live_under_an_unsafe_load(tmp_path: Path) -> None:
    """Guards the tests below: the trap really fires when loaded without weights_only."""
    marker = tmp_path / "fired"
    path = _booby_trapped(tmp_path / "model.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.is_dir()


def _records(n: int = 2, frames: int = 30, features: int = 4) -> list[SequenceRecord]:
    rng = np.random.default_rng(0)
    return [SequenceRecord(id=f"r{i}", x=rng.standard_normal((frames, features)), y=rng.uniform(-1, 1, (frames, 2)),
                           time=np.arange(frames) / 10, rate_hz=10.0) for i in range(n)]


def test_a_malicious_model_checkpoint_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "fired"
    path = _booby_trapped(tmp_path / "model.pt", marker, state_dict={})
    with pytest.raises(training.TrainingError, match=r"model\.pt: not a loadable checkpoint \(UnpicklingError"):
        training.load(path)
    assert not marker.exists()


def test_a_malicious_resume_checkpoint_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "fired"
    _booby_trapped(tmp_path / "last.pt", marker)
    with pytest.raises(training.TrainingError, match=r"last\.pt: cannot resume, unreadable checkpoint"):
        training.fit("mlp", _records(), None, training.FitOptions(epochs=1, chunk_s=None), progress=False,
                     checkpoint_dir=tmp_path)
    assert not marker.exists()


def test_a_malicious_predictor_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "fired"
    folder = save_predictor(tmp_path / "predictor", FeatureSpec(),
                            {"arousal+valence": str(_booby_trapped(tmp_path / "model.pt", marker))})
    with pytest.raises(PredictorError, match="malformed predictor"):
        load_predictor(folder)  # what ``python -m emotools predict --checkpoint`` calls first
    assert not marker.exists()


def test_a_plain_pickle_is_not_a_checkpoint(tmp_path: Path) -> None:
    marker = tmp_path / "fired"
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"format": training.CHECKPOINT_FORMAT, "payload": _Payload(marker)}, protocol=2))
    with pytest.raises(training.TrainingError, match="not a loadable checkpoint"):
        training.load(path)
    assert not marker.exists()


# --------------------------------------------------------------------------- paths stay inside


ESCAPES = [
    "../outside",
    "../../outside",
    "nested/../../outside",
    "./../outside",
    "..",
    ".",
    "",
    "/etc/passwd",
    "//etc/passwd",
    "~/outside",  # not expanded: stays a literal name inside the corpus
]


def test_corpus_metadata_cannot_point_outside_the_corpus(tmp_path: Path) -> None:
    root = tmp_path / "sandbox" / "corpus"
    add_recording(root, "inside", voiced(2.0), annotation=labels(2.0))
    # what the escapes would reach, made real, so a scanner following them would find a recording
    for folder in (root, tmp_path / "sandbox", tmp_path):
        (folder / "outside.wav").write_bytes((root / "audio" / "inside.wav").read_bytes())
        labels(2.0).to_csv(folder / "outside.csv", index=False)
    meta = pd.read_csv(root / "metadata.csv", dtype=str, keep_default_na=False)
    rows = pd.DataFrame({"recording": ESCAPES, "speaker": [f"x{k}" for k in range(len(ESCAPES))], "split": ""})
    pd.concat([meta, rows]).to_csv(root / "metadata.csv", index=False)

    table = scan("annotated", root, progress=False)
    assert table["utterance"].tolist() == ["inside"]
    root_real = os.path.realpath(root)
    for column in ("file", "annotation"):
        for value in table[column]:
            assert os.path.commonpath([root_real, os.path.realpath(value)]) == root_real, value
    reasons = [p["reason"] for p in table.attrs["problems"]]
    outside = [r for r in reasons if "points outside the corpus folder" in r]
    named = {name for name in ESCAPES if name} - {"~/outside"}
    assert len(outside) >= len(named), reasons
    for name in named:
        assert any(repr(name) in r for r in outside), f"{name!r} not reported: {reasons}"


def test_utterance_ids_cannot_write_outside_the_feature_store(tmp_path: Path) -> None:
    audio = add_recording(tmp_path / "corpus", "a", voiced(2.0), annotation=None)
    ids = ["../../escaped", "/tmp/escaped-abs", "..", "sub/../../../escaped"]
    table = pd.DataFrame({"file": [str(audio)] * len(ids), "utterance": ids})
    store = extract(table, FeatureSpec(), out=tmp_path / "store" / "inner", jobs=1, progress=False)
    assert sorted(store.utterances) == sorted(ids)
    inner = os.path.realpath(tmp_path / "store" / "inner")
    for path in store.index["path"]:
        full = os.path.realpath(store.root / path)
        assert os.path.commonpath([inner, full]) == inner and os.path.isfile(full), path
    written = {p for p in tmp_path.rglob("*") if p.is_file()} - set((tmp_path / "corpus").rglob("*"))
    assert all(os.path.commonpath([inner, os.path.realpath(p)]) == inner for p in written), written
    assert not Path("/tmp/escaped-abs.parquet").exists()
    for u in ids:  # and each loads back as itself
        assert store.load(u).attrs["utterance"] == u
