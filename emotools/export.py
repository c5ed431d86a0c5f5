"""ONNX export of a predictor's models, and running them with onnxruntime.

``python -m emotools export --onnx --checkpoint DIR`` writes, for every model
of a predictor folder (:mod:`emotools.predict`), ``<name>.onnx`` beside its
``<name>.pt`` and a record of what was exported, :data:`EXPORT_FILE`
(exporter, opset, input and output names, torch / onnx / onnxruntime
versions, each checkpoint's and each graph's sha256).
``python -m emotools predict ... --checkpoint DIR --onnx`` then runs the
graphs with onnxruntime instead of torch; it requires the export (run the
command above first) and refuses graphs whose record does not match the
checkpoints or the files.

Every graph takes ``x`` float32 ``(batch, time, features)`` and ``lengths``
int64 ``(batch,)`` and returns ``y`` float32 ``(batch, time, targets)``, the
batch and time axes dynamic, padded frames 0: the model's own ``forward``.
Exporter: TorchScript tracing (``torch.onnx.export(..., dynamo=False)``),
which exports all registered architectures, causal forms included, and
needs no onnxscript. A trace freezes Python branches on shapes, so the
example input is chosen to take the branch that is right for every length
(longer than any attention window: the windowed path, exact for short
inputs too), and ``dsus`` graphs pad the time axis to a multiple of
``2**levels`` inside the graph (padding never changes a valid frame).
Every export is checked against torch on padded batches of other lengths
before it is written (:data:`TOLERANCE`). Streaming-step graphs (state in,
state out) are not exported yet.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .fileio import write_text
from .models import SequenceRegressor
from .predict import PREDICTOR_FILE, Predictor, PredictorError, load_predictor

EXPORT_FILE = "onnx.json"
"""The export record written beside the graphs."""
EXPORT_FORMAT = "emotools-onnx/1"
OPSET = 17
INPUTS = ("x", "lengths")
OUTPUTS = ("y",)
TOLERANCE = 1e-4
"""Largest absolute difference from torch an export may show on its check inputs."""
MIN_EXAMPLE_FRAMES = 64


class OnnxError(PredictorError):
    """An export that cannot be made or does not match its predictor: ``OnnxError(subject, reason)``."""


def sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- export


class _Traceable(nn.Module):
    """The model's forward with the time axis padded to ``align`` frames (``dsus``), cut back after.

    The pad keeps the trace's shape branches (``dsus`` pools pairs of frames)
    the same for every input length; lengths are unchanged, so valid frames
    are exactly the model's.
    """

    def __init__(self, model: SequenceRegressor) -> None:
        super().__init__()
        self.model = model
        self.align = _alignment(model)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        if self.align > 1:
            x = F.pad(x, (0, 0, 0, (self.align - T % self.align) % self.align))  # (batch, time', features)
        return self.model(x, lengths)[:, :T]  # (batch, time, targets)


def _alignment(model: SequenceRegressor) -> int:
    return 2 ** model.config.levels if "dsus" in model.config.blocks else 1


def _example_frames(model: SequenceRegressor) -> int:
    """A trace length that takes every shape branch the right way for all lengths (see the module docstring)."""
    window = getattr(model.config, "window", None) or 0
    align = _alignment(model)
    frames = max(MIN_EXAMPLE_FRAMES, 2 * window + 3)
    return -(-frames // align) * align + 1  # not a multiple of anything: the padding path is traced too


def _check_inputs(n_features: int, frames: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Padded batches of lengths other than the trace's: what every export is checked on."""
    rng = np.random.default_rng(seed)
    cases = [[1], [frames // 3, 2, 1], [frames, frames - 5], [2 * frames + 7, frames + 1, 3]]
    return [(rng.standard_normal((len(ls), max(ls), n_features)).astype(np.float32), np.array(ls, np.int64))
            for ls in cases]


def torch_forward(model: SequenceRegressor, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The torch model on numpy inputs (CPU, inference mode): the reference every graph must equal."""
    with torch.inference_mode():
        return model(torch.from_numpy(x), torch.from_numpy(lengths)).float().cpu().numpy()


def export_model(model: SequenceRegressor, path: str | os.PathLike, *, subject: str = "") -> Path:
    """Export one model (a copy on the CPU, eval mode) to ``path`` and check it against torch.

    Raises:
        OnnxError: the exporter fails on the architecture, or the graph's
            outputs differ from torch's by more than :data:`TOLERANCE`.
    """
    import copy

    path = Path(path)
    subject = subject or str(path)
    model = copy.deepcopy(model).cpu().eval()
    wrapper = _Traceable(model).eval()
    T = _example_frames(model)
    x = torch.randn(2, T, model.config.n_features)
    lengths = torch.tensor([T, T - T // 4])
    dynamic = {"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "y": {0: "batch", 1: "time"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about the frozen shape branches, by design
            torch.onnx.export(wrapper, (x, lengths), str(path), dynamo=False, opset_version=OPSET,
                              input_names=list(INPUTS), output_names=list(OUTPUTS), dynamic_axes=dynamic)
    except Exception as error:
        path.unlink(missing_ok=True)
        raise OnnxError(subject, f"architecture {model.name!r} cannot be exported to ONNX "
                        f"({_first_line(error)})") from None
    try:
        runner = OnnxModel.load(path, subject=subject)
        worst = max(float(np.abs(runner(x, ls) - torch_forward(model, x, ls)).max())
                    for x, ls in _check_inputs(model.config.n_features, T))
    except Exception as error:  # onnxruntime's own errors on a graph that cannot run other lengths
        worst, why = np.inf, f"fails on other lengths: {_first_line(error)}"
    else:
        why = f"differs from torch by {worst:.3g} (> {TOLERANCE:g})"
    if not worst <= TOLERANCE:
        path.unlink(missing_ok=True)
        raise OnnxError(subject, f"the ONNX graph of {model.name!r} {why}; not written")
    return path


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def export_onnx(predictor_folder: str | os.PathLike, out_folder: str | os.PathLike | None = None) -> list[Path]:
    """Export every model of a predictor folder to ``<name>.onnx`` with :data:`EXPORT_FILE` beside them.

    Args:
        predictor_folder: a folder written by :func:`emotools.predict.save_predictor`.
        out_folder: where the graphs go (default: the predictor folder, where
            ``predict --onnx`` looks first).

    Returns:
        The ``.onnx`` paths, in the predictor's model order.

    Raises:
        PredictorError: not a predictor folder (as ``predict`` refuses it).
        OnnxError: an architecture that cannot be exported or whose graph
            does not equal torch.
    """
    folder = Path(predictor_folder)
    predictor = load_predictor(folder)
    out = Path(out_folder) if out_folder is not None else folder
    names = json.loads((folder / PREDICTOR_FILE).read_text())["models"]
    paths, record = [], {}
    for group, trained in predictor.models.items():
        checkpoint = folder / names[group]
        onnx_path = export_model(trained.model, out / f"{Path(names[group]).stem}.onnx",
                                 subject=f"{folder}: model {group!r}")
        paths.append(onnx_path)
        record[group] = {"onnx": onnx_path.name, "onnx_sha256": sha256(onnx_path), "checkpoint": names[group],
                         "checkpoint_sha256": sha256(checkpoint), "architecture": trained.model.name,
                         "n_features": trained.model.config.n_features, "targets": list(trained.targets)}
    meta = {
        "format": EXPORT_FORMAT, "exporter": "torch.onnx.export (TorchScript tracing, dynamo=False)",
        "opset": OPSET, "inputs": {"x": "float32 (batch, time, features)", "lengths": "int64 (batch,)"},
        "outputs": {"y": "float32 (batch, time, targets); padded frames 0"},
        "dynamic_axes": ["batch", "time"], "tolerance": TOLERANCE, "versions": _versions(), "models": record,
    }
    write_text(out / EXPORT_FILE, json.dumps(meta, indent=1))
    return paths


# --------------------------------------------------------------------------- running the graphs


@dataclass
class OnnxModel:
    """One exported graph in an onnxruntime session: ``model(x, lengths=None) -> (batch, time, targets)``."""

    session: Any  # onnxruntime.InferenceSession
    path: Path
    n_features: int
    n_targets: int

    @classmethod
    def load(cls, path: str | os.PathLike, *, subject: str = "") -> OnnxModel:
        """Open ``path`` on the CPU and check that it has this module's inputs and outputs.

        Raises:
            OnnxError: not a loadable ONNX model, or other inputs / outputs.
        """
        import onnxruntime

        path = Path(path)
        subject = subject or str(path)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: the reason travels in the exception
        try:
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise OnnxError(subject, f"{path.name} is not a loadable ONNX model ({_first_line(error)})") from None
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if tuple(i.name for i in inputs) != INPUTS or tuple(o.name for o in outputs) != OUTPUTS:
            raise OnnxError(subject, f"{path.name} has inputs {[i.name for i in inputs]} and outputs "
                            f"{[o.name for o in outputs]}, expected {list(INPUTS)} and {list(OUTPUTS)}")
        n_features, n_targets = inputs[0].shape[-1], outputs[0].shape[-1]
        if not isinstance(n_features, int) or not isinstance(n_targets, int):
            raise OnnxError(subject, f"{path.name} has no fixed feature or target count")
        return cls(session, path, n_features, n_targets)

    def __call__(self, x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """``x`` ``(batch, time, features)``; ``lengths`` ``(batch,)`` (default: every frame valid)."""
        x = np.ascontiguousarray(x, np.float32)
        if x.ndim != 3 or x.shape[-1] != self.n_features:
            raise OnnxError(self.path, f"expected input (batch, time, {self.n_features}), got {x.shape}")
        if lengths is None:
            lengths = np.full(len(x), x.shape[1], np.int64)
        lengths = np.asarray(lengths, np.int64)
        if lengths.shape != (len(x),) or (lengths < 1).any() or (lengths > x.shape[1]).any():
            raise OnnxError(self.path, f"lengths must be (batch,) in [1, {x.shape[1]}], got {lengths.tolist()}")
        return self.session.run(None, {"x": x, "lengths": lengths})[0]


def _export_record(folder: Path) -> dict[str, Any]:
    try:
        meta = json.loads((folder / EXPORT_FILE).read_text())
    except FileNotFoundError:
        raise OnnxError(folder, f"no ONNX export ({EXPORT_FILE} missing); run `python -m emotools export --onnx "
                        "--checkpoint <predictor>` first") from None
    except (OSError, ValueError) as error:
        raise OnnxError(folder, f"unreadable {EXPORT_FILE} ({type(error).__name__}: {error})") from None
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT or not isinstance(meta.get("models"), dict):
        raise OnnxError(folder, f"{EXPORT_FILE} is not an emotools ONNX export record")
    return meta


def load_onnx_models(predictor_folder: str | os.PathLike, predictor: Predictor,
                     onnx_folder: str | os.PathLike | None = None) -> dict[str, OnnxModel]:
    """The exported graph of each of ``predictor``'s models, checked against the export record.

    Raises:
        OnnxError: no export, a model without a graph, a checkpoint changed
            since the export, a graph that is not the one exported (sha256),
            or one whose feature or target count differs from its model's.
    """
    folder = Path(predictor_folder)
    where = Path(onnx_folder) if onnx_folder is not None else folder
    record = _export_record(where)["models"]
    names = json.loads((folder / PREDICTOR_FILE).read_text())["models"]
    runners = {}
    for group, trained in predictor.models.items():
        entry = record.get(group)
        if not isinstance(entry, dict):
            raise OnnxError(where, f"the ONNX export has no graph of model {group!r}; export again")
        if entry.get("checkpoint_sha256") != sha256(folder / names[group]):
            raise OnnxError(where, f"model {group!r}: {names[group]} changed since it was exported; export again")
        path = where / str(entry.get("onnx"))
        if not path.is_file():
            raise OnnxError(where, f"model {group!r}: {path.name} missing; export again")
        if entry.get("onnx_sha256") != sha256(path):
            raise OnnxError(where, f"model {group!r}: {path.name} does not match its export record (sha256); "
                            "export again")
        runner = OnnxModel.load(path, subject=f"{where}: model {group!r}")
        config = trained.model.config
        if (runner.n_features, runner.n_targets) != (config.n_features, config.n_targets):
            raise OnnxError(where, f"model {group!r}: {path.name} maps {runner.n_features} features to "
                            f"{runner.n_targets} targets, the checkpoint {config.n_features} to {config.n_targets}")
        runners[group] = runner
    return runners


def use_onnx(predictor: Predictor, predictor_folder: str | os.PathLike,
             onnx_folder: str | os.PathLike | None = None) -> Predictor:
    """``predictor`` running its exported graphs (onnxruntime) instead of torch; see :func:`load_onnx_models`."""
    predictor.runners = dict(load_onnx_models(predictor_folder, predictor, onnx_folder))
    return predictor


# --------------------------------------------------------------------------- command line


def cli(argv: Sequence[str]) -> int:
    """``python -m emotools export --onnx --checkpoint DIR [--out DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m emotools export",
                                     description="Export a predictor's models (ONNX graphs + onnx.json).")
    for flag, options in (("--onnx", {"action": "store_true", "help": "export to ONNX (the one format so far)"}),
                          ("--checkpoint", {"required": True, "help": "the predictor folder to export"}),
                          ("--out", {"help": "output folder (default: the predictor folder)"})):
        parser.add_argument(flag, **options)
    args = parser.parse_args(argv)
    if not args.onnx:
        print("error: choose a format: --onnx", file=sys.stderr)
        return 2
    try:
        paths = export_onnx(args.checkpoint, args.out)
    except PredictorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in paths:
        print(f"wrote {path}")
    print(f"wrote {paths[0].parent / EXPORT_FILE}")
    return 0


__all__ = ["EXPORT_FILE", "OnnxError", "OnnxModel", "export_model", "export_onnx", "load_onnx_models", "use_onnx",
           "torch_forward", "sha256"]
