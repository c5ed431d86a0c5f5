"""Real-time emotion tracking: what it costs to answer now rather than later.

The ``realtime`` study (``notebooks/realtime.ipynb``, ``benchmarks/bench_realtime.py``):

- :func:`lookahead_plan`: each family at several lookaheads (seconds) and
  non-causal, as the architecture specs :func:`emotools.experiments.run_grid`
  trains (``"tcn:causal"``, ``"tcn:lookahead=10"``, ``"tcn"``); a lookahead a
  family cannot use (beyond its receptive future) trains its offline model once;
- :func:`lookahead_curve` and :func:`causality_costs`: test CCC against
  lookahead with CIs, and the paired CI of (offline - causal) per family:
  the CCC cost of causality;
- :func:`latency_table`: the algorithmic latency of every setting (feature
  window, openSMILE's lookahead bound, the model's lookahead);
- :func:`stream_session`: audio pushed chunk by chunk through one
  :class:`~emotools.features.StreamingExtractor` into streamed models
  (:class:`~emotools.models.StreamingModel` in torch, :class:`OnnxStream` for
  an exported graph), timed per chunk: compute per chunk, real-time factors,
  and the live trajectory with the audio time at which each output came out.

Every model of the study uses train-statistics (``global``) normalization: a
stream cannot know a session's statistics before the session has ended.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from . import paths, stats, training
from .errors import EmotoolsError
from .experiments import GridResult
from .features import FeatureSpec, StreamingExtractor, max_lookahead
from .models import SequenceRegressor, StreamingModel, build, parse_architecture
from .parallel import torch_threads
from .sequences import Normalization, Normalizer

__all__ = ["RealtimeError", "OFFLINE", "lookahead_spec", "lookahead_plan", "lookahead_curve", "causality_costs",
           "latency_table", "specs", "ModelStream", "OnnxStream", "onnx_runner", "LiveModel", "Session",
           "stream_session", "compute_table", "normalize", "offline_prediction", "offline_difference", "live_frame",
           "one_thread", "most_causal", "best_on_dev", "save_stream_predictor", "load_model", "live_models",
           "render_findings"]

OFFLINE = math.inf
"""The lookahead (s) of a non-causal model: the whole recording."""

_PLAN_COLUMNS = ["family", "lookahead_s", "lookahead_frames", "spec", "past_s", "future_s", "same_as_offline"]


class RealtimeError(EmotoolsError, ValueError):
    """A study setting or a stream that cannot be used: ``RealtimeError(subject, reason)``."""


# --------------------------------------------------------------------------- the plan


def lookahead_spec(family: str, lookahead_s: float, rate_hz: float) -> str:
    """The architecture spec of ``family`` with ``lookahead_s`` seconds of lookahead at ``rate_hz`` frames/s.

    ``inf`` (:data:`OFFLINE`) is the non-causal model; other lookaheads are
    rounded to whole frames.

    >>> lookahead_spec("tcn", 0.0, 10.0), lookahead_spec("tcn", 1.0, 10.0), lookahead_spec("tcn", OFFLINE, 10.0)
    ('tcn:causal', 'tcn:lookahead=10', 'tcn')

    Raises:
        RealtimeError: a negative or NaN lookahead, or a family with a variant already.
    """
    name, variant = parse_architecture(family)
    if variant:
        raise RealtimeError(family, "give the family's plain name; the lookahead comes from lookaheads_s")
    if not lookahead_s >= 0:
        raise RealtimeError(family, f"lookahead must be >= 0 s or inf (offline), got {lookahead_s}")
    if math.isinf(lookahead_s):
        return name
    frames = int(round(lookahead_s * rate_hz))
    return f"{name}:causal" if frames == 0 else f"{name}:lookahead={frames}"


def _support(spec: str, rate_hz: float) -> tuple[float, float]:
    """(past, future) of a spec's default model in seconds; ``inf`` where unbounded."""
    model = build(spec, n_features=1, n_targets=1)
    past, future = model.receptive_past, model.receptive_future
    return (math.inf if past is None else past / rate_hz), (math.inf if future is None else future / rate_hz)


def lookahead_plan(families: Sequence[str], lookaheads_s: Sequence[float], *, rate_hz: float,
                   offline: bool = True) -> pd.DataFrame:
    """Every (family, lookahead) of the study and the architecture spec trained for it.

    A lookahead beyond what a family can use (a TDNN's centred contexts reach
    2.3 s) builds the same network as the non-causal model (same past and
    future); such a row trains ``spec`` = the family's offline model, once,
    and says ``same_as_offline``.

    Returns:
        One row per (family, lookahead): ``family``, ``lookahead_s`` (``inf``
        offline), ``lookahead_frames`` (-1 offline), ``spec``, ``past_s``,
        ``future_s`` (the model's receptive past and future; ``inf``:
        unbounded), ``same_as_offline``.

    Raises:
        RealtimeError: no families, no settings, or a bad lookahead.
    """
    settings = sorted({float(s) for s in lookaheads_s} | ({OFFLINE} if offline else set()))
    if not families or not settings:
        raise RealtimeError("plan", f"needs families and lookaheads, got {list(families)} and {list(lookaheads_s)}")
    rows = []
    for family in dict.fromkeys(families):
        reference = _support(family, rate_hz)
        for lookahead in settings:
            spec = lookahead_spec(family, lookahead, rate_hz)
            past, future = _support(spec, rate_hz)
            same = (past, future) == reference
            rows.append({"family": family, "lookahead_s": lookahead,
                         "lookahead_frames": -1 if math.isinf(lookahead) else int(round(lookahead * rate_hz)),
                         "spec": family if same else spec, "past_s": past, "future_s": future,
                         "same_as_offline": same})
    return pd.DataFrame(rows, columns=_PLAN_COLUMNS)


def specs(plan: pd.DataFrame) -> list[str]:
    """The architecture specs to train, each once, in plan order."""
    return list(dict.fromkeys(plan["spec"]))


# --------------------------------------------------------------------------- accuracy against lookahead


def lookahead_curve(intervals: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """Test CCC (raw predictions) with its bootstrap CI per (family, lookahead, target).

    Args:
        intervals: :func:`emotools.experiments.interval_table` of the grid
            trained on ``specs(plan)`` (test speakers and seeds resampled).
        plan: :func:`lookahead_plan`.

    Raw predictions only: the AVEC chain's smoothing looks ahead, so it has
    no place in a causal system.
    """
    iv = intervals[intervals["postprocess"] == "none"].rename(columns={"architecture": "spec"})
    keep = ["spec", "target", "ccc", "ccc_low", "ccc_high", "level", "unit", "n_units", "n_seeds"]
    return plan.merge(iv[keep], on="spec", how="inner").sort_values(["family", "target", "lookahead_s"],
                                                                      ignore_index=True)


def _systems(grid: GridResult, spec: str) -> dict[int, list[np.ndarray]]:
    """``{seed: test predictions}`` of one architecture spec of a grid."""
    return {c.seed: c.test_predictions for c in grid.cells if c.architecture == spec}


def causality_costs(grid: GridResult, plan: pd.DataFrame, *, n_resamples: int = 2000, level: float = 0.95,
                    seed: int = 0) -> pd.DataFrame:
    """The CCC cost of answering with ``lookahead_s`` instead of offline: paired CI of (offline - causal).

    Both models are scored on the same resampled test speakers (seeds
    resampled too), so what they share cancels; ``resolved`` says whether the
    CI excludes 0. Rows whose model is the offline one have cost 0 and no CI;
    with a single test unit there is no CI either (the difference of the means alone).

    Returns:
        One row per (family, causal lookahead, target): ``family``,
        ``lookahead_s``, ``spec``, ``target``, ``ccc_offline``, ``ccc``,
        ``cost``, ``cost_low``, ``cost_high``, ``resolved``, ``level``,
        ``unit``, ``n_units``, ``n_seeds``; empty without offline rows.
    """
    columns = ["family", "lookahead_s", "spec", "target", "ccc_offline", "ccc", "cost", "cost_low", "cost_high",
               "resolved", "level", "unit", "n_units", "n_seeds"]
    if not grid.cells:
        return pd.DataFrame(columns=columns)
    targets = grid.cells[0].targets
    truths = [r.select_targets(targets).y for r in grid.test_records]
    speakers = [r.speaker for r in grid.test_records]
    units, unit = (speakers, "speaker") if len(set(speakers)) >= 2 else (None, "recording")
    n_units = len(set(speakers)) if units else len(speakers)
    rows = []
    causal = plan[~np.isinf(plan["lookahead_s"])]
    offline = plan[np.isinf(plan["lookahead_s"])].set_index("family")["spec"]
    for row in causal[causal["family"].isin(offline.index)].itertuples():
        reference = offline[row.family]
        for k, target in enumerate(targets):
            ccc_ref, ccc = _mean_ccc(grid, reference, target), _mean_ccc(grid, row.spec, target)
            out = {"family": row.family, "lookahead_s": row.lookahead_s, "spec": row.spec, "target": target,
                   "ccc_offline": ccc_ref, "ccc": ccc, "cost": ccc_ref - ccc, "cost_low": np.nan,
                   "cost_high": np.nan, "resolved": False, "level": level, "unit": unit, "n_units": n_units,
                   "n_seeds": len(_systems(grid, row.spec))}
            if row.spec != reference and n_units >= 2:  # else: the same model, or no CI from one unit
                d = stats.paired_difference(truths, _systems(grid, reference), _systems(grid, row.spec),
                                            names=(reference, row.spec), units=units, unit=unit, target=k,
                                            n_resamples=n_resamples, level=level, seed=seed)
                out.update(cost=d.estimate, cost_low=d.low, cost_high=d.high, resolved=d.excludes(0.0),
                           n_seeds=d.n_seeds)
            rows.append(out)
    return pd.DataFrame(rows, columns=columns)


def _mean_ccc(grid: GridResult, spec: str, target: str) -> float:
    r = grid.results
    r = r[(r["architecture"] == spec) & (r["target"] == target) & (r["split"] == "test")
          & (r["postprocess"] == "none")]
    return float(r["ccc"].mean())


# --------------------------------------------------------------------------- latency


def latency_table(plan: pd.DataFrame, spec: FeatureSpec, *, chunk_s: float) -> pd.DataFrame:
    """Algorithmic latency of every setting, from a frame's time (its window's centre) to its output.

    ``algorithmic_s = window / 2 + feature_lookahead_s + model_lookahead_s``:
    the rest of the frame's window, the audio openSMILE may need past a
    window's end (:func:`emotools.features.max_lookahead`, a bound) and the
    model's lookahead (its receptive future). ``worst_s`` adds one chunk
    (audio arrives a chunk at a time); compute comes on top
    (:func:`compute_table`). A non-causal model's lookahead is its receptive
    future (``inf`` for a bidirectional LSTM).
    """
    out = plan[["family", "lookahead_s", "spec", "future_s"]].rename(columns={"future_s": "model_lookahead_s"})
    out = out.assign(half_window_s=spec.window / 2, feature_lookahead_s=max_lookahead(spec), chunk_s=chunk_s)
    out["algorithmic_s"] = out["half_window_s"] + out["feature_lookahead_s"] + out["model_lookahead_s"]
    out["worst_s"] = out["algorithmic_s"] + chunk_s
    return out.round(6)


# --------------------------------------------------------------------------- streams


class ModelStream(Protocol):
    """What :func:`stream_session` drives: frames in, final outputs out (:class:`~emotools.models.StreamingModel`)."""

    def push(self, frames: np.ndarray) -> np.ndarray: ...

    def flush(self) -> np.ndarray: ...


def onnx_runner(path: str | os.PathLike, *, threads: int = 1) -> Any:
    """The streaming-step graph at ``path`` (:func:`emotools.export.export_step`) in an onnxruntime session
    using ``threads`` threads (:class:`emotools.export.StepGraph`)."""
    from .export import StepGraph

    return StepGraph.load(path, threads=threads)


class OnnxStream:
    """A causal model's exported streaming-step graph, streamed: state in, state out, only the new frames run.

    :class:`emotools.export.StepStream` under the study's name: the graph
    carries the same state as :class:`~emotools.models.StreamingModel`
    (caches of the last frames per layer, LSTM ``(h, c)``), so every push
    costs the new frames only. Equal to the offline pass within float
    rounding. ``dsus`` and non-causal models have no step graph
    (:data:`emotools.export.NO_STEP`).
    """

    def __init__(self, runner: Any) -> None:
        from .export import StepStream

        self._stream = StepStream(runner)
        self.delay_frames = self._stream.delay_frames

    def push(self, frames: np.ndarray) -> np.ndarray:
        """Consume ``(n, n_features)`` frames; the ``(m, n_targets)`` outputs now final."""
        return self._stream.push(frames)

    def flush(self) -> np.ndarray:
        """End of the stream: the pending outputs."""
        return self._stream.flush()


@dataclass
class LiveModel:
    """One model in a live session: its stream and the train-statistics normalization of its features."""

    name: str
    stream: ModelStream
    normalizer: Normalizer | None = None
    architecture: str = ""
    backend: str = "torch"

    def __post_init__(self) -> None:
        if self.normalizer is not None and self.normalizer.mode not in (Normalization.GLOBAL, Normalization.NONE):
            raise RealtimeError(self.name, f"normalization {self.normalizer.mode.value!r} needs a whole session's "
                                "statistics; a stream can use only train statistics ('global')")

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """``x`` with the training statistics applied (see :func:`normalize`)."""
        return normalize(x, self.normalizer)


def normalize(x: np.ndarray, normalizer: Normalizer | None) -> np.ndarray:
    """``(x - mean) / std`` with train statistics, as :meth:`Normalizer.transform` does for ``global``."""
    if normalizer is None or normalizer.mode is Normalization.NONE:
        return x
    return (x - normalizer.mean) / normalizer.std


@dataclass
class Session:
    """A streamed session: per-chunk timings, and each model's outputs with the audio time they came out at.

    Attributes:
        audio_s: seconds of audio streamed.
        chunk_s: seconds per pushed chunk (the last may be shorter).
        time: ``(frames,)`` frame times (window centres), seconds.
        features: ``(frames, n_features)`` the streamed features (raw).
        predictions: ``{name: (frames, targets)}``.
        emitted_at: ``{name: (frames,)}`` audio seconds pushed when each output came out.
        chunks: one row per push (and one for the end of the stream): ``audio_end_s``,
            ``rows`` (feature rows out), ``features_s`` / ``features_cpu_s`` (wall / process
            CPU seconds of the openSMILE push), and ``<name>_s`` / ``<name>_cpu_s`` per model.
    """

    audio_s: float
    chunk_s: float
    time: np.ndarray
    features: np.ndarray
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    emitted_at: dict[str, np.ndarray] = field(default_factory=dict)
    chunks: pd.DataFrame = field(default_factory=pd.DataFrame)

    def latency(self, name: str) -> np.ndarray:
        """Seconds from each frame's time to the moment its output was out (audio time, compute excluded)."""
        return self.emitted_at[name] - self.time


def one_thread() -> AbstractContextManager[None]:
    """torch on one thread inside the block (restored after): a one-core measurement."""
    return torch_threads(1)


@contextmanager
def _timed(row: dict[str, float], key: str) -> Iterator[None]:
    # wall and process-CPU seconds of the block into row[key], row[key_cpu]
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    row[f"{key}_s"] = time.perf_counter() - wall
    row[f"{key}_cpu_s"] = time.process_time() - cpu


def _chunks(signal: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for begin in range(0, len(signal), size):
        yield signal[begin:begin + size]


def stream_session(signal: np.ndarray, models: Sequence[LiveModel], *, spec: FeatureSpec, sr: int,
                   chunk_s: float) -> Session:
    """Push ``signal`` ``chunk_s`` at a time through one streaming openSMILE and every model; time each part.

    Features are extracted once per chunk and fed to every model (each with
    its own normalization); each part is timed (wall and process CPU), so
    a model's compute per chunk is ``features_s + <name>_s``.

    Args:
        signal: mono float audio at ``sr``.
        models: the streamed models, names unique.
        spec: the windowed feature spec the models were trained on.
        sr: sample rate of ``signal``.
        chunk_s: audio per push in seconds.

    Raises:
        RealtimeError: no models, duplicate names, a chunk shorter than one sample, or an empty signal.
        FeatureError: openSMILE refusing the signal.
    """
    names = [m.name for m in models]
    size = int(round(chunk_s * sr))
    if not names or len(set(names)) != len(names):
        raise RealtimeError("session", f"needs models with unique names, got {names}")
    if size < 1 or len(signal) == 0:
        raise RealtimeError("session", f"needs audio and chunks of >= 1 sample, got {len(signal)} samples "
                            f"in chunks of {chunk_s} s")
    outs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    emitted: dict[str, list[np.ndarray]] = {n: [] for n in names}
    rows, frames, starts = [], [], []
    with StreamingExtractor(spec, sr, name="session") as extractor:
        pieces = [*(("push", c) for c in _chunks(np.asarray(signal, np.float32), size)), ("close", None)]
        for kind, chunk in pieces:
            row: dict[str, float] = {}
            with _timed(row, "features"):
                table = extractor.push(chunk) if kind == "push" else extractor.close()
            x = table.iloc[:, 2:].to_numpy(np.float32, copy=True)  # (rows, n_features): after start, end
            frames.append(x)
            starts.append(table["start"].to_numpy())
            row.update(audio_end_s=extractor.seconds, rows=len(x))
            for m in models:
                with _timed(row, m.name):
                    y = m.stream.push(m.normalize(x))
                    if kind == "close":
                        y = np.concatenate([y, m.stream.flush()])
                outs[m.name].append(y)
                emitted[m.name].append(np.full(len(y), extractor.seconds))
            rows.append(row)
    start = np.concatenate(starts)
    return Session(audio_s=len(signal) / sr, chunk_s=chunk_s, time=np.round(start + spec.window / 2, 6),
                   features=np.concatenate(frames),
                   predictions={n: np.concatenate(v) for n, v in outs.items()},
                   emitted_at={n: np.concatenate(v) for n, v in emitted.items()}, chunks=pd.DataFrame(rows))


def compute_table(session: Session, models: Sequence[LiveModel] = ()) -> pd.DataFrame:
    """Compute per chunk and real-time factors of every model of a session (features + model).

    ``rtf`` = (features + model seconds) / audio seconds, wall clock;
    ``rtf_cpu`` the same in process CPU seconds (less disturbed by other work
    on a shared machine); ``chunk_ms_mean`` / ``chunk_ms_max``: wall time per
    pushed chunk (the end of the stream excluded); ``latency_s_max``: the
    longest wait from a frame's time to its output, in audio time, before the
    end of the stream (compute excluded). ``models`` (those of the session)
    add their ``architecture`` and ``backend``.
    """
    meta = {m.name: {"architecture": m.architecture, "backend": m.backend} for m in models}
    pushes = session.chunks.iloc[:-1]  # the last row is the end of the stream
    rows = []
    for name in session.predictions:
        wall = session.chunks["features_s"] + session.chunks[f"{name}_s"]
        cpu = session.chunks["features_cpu_s"] + session.chunks[f"{name}_cpu_s"]
        per_chunk = (pushes["features_s"] + pushes[f"{name}_s"]) * 1000
        live = session.emitted_at[name] < session.audio_s
        latency = session.latency(name)[live]
        rows.append({"model": name, **meta.get(name, {}), "audio_s": session.audio_s, "chunk_s": session.chunk_s,
                     "chunks": len(pushes),
                     "features_s": session.chunks["features_s"].sum(), "model_s": session.chunks[f"{name}_s"].sum(),
                     "rtf": wall.sum() / session.audio_s, "rtf_cpu": cpu.sum() / session.audio_s,
                     "chunk_ms_mean": per_chunk.mean(), "chunk_ms_max": per_chunk.max(),
                     "latency_s_max": latency.max() if len(latency) else np.nan})
    return pd.DataFrame(rows)


def _offline(model: SequenceRegressor, x: np.ndarray) -> np.ndarray:
    # the model's offline pass over one whole sequence of (normalized) frames, (frames, targets)
    with torch.inference_mode():
        return model.eval()(torch.from_numpy(np.asarray(x, np.float32))[None], torch.tensor([len(x)]))[0].numpy()


def offline_prediction(trained: training.TrainedModel, features: np.ndarray) -> np.ndarray:
    """A trained model's offline prediction of raw feature frames (e.g. a session's), its normalization applied."""
    return _offline(trained.model, normalize(features, trained.normalizer))


def offline_difference(session: Session, name: str, model: SequenceRegressor, live: LiveModel) -> float:
    """Largest |streamed - offline| of one model over a session: the offline pass on the streamed features."""
    return float(np.abs(_offline(model, live.normalize(session.features)) - session.predictions[name]).max())


def live_frame(session: Session, name: str, targets: Sequence[str],
               offline: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """One row per frame: ``time``, ``emitted_at`` and, per target, the live prediction and any offline ones.

    Args:
        offline: ``{label: (frames, targets)}`` predictions on the same frames
            (e.g. the non-causal model's), columns ``<label> <target>``.
    """
    out = pd.DataFrame({"time": session.time, "emitted_at": session.emitted_at[name]})
    for k, target in enumerate(targets):
        out[f"live {target}"] = session.predictions[name][:, k]
        for label, y in (offline or {}).items():
            out[f"{label} {target}"] = y[:, k]
    return out


# --------------------------------------------------------------------------- the notebook's live part


def most_causal(plan: pd.DataFrame) -> dict[str, str]:
    """``{family: spec}`` of each family's smallest lookahead that is not its offline model."""
    causal = plan[~plan["same_as_offline"]].sort_values("lookahead_s")
    return dict(causal.groupby("family", sort=False)["spec"].first())


def best_on_dev(grid: GridResult, specs_: Sequence[str]) -> str:
    """Of ``specs_``, the one with the highest mean dev CCC (raw predictions, over targets and seeds)."""
    r = grid.results
    dev = r[(r["split"] == "dev") & (r["postprocess"] == "none") & r["architecture"].isin(list(specs_))]
    if dev.empty:
        raise RealtimeError("grid", f"no dev scores of {list(specs_)}")
    return str(dev.groupby("architecture")["ccc"].mean().idxmax())


def save_stream_predictor(grid: GridResult, spec: str, feature_spec: FeatureSpec, notebook: str) -> Path:
    """Save the joint model of ``spec`` (a causal spec of ``grid``, first seed) as a predictor for streaming.

    Written to ``results/models/<notebook>-stream`` (raw predictions: the
    study scores no post-processing), so that ``python -m emotools predict
    --stream FILE --checkpoint`` that folder runs what the main job trained.

    Raises:
        RealtimeError: no joint model of ``spec`` in the grid.
    """
    from . import predict

    cells = [c for c in grid.cells if c.architecture == spec]
    if not cells or len(cells[0].model_paths) != 1:
        raise RealtimeError(spec, "no joint model of this architecture in the grid")
    cell = cells[0]
    return predict.save_predictor(paths.results_dir() / "models" / f"{notebook}-stream", feature_spec,
                                  cell.model_paths, None, architecture=spec, mode=cell.mode, seed=cell.seed)


def load_model(grid: GridResult, spec: str, *, seed: int | None = None) -> training.TrainedModel:
    """The trained joint model of ``spec`` in ``grid`` (its first seed unless ``seed``).

    Raises:
        RealtimeError: no such cell, or one trained per target (separate mode).
    """
    cells = [c for c in grid.cells if c.architecture == spec and (seed is None or c.seed == seed)]
    if not cells or len(cells[0].model_paths) != 1:
        raise RealtimeError(spec, "no joint model of this architecture in the grid")
    [path] = cells[0].model_paths.values()
    return training.load(path, device="cpu")


def live_models(trained: Mapping[str, training.TrainedModel], *,
                onnx_dir: str | os.PathLike | None = None) -> list[LiveModel]:
    """A torch stream of each trained causal model and, with ``onnx_dir``, its exported step graph streamed.

    Models without a step graph (``dsus``: :data:`emotools.export.NO_STEP`) get no ONNX stream.
    """
    from .export import OnnxError, export_step, step_model

    out = []
    for spec, tm in trained.items():
        out.append(LiveModel(f"{spec} · torch", StreamingModel(tm.model), tm.normalizer, spec, "torch"))
        try:
            step_model(tm.model)
        except OnnxError:
            continue
        if onnx_dir is not None:
            path = export_step(tm.model, Path(onnx_dir) / f"{spec.replace(':', '-').replace('=', '')}.step.onnx")
            out.append(LiveModel(f"{spec} · onnx", OnnxStream(onnx_runner(path)), tm.normalizer, spec, "onnx"))
    return out


def _ci(low: float, high: float) -> str:
    return "no CI" if np.isnan(low) or np.isnan(high) else f"[{low:+.3f}, {high:+.3f}]"


def render_findings(costs: pd.DataFrame, compute: pd.DataFrame) -> str:
    """Markdown bullets from this run's numbers: the CCC cost of causality per family, the real-time factors."""
    lines = []
    if not costs.empty:
        first = costs.iloc[0]
        how = (f"paired {first['level']:.0%} CI over the {first['n_units']} test {first['unit']}s; \"resolved\": "
               "the CI excludes 0" if first["n_units"] >= 2 else f"no CI: only {first['n_units']} test {first['unit']}")
        lines.append(f"**Cost of causality** (offline CCC minus causal CCC on test, {how}; negative: the causal "
                     "model scores higher):")
        for (family, lookahead), group in costs.groupby(["family", "lookahead_s"], sort=False):
            parts = [f"{r.target} {r.cost:+.3f} {_ci(r.cost_low, r.cost_high)}"
                     + ("" if np.isnan(r.cost_low) else " resolved" if r.resolved else " not resolved")
                     for r in group.itertuples()]
            note = " (the same model as offline)" if group["spec"].iloc[0] == family else ""
            lines.append(f"- {family}, lookahead {lookahead:g} s{note}: " + "; ".join(parts))
    if not compute.empty:
        lines.append(f"\n**Real-time factor** (features streamed + model streamed, one thread, chunks of "
                     f"{compute['chunk_s'].iloc[0]:g} s, {compute['audio_s'].iloc[0]:g} s of audio; RTF < 1: "
                     "faster than real time):")
        for r in compute.itertuples():
            lines.append(f"- {r.model}: RTF {r.rtf:.3f} (CPU {r.rtf_cpu:.3f}), {r.chunk_ms_mean:.1f} ms per chunk "
                         f"on average, longest {r.chunk_ms_max:.1f} ms")
    return "\n".join(lines)
