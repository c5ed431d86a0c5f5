"""Decoding: a whole file or consecutive blocks, to float32 mono at a rate, and header facts."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .common import (
    PYAV_SUFFIXES,
    SAMPLE_RATE,
    SILENCE_PEAK,
    AudioEmptyError,
    AudioFormatError,
    AudioInfo,
    AudioInvalidSamplesError,
    AudioTooShortError,
    SilentAudioWarning,
    check_file,
    check_rate,
)
from .containers import pyav_stream, soundfile_handle

# A complete AAC stream decodes to at least the container's length (the
# decoder emits whole 1024-sample frames); one frame of slack is allowed for
# other encoders' end trimming, anything shorter is a truncated stream.
_AAC_TOLERANCE_SAMPLES = 1024

_NOT_READABLE = "not readable audio"
_EMPTY = "no samples (the header is valid but the stream is empty)"


def resample(signal: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """Resample a 1-D signal from ``sr`` to ``target_sr`` by the exact rational ratio ``target_sr / sr``.

    Polyphase filtering with scipy's default Kaiser window (beta 5) keeps
    aliasing out; the output has ``ceil(len * target_sr / sr)`` samples.

    >>> resample(np.ones(441, dtype=np.float32), 44100, SAMPLE_RATE).shape  # 10 ms at 44.1 kHz -> 16 kHz
    (160,)
    """
    if sr == target_sr:
        return signal
    from scipy.signal import resample_poly

    g = math.gcd(int(sr), int(target_sr))
    out = resample_poly(signal, int(target_sr) // g, int(sr) // g)
    return out.astype(np.float32, copy=False)


# --------------------------------------------------------------------------- native blocks


def _soundfile_blocks(path: Path, frames: int | None) -> Iterator[tuple[np.ndarray, int]]:
    """(frames, channels) float32 blocks of about ``frames`` (None: the whole file at once) and the native rate."""
    with soundfile_handle(path, _NOT_READABLE) as handle:
        declared, rate, seekable = handle.frames, int(handle.samplerate), handle.seekable()
        total = 0
        while seekable or total < declared:
            # Some codecs (GSM 6.10 in WAV) are not seekable: the frame count must be given.
            count = (-1 if frames is None else frames) if seekable else min(frames or declared, declared - total)
            try:
                data = handle.read(count, dtype="float32", always_2d=True)
            except (RuntimeError, ValueError) as error:  # the header was fine, the stream is not
                reason = getattr(error, "error_string", error)
                raise AudioFormatError(path, f"corrupt or truncated audio data ({reason})") from None
            if not len(data):
                break
            total += len(data)
            yield data, rate
    if total < declared:
        raise AudioFormatError(path, f"truncated: header declares {declared} frames, decoded {total}")


def _pyav_blocks(path: Path, frames: int | None) -> Iterator[tuple[np.ndarray, int]]:
    """(frames, channels) float32 blocks (None: the whole file at once) and the native rate, through FFmpeg.

    Trimmed to the container's length: the decoder emits whole codec frames.
    """
    import av

    with pyav_stream(path, _NOT_READABLE) as (container, stream, rate):
        if not rate:
            return
        expected = None
        if stream.duration is not None and stream.time_base is not None:
            expected = round(float(stream.duration * stream.time_base) * rate)
        # Planar float keeps channels apart whatever the codec's native format.
        resampler, pending, total = av.AudioResampler(format="fltp"), [], 0
        for frame in [*container.decode(stream), None]:
            pending += [c.to_ndarray() for c in resampler.resample(frame)]
            full = frames is not None and sum(c.shape[1] for c in pending) >= frames
            if full or (frame is None and pending):
                data = np.concatenate(pending, axis=1).T.astype(np.float32, copy=False)
                pending = []
                if expected is not None:
                    data = data[: max(0, expected - total)]  # the container's length is the truth
                total += len(data)
                if len(data):
                    yield np.ascontiguousarray(data), rate
    if expected is not None and total + _AAC_TOLERANCE_SAMPLES < expected:
        raise AudioFormatError(path, f"truncated: header declares {expected} frames, decoded {total}")


def _native_blocks(path: Path, frames: int | None) -> Iterator[tuple[np.ndarray, int]]:
    """The decoder for ``path``'s suffix, after the up-front file checks."""
    check_file(path)
    decode = _pyav_blocks if path.suffix.lower() in PYAV_SUFFIXES else _soundfile_blocks
    return decode(path, frames)


def _check_finite(path: Path, data: np.ndarray, where: str = "") -> None:
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(data.size - np.count_nonzero(finite))
        raise AudioInvalidSamplesError(path, f"{bad} NaN or infinite samples{where}")


def _mono(data: np.ndarray) -> np.ndarray:
    return data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]


def _warn_if_silent(path: Path, peak: float) -> None:
    if peak < SILENCE_PEAK:
        warnings.warn(f"{path}: silent (peak below {SILENCE_PEAK:g})", SilentAudioWarning, stacklevel=3)


# --------------------------------------------------------------------------- public readers


def read_audio(path: str | os.PathLike, *, sr: int = SAMPLE_RATE, min_duration: float = 0.0) -> np.ndarray:
    """Decode an audio file to float32 mono at ``sr``.

    Args:
        path: a WAV, FLAC, Ogg (Vorbis ``.ogg``, Opus ``.opus``) or AAC (``.m4a``) file.
        sr: output sample rate in Hz.
        min_duration: refuse files shorter than this many seconds.

    Returns:
        A 1-D float32 array of ``ceil(frames * sr / native_rate)`` samples.

    Raises:
        AudioMissingError: the file does not exist.
        AudioEmptyError: 0 bytes, or no samples.
        AudioFormatError: not audio, corrupt or truncated.
        AudioTooShortError: shorter than ``min_duration``.
        AudioInvalidSamplesError: NaN or infinite samples.
        ValueError: ``sr`` is not a positive integer.

    Warns:
        SilentAudioWarning: every sample's magnitude is below :data:`SILENCE_PEAK`.
    """
    sr = check_rate(sr)
    path = Path(path)
    blocks = list(_native_blocks(path, None))
    if not blocks:
        raise AudioEmptyError(path, _EMPTY)
    rate = blocks[0][1]
    data = blocks[0][0] if len(blocks) == 1 else np.concatenate([b for b, _ in blocks])
    duration = data.shape[0] / rate
    if duration < min_duration:
        raise AudioTooShortError(path, f"{duration:.3f} s is shorter than the minimum {min_duration:g} s")
    _check_finite(path, data)
    mono = resample(_mono(data), rate, sr)
    _warn_if_silent(path, float(np.max(np.abs(mono))))
    return np.ascontiguousarray(mono, dtype=np.float32)


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Duration, rate, channels and frames from the header alone (fast).

    Args:
        path: a WAV, FLAC, Ogg (Vorbis ``.ogg``, Opus ``.opus``) or AAC (``.m4a``) file.

    Returns:
        An :class:`AudioInfo`. ``frames`` may be 0: a valid but empty file.

    Raises:
        AudioMissingError, AudioEmptyError, AudioFormatError: as :func:`read_audio`.
    """
    path = Path(path)
    check_file(path)
    if path.suffix.lower() not in PYAV_SUFFIXES:
        with soundfile_handle(path, "unreadable header", check_data=False) as handle:
            frames, rate, channels = int(handle.frames), int(handle.samplerate), int(handle.channels)
        return AudioInfo(duration=frames / rate if rate else 0.0, sample_rate=rate, channels=channels, frames=frames)
    import av

    with pyav_stream(path, "unreadable header") as (container, stream, rate):
        channels = int(stream.codec_context.channels or 0)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            raise AudioFormatError(path, "the container states no duration")
    if rate <= 0:
        raise AudioFormatError(path, "the audio stream states no sample rate")
    frames = round(duration * rate)
    return AudioInfo(duration=frames / rate, sample_rate=rate, channels=channels, frames=frames)


class BlockResampler:
    """:func:`resample` of a signal that arrives in blocks, equal to resampling it whole.

    Output sample ``n`` depends on input samples within the polyphase filter's
    half length of ``n * down / up``; each block is resampled with
    :attr:`margin` input samples of history (a multiple of ``down``, so the
    output grid stays aligned) and only outputs whose whole support has
    arrived are emitted.
    """

    def __init__(self, sr: int, target_sr: int) -> None:
        g = math.gcd(int(sr), int(target_sr))
        self.up, self.down = int(target_sr) // g, int(sr) // g
        half = 10 * max(self.up, self.down) / self.up + 2  # scipy's default filter half length, in input samples
        self.margin = self.down * math.ceil(half / self.down)
        self.buffer, self.start, self.seen, self.done = np.zeros(0, np.float32), 0, 0, 0

    def push(self, x: np.ndarray) -> np.ndarray:
        """Outputs made final by ``x``."""
        if self.up == self.down:
            return x
        self.buffer = np.concatenate([self.buffer, x])
        self.seen += len(x)
        return self._emit(max(0, (self.seen - self.margin) * self.up // self.down))

    def finish(self) -> np.ndarray:
        """The remaining outputs: ``ceil(samples * target_sr / sr)`` in all."""
        return self._emit(-(-self.seen * self.up // self.down)) if self.up != self.down else np.zeros(0, np.float32)

    def _emit(self, end: int) -> np.ndarray:
        if end <= self.done:
            return np.zeros(0, np.float32)
        base = self.start * self.up // self.down  # output index of the buffer's first sample
        out = resample(self.buffer, self.down, self.up)  # the ratio up / down, as for the whole signal
        block = out[self.done - base : end - base]
        self.done = end
        keep = max(0, (end * self.down // self.up - self.margin) // self.down * self.down)
        if keep > self.start:
            self.buffer, self.start = self.buffer[keep - self.start :], keep
        return block


def iter_audio(path: str | os.PathLike, *, sr: int = SAMPLE_RATE, block_s: float = 60.0) -> Iterator[np.ndarray]:
    """Decode a file in consecutive float32 mono blocks at ``sr`` (about ``block_s`` seconds each).

    The blocks joined are :func:`read_audio`'s signal (a resampled file
    included: see :class:`BlockResampler`), but memory stays bounded by the
    block, whatever the file's length. Bad files raise the same errors as
    :func:`read_audio`, some only when the bad part is reached.

    Raises:
        AudioError: as :func:`read_audio`.
    """
    sr = check_rate(sr)
    path = Path(path)
    resampler, peak, frames = None, 0.0, 0
    for data, rate in _native_blocks(path, max(1, int(block_s * sr))):
        _check_finite(path, data, f" (from {frames / rate:.3f} s)")
        frames += len(data)
        resampler = resampler or BlockResampler(rate, sr)
        mono = resampler.push(_mono(data))
        peak = max(peak, float(np.max(np.abs(mono), initial=0.0)))
        if len(mono):
            yield np.ascontiguousarray(mono, dtype=np.float32)
    if resampler is None:
        raise AudioEmptyError(path, _EMPTY)
    rest = resampler.finish()
    _warn_if_silent(path, max(peak, float(np.max(np.abs(rest), initial=0.0))))
    if len(rest):
        yield rest
