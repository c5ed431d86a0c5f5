"""The annotation model: simulated raters, the gold standard and its ceiling, relabelling at other lags."""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from ..errors import EmotoolsError
from ..features.smile import RATE_HZ  # the default label frame rate: the features' default frame rate

TARGETS: tuple[str, str] = ("arousal", "valence")
"""The label dimensions, in column order."""


class LabelProtocol(str, Enum):
    """Where a recording's label frames come from."""

    ANNOTATION = "annotation"  #: the corpus' own time-continuous annotation
    SEED = "seed"  #: uniform random value per utterance (control)
    PROXY = "proxy"  #: annotation model on an acoustic proxy of the latent


class LabelError(EmotoolsError):
    """Labels that cannot be made for a recording; ``str(err)`` is ``"<what>: <reason>"``."""


# --------------------------------------------------------------------------- the annotation model


@dataclass(frozen=True)
class Rater:
    """Traits of one simulated rater, fixed across a corpus.

    Attributes:
        lag: reaction delay in seconds.
        smoothing: time constant of the rater's exponential smoothing, seconds.
    """

    lag: float
    smoothing: float


@dataclass(frozen=True)
class AnnotationModel:
    """K simulated raters of a latent trajectory (see the module docstring).

    Attributes:
        raters: number of raters K.
        lag_mean: mean rater lag in seconds (the long-context study varies it).
        lag_spread: standard deviation of the lags across raters, seconds. The
            K lags are ``lag_mean + lag_spread * z`` with ``z`` standardised
            to mean 0 and sd 1 across raters (so the mean lag is exact), then
            clipped at 0.
        smoothing: (min, max) of the raters' smoothing time constants, seconds.
        noise_sd: standard deviation of each rater's drifting noise.
        noise_tau: time constant of that noise (Ornstein-Uhlenbeck), seconds.
        bias_sd: sd of each rater's per-session offset.
        scale_sd: sd of the log of each rater's per-session scale.
        seed: fixes the raters' traits; sessions draw their own noise from it
            and the session key.
        lag_drift: how fast each rater's lag wanders within a session: sd of
            a random-walk step per sqrt(second) (0: fixed lags, the default).
            A rater's walk starts at its trait lag clipped into ``lag_bounds``
            and is reflected at the bounds; see :func:`lag_paths`.
        lag_bounds: (low, high) seconds of a drifting lag.
    """

    raters: int = 4
    lag_mean: float = 3.0
    lag_spread: float = 1.0
    smoothing: tuple[float, float] = (1.0, 3.0)
    noise_sd: float = 0.18
    noise_tau: float = 5.0
    bias_sd: float = 0.08
    scale_sd: float = 0.1
    seed: int = 0
    lag_drift: float = 0.0
    lag_bounds: tuple[float, float] = (2.0, 5.0)

    def __post_init__(self) -> None:
        if isinstance(self.raters, bool) or not isinstance(self.raters, (int, np.integer)) or self.raters < 1:
            raise ValueError(f"raters must be a positive int, got {self.raters!r}")
        for name in ("lag_mean", "lag_spread", "noise_sd", "bias_sd", "scale_sd", "lag_drift"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not self.noise_tau > 0:
            raise ValueError(f"noise_tau must be > 0, got {self.noise_tau!r}")
        low, high = self.smoothing
        if not 0 <= low <= high:
            raise ValueError(f"smoothing must be (min, max) with 0 <= min <= max, got {self.smoothing!r}")
        object.__setattr__(self, "smoothing", (float(low), float(high)))
        low, high = self.lag_bounds
        if not 0 <= low <= high:
            raise ValueError(f"lag_bounds must be (low, high) with 0 <= low <= high, got {self.lag_bounds!r}")
        object.__setattr__(self, "lag_bounds", (float(low), float(high)))

    def panel(self) -> list[Rater]:
        """The K raters' traits (deterministic in ``seed``)."""
        rng = np.random.default_rng([self.seed, 0x5A7E5])
        z = rng.standard_normal(self.raters)
        if self.raters > 1:
            z = (z - z.mean()) / z.std()
        else:
            z = np.zeros(1)
        lags = np.maximum(self.lag_mean + self.lag_spread * z, 0.0)
        smoothing = rng.uniform(*self.smoothing, size=self.raters)
        return [Rater(lag=round(float(lag), 4), smoothing=round(float(s), 4)) for lag, s in zip(lags, smoothing)]

    def to_dict(self) -> dict[str, Any]:
        """Parameters and the raters' traits, JSON-ready (without the drift knobs while ``lag_drift`` is 0)."""
        out = asdict(self)
        out["smoothing"] = list(self.smoothing)
        if self.lag_drift:
            out["lag_bounds"] = list(self.lag_bounds)
        else:  # fixed lags: the dict of version 1, which keys cached corpora
            del out["lag_drift"], out["lag_bounds"]
        out["panel"] = [asdict(r) for r in self.panel()]
        return out


def frame_times(duration: float, rate_hz: float = RATE_HZ) -> np.ndarray:
    """The label grid of a recording: ``0, 1/rate, ...`` up to ``duration``.

    Always at least one frame, so a label is never empty.

    >>> frame_times(0.25, 10.0)
    array([0. , 0.1, 0.2])
    """
    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be > 0, got {rate_hz!r}")
    if not (math.isfinite(duration) and duration >= 0):
        raise ValueError(f"duration must be a finite number >= 0, got {duration!r}")
    count = int(math.floor(duration * rate_hz + 1e-9)) + 1
    return np.round(np.arange(count) / rate_hz, 6)


def rater_columns(target: str, raters: int) -> list[str]:
    """``["<target>_r1", ..., "<target>_rK"]``."""
    return [f"{target}_r{k + 1}" for k in range(raters)]


def key_rng(seed: int, key: str, salt: int) -> np.random.Generator:
    """A generator drawn from (seed, recording key, salt): the same draws for a recording in every run and process."""
    return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8")), salt])


def ou_path(rng: np.random.Generator, n: int, dt: float, tau: float, sd: float) -> np.ndarray:
    """Stationary Ornstein-Uhlenbeck path of ``n`` steps of ``dt`` with time constant ``tau`` and sd ``sd``.

    The one home of the process: rater noise here, the latent and the vocal events in :mod:`emotools.synth`.
    """
    phi = math.exp(-dt / tau)
    e = rng.standard_normal(n)
    e[1:] *= math.sqrt(1.0 - phi * phi)
    return sd * lfilter([1.0], [1.0, -phi], e)


def _smooth(x: np.ndarray, dt: float, tau: float) -> np.ndarray:
    """Causal exponential smoothing with time constant ``tau``, starting at ``x[0]``."""
    if tau <= 0 or x.size == 0:
        return x.copy()
    alpha = 1.0 - math.exp(-dt / tau)
    y, _ = lfilter([alpha], [1.0, alpha - 1.0], x, zi=[(1.0 - alpha) * x[0]])
    return y


def _delay(time: np.ndarray, x: np.ndarray, lag: float | np.ndarray) -> np.ndarray:
    """``x(t - lag)`` by linear interpolation (``lag``: one or one per frame); before the start, the first value."""
    return np.interp(time - lag, time, x)


def _reflect(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """``x`` folded into [low, high] by reflection at the bounds."""
    width = high - low
    if width <= 0:
        return np.full_like(x, low)
    y = np.mod(x - low, 2 * width)
    return low + np.where(y > width, 2 * width - y, y)


LAG_DRIFT_SMOOTHING: float = 2.0
"""Time constant (s) over which a drifting lag's steps are smoothed, so the lag wanders smoothly."""


def lag_paths(model: AnnotationModel, key: str, time: np.ndarray) -> np.ndarray:
    """Every rater's lag (seconds) at each frame of a session, ``(raters, frames)``.

    Constant trait lags without drift; with ``model.lag_drift`` a random walk
    per rater whose steps are smoothed over :data:`LAG_DRIFT_SMOOTHING` (a
    slow, smooth drift, sd ``lag_drift`` x sqrt(seconds) in the long run),
    reflected into ``lag_bounds`` and seeded by the model seed and the session key.
    """
    lags = np.array([[rater.lag] for rater in model.panel()]) + np.zeros((1, time.size))
    if not model.lag_drift or time.size < 2:
        return lags
    dt = float(np.median(np.diff(time)))
    steps = key_rng(model.seed, key, 0x1A6).standard_normal((lags.shape[0], time.size - 1))
    alpha = 1.0 - math.exp(-dt / LAG_DRIFT_SMOOTHING)  # smooth steps (unit gain): a smooth walk, no jitter
    steps = lfilter([alpha], [1.0, alpha - 1.0], model.lag_drift * math.sqrt(dt) * steps, axis=1)
    start = np.clip(lags[:, :1], *model.lag_bounds)
    walk = np.concatenate([start, start + np.cumsum(steps, axis=1)], axis=1)
    return _reflect(walk, *model.lag_bounds)


def annotate(
    latent: pd.DataFrame, *, model: AnnotationModel = AnnotationModel(), key: str
) -> pd.DataFrame:
    """What the model's raters would report for a latent trajectory.

    Args:
        latent: ``time`` (seconds, a uniform grid) and ``arousal``, ``valence``
            in [-1, 1]: the true trajectory.
        model: the annotation model.
        key: the session's name (e.g. the recording id); seeds its noise,
            bias and scale, so the same key gives the same labels.

    Returns:
        A label frame: ``time, arousal, valence`` (gold = mean of raters),
        ``arousal_r1..rK, valence_r1..rK`` (clipped to [-1, 1]),
        ``arousal_latent, valence_latent`` and ``arousal_ceiling,
        valence_ceiling`` (mean of the raters' noise-free parts).

    Raises:
        LabelError: missing columns, fewer than one frame, NaN, or a
            non-uniform time grid.
    """
    missing = {"time", *TARGETS} - set(latent.columns)
    if missing:
        raise LabelError(key, f"latent lacks column(s) {sorted(missing)}")
    time = latent["time"].to_numpy(dtype=np.float64)
    if time.size == 0:
        raise LabelError(key, "latent has no frames")
    values = {t: latent[t].to_numpy(dtype=np.float64) for t in TARGETS}
    if not all(np.isfinite(v).all() for v in values.values()) or not np.isfinite(time).all():
        raise LabelError(key, "latent holds NaN or infinite values")
    dt = float(np.median(np.diff(time))) if time.size > 1 else 1.0 / RATE_HZ
    if time.size > 1 and (dt <= 0 or np.max(np.abs(np.diff(time) - dt)) > 1e-6 + 1e-3 * dt):
        raise LabelError(key, "latent time grid is not uniform and increasing")
    panel = model.panel()
    lags = lag_paths(model, key, time)
    out: dict[str, np.ndarray] = {"time": time}
    extra: dict[str, np.ndarray] = {}
    for index, target in enumerate(TARGETS):
        rng = key_rng(model.seed, key, index)
        ratings, clean = [], []
        for rater, lag in zip(panel, lags):
            part = _smooth(_delay(time, values[target], lag), dt, rater.smoothing)
            bias = rng.normal(0.0, model.bias_sd) if model.bias_sd > 0 else 0.0
            scale = math.exp(rng.normal(0.0, model.scale_sd)) if model.scale_sd > 0 else 1.0
            noise = ou_path(rng, time.size, dt, model.noise_tau, model.noise_sd)
            ratings.append(np.clip(scale * part + bias + noise, -1.0, 1.0))
            clean.append(part)
        out[target] = np.mean(ratings, axis=0)
        for column, rating in zip(rater_columns(target, len(panel)), ratings):
            extra[column] = rating
        extra[f"{target}_latent"] = values[target]
        extra[f"{target}_ceiling"] = np.mean(clean, axis=0)
    order = ["time", *TARGETS]
    order += [c for t in TARGETS for c in rater_columns(t, len(panel))]
    order += [f"{t}_{s}" for s in ("latent", "ceiling") for t in TARGETS]
    frame = pd.DataFrame({**out, **extra})[order]
    frame.attrs["protocol"] = LabelProtocol.ANNOTATION.value
    return frame


def _read_annotation(path: str | os.PathLike) -> pd.DataFrame:
    from ..corpora import annotated

    return annotated.read_annotation(path)


def _annotation_paths(table: pd.DataFrame) -> dict[str, str]:
    if "annotation" not in table.columns:
        raise LabelError("table", "has no 'annotation' column (not an annotated corpus)")
    return dict(zip(table["utterance"].astype(str), table["annotation"].astype(str)))


def annotation_labels(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The stored annotations of an annotated corpus, keyed by utterance.

    Args:
        table: a corpus table with ``utterance`` and ``annotation`` columns.

    Returns:
        utterance -> label frame (all stored columns), ``attrs["protocol"] = "annotation"``.

    Raises:
        LabelError: the table has no ``annotation`` column.
        AnnotationError: a malformed annotation file (from the corpora loader).
    """
    frames = {}
    for utterance, path in _annotation_paths(table).items():
        frame = _read_annotation(path)
        frame.attrs["protocol"] = LabelProtocol.ANNOTATION.value
        frames[utterance] = frame
    return frames


def relabel(table: pd.DataFrame, *, model: AnnotationModel) -> dict[str, pd.DataFrame]:
    """Re-derive labels from the stored latent with another annotation model.

    E.g. ``relabel(table, model=AnnotationModel(lag_mean=0.0, lag_spread=0.0))``
    gives the built-in corpus' labels as raters without delay would give them,
    without re-rendering any audio.

    Args:
        table: a corpus table of an annotated corpus whose annotation files
            hold ``arousal_latent`` and ``valence_latent``.
        model: the annotation model to apply.

    Returns:
        utterance -> label frame as :func:`annotate` makes it, keyed by the
        utterance id (which is also the session key).

    Raises:
        LabelError: no ``annotation`` column, or an annotation without latent columns.
    """
    frames = {}
    for utterance, path in _annotation_paths(table).items():
        stored = _read_annotation(path)
        columns = [f"{t}_latent" for t in TARGETS]
        if not set(columns) <= set(stored.columns):
            raise LabelError(path, f"holds no latent columns {columns}; only corpora rendered by emotools.synth do")
        latent = stored[["time", *columns]].rename(columns=dict(zip(columns, TARGETS)))
        frames[utterance] = annotate(latent, model=model, key=utterance)
    return frames


def lag_model(lag_s: float, *, seed: int, reference: AnnotationModel | None = None) -> AnnotationModel:
    """The annotation model with mean rater lag ``lag_s``, all else as ``reference``.

    The raters' lag spread scales with the lag (``spread = lag * reference
    spread / reference lag``): no spread at lag 0, and ``lag_s`` equal to the
    reference lag gives the reference model itself, i.e. the corpus' own labels.
    A drifting reference (``lag_drift`` > 0) scales its drift and its
    ``lag_bounds`` by the same factor, so the lag still drifts around the new
    mean (and not at all at lag 0).

    Raises:
        LabelError: a lag that is negative or not finite.
    """
    ref = reference or AnnotationModel(seed=seed)
    if not (math.isfinite(lag_s) and lag_s >= 0):
        raise LabelError("lag_model", f"lag must be a finite number >= 0 s, got {lag_s!r}")
    factor = lag_s / ref.lag_mean if ref.lag_mean > 0 else 1.0
    spread = ref.lag_spread * factor
    low, high = ref.lag_bounds
    drift = {"lag_drift": ref.lag_drift * factor, "lag_bounds": (low * factor, high * factor)}
    return replace(ref, lag_mean=float(lag_s), lag_spread=float(spread), seed=int(seed),
                   **(drift if ref.lag_drift and factor != 1.0 else {}))


def lag_labels(table: pd.DataFrame, lag_s: float, *, seed: int,
               reference: AnnotationModel | None = None) -> dict[str, pd.DataFrame]:
    """Label frames of an emotools-rendered corpus as raters with mean lag ``lag_s`` would give them.

    ``reference``: the corpus' own annotation model (default: the built-in
    raters; a corpus v2 preset's is ``synth.PRESETS[preset].annotation_model(seed)``).
    """
    return relabel(table, model=lag_model(lag_s, seed=seed, reference=reference))


