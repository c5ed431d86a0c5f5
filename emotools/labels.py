"""Label frames: the annotation model, the gold standard, and label protocols.

A label frame table has ``time`` (seconds) then ``arousal`` and ``valence``
(the gold standard) on a fixed grid (10 Hz by default), optionally followed
by per-rater and reference columns.

The annotation model (:class:`AnnotationModel`) turns a latent trajectory
into what K simulated raters would report, with the flaws real annotators
show (RECOLA / SEWA style):

* each rater reacts late: the latent delayed by a rater-specific lag
  (default mean 3 s, spread 1 s);
* and smoothly: exponential smoothing with a rater-specific time constant
  (1-3 s);
* with slowly drifting noise (an Ornstein-Uhlenbeck process, time constant
  5 s, sd 0.18);
* and per-session bias and scale differences.

The gold standard is the mean of the raters. Beside it the model stores the
latent and the **ceiling** reference: the mean of the raters' noise-free
parts (delayed and smoothed latent, no bias, scale or noise), the best
prediction any model could make from the audio. ``ccc(gold, ceiling)`` is the
annotation ceiling; the mean pairwise CCC between raters is the inter-rater
agreement. Rater lags and smoothing are traits of the rater (fixed for a
corpus by ``AnnotationModel.seed``); bias, scale and noise are drawn per
session from the session's key, so labels can be re-derived from a stored
latent with another model (:func:`relabel`) without re-rendering audio.

Label protocols for corpora without emotion labels:

* ``seed``: one uniform random value per utterance held over its frames,
  the original project's labels, kept as a control. A correct pipeline
  scores CCC ~0 on it, never NaN.
* ``proxy``: the annotation model applied to an acoustic proxy of a latent,
  computed from the recording's own prosody (:data:`PROXY_CUES`). It is a
  proxy, not an emotion label, and is always labelled ``"proxy"``
  (``frame.attrs["protocol"]``).
"""

from __future__ import annotations

import itertools
import math
import os
import zlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from .metrics import ccc

__all__ = [
    "RATE_HZ",
    "TARGETS",
    "LabelProtocol",
    "LabelError",
    "Rater",
    "AnnotationModel",
    "frame_times",
    "rater_columns",
    "annotate",
    "relabel",
    "lag_model",
    "lag_labels",
    "annotation_labels",
    "seed_labels",
    "chain_labels",
    "PROXY_CUES",
    "proxy_latent",
    "proxy_labels",
    "rater_agreement",
    "ceiling_ccc",
    "agreement",
]

RATE_HZ: float = 10.0
"""Default label frame rate (frames per second)."""

TARGETS: tuple[str, str] = ("arousal", "valence")
"""The label dimensions, in column order."""


class LabelProtocol(str, Enum):
    """Where a recording's label frames come from."""

    ANNOTATION = "annotation"  #: the corpus' own time-continuous annotation
    SEED = "seed"  #: uniform random value per utterance (control)
    PROXY = "proxy"  #: annotation model on an acoustic proxy of the latent


class LabelError(Exception):
    """Labels that cannot be made for a recording; ``str(err)`` is ``"<what>: <reason>"``."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(str(what), reason)
        self.what = str(what)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.what}: {self.reason}"


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

    def __post_init__(self) -> None:
        if isinstance(self.raters, bool) or not isinstance(self.raters, (int, np.integer)) or self.raters < 1:
            raise ValueError(f"raters must be a positive int, got {self.raters!r}")
        for name in ("lag_mean", "lag_spread", "noise_sd", "bias_sd", "scale_sd"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not self.noise_tau > 0:
            raise ValueError(f"noise_tau must be > 0, got {self.noise_tau!r}")
        low, high = self.smoothing
        if not 0 <= low <= high:
            raise ValueError(f"smoothing must be (min, max) with 0 <= min <= max, got {self.smoothing!r}")
        object.__setattr__(self, "smoothing", (float(low), float(high)))

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
        return [Rater(lag=round(float(l), 4), smoothing=round(float(s), 4)) for l, s in zip(lags, smoothing)]

    def to_dict(self) -> dict[str, Any]:
        """Parameters and the raters' traits, JSON-ready."""
        out = asdict(self)
        out["smoothing"] = list(self.smoothing)
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


def _key_rng(seed: int, key: str, salt: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8")), salt])


def _ou(rng: np.random.Generator, n: int, dt: float, tau: float, sd: float) -> np.ndarray:
    """Stationary Ornstein-Uhlenbeck path with time constant ``tau`` and sd ``sd``."""
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


def _delay(time: np.ndarray, x: np.ndarray, lag: float) -> np.ndarray:
    """``x(t - lag)`` by linear interpolation; before the start, the first value."""
    return np.interp(time - lag, time, x)


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
    out: dict[str, np.ndarray] = {"time": time}
    extra: dict[str, np.ndarray] = {}
    for index, target in enumerate(TARGETS):
        rng = _key_rng(model.seed, key, index)
        ratings, clean = [], []
        for rater in panel:
            part = _smooth(_delay(time, values[target], rater.lag), dt, rater.smoothing)
            bias = rng.normal(0.0, model.bias_sd) if model.bias_sd > 0 else 0.0
            scale = math.exp(rng.normal(0.0, model.scale_sd)) if model.scale_sd > 0 else 1.0
            noise = _ou(rng, time.size, dt, model.noise_tau, model.noise_sd)
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
    from .corpora import annotated

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

    Raises:
        LabelError: a lag that is negative or not finite.
    """
    ref = reference or AnnotationModel(seed=seed)
    if not (math.isfinite(lag_s) and lag_s >= 0):
        raise LabelError("lag_model", f"lag must be a finite number >= 0 s, got {lag_s!r}")
    spread = lag_s * ref.lag_spread / ref.lag_mean if ref.lag_mean > 0 else ref.lag_spread
    return replace(ref, lag_mean=float(lag_s), lag_spread=float(spread), seed=int(seed))


def lag_labels(table: pd.DataFrame, lag_s: float, *, seed: int) -> dict[str, pd.DataFrame]:
    """Label frames of an emotools-rendered corpus as raters with mean lag ``lag_s`` would give them."""
    return relabel(table, model=lag_model(lag_s, seed=seed))


# --------------------------------------------------------------------------- the seed control


def seed_labels(
    table: pd.DataFrame,
    *,
    seed: int,
    rate_hz: float = RATE_HZ,
    low: float = 0.0,
    high: float = 1.0,
) -> dict[str, pd.DataFrame]:
    """The original project's labels: one uniform random value per utterance.

    Each utterance gets ``U(low, high)`` for arousal and for valence, held over
    all its frames. The default ``U(0, 1)`` is exactly the original's (label
    variance 1/12 ~ 0.083). The value depends only on ``seed`` and the
    utterance id, not on the table's order. A correct pipeline scores CCC ~0.

    Args:
        table: a corpus table with ``utterance`` and ``duration``.
        seed: random seed.
        rate_hz: label frame rate.
        low, high: bounds of the uniform distribution.

    Returns:
        utterance -> label frame ``time, arousal, valence`` (never NaN, at
        least one frame), ``attrs["protocol"] = "seed"``.

    Raises:
        LabelError: missing columns or a bad duration.
    """
    missing = {"utterance", "duration"} - set(table.columns)
    if missing:
        raise LabelError("table", f"lacks column(s) {sorted(missing)}")
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"need finite low < high, got {low!r}, {high!r}")
    frames = {}
    for utterance, duration in zip(table["utterance"].astype(str), table["duration"]):
        if not (isinstance(duration, (int, float, np.floating)) and math.isfinite(duration) and duration >= 0):
            raise LabelError(utterance, f"bad duration {duration!r}")
        time = frame_times(float(duration), rate_hz)
        values = _key_rng(seed, utterance, 0x5EED).uniform(low, high, size=len(TARGETS))
        frame = pd.DataFrame({"time": time, **{t: np.full(time.size, v) for t, v in zip(TARGETS, values)}})
        frame.attrs["protocol"] = LabelProtocol.SEED.value
        frames[utterance] = frame
    return frames


def chain_labels(
    chains: pd.DataFrame, frames: Mapping[str, pd.DataFrame], *, rate_hz: float = RATE_HZ
) -> dict[str, pd.DataFrame]:
    """Label frames of chained sessions, from the label frames of their utterances.

    Each frame of a chain takes the label of the utterance playing at its
    time (interpolated on that utterance's own grid); in a gap between two
    utterances, and after the last, the previous utterance's label is held.

    Args:
        chains: the output of :func:`emotools.corpora.sessions.chain_sessions`:
            ``utterance``, ``chain``, ``start``, ``end`` (seconds in the chain)
            and ``chain_duration``, one row per utterance.
        frames: utterance -> label frame (``time, arousal, valence``), e.g.
            from :func:`seed_labels`.
        rate_hz: label frame rate of the chains.

    Returns:
        chain id -> label frame ``time, arousal, valence`` on
        ``frame_times(chain_duration)``, with the utterances' ``attrs["protocol"]``.

    Raises:
        LabelError: missing chain columns, or an utterance without labels.
    """
    missing = {"utterance", "chain", "start", "end", "chain_duration"} - set(chains.columns)
    if missing:
        raise LabelError("chains", f"lack column(s) {sorted(missing)}; expected the output of chain_sessions")
    out = {}
    for chain, segments in chains.groupby("chain", sort=False):
        segments = segments.sort_values("start", kind="stable")
        utterances = segments["utterance"].astype(str).tolist()
        absent = [u for u in utterances if u not in frames]
        if absent:
            raise LabelError(chain, f"no label frames for utterance(s) {absent[:3]}")
        time = frame_times(float(segments["chain_duration"].iat[0]), rate_hz)
        starts = segments["start"].to_numpy(dtype=np.float64)
        which = np.clip(np.searchsorted(starts, time + 1e-9, side="right") - 1, 0, len(starts) - 1)
        values = {t: np.empty(time.size) for t in TARGETS}
        for index, utterance in enumerate(utterances):
            mask = which == index
            if mask.any():
                frame = frames[utterance]
                for target in TARGETS:
                    values[target][mask] = np.interp(time[mask] - starts[index], frame["time"], frame[target])
        result = pd.DataFrame({"time": time, **values})
        result.attrs["protocol"] = frames[utterances[0]].attrs.get("protocol", LabelProtocol.ANNOTATION.value)
        out[str(chain)] = result
    return out


# --------------------------------------------------------------------------- the acoustic proxy

PROXY_CUES: dict[str, tuple[tuple[str, float], ...]] = {
    "arousal": (
        ("loudness_sma3_amean", +1.0),
        ("F0semitoneFrom27.5Hz_sma3nz_amean", +1.0),
        ("VoicedSegmentsPerSec", +1.0),
    ),
    "valence": (
        ("F0semitoneFrom27.5Hz_sma3nz_stddevNorm", +1.0),
        ("hammarbergIndexV_sma3nz_amean", -1.0),
    ),
}
"""eGeMAPSv02 functionals (windowed) combined into the proxy latent, with signs.

Arousal: louder, higher and faster (more voiced segments per second).
Valence: more pitch variation relative to the mean, and a brighter spectrum
(lower Hammarberg index). F0 functionals of unvoiced windows (0) are missing
values and filled from their neighbours.
"""

_F0_CUES = {"F0semitoneFrom27.5Hz_sma3nz_amean", "F0semitoneFrom27.5Hz_sma3nz_stddevNorm"}


def _zscore(x: np.ndarray) -> np.ndarray:
    valid = np.isfinite(x)
    if valid.sum() < 2:
        return np.zeros_like(x)
    mean, sd = x[valid].mean(), x[valid].std()
    z = (x - mean) / sd if sd > 0 else np.zeros_like(x)
    if not valid.all():  # fill gaps from the neighbours
        index = np.arange(x.size)
        z = np.interp(index, index[valid], z[valid])
    return z


def proxy_latent(
    features: pd.DataFrame, duration: float, *, rate_hz: float = RATE_HZ, key: str = "recording"
) -> pd.DataFrame:
    """An acoustic proxy of the latent from a recording's own prosody.

    Each cue of :data:`PROXY_CUES` is standardised within the recording
    (so only the recording's own variation counts), signed, averaged per
    target, standardised again and squashed by ``tanh(0.6 z)`` into (-1, 1)
    (sd about 0.5, like the built-in corpus' latent); then interpolated from
    the window centres onto the label grid.

    Args:
        features: windowed eGeMAPSv02 functionals of one recording:
            ``start``, ``end`` (seconds) and the cue columns.
        duration: the recording's duration in seconds (sets the label grid).
        rate_hz: label frame rate.
        key: name used in error messages.

    Returns:
        ``time, arousal, valence`` on the label grid, never NaN.

    Raises:
        LabelError: missing columns or no windows.
    """
    needed = {"start", "end"} | {name for cues in PROXY_CUES.values() for name, _ in cues}
    missing = needed - set(features.columns)
    if missing:
        raise LabelError(key, f"features lack column(s) {sorted(missing)}; need windowed eGeMAPSv02 functionals")
    if len(features) == 0:
        raise LabelError(key, "no feature windows")
    centre = ((features["start"] + features["end"]) / 2.0).to_numpy(dtype=np.float64)
    time = frame_times(duration, rate_hz)
    out = {"time": time}
    for target, cues in PROXY_CUES.items():
        parts = []
        for name, sign in cues:
            x = features[name].to_numpy(dtype=np.float64).copy()
            if name in _F0_CUES:
                x[x <= 0] = np.nan  # unvoiced window: F0 undefined
            x[~np.isfinite(x)] = np.nan
            parts.append(sign * _zscore(x))
        combined = _zscore(np.mean(parts, axis=0))
        out[target] = np.interp(time, centre, np.tanh(0.6 * combined))
    return pd.DataFrame(out)


def proxy_labels(
    table: pd.DataFrame,
    features: Mapping[str, pd.DataFrame] | Any,
    *,
    model: AnnotationModel = AnnotationModel(),
    rate_hz: float = RATE_HZ,
) -> dict[str, pd.DataFrame]:
    """``proxy`` labels: the annotation model applied to :func:`proxy_latent`.

    Not emotion labels: they follow the speaker's own prosody (loud, high,
    fast = "aroused"), so a model can learn them, and the annotation model's
    delay and smoothing make temporal context matter as it does for real
    annotations. Always reported as ``"proxy"``.

    Args:
        table: a corpus table with ``utterance`` and ``duration``.
        features: utterance -> windowed eGeMAPSv02 functionals (``start``,
            ``end``, features), e.g. a dict or a feature store (anything with
            ``load(utterance)``).
        model: the annotation model (raters, lag, smoothing, noise).
        rate_hz: label frame rate.

    Returns:
        utterance -> label frame as :func:`annotate` makes it (the proxy in the
        ``*_latent`` columns), ``attrs["protocol"] = "proxy"``.

    Raises:
        LabelError: missing table columns, or features that lack a cue.
    """
    missing = {"utterance", "duration"} - set(table.columns)
    if missing:
        raise LabelError("table", f"lacks column(s) {sorted(missing)}")
    load: Callable[[str], pd.DataFrame] = features.load if hasattr(features, "load") else features.__getitem__
    frames = {}
    for utterance, duration in zip(table["utterance"].astype(str), table["duration"].astype(float)):
        latent = proxy_latent(load(utterance), duration, rate_hz=rate_hz, key=utterance)
        # its own key: rater noise independent of any stored annotation of the recording
        frame = annotate(latent, model=model, key=f"proxy:{utterance}")
        frame.attrs["protocol"] = LabelProtocol.PROXY.value
        frames[utterance] = frame
    return frames


# --------------------------------------------------------------------------- agreement


def _raters_of(frame: pd.DataFrame, target: str) -> list[str]:
    prefix = f"{target}_r"
    return sorted((c for c in frame.columns if c.startswith(prefix) and c[len(prefix):].isdigit()),
                  key=lambda c: int(c[len(prefix):]))


def rater_agreement(frame: pd.DataFrame, target: str) -> float:
    """Mean pairwise CCC between the rater columns of one recording (NaN with < 2 raters)."""
    columns = _raters_of(frame, target)
    pairs = [ccc(frame[a], frame[b]) for a, b in itertools.combinations(columns, 2)]
    return float(np.mean(pairs)) if pairs else float("nan")


def ceiling_ccc(frame: pd.DataFrame, target: str) -> float:
    """CCC of the gold standard against the ceiling reference: the annotation ceiling."""
    column = f"{target}_ceiling"
    if column not in frame.columns:
        raise LabelError(target, f"frame has no {column!r} column (only simulated annotations do)")
    return ccc(frame[target], frame[column])


def agreement(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Inter-rater agreement and annotation ceiling, per recording and target.

    Args:
        frames: utterance -> label frame with rater and ceiling columns.

    Returns:
        One row per (utterance, target): ``raters``, ``rater_ccc`` (mean
        pairwise), ``gold_vs_ceiling``, ``gold_vs_latent`` (CCC); plus a row per
        target with utterance ``"(all)"`` over all frames concatenated.
    """
    rows = []
    for target in TARGETS:
        for utterance, frame in frames.items():
            rows.append(_agreement_row(utterance, target, frame))
        if frames:
            rows.append(_agreement_row("(all)", target, pd.concat(list(frames.values()), ignore_index=True)))
    return pd.DataFrame(rows, columns=["utterance", "target", "raters", "rater_ccc", "gold_vs_ceiling", "gold_vs_latent"])


def _agreement_row(utterance: str, target: str, frame: pd.DataFrame) -> dict[str, Any]:
    latent = f"{target}_latent"
    return {
        "utterance": utterance,
        "target": target,
        "raters": len(_raters_of(frame, target)),
        "rater_ccc": rater_agreement(frame, target),
        "gold_vs_ceiling": ceiling_ccc(frame, target) if f"{target}_ceiling" in frame.columns else float("nan"),
        "gold_vs_latent": ccc(frame[target], frame[latent]) if latent in frame.columns else float("nan"),
    }
