"""Label protocols for corpora without emotion labels: the seed control, chained sessions, the acoustic proxy."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..features.smile import RATE_HZ  # the default label frame rate: the features' default frame rate
from .annotation import TARGETS, AnnotationModel, LabelError, LabelProtocol, annotate, frame_times, key_rng

# --------------------------------------------------------------------------- the seed control


def seed_labels(
    table: pd.DataFrame,
    *,
    seed: int,
    rate_hz: float = RATE_HZ,
    low: float = 0.0,
    high: float = 1.0,
    values: Mapping[str, Sequence[float]] | None = None,
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
        values: utterance -> (arousal, valence) to hold instead of drawing,
            e.g. the original's own draws in its order
            (:func:`emotools.original.original_values`).

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
        if values is None:
            held = key_rng(seed, utterance, 0x5EED).uniform(low, high, size=len(TARGETS))
        elif utterance in values and len(values[utterance]) == len(TARGETS):
            held = np.asarray(values[utterance], dtype=np.float64)
        else:
            raise LabelError(utterance, f"no {len(TARGETS)} given label values ({', '.join(TARGETS)})")
        frame = pd.DataFrame({"time": time, **{t: np.full(time.size, v) for t, v in zip(TARGETS, held)}})
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


