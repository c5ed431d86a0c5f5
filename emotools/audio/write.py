"""Encoding a signal to a file, atomically (``emotools.fileio.atomic_write``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from ..fileio import atomic_write
from .common import SOUNDFILE_SUFFIXES, AudioWriteError, check_rate

# suffix -> (libsndfile container, default subtype when writing)
_SOUNDFILE_FORMATS: dict[str, tuple[str, str | None]] = {
    ".wav": ("WAV", None), ".flac": ("FLAC", None), ".ogg": ("OGG", None), ".opus": ("OGG", "OPUS"),
}
_WRITABLE = SOUNDFILE_SUFFIXES | {".m4a"}


def _encode_aac(path: Path, data: np.ndarray, sr: int) -> None:
    import av

    channels = data.shape[1]
    layout = {1: "mono", 2: "stereo"}.get(channels)
    if layout is None:
        raise ValueError(f"AAC output supports 1 or 2 channels, got {channels}")
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=sr)
        stream.layout = layout
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data.T), format="fltp", layout=layout)
        frame.sample_rate = sr
        frame.pts = 0
        for packet in stream.encode(frame):  # the encoder cuts codec-sized frames itself
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _checked_signal(path: Path, signal: np.ndarray) -> np.ndarray:
    """``(samples, channels)`` float32, or a ValueError naming ``path``."""
    data = np.asarray(signal, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape[1] == 0:
        raise ValueError(f"{path}: signal must be (samples,) or (samples, channels), got shape {np.shape(signal)}")
    if data.shape[0] == 0:
        raise ValueError(f"{path}: refusing to write an empty signal")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: signal holds NaN or infinite samples")
    return data


def write_audio(
    path: str | os.PathLike, signal: np.ndarray, sr: int, *, subtype: str | None = None
) -> Path:
    """Write a signal atomically (temporary file, then rename).

    WAV, FLAC, OGG and OPUS go through soundfile (16-bit PCM for WAV/FLAC,
    Vorbis for ``.ogg``, Opus for ``.opus`` unless ``subtype`` says otherwise;
    PCM clips to [-1, 1]; Opus takes 8, 12, 16, 24 or 48 kHz); ``.m4a`` is
    AAC through PyAV. A reader never sees a half-written file, and a
    failed write leaves any previous file in place.

    Args:
        path: target file; its suffix picks the format. Parent folders are created.
        signal: ``(samples,)`` or ``(samples, channels)`` float samples in [-1, 1].
        sr: sample rate in Hz.
        subtype: soundfile subtype (e.g. ``"FLOAT"``, ``"PCM_24"``); not for ``.m4a``.

    Returns:
        The path written.

    Raises:
        ValueError: unsupported suffix, empty or non-finite signal, bad shape or rate.
        AudioWriteError: the encoder refused the signal.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _WRITABLE:
        raise ValueError(f"{path}: cannot write {suffix!r}; supported: {', '.join(sorted(_WRITABLE))}")
    sr = check_rate(sr, path)
    data = _checked_signal(path, signal)
    if suffix == ".m4a" and subtype is not None:
        raise ValueError(f"{path}: subtype applies to soundfile formats, not .m4a")
    try:
        with atomic_write(path) as temporary:
            if suffix == ".m4a":
                _encode_aac(temporary, data, sr)
            else:
                container, default_subtype = _SOUNDFILE_FORMATS[suffix]
                sf.write(temporary, data, sr, format=container, subtype=subtype or default_subtype)
    except BaseException as error:
        if _is_codec_error(error):
            raise AudioWriteError(path, f"encoder failed ({error})") from error
        raise
    return path


def _is_codec_error(error: BaseException) -> bool:
    import av

    return isinstance(error, (av.FFmpegError, sf.LibsndfileError))
