"""Streaming prediction: arousal and valence of live audio, one row per frame as soon as it is known.

:class:`StreamPredictor` chains the streaming parts of a predictor folder:
:class:`~emotools.features.StreamingExtractor` (openSMILE fed chunk by
chunk), the feature normalization, one
:class:`~emotools.models.StreamingModel` per target group, and a causal form
of the post-processing chain. ``push(chunk)`` returns the rows the chunk
completed (``time``: the frame's window centre, as ``predict`` writes it;
one column per target; ``latency_s``); ``close()`` the rest. Every piece
keeps a bounded state, so memory does not grow with the stream.

What equals the offline ``predict`` of the same audio, and what cannot:

- **models**: only causal ones (``tcn:causal``, ``lstm:lookahead=3``, ...)
  stream, exactly; a non-causal predictor is refused.
- **normalization**: ``global`` (the training statistics) and ``none`` are
  exact. ``session`` / ``speaker`` normalization uses the whole file's
  statistics offline, unknown in real time: the stream z-normalizes each
  frame with the running mean and variance of the frames so far (itself
  included), an approximation that converges as the stream grows.
- **post-processing** (:func:`causal_postprocess` gives the whole-array
  result of the stream's chain, to compare with
  :meth:`~emotools.postprocess.PostProcessor.apply`), per target:

  1. smoothing becomes a causal filter of the model's outputs, with the
     filter's lag ``A`` frames: a median over the last ``w`` outputs
     (``A = (w - 1) / 2``; the same values as the centred median, ``A``
     frames later); exponential smoothing becomes the same one-pole filter
     run twice forward (the same magnitude response as the offline
     forward-backward pass, but a phase lag: ``A = round(2 (1 - a) / a)``,
     e.g. 18 frames for ``a = 0.1``; the values differ from offline);
  2. the delay ``d`` and the filter's lag make one shift ``s = d - A``: row
     ``t`` reads filtered output ``t - s`` (the first output before the start,
     the last one after the end, as :func:`~emotools.postprocess.delay`
     repeats edges). A positive ``s`` costs no latency (the delay
     compensation pays for the smoothing's lag); a negative one is lookahead:
     row ``t`` waits for output ``t + |s|``;
  3. bias and scale per frame, as offline; then clipping to
     :data:`~emotools.predict.LABEL_RANGE`.

  So a chain without smoothing streams exactly; a median with ``d >= A``
  differs from offline only in the last ``A`` frames (offline repeats the
  delayed series' last value there, the stream has the real outputs).

**Latency.** Row ``t`` is out with the push that brings the features of frame
``t + L``, ``L = max(0, model lookahead - s)`` over the targets, so its
latency (audio pushed minus the frame's centre) is at least
``window / 2 + L hop`` plus openSMILE's own lookahead (at most
:func:`~emotools.features.max_lookahead`), plus up to one chunk:
:meth:`StreamPredictor.latency_bounds`.

>>> stream = open_stream("results/models/01_ground_truth")  # doctest: +SKIP
>>> rows = stream.push(chunk)  # time, arousal, valence, latency_s of the frames now known  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import sys
import time as clock
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
from scipy import signal as sig

from .audio import SAMPLE_RATE, iter_audio
from .errors import EmotoolsError
from .features import StreamingExtractor, max_lookahead
from .models import ModelConfigError, StreamingModel
from .postprocess import PostProcessor, Smoothing, TargetSteps, _as2d
from .predict import LABEL_RANGE, Predictor, _Moments, load_predictor
from .sequences import Normalization
from .training import TrainedModel

__all__ = ["StreamError", "StreamPredictor", "open_stream", "causal_postprocess", "causal_lag", "CHUNK_S", "cli"]

CHUNK_S: float = 0.1
"""Seconds of audio per push on the command line."""
STREAM_THREADS = 1
"""Torch threads of ``predict --stream``: a streaming step is a few frames of batch 1, where handing work to a
second thread costs more than it saves (10x slower with 2 threads on a busy 2-core machine)."""
PCM_BYTES = 2
"""Bytes per sample of the raw PCM read from standard input (s16le, mono, :data:`SAMPLE_RATE`)."""


class StreamError(EmotoolsError, ValueError):
    """A predictor or an input that cannot be streamed: ``StreamError(subject, reason)``."""


# --------------------------------------------------------------------------- the causal post-processing chain


def _median_window(steps: TargetSteps) -> int:
    w = int(steps.smoothing_param)
    return w + 1 - w % 2  # odd, as median_smooth


def causal_lag(steps: TargetSteps) -> int:
    """Frames the causal form of ``steps``' smoothing lags behind the offline (centred) smoothing.

    >>> causal_lag(TargetSteps(smoothing="median", smoothing_param=7)), causal_lag(
    ...     TargetSteps(smoothing="exponential", smoothing_param=0.1))
    (3, 18)
    """
    if steps.smoothing == Smoothing.MEDIAN.value:
        return (_median_window(steps) - 1) // 2
    if steps.smoothing == Smoothing.EXPONENTIAL.value:
        a = float(steps.smoothing_param)
        return round(2 * (1 - a) / a)
    return 0


def _shift(steps: TargetSteps) -> int:
    """Row ``t`` reads filtered output ``t - shift`` (negative: lookahead)."""
    return steps.delay_frames - causal_lag(steps)


def _bias_scale(steps: TargetSteps, values: np.ndarray) -> np.ndarray:
    """The chain's per-frame steps (bias, scale), exactly as offline."""
    return TargetSteps(offset=steps.offset, scale=steps.scale).apply(values)


def _filtered(steps: TargetSteps, p: np.ndarray) -> np.ndarray:
    """The causal smoothing of a whole ``(time,)`` output series (vectorized; the stream does it frame by frame)."""
    if steps.smoothing == Smoothing.MEDIAN.value:
        w = _median_window(steps)
        padded = np.concatenate([np.full(w - 1, p[0]), p])  # the first value before the start, as "nearest"
        return np.median(np.lib.stride_tricks.sliding_window_view(padded, w), axis=1)
    if steps.smoothing == Smoothing.EXPONENTIAL.value:
        a = float(steps.smoothing_param)
        for _ in range(2):
            p = sig.lfilter([a], [1.0, a - 1.0], p, zi=(1.0 - a) * p[:1])[0]
        return p
    return p


def causal_postprocess(post: PostProcessor, pred: np.ndarray) -> np.ndarray:
    """What the stream's causal chain gives for a whole ``(time, targets)`` prediction (see the module docstring).

    The counterpart of ``post.apply([pred])[0]``, for comparing the two.
    """
    p = _as2d(pred)
    if p.shape[1] != len(post.steps):
        raise StreamError("causal_postprocess", f"predictions have {p.shape[1]} columns, the chain {len(post.steps)}")
    out = np.empty_like(p)
    T = len(p)
    for k, steps in enumerate(post.steps):
        if T:
            rows = np.clip(np.arange(T) - _shift(steps), 0, T - 1)
            out[:, k] = _bias_scale(steps, _filtered(steps, p[:, k])[rows])
    return out.astype(np.float32)


class _CausalFilter:
    """The causal smoothing of one target, one output at a time (state: ``w`` values or two filter states)."""

    def __init__(self, steps: TargetSteps) -> None:
        self.kind, self.steps = steps.smoothing, steps
        self.started = False
        self.window: collections.deque[float] = collections.deque()
        self.y1 = self.y2 = 0.0

    def _start(self, v: float) -> None:
        # the first value before the start: the median's edge, the one-pole filters' initial state (no transient)
        if self.kind == Smoothing.MEDIAN.value:
            w = _median_window(self.steps)
            self.window = collections.deque([v] * w, maxlen=w)
        self.y1 = self.y2 = v
        self.started = True

    def push(self, x: np.ndarray) -> list[float]:
        out = []
        for v in map(float, x):
            if not self.started:
                self._start(v)
            if self.kind == Smoothing.MEDIAN.value:
                self.window.append(v)
                v = float(np.median(self.window))
            elif self.kind == Smoothing.EXPONENTIAL.value:
                a = float(self.steps.smoothing_param)
                self.y1 = a * v + (1 - a) * self.y1
                self.y2 = a * self.y1 + (1 - a) * self.y2
                v = self.y2
            out.append(v)
        return out


class _Column:
    """One target's chain in a stream: filtered outputs, kept from the first one a pending row reads."""

    def __init__(self, steps: TargetSteps) -> None:
        self.steps, self.shift = steps, _shift(steps)
        self.filter = _CausalFilter(steps)
        self.values: collections.deque[float] = collections.deque()
        self.first = 0  # output index of values[0]
        self.count = 0  # outputs received

    def push(self, outputs: np.ndarray) -> None:
        self.values.extend(self.filter.push(outputs))
        self.count += len(outputs)

    def source(self, row: int, total: int | None) -> int:
        """The output index row ``row`` reads (clipped to the last frame once the total is known)."""
        i = max(0, row - self.shift)
        return i if total is None else min(i, total - 1)

    def ready(self, row: int, total: int | None) -> bool:
        return self.source(row, total) < self.count

    def value(self, row: int, total: int | None) -> float:
        return self.values[self.source(row, total) - self.first]

    def forget(self, row: int) -> None:
        """Drop the outputs no row from ``row`` on reads (the latest one stays: rows past the end read it)."""
        keep = min(max(0, row - self.shift), self.count - 1)
        while self.first < keep and self.values:
            self.values.popleft()
            self.first += 1


# --------------------------------------------------------------------------- the streaming predictor


def _streaming_model(group: str, trained: TrainedModel, name: str) -> StreamingModel:
    config = trained.model.config
    if config.lookahead is None:
        raise StreamError(name, f"model {group!r} ({config.spec}) is not causal: train with '{config.name}:causal' "
                          f"or '{config.name}:lookahead=<frames>' to stream it")
    try:
        return StreamingModel(trained.model)
    except ModelConfigError as error:
        raise StreamError(name, f"model {group!r} cannot stream: {error.reason}") from None


class StreamPredictor:
    """A predictor fed audio chunk by chunk; rows out as soon as they are final.

    Args:
        predictor: a loaded predictor whose models are all causal.
        name: what errors and the metadata name as the stream.
        postprocess: apply the causal form of the predictor's post-processing chain.
        streams: per target group, what streams the model instead of its
            :class:`~emotools.models.StreamingModel` (``push``, ``flush``,
            ``delay_frames``: an ONNX step graph, :func:`emotools.export.load_step_streams`).

    Raises:
        StreamError: a non-causal model (or one with global attention).
        FeatureError: a feature spec that cannot stream (not windowed).
    """

    def __init__(self, predictor: Predictor, *, name: str = "<stream>", postprocess: bool = True,
                 streams: Mapping[str, Any] | None = None) -> None:
        self.predictor, self.name = predictor, str(name)
        self.models = {g: _streaming_model(g, m, self.name) for g, m in predictor.models.items()}  # refusals
        self.engine = "onnxruntime (streaming-step graphs)" if streams else "torch (streaming)"
        self.models.update(streams or {})
        self.post = predictor.postprocessor if postprocess else None
        steps = self.post.steps if self.post is not None else [TargetSteps() for _ in predictor.targets]
        self.columns = [_Column(s) for s in steps]
        self._group_columns, k = {}, 0
        for g, m in predictor.models.items():
            self._group_columns[g] = range(k, k + len(m.targets))
            k += len(m.targets)
        self._moments = _Moments()
        self._times: collections.deque[float] = collections.deque()  # centres of frames not yet out
        self.frames = self.rows = self.clipped = 0
        self._total: int | None = None
        self.extractor = StreamingExtractor(predictor.spec, SAMPLE_RATE, name=self.name)

    # -- what the stream is

    @property
    def targets(self) -> tuple[str, ...]:
        return self.predictor.targets

    @property
    def seconds(self) -> float:
        """Audio pushed so far, in seconds."""
        return self.extractor.seconds

    @property
    def lookahead_frames(self) -> int:
        """Feature frames past frame ``t`` that row ``t`` waits for (models and causal chain together)."""
        need = [self.models[g].delay_frames - self.columns[c].shift
                for g, cols in self._group_columns.items() for c in cols]
        return max([0, *need])

    def latency_bounds(self) -> tuple[float, float]:
        """Least and most latency (s) of a row before the end: ``window / 2 + L hop``, plus openSMILE's
        lookahead bound (inf where none is derived); pushes add up to one chunk to the most."""
        spec = self.predictor.spec
        low = spec.window / 2 + self.lookahead_frames * spec.hop
        try:
            return round(low, 6), round(low + max_lookahead(spec), 6)
        except ValueError:
            return round(low, 6), math.inf

    def normalization_note(self) -> str:
        """How the stream normalizes features, in words (written to the metadata and stderr)."""
        modes = {m.normalizer.mode for m in self.predictor.models.values()}
        if modes & {Normalization.SESSION, Normalization.SPEAKER}:
            return ("running: each frame z-normalized with the mean and variance of the frames so far (the models "
                    f"were trained with {', '.join(sorted(m.value for m in modes))} normalization; the offline "
                    "predictor uses the whole file's statistics, unknown in real time; this converges to them)")
        return self.predictor.normalization_note() + " (exact)" * (modes == {Normalization.GLOBAL})

    def info(self) -> dict[str, Any]:
        """The metadata written beside a streamed CSV."""
        low, high = self.latency_bounds()
        return {
            "file": self.name, "seconds": self.seconds, "frames": self.rows, "rate_hz": self.predictor.spec.rate_hz,
            "targets": list(self.targets), "normalization": self.normalization_note(),
            "postprocess": "causal" if self.post is not None else None,
            "causal_chain": [{"target": t, "delay_frames": c.steps.delay_frames, "smoothing": c.steps.smoothing,
                              "smoothing_param": c.steps.smoothing_param, "filter_lag_frames": causal_lag(c.steps),
                              "shift_frames": c.shift} for t, c in zip(self.targets, self.columns)],
            "model_lookahead_frames": {g: s.delay_frames for g, s in self.models.items()},
            "lookahead_frames": self.lookahead_frames, "latency_bound_s": [low, high],
            "label_range": list(LABEL_RANGE), "clipped_frames": self.clipped, "engine": self.engine,
            "predictor": self.predictor.info,
        }

    # -- feeding it

    def push(self, chunk: np.ndarray) -> pd.DataFrame:
        """Feed float32 mono samples at :data:`SAMPLE_RATE`; the rows they completed, in order.

        Returns:
            ``time`` (s), one column per target, ``latency_s`` (audio pushed
            so far minus ``time``); possibly no rows.

        Raises:
            FeatureError: a bad chunk (not float mono, NaN or infinite samples;
                the stream goes on without it) or a closed stream.
        """
        self._consume(self.extractor.push(chunk))
        return self._emit()

    def close(self) -> pd.DataFrame:
        """End of the audio: the remaining rows (the models' last outputs, the chain's edges)."""
        self._consume(self.extractor.close())
        for g, model in self.models.items():
            self._feed(g, model.flush())
        self._total = self.frames
        return self._emit()

    def abort(self) -> None:
        """Stop now without the remaining rows (idempotent)."""
        self.extractor.abort()

    def __enter__(self) -> StreamPredictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def _normalized(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """``(n, features)`` z-normalized per group: stored statistics, or the running ones frame by frame."""
        modes = {m.normalizer.mode for m in self.predictor.models.values()}
        running_mean, running_std = np.empty_like(x), np.empty_like(x)
        for i in range(len(x) if modes & {Normalization.SESSION, Normalization.SPEAKER} else 0):
            self._moments.add(x[i : i + 1])  # each frame with the statistics of the frames up to itself
            running_mean[i], running_std[i] = self._moments.mean, np.sqrt(self._moments.m2 / self._moments.n)
        out = {}
        for g, trained in self.predictor.models.items():
            norm = trained.normalizer
            if norm.mode is Normalization.GLOBAL:
                out[g] = (x - norm.mean) / norm.std
            elif norm.mode is Normalization.NONE:
                out[g] = x
            else:
                out[g] = (x - running_mean) / np.where(running_std < norm.eps, np.float32(1), running_std)
        return out

    def _consume(self, features: pd.DataFrame) -> None:
        """New feature frames through normalization and the models into the columns."""
        if not len(features):
            return
        self._times.extend(((features["start"] + features["end"]) / 2).tolist())
        self.frames += len(features)
        for g, z in self._normalized(features.iloc[:, 2:].to_numpy(np.float32)).items():
            self._feed(g, self.models[g].push(z.astype(np.float32)))

    def _feed(self, group: str, outputs: np.ndarray) -> None:
        for j, c in enumerate(self._group_columns[group]):
            self.columns[c].push(outputs[:, j])

    def _emit(self) -> pd.DataFrame:
        """The rows now final: frame known, and every column's source output known."""
        values, times = [], []
        while self.rows < self.frames and all(c.ready(self.rows, self._total) for c in self.columns):
            values.append([c.value(self.rows, self._total) for c in self.columns])
            times.append(self._times.popleft())
            self.rows += 1
        for c in self.columns:
            c.forget(self.rows)
        raw = np.asarray(values, np.float64).reshape(len(values), len(self.columns))
        pred = np.stack([_bias_scale(c.steps, raw[:, k]) for k, c in enumerate(self.columns)], axis=1)
        self.clipped += int(((pred < LABEL_RANGE[0]) | (pred > LABEL_RANGE[1])).any(axis=1).sum())
        pred = np.clip(pred, *LABEL_RANGE).astype(np.float32)
        time = np.asarray(times, np.float64)
        return pd.DataFrame({"time": time, **{t: pred[:, k] for k, t in enumerate(self.targets)},
                             "latency_s": np.round(self.seconds - time, 6)})


def open_stream(folder: str | os.PathLike, *, onnx: bool = False, **options: Any) -> StreamPredictor:
    """A :class:`StreamPredictor` of the predictor folder ``folder`` (options as the class takes them).

    ``onnx``: stream the models' exported step graphs with onnxruntime
    (``python -m emotools export --onnx`` first).

    Raises:
        PredictorError: not a predictor folder (see :func:`~emotools.predict.load_predictor`),
            or with ``onnx`` no usable step graph (:class:`~emotools.export.OnnxError`).
        StreamError: a predictor that cannot stream.
    """
    predictor = load_predictor(folder)
    try:
        if onnx:
            for group, trained in predictor.models.items():  # the torch refusals first: the clearer reasons
                _streaming_model(group, trained, str(folder))
            from .export import load_step_streams

            options["streams"] = load_step_streams(folder, predictor)
        return StreamPredictor(predictor, **options)
    except StreamError as error:  # about the predictor: name its folder
        raise StreamError(folder, error.reason) from None


# --------------------------------------------------------------------------- the command line


def file_chunks(path: str | os.PathLike, samples: int) -> Iterator[np.ndarray]:
    """A decoded file in chunks of exactly ``samples`` (the last one shorter), float32 mono at :data:`SAMPLE_RATE`."""
    buffer = np.zeros(0, np.float32)
    for block in iter_audio(path, sr=SAMPLE_RATE, block_s=max(1.0, samples / SAMPLE_RATE)):
        buffer = np.concatenate([buffer, block])
        while len(buffer) >= samples:
            yield buffer[:samples]
            buffer = buffer[samples:]
    if len(buffer):
        yield buffer


def pcm_chunks(source: IO[bytes], samples: int, *, name: str = "stdin") -> Iterator[np.ndarray]:
    """Raw s16le mono PCM from a byte stream in chunks of ``samples``, as float32 in [-1, 1).

    Raises:
        StreamError: no bytes at all, or a trailing half sample.
    """
    total, carry = 0, b""
    while True:
        data = source.read(samples * PCM_BYTES)
        if not data:
            break
        total += len(data)
        data, carry = carry + data, b""
        if len(data) % PCM_BYTES:  # an odd piece: keep its last byte for the next one
            data, carry = data[:-1], data[-1:]
        if data:
            yield np.frombuffer(data, "<i2").astype(np.float32) / np.float32(32768)
    if total == 0:
        raise StreamError(name, f"no audio: expected raw s16le mono PCM at {SAMPLE_RATE} Hz")
    if carry:
        raise StreamError(name, f"{total} bytes are not whole s16le samples (one byte left over); expected raw "
                          f"16-bit mono PCM at {SAMPLE_RATE} Hz")


def paced(chunks: Iterable[np.ndarray], sr: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """Chunks handed out no sooner than their last sample would have been recorded (audio time == wall time)."""
    start, seconds = clock.monotonic(), 0.0
    for chunk in chunks:
        seconds += len(chunk) / sr
        wait = start + seconds - clock.monotonic()
        if wait > 0:
            clock.sleep(wait)
        yield chunk


def _write_rows(sink: IO[str], rows: pd.DataFrame, header: bool) -> None:
    rows.to_csv(sink, index=False, header=header, float_format="%.5f")
    sink.flush()


def run(stream: StreamPredictor, chunks: Iterable[np.ndarray], sink: IO[str]) -> int:
    """Push every chunk, writing (and flushing) each push's rows at once; the rows written."""
    _write_rows(sink, pd.DataFrame(columns=["time", *stream.targets, "latency_s"]), header=True)
    written = 0
    for chunk in chunks:
        rows = stream.push(chunk)
        if len(rows):
            _write_rows(sink, rows, header=False)
            written += len(rows)
    rows = stream.close()
    _write_rows(sink, rows, header=False)
    return written + len(rows)


def cli(source: str, checkpoint: str | os.PathLike, out: str, *, realtime: bool = False, onnx: bool = False) -> int:
    """``python -m emotools predict --stream FILE|- --checkpoint DIR [--out CSV|-] [--realtime] [--onnx]``.

    Exit status 0, or 2 with one ``error:`` line on stderr (a predictor that
    cannot stream, a bad file or bad PCM; rows written before stay written).
    Torch runs on :data:`STREAM_THREADS` threads meanwhile.
    """
    from .parallel import torch_threads

    with torch_threads(STREAM_THREADS):
        return _cli(source, checkpoint, out, realtime=realtime, onnx=onnx)


def _cli(source: str, checkpoint: str | os.PathLike, out: str, *, realtime: bool, onnx: bool) -> int:
    name = "stdin" if source == "-" else source
    try:
        stream = open_stream(checkpoint, name=name, onnx=onnx)
    except EmotoolsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"stream: {name}: normalization {stream.normalization_note()}; latency bound "
          f"{stream.latency_bounds()[0]:.2f}-{stream.latency_bounds()[1]:.2f} s (+ one chunk)", file=sys.stderr)
    samples = round(CHUNK_S * SAMPLE_RATE)
    chunks = pcm_chunks(sys.stdin.buffer, samples) if source == "-" else file_chunks(source, samples)
    chunks = paced(chunks) if realtime else chunks
    to_file = out != "-"
    try:
        with stream, (open(out, "w", newline="") if to_file else contextlib.nullcontext(sys.stdout)) as sink:
            rows = run(stream, chunks, sink)
    except EmotoolsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {out}: cannot write the rows ({error.strerror or error})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {name} after {stream.seconds:.1f} s of audio, {stream.rows} rows", file=sys.stderr)
        return 130
    if to_file:
        Path(out).with_suffix(".json").write_text(json.dumps(stream.info(), indent=1, default=str))
    print(f"stream: {name}: {rows} rows, {stream.seconds:.1f} s of audio", file=sys.stderr)
    return 0
