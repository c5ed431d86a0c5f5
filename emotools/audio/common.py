"""What every audio module shares: the rate, the suffixes, the error family and the up-front checks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EmotoolsError

SAMPLE_RATE: int = 16000
"""The package's one working sample rate in Hz: decoding, features, synthesis and prediction use it."""

SOUNDFILE_SUFFIXES: frozenset[str] = frozenset({".wav", ".flac", ".ogg", ".opus"})
"""Suffixes decoded and encoded by soundfile (libsndfile; Ogg Opus needs libsndfile >= 1.0.29)."""

PYAV_SUFFIXES: frozenset[str] = frozenset({".m4a", ".mp4", ".aac"})
"""Suffixes decoded by PyAV (FFmpeg); ``.m4a`` is also written (AAC)."""

AUDIO_SUFFIXES: frozenset[str] = SOUNDFILE_SUFFIXES | PYAV_SUFFIXES
"""Every suffix :func:`~emotools.audio.read_audio` accepts."""

SILENCE_PEAK: float = 1e-5
"""Peak amplitude below which audio counts as silent (-100 dBFS, under one 16-bit step)."""


class AudioError(EmotoolsError):
    """An audio file that cannot be used; ``str(err)`` is ``"<path>: <reason>"``.

    Args:
        path: the offending file.
        reason: what is wrong with it, in words.
    """


class AudioMissingError(AudioError):
    """The file does not exist."""


class AudioEmptyError(AudioError):
    """The file has 0 bytes, or a valid header but no samples."""


class AudioFormatError(AudioError):
    """Not audio, an unsupported format, or a corrupt or truncated file."""


class AudioTooShortError(AudioError):
    """The audio is shorter than the stated minimum duration."""


class AudioInvalidSamplesError(AudioError):
    """The audio holds NaN or infinite samples."""


class AudioWriteError(AudioError):
    """The encoder refused the signal (e.g. a sample rate AAC does not support)."""


class SilentAudioWarning(UserWarning):
    """The audio decoded fine but every sample is (numerically) zero."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says (nothing is decoded).

    Attributes:
        duration: length in seconds.
        sample_rate: samples per second per channel.
        channels: number of channels.
        frames: samples per channel.
    """

    duration: float
    sample_rate: int
    channels: int
    frames: int


def check_rate(sr: object, subject: str | os.PathLike | None = None) -> int:
    """``sr`` as an int, or a ValueError (naming ``subject`` first, if given) when it is not a positive integer."""
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        prefix = f"{subject}: " if subject is not None else ""
        raise ValueError(f"{prefix}sr must be a positive integer, got {sr!r}")
    return int(sr)


def check_file(path: Path) -> None:
    """Raise the :class:`AudioError` that fits a path that is missing, not a file, empty or of an unknown suffix."""
    if not path.exists():
        raise AudioMissingError(path, "file does not exist")
    if not path.is_file():
        raise AudioFormatError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise AudioEmptyError(path, "file is empty (0 bytes)")
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise AudioFormatError(
            path, f"unsupported suffix {path.suffix!r}; supported: {', '.join(sorted(AUDIO_SUFFIXES))}"
        )
