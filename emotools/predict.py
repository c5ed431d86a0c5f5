"""Using a trained model: arousal and valence over time for any audio file.

A *predictor* folder holds what prediction needs besides the audio: the
feature spec the model was trained on, one checkpoint per target group
(``model.pt`` from :func:`emotools.training.fit`, loaded with
``weights_only=True``), and the post-processing chain tuned on dev. The
notebooks write one per dataset with :func:`save_predictor`;
``python -m emotools predict AUDIO... --checkpoint DIR`` reads it.

Normalization of a new file: a model trained with ``global`` normalization
uses the training statistics stored with it; one trained with ``session`` or
``speaker`` normalization (the notebooks' default) treats each input file as
its own session and z-normalizes it with the statistics of the file's own
features, as it did every training session.

Long files are processed in bounded blocks, so memory does not grow with
the length (about ``block_s`` seconds of audio and of model input at a time):

- audio is decoded in blocks (:func:`emotools.audio.iter_audio`);
- features come from one running openSMILE instance fed block by block
  (:class:`emotools.features.StreamingExtractor`: ring buffers, and rows
  identical to a whole-file pass), spilled to a temporary file, and the
  file's mean and variance are accumulated on the way (pass 1);
- the model runs per block of ``block_s`` seconds of frames with its
  receptive field as overlap on each side (block starts aligned to the
  down-sampling factor of ``dsus``), so bounded models give the whole-file
  result; unbounded models (LSTMs) get :data:`UNBOUNDED_OVERLAP_S` of
  overlap instead, which is exact for files up to one block long and
  within the difference the benchmark measures beyond (pass 2).

Post-processing (delay, smoothing, bias and scale) then runs on the whole
prediction (a few bytes per frame), and values are clipped to
:data:`LABEL_RANGE`, the scale of the ratings.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import training
from .audio import SAMPLE_RATE, iter_audio
from .errors import EmotoolsError
from .features import FeatureSpec, Level, StreamingExtractor, extract_signal, feature_names
from .features.smile import too_short
from .fileio import write_text
from .postprocess import PostProcessor
from .sequences import Normalization

PREDICTOR_FILE = "predictor.json"
BLOCK_S: float = 600.0
"""Seconds of audio (and of model input) processed at a time."""
UNBOUNDED_OVERLAP_S: float = 60.0
"""Context on each side of a model block for models without a bounded receptive field (LSTMs)."""
LABEL_RANGE: tuple[float, float] = (-1.0, 1.0)
"""The rating scale; predictions are clipped to it."""
FAILURES = "failures"
"""Stem of the batch's failure list, never an input's output name."""
RATE_TOLERANCE = 1e-6
"""Relative tolerance when frame rates are compared."""


class PredictorError(EmotoolsError, ValueError):
    """A predictor folder is missing or malformed: ``PredictorError(folder, reason)``."""


# --------------------------------------------------------------------------- features of one file (pass 1)


@dataclass
class FileFeatures:
    """The features of one file on disk, their frame times and the file's own statistics."""

    time: np.ndarray  # (frames,) window centres, seconds
    x: np.ndarray  # (frames, features) float32, memory-mapped
    mean: np.ndarray  # (features,) float64
    std: np.ndarray  # (features,) float64, population
    seconds: float


class _Moments:
    """Running count, mean and sum of squared deviations per column (Chan et al.'s parallel update)."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, x: np.ndarray) -> None:
        x = x.astype(np.float64)
        n, mean = len(x), x.mean(axis=0)
        m2 = ((x - mean) ** 2).sum(axis=0)
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta**2 * self.n * n / total
        self.n = total


def _feature_rows(chunks: Iterable[np.ndarray], sr: int, spec: FeatureSpec, block_s: float,
                  name: str) -> Iterator[pd.DataFrame]:
    """Feature frames of a signal that arrives in chunks, equal to :func:`extract_signal` on the whole.

    Windowed features come from one running openSMILE instance fed chunk by
    chunk (:class:`~emotools.features.StreamingExtractor`, ring buffers:
    memory does not grow with the file), so they are the whole-file pass's
    rows exactly, whatever the chunking. Other levels, and ``block_s``
    infinite, are extracted from the whole signal.
    """
    if spec.level is Level.windowed and math.isfinite(block_s):
        rows = 0
        with StreamingExtractor(spec, sr, name=name) as extractor:
            for chunk in chunks:
                frame = extractor.push(np.asarray(chunk, np.float32))
                rows += len(frame)
                yield frame
            frame = extractor.close()
            if not rows + len(frame):
                raise too_short(name, spec, extractor.seconds)
            yield frame
        return
    yield extract_signal(np.concatenate([np.asarray(c, np.float32) for c in chunks] or [np.zeros(0, np.float32)]),
                         sr, spec, path=name)


def file_features(chunks: Iterable[np.ndarray], sr: int, spec: FeatureSpec, folder: str | os.PathLike, *,
                  block_s: float = BLOCK_S, name: str = "<signal>") -> FileFeatures:
    """Pass 1: features of a chunked signal into ``folder/features.f32``, with the file's statistics."""
    path = Path(folder) / "features.f32"
    times, moments, samples = [], _Moments(), 0

    def counted(chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        nonlocal samples
        for chunk in chunks:
            samples += len(chunk)
            yield chunk

    with open(path, "wb") as sink:
        for frame in _feature_rows(counted(chunks), sr, spec, block_s, name):
            x = frame.iloc[:, 2:].to_numpy(np.float32)
            if len(x):
                sink.write(x.tobytes())
                moments.add(x)
                times.append(((frame["start"] + frame["end"]) / 2).to_numpy(np.float64))
    n_features = len(feature_names(spec))
    x = np.memmap(path, dtype=np.float32, mode="r", shape=(moments.n, n_features))
    return FileFeatures(np.concatenate(times), x, np.asarray(moments.mean), np.sqrt(moments.m2 / moments.n),
                        samples / sr)


# --------------------------------------------------------------------------- the model over blocks (pass 2)


def _normalization(trained: training.TrainedModel, feats: FileFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std that z-normalize this file for ``trained`` (see the module docstring)."""
    norm = trained.normalizer
    if norm.mode is Normalization.GLOBAL:
        return norm.mean, norm.std
    if norm.mode is Normalization.NONE:
        return np.zeros_like(feats.mean, np.float32), np.ones_like(feats.std, np.float32)
    std = np.where(feats.std < norm.eps, 1.0, feats.std)  # as Normalizer: constant features stay 0
    return feats.mean.astype(np.float32), std.astype(np.float32)


def model_overlap(trained: training.TrainedModel) -> tuple[int, int]:
    """Frames of context on each side of a model block, and the alignment of block starts."""
    config, rf = trained.model.config, trained.model.receptive_field
    overlap = rf if rf is not None else round(UNBOUNDED_OVERLAP_S * trained.rate_hz)
    align = 2 ** config.levels if "dsus" in config.blocks else 1
    return overlap, align


Runner = Callable[[np.ndarray], np.ndarray]
"""Runs a model on a ``(1, time, features)`` float32 block: ``(1, time, targets)`` (torch or an ONNX graph)."""


def _torch_runner(trained: training.TrainedModel) -> Runner:
    import torch

    device = next(trained.model.parameters()).device
    trained.model.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return trained.model(torch.from_numpy(x).to(device)).float().cpu().numpy()

    return run


def predict_blocks(trained: training.TrainedModel, feats: FileFeatures, *, block_s: float = BLOCK_S,
                   run: Runner | None = None) -> np.ndarray:
    """Pass 2: ``(frames, targets)`` predictions, the model run over overlapping blocks of frames.

    ``run`` runs the model instead of its torch module (an exported ONNX graph: :mod:`emotools.export`).
    """
    run = run or _torch_runner(trained)
    mean, std = _normalization(trained, feats)
    overlap, align = model_overlap(trained)
    T = len(feats.x)
    step = T if not math.isfinite(block_s) else max(align, round(block_s * trained.rate_hz) // align * align)
    out = np.empty((T, len(trained.targets)), np.float32)
    for s in range(0, T, step):
        e = min(T, s + step)
        a, b = max(0, s - overlap) // align * align, min(T, e + overlap)
        x = ((np.asarray(feats.x[a:b]) - mean) / std)[None]  # (1, time, features)
        out[s:e] = run(x)[0, s - a : e - a]
    return out


# --------------------------------------------------------------------------- the predictor


@dataclass
class Predictor:
    """A feature spec, trained models per target group, and an optional post-processing chain."""

    spec: FeatureSpec
    models: dict[str, training.TrainedModel]  # "arousal+valence" or "arousal", "valence" -> model
    postprocessor: PostProcessor | None
    info: dict[str, Any]
    runners: dict[str, Runner] = field(default_factory=dict)  # group -> runs it instead of torch (ONNX)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(t for m in self.models.values() for t in m.targets)

    def normalization_note(self) -> str:
        """How a new file's features are normalized, in words (written beside every CSV)."""
        modes = {m.normalizer.mode for m in self.models.values()}
        if modes & {Normalization.SESSION, Normalization.SPEAKER}:
            return ("per file: each input file is its own session, z-normalized with its own features' "
                    f"statistics (the models were trained with {', '.join(sorted(m.value for m in modes))} "
                    "normalization)")
        if modes == {Normalization.GLOBAL}:
            return "global: the training features' statistics stored with the model"
        return "none"

    def predict_chunks(self, chunks: Iterable[np.ndarray], sr: int = SAMPLE_RATE, *, name: str = "<signal>",
                       block_s: float = BLOCK_S) -> pd.DataFrame:
        """``time`` (s, window centres) and one column per target for a mono signal arriving in chunks.

        ``df.attrs`` holds the metadata written beside the CSV (normalization,
        blocks, clipped frames, ...).
        """
        with tempfile.TemporaryDirectory(prefix="emotools-predict-") as folder:
            feats = file_features(chunks, sr, self.spec, folder, block_s=block_s, name=name)
            pred = np.concatenate([predict_blocks(m, feats, block_s=block_s, run=self.runners.get(g))
                                   for g, m in self.models.items()], axis=1)
            time, seconds = feats.time, feats.seconds
            del feats  # the memory map, before its folder goes
        if self.postprocessor is not None:
            pred = self.postprocessor.apply([pred])[0]
        clipped = int(((pred < LABEL_RANGE[0]) | (pred > LABEL_RANGE[1])).any(axis=1).sum())
        pred = np.clip(pred, *LABEL_RANGE)
        frame = pd.DataFrame({"time": time, **{t: pred[:, k] for k, t in enumerate(self.targets)}})
        frame.attrs = {
            "file": name, "seconds": seconds, "frames": len(frame), "rate_hz": self.spec.rate_hz,
            "targets": list(self.targets), "normalization": self.normalization_note(),
            "postprocess": self.postprocessor is not None, "label_range": list(LABEL_RANGE),
            "clipped_frames": clipped, "block_s": block_s,
            "engine": "onnxruntime" if self.runners else "torch", "features": "streamed (one openSMILE instance)",
            "model_overlap_frames": {g: model_overlap(m)[0] for g, m in self.models.items()},
            "predictor": self.info,
        }
        return frame

    def predict_signal(self, signal: np.ndarray, sr: int = SAMPLE_RATE, *, name: str = "<signal>",
                       block_s: float = BLOCK_S) -> pd.DataFrame:
        """As :meth:`predict_chunks`, for one mono signal in memory."""
        return self.predict_chunks([np.asarray(signal, np.float32)], sr, name=name, block_s=block_s)

    def predict_file(self, path: str | os.PathLike, *, block_s: float = BLOCK_S) -> pd.DataFrame:
        """As :meth:`predict_chunks`, for any file :func:`emotools.audio.read_audio` reads, decoded in blocks."""
        chunks = iter_audio(path, sr=SAMPLE_RATE, block_s=min(block_s, BLOCK_S))
        return self.predict_chunks(chunks, SAMPLE_RATE, name=os.fspath(path), block_s=block_s)


def save_predictor(folder: str | os.PathLike, spec: FeatureSpec, model_paths: dict[str, str | os.PathLike],
                   postprocessor: dict[str, Any] | None = None, **info: Any) -> Path:
    """Copy the checkpoints into ``folder`` and write ``predictor.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    models = {}
    for group, src in model_paths.items():
        name = f"{group.replace('+', '_')}.pt"
        shutil.copyfile(src, folder / name)
        models[group] = name
    meta = {"feature_spec": spec.to_dict(), "models": models, "postprocess": postprocessor, "info": info}
    write_text(folder / PREDICTOR_FILE, json.dumps(meta, indent=1, default=str))
    return folder


def _check_predictor(folder: Path, predictor: Predictor) -> None:
    """Refuse models that do not fit the stored feature spec or post-processing chain."""
    n_features, rate = len(feature_names(predictor.spec)), predictor.spec.rate_hz
    for group, m in predictor.models.items():
        if m.model.config.n_features != n_features:
            raise PredictorError(folder, f"model {group!r} was trained on {m.model.config.n_features} features, "
                                 f"the stored feature spec {predictor.spec.slug} gives {n_features}")
        if rate is None or not math.isclose(m.rate_hz, rate, rel_tol=RATE_TOLERANCE):
            raise PredictorError(folder, f"model {group!r} was trained at {m.rate_hz:g} frames/s, "
                                 f"the stored feature spec {predictor.spec.slug} gives {rate} frames/s")
    post = predictor.postprocessor
    if post is not None:
        if tuple(post.targets) != predictor.targets or len(post.steps) != len(predictor.targets):
            raise PredictorError(folder, f"malformed postprocess (targets {list(post.targets)}, "
                                 f"{len(post.steps)} steps; the models predict {list(predictor.targets)})")
        if not math.isclose(post.rate_hz, rate, rel_tol=RATE_TOLERANCE):
            raise PredictorError(folder, f"the postprocess chain was tuned at {post.rate_hz:g} frames/s, "
                                 f"the stored feature spec gives {rate} frames/s")


def load_predictor(folder: str | os.PathLike) -> Predictor:
    """Read a predictor folder written by :func:`save_predictor` and check that its parts fit together.

    Raises:
        PredictorError: not a folder, missing or malformed files, weights that
            do not fit their config, or models whose feature count or frame
            rate differ from the stored feature spec.
    """
    folder = Path(folder)
    if folder.is_file():
        raise PredictorError(folder, f"is a file; give the predictor folder that holds {PREDICTOR_FILE}")
    if not folder.is_dir():
        raise PredictorError(folder, "no such predictor folder")
    try:
        meta = json.loads((folder / PREDICTOR_FILE).read_text())
        spec = FeatureSpec.from_dict(meta["feature_spec"])
        models = {group: training.load(folder / name) for group, name in meta["models"].items()}
        post = PostProcessor.from_dict(meta["postprocess"]) if meta.get("postprocess") else None
        predictor = Predictor(spec, models, post, dict(meta.get("info") or {}))
    except FileNotFoundError as error:
        raise PredictorError(folder, f"not a predictor folder ({error.filename} missing)") from None
    except training.TrainingError as error:
        raise PredictorError(folder, f"malformed predictor ({error})") from None
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as error:
        raise PredictorError(folder, f"malformed predictor ({type(error).__name__}: {error})") from None
    _check_predictor(folder, predictor)
    return predictor


# --------------------------------------------------------------------------- outputs


def plot_prediction(frame: pd.DataFrame, *, title: str):
    """Arousal and valence over time, one line per target."""
    import matplotlib.pyplot as plt

    from .plots import SERIES_COLORS

    fig, ax = plt.subplots(figsize=(12, 4))
    for target in [c for c in frame.columns if c != "time"]:
        ax.plot(frame["time"], frame[target], lw=1.8, label=target, color=SERIES_COLORS.get(target))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("predicted value (scale -1 to 1)")
    ax.set_title(title)
    ax.axhline(0, color="black", lw=0.6)
    ax.legend()
    fig.tight_layout()
    return fig


def _common_relative(paths: Sequence[Path]) -> list[Path]:
    common = Path(os.path.commonpath([p.parent for p in paths]))
    return [p.relative_to(common) for p in paths]


def output_names(files: Sequence[str | os.PathLike]) -> list[Path]:
    """A distinct output stem per input file (``<stem>.csv``, ``.png``, ``.json`` are written under it).

    The file's stem; where stems repeat (VoxCeleb's ``<id>/<video>/00001.wav``),
    the path relative to the inputs' common folder; where that still repeats
    (``talk.wav`` and ``talk.flac``) or names the failure list, the name with
    its suffix (``talk.wav``); anything left over gets ``-2``, ``-3``, ...
    Paths are made absolute without resolving links, so a symlink and its
    target (or a symlink loop) each keep their own name.
    """
    paths = [Path(os.path.abspath(os.fspath(f))) for f in files]
    if not paths:
        return []
    relative = _common_relative(paths)
    layers = [[Path(p.stem) for p in paths], [r.with_suffix("") for r in relative], relative]
    names = list(layers[0])
    for layer in layers[1:]:
        seen = [n.as_posix().lower() for n in names]
        names = [new if seen.count(old) > 1 or old == FAILURES else Path(n)
                 for n, new, old in zip(names, layer, seen)]
    taken: set[str] = {FAILURES}
    out = []
    for name in names:
        unique, k = name, 1
        while unique.as_posix().lower() in taken:
            k += 1
            unique = name.with_name(f"{name.name}-{k}")
        taken.add(unique.as_posix().lower())
        out.append(unique)
    return out


def _write_outputs(frame: pd.DataFrame, stem: Path, source: str) -> Path:
    """``<stem>.csv`` (time, targets), ``<stem>.png`` and ``<stem>.json`` (how it was made)."""
    import matplotlib.pyplot as plt

    csv = stem.with_name(stem.name + ".csv")
    csv.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(csv, index=False, float_format="%.5f")
    stem.with_name(stem.name + ".json").write_text(json.dumps(frame.attrs, indent=1, default=str))
    fig = plot_prediction(frame, title=f"{Path(source).name}: predicted emotion over time")
    try:
        fig.savefig(stem.with_name(stem.name + ".png"), dpi=120)
    finally:
        plt.close(fig)
    return csv


def _writable(out: Path) -> str | None:
    """Why ``out`` cannot take outputs, else None (creates it)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".emotools-probe-"):
            pass
    except OSError as error:
        return error.strerror or str(error)
    return None


def cli(argv: Sequence[str]) -> int:
    """``python -m emotools predict AUDIO... --checkpoint DIR [--out DIR] [--block-s S] [--onnx]``;
    ``--stream FILE|- [--realtime]``: :func:`emotools.stream.cli`."""
    from .progress import tqdm

    parser = argparse.ArgumentParser(prog="python -m emotools predict",
                                     description="Arousal and valence over time for audio files (CSV + PNG per file).")
    parser.add_argument("audio", nargs="+", help="audio files (WAV, FLAC, OGG, m4a); with --stream one file, or - "
                        "for raw s16le mono 16 kHz PCM on stdin")
    parser.add_argument("--checkpoint", required=True, help="predictor folder written by a notebook")
    parser.add_argument("--out", help="output folder (default: ./predictions); with --stream a CSV file, or - for "
                        "stdout (the default)")
    parser.add_argument("--stream", action="store_true",
                        help="stream one input through a causal predictor: one CSV row per frame as soon as it is "
                             "known, with its latency (see emotools.stream)")
    parser.add_argument("--realtime", action="store_true", help="with --stream: push the audio at real-time pace")
    parser.add_argument("--block-s", type=float, default=BLOCK_S,
                        help=f"seconds of audio processed at a time (bounds memory; default {BLOCK_S:g})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--onnx", action="store_true",
                        help="run the models' ONNX graphs with onnxruntime (written into the predictor folder by "
                             "`python -m emotools export --onnx`); with --stream their streaming-step graphs")
    args = parser.parse_args(argv)
    if args.stream or args.realtime:
        return _stream_cli(args)
    args.out = args.out or "predictions"
    if not args.block_s > 0:
        print(f"error: --block-s must be > 0, got {args.block_s}", file=sys.stderr)
        return 2
    try:
        predictor = load_predictor(args.checkpoint)
        if args.onnx:
            from .export import use_onnx

            use_onnx(predictor, args.checkpoint)
    except PredictorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    problem = _writable(out)
    if problem:
        print(f"error: {out}: cannot write predictions there ({problem})", file=sys.stderr)
        return 2
    first: dict[str, str] = {}
    for a in args.audio:  # one file named twice is predicted once
        first.setdefault(os.path.abspath(a), a)
    files = list(first.values())
    if len(files) < len(args.audio):
        print(f"note: {len(args.audio) - len(files)} repeated path(s) predicted once", file=sys.stderr)
    failures = []
    for path, name in tqdm(list(zip(files, output_names(files))), desc="predict", unit="file",
                           disable=args.no_progress):
        try:
            csv = _write_outputs(predictor.predict_file(path, block_s=args.block_s), out / name, path)
        except Exception as error:  # one bad file never stops the batch
            reason = str(error) if str(error).startswith(str(path)) else f"{path}: {type(error).__name__}: {error}"
            print(f"error: {reason}", file=sys.stderr)
            failures.append({"file": str(path), "reason": reason})
            continue
        print(f"wrote {csv}")
    if failures:
        pd.DataFrame(failures).to_csv(out / f"{FAILURES}.csv", index=False)
        print(f"{len(failures)} of {len(files)} file(s) failed; see {out / (FAILURES + '.csv')}", file=sys.stderr)
        return 1
    return 0


def _stream_cli(args: argparse.Namespace) -> int:
    """``predict --stream``: checks the options that do not combine, then :func:`emotools.stream.cli`."""
    from . import stream

    problem = ("--realtime needs --stream" if not args.stream else
               f"--stream takes one input, got {len(args.audio)}" if len(args.audio) != 1 else None)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    return stream.cli(args.audio[0], args.checkpoint, args.out or "-", realtime=args.realtime, onnx=args.onnx)
