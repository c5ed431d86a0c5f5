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

Bad input raises :class:`FeatureError` (``"<path>: <reason>"``); decoding
problems stay :class:`emotools.audio.AudioError`.
"""

from __future__ import annotations

import ctypes
import enum
import functools
import math
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import opensmile
import pandas as pd
# The engine: the ctypes binding the opensmile package drives libSMILEapi with
# (pinned opensmile version; the version is part of every cache key).
from opensmile.core.lib import ExternalSinkCallbackEx, OpenSMILE, OpenSmileException, smileapi

from emotools.audio import read_audio

__all__ = [
    "FeatureSet",
    "Level",
    "FeatureSpec",
    "FeatureError",
    "SAMPLE_RATE",
    "LLD_HOP",
    "OPENSMILE_VERSION",
    "feature_names",
    "to_int16",
    "extract_signal",
    "extract_file",
]

SAMPLE_RATE: int = 16000
"""Rate (Hz) at which files are decoded for openSMILE."""

LLD_HOP: float = 0.01
"""openSMILE's LLD frame step in seconds (all three feature sets); windows are multiples of it."""

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


class FeatureError(Exception):
    """openSMILE could not turn a signal into features; ``str(err)`` is ``"<path>: <reason>"``.

    Args:
        path: the file (or ``"<signal>"`` for an in-memory signal).
        reason: what went wrong, in words.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(str(path), reason)  # both in args: pickles across processes
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


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
    hop: float = 0.1

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

    def as_dict(self) -> dict[str, Any]:
        """The fields that matter for this level (window and hop only when windowed)."""
        out: dict[str, Any] = {"feature_set": self.feature_set.value, "level": self.level.value}
        if self.level is Level.windowed:
            out.update(window=self.window, hop=self.hop)
        return out

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


@dataclass(frozen=True)
class _Engine:
    """Config file, command-line options and column names of one spec."""

    config: str
    options: dict[str, str]
    columns: tuple[str, ...]


def _frame_mode_include(window: float, hop: float) -> str:
    """Path of an include that puts every functionals component in fixed frame mode.

    Written once per (window, hop) into the temporary folder (content is a
    pure function of the name, so concurrent writers agree; temp + rename).
    """
    folder = Path(tempfile.gettempdir()) / f"emotools-opensmile-{os.getuid() if hasattr(os, 'getuid') else 0}"
    path = folder / f"FrameModeFixed-w{window:.6f}-h{hop:.6f}.conf.inc"
    text = (
        "; written by emotools.features: functionals over fixed windows\n"
        f"frameMode = fixed\nframeSize = {window:.6f}\nframeStep = {hop:.6f}\nframeCenterSpecial = left\n"
    )
    if not path.is_file() or path.read_text() != text:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{path.name}.{uuid.uuid4().hex}"
        partial.write_text(text)
        os.replace(partial, path)
    return str(path)


@functools.lru_cache(maxsize=None)
def _engine(feature_set: FeatureSet, level: Level, window: float, hop: float) -> _Engine:
    smile = opensmile.Smile(
        opensmile.FeatureSet[feature_set.value],
        opensmile.FeatureLevel.LowLevelDescriptors if level is Level.lld else opensmile.FeatureLevel.Functionals,
    )
    root = smile.default_config_root
    options = {
        "source": os.path.join(root, opensmile.config.EXTERNAL_INPUT_CONFIG),
        "sink": os.path.join(root, opensmile.config.EXTERNAL_OUTPUT_SINGLE_CONFIG),
        "sinkLevel": "lld" if level is Level.lld else "func",
        "bufferModeRbConf": os.path.join(root, "shared", "BufferModeRb.conf.inc"),
        "frameModeFunctionalsConf": (
            _frame_mode_include(window, hop)
            if level is Level.windowed
            else os.path.join(root, "shared", "FrameModeFunctionals.conf.inc")
        ),
        "nBits": "16",
    }
    return _Engine(config=smile.config_path, options=options, columns=tuple(smile.feature_names))


def _engine_for(spec: FeatureSpec) -> _Engine:
    return _engine(spec.feature_set, spec.level, spec.window, spec.hop)


def feature_names(spec: FeatureSpec) -> list[str]:
    """Feature columns of a spec (``windowed`` has the ``functionals`` columns)."""
    return list(_engine_for(spec).columns)


def _run(pcm: np.ndarray, sr: int, engine: _Engine) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One openSMILE pass over 16-bit PCM: frame times (s), frame lengths (s), features (frames, n)."""
    chunks: list[bytes] = []
    times: list[float] = []
    lengths: list[float] = []
    string_at = ctypes.string_at

    def sink(data: Any, frames: int, size: int, meta: Any, _: Any) -> int:
        # Called once per output frame (100 per second for LLDs): a raw copy of
        # the floats and two metadata fields, nothing else. (opensmile's own
        # callback wraps every frame in a numpy array, 7x the overhead.)
        chunks.append(string_at(data, frames * size * 4))
        times.append(meta[0].time)
        lengths.append(meta[0].lengthSec)
        return 1

    callback = ExternalSinkCallbackEx(sink)  # referenced until the run ends
    smile = OpenSMILE()
    try:
        smile.initialize(config_file=engine.config, options={**engine.options, "sampleRate": str(sr)}, loglevel=0)
        # The registration below is what OpenSMILE.external_sink_set_callback_ex does, minus its wrapper.
        smile._check_smile_result(smileapi.smile_extsink_set_data_callback_ex(
            smile._smileobj, opensmile.config.EXTERNAL_OUTPUT_COMPONENT.encode(), callback, None
        ))
        smile.external_audio_source_write_data(opensmile.config.EXTERNAL_SOURCE_COMPONENT, pcm.tobytes())
        smile.external_audio_source_set_eoi(opensmile.config.EXTERNAL_SOURCE_COMPONENT)
        smile.run()
    finally:
        smile.free()
    values = np.frombuffer(bytearray(b"".join(chunks)), dtype=np.float32).reshape(-1, len(engine.columns))
    return np.asarray(times, dtype=np.float64), np.asarray(lengths, dtype=np.float64), values


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
    engine = _engine_for(spec)
    try:
        times, lengths, values = _run(to_int16(x), int(sr), engine)
    except OpenSmileException as error:
        raise FeatureError(where, f"openSMILE failed: {error}") from None
    duration = x.size / sr
    if not len(values):
        need = f"the {spec.window:g} s window" if spec.level is Level.windowed else "one openSMILE frame"
        raise FeatureError(where, f"too short for {need}: {duration:.3f} s of audio gave no frame")
    start = np.round(times, 6)
    if spec.level is Level.functionals:
        start, end = np.zeros(1), np.array([duration])
    elif spec.level is Level.windowed:
        end = np.round(start + spec.window, 6)
    else:
        end = np.round(start + lengths, 6)
    frame = pd.DataFrame(values, columns=list(engine.columns))
    frame.insert(0, "end", end)
    frame.insert(0, "start", start)
    frame.attrs = {"rate_hz": spec.rate_hz, "spec": spec.as_dict(), "seconds": duration}
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
