"""openSMILE feature extraction of one signal: feature sets, levels, one-pass windows.

Three levels of the same openSMILE configuration:

* ``lld``: low-level descriptors, one frame every 10 ms (25 for eGeMAPSv02);
* ``functionals``: one vector per utterance (88 for eGeMAPSv02);
* ``windowed``: the functionals over sliding windows (``window`` / ``hop`` in
  seconds), all windows in ONE openSMILE pass. The standard configs read
  ``frameModeFunctionalsConf`` into every functionals component, so an include
  with ``frameMode = fixed`` turns the whole-utterance summary into a
  sliding one; one call per window would redo the LLDs for every window
  (tens of times slower at a 0.1 s hop, see ``benchmarks/bench_extraction.py``).

Time is explicit: every frame has ``start`` and ``end`` in seconds. A window
holds the LLD frames that start in ``[start, end)``; their analysis frames
(20 to 60 ms) reach up to 50 ms past ``end``, so a signal needs about
``window + 0.04`` s for its first window.

Float audio becomes 16-bit PCM exactly as the ``opensmile`` package does it
(``x * 32768``, truncated), except that full scale clips instead of wrapping
around; a ``x * 32767`` scaling flips voicing decisions on some frames.

Every level runs through opensmile's public API, ``opensmile.Smile(options=...)``
and ``process_signal``; the windowed level adds one option, an include file
written into the cache folder (:func:`frame_mode_config`). It is as fast as
driving ``libSMILEapi`` through ``opensmile.core.lib`` directly and gives the
same numbers (``benchmarks/bench_opensmile.py``).

Bad input raises :class:`FeatureError` (``"<path>: <reason>"``); decoding
problems stay :class:`emotools.audio.AudioError`.
"""

from __future__ import annotations

import enum
import functools
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import opensmile
import pandas as pd

# What opensmile raises when openSMILE itself fails (the one name taken from its core).
from opensmile.core.lib import OpenSmileException

from emotools import paths
from emotools.audio import SAMPLE_RATE, read_audio
from emotools.errors import EmotoolsError
from emotools.fileio import write_text

__all__ = [
    "FeatureSet",
    "Level",
    "FeatureSpec",
    "FeatureError",
    "SAMPLE_RATE",
    "LLD_HOP",
    "DEFAULT_HOP",
    "RATE_HZ",
    "OPENSMILE_VERSION",
    "feature_names",
    "frame_mode_config",
    "smile_for",
    "to_int16",
    "extract_signal",
    "extract_file",
]

LLD_HOP: float = 0.01
"""openSMILE's LLD frame step in seconds (all three feature sets); windows are multiples of it."""

DEFAULT_HOP: float = 0.1
"""Default window step in seconds of the windowed level."""

RATE_HZ: float = round(1.0 / DEFAULT_HOP, 6)
"""The package's default frame rate (Hz): one windowed frame per :data:`DEFAULT_HOP`."""

OPENSMILE_VERSION: str = opensmile.__version__
"""Version of the ``opensmile`` package (part of every cache key)."""


class FeatureSet(str, enum.Enum):
    """openSMILE feature sets (configs shipped with the ``opensmile`` package)."""

    eGeMAPSv02 = "eGeMAPSv02"
    """extended Geneva Minimalistic Acoustic Parameter Set: 25 LLDs, 88 functionals (default)."""
    GeMAPSv01b = "GeMAPSv01b"
    """Geneva Minimalistic Acoustic Parameter Set: 18 LLDs, 62 functionals."""
    ComParE_2016 = "ComParE_2016"
    """ComParE 2016 challenge set: 65 LLDs, 6373 functionals."""


class Level(str, enum.Enum):
    """What one row of the output summarises."""

    lld = "lld"
    """Low-level descriptors every 10 ms."""
    functionals = "functionals"
    """Functionals over the whole utterance (one row)."""
    windowed = "windowed"
    """Functionals over sliding windows, in one pass."""


class FeatureError(EmotoolsError):
    """openSMILE could not turn a signal into features; ``str(err)`` is ``"<path>: <reason>"``.

    Args:
        path: the file (or ``"<signal>"`` for an in-memory signal), kept as ``.path``.
        reason: what went wrong, in words.
    """


def _is_lld_multiple(seconds: float) -> bool:
    frames = seconds / LLD_HOP
    return abs(frames - round(frames)) < 1e-6 and round(frames) >= 1


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that determines the features of a signal (besides the audio).

    Args:
        feature_set: openSMILE feature set (or its name).
        level: ``lld``, ``functionals`` or ``windowed`` (or the enum).
        window: window length in seconds (``windowed`` only), a multiple of 10 ms.
        hop: window step in seconds (``windowed`` only), a multiple of 10 ms.

    Raises:
        ValueError: an unknown set or level, or a window or hop that is not a
            positive multiple of 10 ms.

    >>> FeatureSpec(level="windowed", window=3.0, hop=0.5).rate_hz
    2.0
    """

    feature_set: FeatureSet = FeatureSet.eGeMAPSv02
    level: Level = Level.windowed
    window: float = 1.0
    hop: float = DEFAULT_HOP

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "feature_set", FeatureSet(self.feature_set))
        except ValueError:
            raise ValueError(
                f"unknown feature set {self.feature_set!r}; known: {', '.join(s.value for s in FeatureSet)}"
            ) from None
        try:
            object.__setattr__(self, "level", Level(self.level))
        except ValueError:
            raise ValueError(f"unknown level {self.level!r}; known: {', '.join(v.value for v in Level)}") from None
        for name in ("window", "hop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a number of seconds, got {value!r}")
            if self.level is Level.windowed and not _is_lld_multiple(float(value)):
                raise ValueError(f"{name} must be a positive multiple of {LLD_HOP} s, got {value!r}")
            object.__setattr__(self, name, round(float(value), 6))

    @property
    def rate_hz(self) -> float | None:
        """Frames per second: 100 for ``lld``, ``1 / hop`` for ``windowed``, None for ``functionals``."""
        if self.level is Level.lld:
            return round(1.0 / LLD_HOP, 6)
        if self.level is Level.windowed:
            return round(1.0 / self.hop, 6)
        return None

    def to_dict(self) -> dict[str, Any]:
        """The fields that matter for this level (window and hop only when windowed).

        >>> FeatureSpec(level="lld").to_dict()
        {'feature_set': 'eGeMAPSv02', 'level': 'lld'}
        """
        out: dict[str, Any] = {"feature_set": self.feature_set.value, "level": self.level.value}
        if self.level is Level.windowed:
            out.update(window=self.window, hop=self.hop)
        return out

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> FeatureSpec:
        """The spec :meth:`to_dict` wrote (unknown keys are an error, missing ones take the defaults).

        Raises:
            ValueError: an unknown key, or a value ``FeatureSpec`` rejects.

        >>> spec = FeatureSpec(level="windowed", window=2.0, hop=0.5)
        >>> FeatureSpec.from_dict(spec.to_dict()) == spec
        True
        """
        unknown = sorted(set(fields) - {"feature_set", "level", "window", "hop"})
        if unknown:
            raise ValueError(f"unknown feature spec field(s) {', '.join(map(repr, unknown))}")
        return cls(**fields)

    @property
    def slug(self) -> str:
        """A short name for folders, e.g. ``eGeMAPSv02-windowed-w1.00-h0.10``."""
        slug = f"{self.feature_set.value}-{self.level.value}"
        return slug + (f"-w{self.window:.2f}-h{self.hop:.2f}" if self.level is Level.windowed else "")


def to_int16(signal: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] to 16-bit PCM as the ``opensmile`` package does it.

    ``float32(x) * 32768`` truncated towards zero; full scale (x >= 1) clips
    to 32767 instead of wrapping around to -32768.

    >>> to_int16(np.array([-1.0, -0.5, 0.0, 0.5, 1.0])).tolist()
    [-32768, -16384, 0, 16384, 32767]
    """
    scaled = np.asarray(signal, dtype=np.float32) * np.float32(32768)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


# --------------------------------------------------------------------------- engine


def frame_mode_config(window: float, hop: float) -> Path:
    """The include that puts every functionals component in fixed frame mode (``window`` / ``hop`` s).

    The standard configs read it through their ``frameModeFunctionalsConf``
    option. It lives in the cache folder, one file per (window, hop), and is
    (re)written atomically whenever it is missing or differs (its content is
    a pure function of its name, so concurrent writers agree).
    """
    path = paths.cache_dir() / "opensmile" / f"FrameModeFixed-w{window:.6f}-h{hop:.6f}.conf.inc"
    text = (
        "; written by emotools.features: functionals over fixed windows\n"
        f"frameMode = fixed\nframeSize = {window:.6f}\nframeStep = {hop:.6f}\nframeCenterSpecial = left\n"
    )
    if not path.is_file() or path.read_text() != text:
        write_text(path, text)
    return path


@functools.cache
def _smile(feature_set: FeatureSet, level: Level, frame_mode: str | None) -> opensmile.Smile:
    lld = level is Level.lld
    return opensmile.Smile(
        opensmile.FeatureSet[feature_set.value],
        opensmile.FeatureLevel.LowLevelDescriptors if lld else opensmile.FeatureLevel.Functionals,
        options={"frameModeFunctionalsConf": frame_mode} if frame_mode else None,
        loglevel=0,
    )


def smile_for(spec: FeatureSpec) -> opensmile.Smile:
    """The ``opensmile.Smile`` extractor of a spec (one per process and spec).

    ``windowed`` is the ``Functionals`` level with :func:`frame_mode_config`
    as its ``frameModeFunctionalsConf`` option.
    """
    windowed = spec.level is Level.windowed
    frame_mode = str(frame_mode_config(spec.window, spec.hop)) if windowed else None
    return _smile(spec.feature_set, spec.level, frame_mode)


def feature_names(spec: FeatureSpec) -> list[str]:
    """Feature columns of a spec (``windowed`` has the ``functionals`` columns)."""
    level = Level.lld if spec.level is Level.lld else Level.functionals
    return list(_smile(spec.feature_set, level, None).feature_names)


@functools.cache
def _lld_frame_s(feature_set: FeatureSet) -> float:
    """Length (s) of the LLD frames of a set, as openSMILE reports it (20 ms eGeMAPS, 60 ms ComParE).

    ``process_signal`` stretches the last frame to the signal's end, so the
    length is read once from the first frame of a probe signal.
    """
    probe = 0.1 * np.sin(2 * np.pi * 200 * np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE).astype(np.float32)
    index = _smile(feature_set, Level.lld, None).process_signal(probe, SAMPLE_RATE).index
    return round(float((index[0][1] - index[0][0]).total_seconds()), 6)


def _run(smile: opensmile.Smile, pcm: np.ndarray, sr: int) -> pd.DataFrame | None:
    """One openSMILE pass over 16-bit PCM; None when the signal is too short for any frame."""
    # int16 / 32768 is exact in float32, and opensmile's own ``x * 32768`` turns it back into ``pcm``.
    signal = pcm.astype(np.float32) / np.float32(32768)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Segment too short")  # we raise our own error instead
        out = smile.process_signal(signal, sr)
    # Too short: opensmile fills one row with NaN (openSMILE itself never outputs NaN).
    if out.empty or (len(out) == 1 and out.isna().all(axis=None)):
        return None
    return out


def too_short(where: str, spec: FeatureSpec, duration: float) -> FeatureError:
    """The error for audio that gave no feature frame (one wording wherever features are extracted)."""
    need = f"the {spec.window:g} s window" if spec.level is Level.windowed else "one openSMILE frame"
    return FeatureError(where, f"too short for {need}: {duration:.3f} s of audio gave no frame")


def extract_signal(
    signal: np.ndarray, sr: int, spec: FeatureSpec = FeatureSpec(), *, path: str | os.PathLike | None = None
) -> pd.DataFrame:
    """openSMILE features of one mono signal.

    Args:
        signal: float samples in [-1, 1], shape ``(samples,)`` or ``(1, samples)``.
        sr: sample rate in Hz.
        spec: feature set, level, window and hop.
        path: the file the signal came from (named in errors).

    Returns:
        One row per frame: ``start`` and ``end`` in seconds (float64), then the
        feature columns (float32). ``df.attrs`` holds ``rate_hz``, ``spec`` and
        ``seconds`` (the signal's duration).

    Raises:
        FeatureError: empty, multi-channel or non-finite signal, a bad rate, a
            signal too short for one frame (or window), or an openSMILE failure.
    """
    where = str(path) if path is not None else "<signal>"
    x = np.asarray(signal)
    if x.ndim == 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 1:
        raise FeatureError(where, f"expected a mono signal (samples,), got shape {np.shape(signal)}")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise FeatureError(where, f"sample rate must be a positive integer, got {sr!r}")
    if x.size == 0:
        raise FeatureError(where, "empty signal")
    if not np.isfinite(x).all():
        raise FeatureError(where, "NaN or infinite samples")
    try:
        out = _run(smile_for(spec), to_int16(x), int(sr))
    except OpenSmileException as error:
        raise FeatureError(where, f"openSMILE failed: {error}") from None
    duration = x.size / sr
    if out is None:
        raise too_short(where, spec, duration)
    start = np.round(out.index.get_level_values("start").total_seconds().to_numpy(), 6)
    if spec.level is Level.functionals:
        start, end = np.zeros(1), np.array([duration])
    elif spec.level is Level.windowed:
        end = np.round(start + spec.window, 6)
    else:  # openSMILE's own frame end (opensmile stretches the last one to the signal's end)
        end = np.round(start + _lld_frame_s(spec.feature_set), 6)
    frame = pd.DataFrame(out.to_numpy(), columns=list(out.columns))
    frame.insert(0, "end", end)
    frame.insert(0, "start", start)
    frame.attrs = {"rate_hz": spec.rate_hz, "spec": spec.to_dict(), "seconds": duration}
    return frame


def extract_file(path: str | os.PathLike, spec: FeatureSpec = FeatureSpec()) -> pd.DataFrame:
    """openSMILE features of an audio file, decoded to mono at :data:`SAMPLE_RATE`.

    Args:
        path: any file :func:`emotools.audio.read_audio` reads.
        spec: feature set, level, window and hop.

    Returns:
        As :func:`extract_signal`.

    Raises:
        emotools.audio.AudioError: the file cannot be decoded.
        FeatureError: as :func:`extract_signal`.
    """
    signal = read_audio(path, sr=SAMPLE_RATE)
    return extract_signal(signal, SAMPLE_RATE, spec, path=path)
