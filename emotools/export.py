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
before it is written (:data:`TOLERANCE`).

Streaming-step graphs: beside each causal model's graph, ``<name>.step.onnx``
(:func:`export_step`), the model's :class:`~emotools.models.StepModel`: it
takes ``x`` float32 ``(1, time, features)`` (the new frames, any number),
``t`` and ``end`` int64 ``(1,)`` (frames received before; the stream's
length where known) and the state tensors (fixed shapes: caches of the last
frames per convolution / time-delay / attention layer, LSTM ``(h, c)``), and
returns ``y`` ``(1, time, targets)``, ``t_next`` and each state's ``<name>_next``.
:class:`StepStream` runs it as :class:`~emotools.models.StreamingModel`
streams (``predict --stream --onnx``). Models without one (non-causal,
global attention, ``dsus``: :data:`NO_STEP`) are named in the record.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .fileio import write_text
from .models import ModelConfigError, SequenceRegressor, StepModel
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
STEP_INPUTS = ("x", "t", "end")
STEP_OUTPUTS = ("y", "t_next")
STEP_SUFFIX = ".step.onnx"
UNKNOWN_END = 2**62
"""``end`` while the stream's length is unknown."""
NO_STEP = {
    "non-causal models (lookahead None)": "a bidirectional LSTM or centred context needs the whole sequence",
    "global attention (window None)": "its past is unbounded",
    "dsus": "pooling by pairs from the start of the stream: no fixed-state step form yet",
}
"""What has no streaming-step graph, and why (written into the export record)."""


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

    model = copy.deepcopy(model).cpu().eval()
    T = _example_frames(model)
    x = torch.randn(2, T, model.config.n_features)
    lengths = torch.tensor([T, T - T // 4])
    dynamic = {"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "y": {0: "batch", 1: "time"}}

    def check(path: Path) -> float:
        runner = OnnxModel.load(path, subject=subject)
        return max(float(np.abs(runner(x, ls) - torch_forward(model, x, ls)).max())
                   for x, ls in _check_inputs(model.config.n_features, T))

    return _export_checked(_Traceable(model).eval(), (x, lengths), path, (INPUTS, OUTPUTS), dynamic, check,
                           subject=subject or str(path), name=model.name)


def step_model(model: SequenceRegressor, *, subject: str = "") -> StepModel:
    """The fixed-state streaming form of ``model`` (a CPU copy, eval mode).

    Raises:
        OnnxError: a model without one (:data:`NO_STEP`), the reason in one line.
    """
    import copy

    try:
        return StepModel(copy.deepcopy(model).cpu().eval())
    except ModelConfigError as error:
        raise OnnxError(subject or model.config.spec, f"{model.config.spec} has no streaming-step graph: "
                        f"{error.reason}") from None


def _check_stream(n_features: int, delay: int, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """A stream (frames, chunk sizes) that every step export is checked on: single frames, chunks longer than
    any cache, empty pushes."""
    frames = 3 * delay + 2 * MIN_EXAMPLE_FRAMES + 5
    x = np.random.default_rng(seed).standard_normal((frames, n_features)).astype(np.float32)
    return x, [1, 3, 0, 17, 2, MIN_EXAMPLE_FRAMES + 9, 1, 5]


def stream_through(stream: Any, x: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Push ``x`` ``(time, features)`` into ``stream`` in chunks of ``sizes`` (cycled), flush: the outputs."""
    out, i, k = [], 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        out.append(stream.push(x[i : i + n]))
        i, k = i + n, k + 1
    return np.concatenate([*out, stream.flush()])


def export_step(model: SequenceRegressor, path: str | os.PathLike, *, subject: str = "") -> Path:
    """Export a causal model's :class:`~emotools.models.StepModel` to ``path``; check it streamed against torch.

    The graph's properties hold ``delay_frames`` and ``warmup_frames`` (what
    :class:`StepStream` needs). The check streams a random sequence in chunks
    of varied sizes through onnxruntime and compares it with the offline
    forward pass.

    Raises:
        OnnxError: a model without a step form, an exporter failure, or a
            streamed output that differs from torch by more than :data:`TOLERANCE`.
    """
    subject = subject or str(path)
    step = step_model(model, subject=subject)
    n_features = step.model.config.n_features
    state = step.initial_state()
    x = torch.randn(1, 5, n_features)
    args = (x, torch.tensor([0]), torch.tensor([UNKNOWN_END]), *state)
    names = ([*STEP_INPUTS, *(s.name for s in step.specs)], [*STEP_OUTPUTS, *(f"{s.name}_next" for s in step.specs)])
    metadata = {"emotools.delay_frames": str(step.delay_frames),
                "emotools.warmup_frames": json.dumps(list(step.warmup_frames))}

    def check(path: Path) -> float:
        frames, sizes = _check_stream(n_features, step.delay_frames)
        streamed = stream_through(StepStream(StepGraph.load(path, subject=subject)), frames, sizes)
        return float(np.abs(streamed - torch_forward(step.model, frames[None], np.array([len(frames)]))[0]).max())

    return _export_checked(step, args, path, names, {"x": {1: "time"}, "y": {1: "time"}}, check,
                           subject=subject, name=step.model.name, metadata=metadata)


def step_record(step: StepModel) -> dict[str, Any]:
    """What the export record says of a step graph: its state tensors, delay and warm-up splits."""
    return {"state": [{"name": s.name, "shape": list(s.shape), "what": s.what} for s in step.specs],
            "delay_frames": step.delay_frames, "warmup_frames": list(step.warmup_frames)}


def _export_checked(module: nn.Module, args: tuple[torch.Tensor, ...], path: str | os.PathLike,
                    names: tuple[Sequence[str], Sequence[str]], dynamic: dict[str, dict[int, str]],
                    check: Callable[[Path], float], *, subject: str, name: str,
                    metadata: dict[str, str] | None = None) -> Path:
    """Trace ``module`` to ``path`` (``metadata`` into the model's properties); keep it if ``check`` (the
    largest difference from torch) is within :data:`TOLERANCE`, else remove it and raise :class:`OnnxError`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about the frozen shape branches, by design
            torch.onnx.export(module, args, str(path), dynamo=False, opset_version=OPSET, input_names=list(names[0]),
                              output_names=list(names[1]), dynamic_axes=dynamic)
        if metadata:
            import onnx

            graph = onnx.load(str(path))
            for key, value in metadata.items():
                graph.metadata_props.add(key=key, value=value)
            onnx.save(graph, str(path))
    except Exception as error:
        path.unlink(missing_ok=True)
        raise OnnxError(subject, f"architecture {name!r} cannot be exported to ONNX ({_first_line(error)})") from None
    try:
        worst = check(path)
    except Exception as error:  # onnxruntime's own errors on a graph that cannot run other lengths
        worst, why = np.inf, f"fails on other lengths: {_first_line(error)}"
    else:
        why = f"differs from torch by {worst:.3g} (> {TOLERANCE:g})"
    if not worst <= TOLERANCE:
        path.unlink(missing_ok=True)
        raise OnnxError(subject, f"the ONNX graph of {name!r} {why}; not written")
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
                         "spec": trained.model.config.spec, "n_features": trained.model.config.n_features,
                         "targets": list(trained.targets), **_export_step(trained.model, onnx_path, group, folder)}
    meta = {
        "format": EXPORT_FORMAT, "exporter": "torch.onnx.export (TorchScript tracing, dynamo=False)",
        "opset": OPSET, "inputs": {"x": "float32 (batch, time, features)", "lengths": "int64 (batch,)"},
        "outputs": {"y": "float32 (batch, time, targets); padded frames 0"},
        "dynamic_axes": ["batch", "time"], "tolerance": TOLERANCE, "versions": _versions(), "models": record,
        "step": {"inputs": {"x": "float32 (1, time, features): the new frames", "t": "int64 (1,): frames before",
                            "end": "int64 (1,): the stream's length once known, else 2**62", "<state>": "float32"},
                 "outputs": {"y": "float32 (1, time, targets): row j is output frame t + j - delay_frames",
                             "t_next": "int64 (1,)", "<state>_next": "float32"},
                 "dynamic_axes": ["time"], "not_exported": NO_STEP},
    }
    write_text(out / EXPORT_FILE, json.dumps(meta, indent=1))
    return paths


def _export_step(model: SequenceRegressor, onnx_path: Path, group: str, folder: Path) -> dict[str, Any]:
    """The record's ``step`` entry: the step graph beside ``onnx_path``, or None and ``no_step`` (why not)."""
    try:
        step = step_model(model)
    except OnnxError as error:
        return {"step": None, "no_step": error.reason}
    path = export_step(model, onnx_path.with_suffix(STEP_SUFFIX), subject=f"{folder}: model {group!r}")
    return {"step": {"onnx": path.name, "onnx_sha256": sha256(path), **step_record(step)}}


# --------------------------------------------------------------------------- running the graphs


@dataclass
class OnnxModel:
    """One exported graph in an onnxruntime session: ``model(x, lengths=None) -> (batch, time, targets)``."""

    session: Any  # onnxruntime.InferenceSession
    path: Path
    n_features: int
    n_targets: int

    @classmethod
    def load(cls, path: str | os.PathLike, *, subject: str = "", threads: int | None = None) -> OnnxModel:
        """Open ``path`` on the CPU (``threads``: onnxruntime's, default its own) and check its inputs and outputs.

        Raises:
            OnnxError: not a loadable ONNX model, or other inputs / outputs.
        """
        session, path, subject = _session(path, subject, threads)
        _check_names(session, path, subject, INPUTS, OUTPUTS)
        n_features, n_targets = _widths(session, path, subject)
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


def _session(path: str | os.PathLike, subject: str, threads: int | None) -> tuple[Any, Path, str]:
    """An onnxruntime CPU session of ``path`` (errors only logged: the reason travels in the exception)."""
    import onnxruntime

    path = Path(path)
    subject = subject or str(path)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = options.inter_op_num_threads = threads
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:
        raise OnnxError(subject, f"{path.name} is not a loadable ONNX model ({_first_line(error)})") from None
    return session, path, subject


def _check_names(session: Any, path: Path, subject: str, inputs: Sequence[str], outputs: Sequence[str],
                 unused: Sequence[str] = ()) -> None:
    """Refuse a graph whose input / output names do not start with ``inputs`` / ``outputs`` (``unused``: inputs
    the exporter drops where the graph does not read them)."""
    got_in = [i.name for i in session.get_inputs() if i.name not in unused]
    got_out = [o.name for o in session.get_outputs()]
    if tuple(got_in[: len(inputs)]) != tuple(inputs) or tuple(got_out[: len(outputs)]) != tuple(outputs) or (
            len(got_in) - len(inputs) != len(got_out) - len(outputs)):
        raise OnnxError(subject, f"{path.name} has inputs {got_in} and outputs {got_out}, expected "
                        f"{list(inputs)} and {list(outputs)}")


def _widths(session: Any, path: Path, subject: str) -> tuple[int, int]:
    n_features, n_targets = session.get_inputs()[0].shape[-1], session.get_outputs()[0].shape[-1]
    if not isinstance(n_features, int) or not isinstance(n_targets, int):
        raise OnnxError(subject, f"{path.name} has no fixed feature or target count")
    return n_features, n_targets


@dataclass
class StepGraph:
    """A streaming-step graph (:func:`export_step`) in an onnxruntime session, with its state's shapes."""

    session: Any  # onnxruntime.InferenceSession
    path: Path
    n_features: int
    n_targets: int
    state: list[tuple[str, tuple[int, ...]]]  # (input name, shape) of each state tensor
    delay_frames: int
    warmup_frames: tuple[int, ...]
    uses_end: bool = True  # False: a graph without padding-sensitive layers, whose exporter dropped ``end``

    @classmethod
    def load(cls, path: str | os.PathLike, *, subject: str = "", threads: int | None = None) -> StepGraph:
        """Open ``path`` on the CPU and check that it is a step graph (names, fixed state shapes, properties).

        Raises:
            OnnxError: not a loadable ONNX model or not a step graph.
        """
        session, path, subject = _session(path, subject, threads)
        _check_names(session, path, subject, STEP_INPUTS[:2], STEP_OUTPUTS, unused=STEP_INPUTS[2:])
        n_features, n_targets = _widths(session, path, subject)
        state = [(i.name, tuple(i.shape)) for i in session.get_inputs() if i.name not in STEP_INPUTS]
        uses_end = any(i.name == "end" for i in session.get_inputs())
        props = session.get_modelmeta().custom_metadata_map
        try:
            delay, warmup = int(props["emotools.delay_frames"]), tuple(json.loads(props["emotools.warmup_frames"]))
        except (KeyError, ValueError):
            raise OnnxError(subject, f"{path.name} has no emotools step properties (delay_frames, warmup_frames); "
                            "export again") from None
        if not all(isinstance(d, int) for _, shape in state for d in shape):
            raise OnnxError(subject, f"{path.name} has state tensors without fixed shapes")
        return cls(session, path, n_features, n_targets, state, delay, warmup, uses_end)

    def initial_state(self) -> list[np.ndarray]:
        """Zeros of every state tensor's shape: the state at the start of a stream."""
        return [np.zeros(shape, np.float32) for _, shape in self.state]

    def __call__(self, x: np.ndarray, t: int, end: int, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """One step: ``x`` ``(1, n, features)``, frames ``t ..``: ``(y (1, n, targets), new state)``."""
        feeds = {"x": x, "t": np.array([t], np.int64)}
        if self.uses_end:
            feeds["end"] = np.array([end], np.int64)
        feeds.update({name: s for (name, _), s in zip(self.state, state)})
        y, _, *new = self.session.run(None, feeds)
        return y, new


class StepStream:
    """A step graph streamed, as :class:`~emotools.models.StreamingModel` streams its model (same interface).

    Output frame ``t`` comes with the push that brings frame ``t + delay_frames``;
    :meth:`flush` pushes ``delay_frames`` padding frames with the stream's
    length as ``end``. Chunks are split where the graph needs it
    (``warmup_frames``); empty pushes do not run the graph.
    """

    def __init__(self, graph: StepGraph) -> None:
        self.graph, self.delay_frames = graph, graph.delay_frames
        self.reset()

    def reset(self) -> None:
        """Start a new stream: zero state."""
        self.state = self.graph.initial_state()
        self.received = self.emitted = 0
        self._ended = False

    @property
    def state_size(self) -> int:
        """Elements of the state tensors: fixed, whatever the stream's length."""
        return sum(s.size for s in self.state)

    def push(self, frames: np.ndarray) -> np.ndarray:
        """Consume ``(n, n_features)`` frames; the ``(m, n_targets)`` outputs now final.

        Raises:
            OnnxError: frames not ``(n, n_features)``, or a stream already flushed.
        """
        x = np.asarray(frames, np.float32)
        if self._ended:
            raise OnnxError(self.graph.path, "the stream was flushed; call reset() to start a new one")
        if x.ndim != 2 or x.shape[1] != self.graph.n_features:
            raise OnnxError(self.graph.path, f"expected frames (n, {self.graph.n_features}), got {x.shape}")
        return self._run(x, UNKNOWN_END)

    def flush(self) -> np.ndarray:
        """End the stream: the pending outputs, as the offline pass gives the last frames."""
        end, self._ended = self.received, True
        return self._run(np.zeros((self.delay_frames, self.graph.n_features), np.float32), end)

    def _run(self, x: np.ndarray, end: int) -> np.ndarray:
        out, i = [np.zeros((0, self.graph.n_targets), np.float32)], 0
        while i < len(x):
            t = self.received
            cuts = [w - t for w in self.graph.warmup_frames if 0 < w - t < len(x) - i]
            n = min(cuts, default=len(x) - i)
            y, self.state = self.graph(np.ascontiguousarray(x[None, i : i + n]), t, end, self.state)
            keep = y[0, max(0, self.delay_frames - t) :]  # rows of output frames >= 0
            if end != UNKNOWN_END:
                keep = keep[: max(0, end - self.emitted)]
            out.append(keep)
            self.received, self.emitted, i = t + n, self.emitted + len(keep), i + n
        if end != UNKNOWN_END:
            self.received = end
        return np.concatenate(out)


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


def _records(predictor_folder: str | os.PathLike,
             onnx_folder: str | os.PathLike | None) -> tuple[Path, Path, dict[str, Any], dict[str, str]]:
    """(predictor folder, export folder, the export record's models, the predictor's checkpoint names)."""
    folder = Path(predictor_folder)
    where = Path(onnx_folder) if onnx_folder is not None else folder
    return folder, where, _export_record(where)["models"], json.loads((folder / PREDICTOR_FILE).read_text())["models"]


def load_onnx_models(predictor_folder: str | os.PathLike, predictor: Predictor,
                     onnx_folder: str | os.PathLike | None = None) -> dict[str, OnnxModel]:
    """The exported graph of each of ``predictor``'s models, checked against the export record.

    Raises:
        OnnxError: no export, a model without a graph, a checkpoint changed
            since the export, a graph that is not the one exported (sha256),
            or one whose feature or target count differs from its model's.
    """
    folder, where, record, names = _records(predictor_folder, onnx_folder)
    runners = {}
    for group, trained in predictor.models.items():
        path = _verified_graph(where, folder, names, group, record.get(group))
        runner = OnnxModel.load(path, subject=f"{where}: model {group!r}")
        _check_widths(where, group, path, runner, trained.model.config)
        runners[group] = runner
    return runners


def _verified_graph(where: Path, folder: Path, names: dict[str, str], group: str, entry: Any,
                    step: bool = False) -> Path:
    """The path of ``group``'s graph (``step``: its step graph) after checking the record against the files."""
    if not isinstance(entry, dict):
        raise OnnxError(where, f"the ONNX export has no graph of model {group!r}; export again")
    if entry.get("checkpoint_sha256") != sha256(folder / names[group]):
        raise OnnxError(where, f"model {group!r}: {names[group]} changed since it was exported; export again")
    if step:
        if not isinstance(entry.get("step"), dict):
            why = entry.get("no_step") or "the export predates step graphs; export again"
            raise OnnxError(where, f"model {group!r} has no streaming-step graph: {why}")
        entry = entry["step"]
    path = where / str(entry.get("onnx"))
    if not path.is_file():
        raise OnnxError(where, f"model {group!r}: {path.name} missing; export again")
    if entry.get("onnx_sha256") != sha256(path):
        raise OnnxError(where, f"model {group!r}: {path.name} does not match its export record (sha256); "
                        "export again")
    return path


def _check_widths(where: Path, group: str, path: Path, runner: OnnxModel | StepGraph, config: Any) -> None:
    if (runner.n_features, runner.n_targets) != (config.n_features, config.n_targets):
        raise OnnxError(where, f"model {group!r}: {path.name} maps {runner.n_features} features to "
                        f"{runner.n_targets} targets, the checkpoint {config.n_features} to {config.n_targets}")


def load_step_streams(predictor_folder: str | os.PathLike, predictor: Predictor,
                      onnx_folder: str | os.PathLike | None = None, *,
                      threads: int | None = 1) -> dict[str, StepStream]:
    """A :class:`StepStream` of each of ``predictor``'s models (``predict --stream --onnx``), checked as
    :func:`load_onnx_models` checks the whole-sequence graphs.

    Raises:
        OnnxError: as :func:`load_onnx_models`, or a model without a step graph (named, with the reason).
    """
    folder, where, record, names = _records(predictor_folder, onnx_folder)
    streams = {}
    for group, trained in predictor.models.items():
        path = _verified_graph(where, folder, names, group, record.get(group), step=True)
        graph = StepGraph.load(path, subject=f"{where}: model {group!r}", threads=threads)
        _check_widths(where, group, path, graph, trained.model.config)
        streams[group] = StepStream(graph)
    return streams


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


__all__ = ["EXPORT_FILE", "NO_STEP", "OnnxError", "OnnxModel", "StepGraph", "StepStream", "export_model",
           "export_step", "export_onnx", "load_onnx_models", "load_step_streams", "step_model", "step_record",
           "stream_through", "use_onnx", "torch_forward", "sha256"]
