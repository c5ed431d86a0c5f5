"""Decoding any audio file to float32 mono at a rate, and writing audio back.

One home for audio I/O: WAV, FLAC, Ogg Vorbis and Ogg Opus go through
soundfile (libsndfile);
AAC in ``.m4a`` / ``.mp4`` (VoxCeleb2's format) goes through PyAV, whose
wheels bundle FFmpeg, so no system ``ffmpeg`` is needed. Multi-channel audio
is averaged to mono; other rates are converted with a polyphase resampler
(``scipy.signal.resample_poly`` with the exact rational ratio, which applies
a Kaiser-windowed anti-aliasing filter).

Bad input raises one exception family, :class:`AudioError`, whose subclasses
name the problem and carry the ``path`` and a human ``reason``::

    AudioMissingError         the file does not exist
    AudioEmptyError           0 bytes, or a valid header with no samples
    AudioFormatError          not audio, corrupt or truncated
    AudioTooShortError        shorter than the caller's ``min_duration``
    AudioInvalidSamplesError  NaN or infinite samples

Silent audio is legal (a pause is data) but announced with a
:class:`SilentAudioWarning`.
"""

from __future__ import annotations

import io
import math
import os
import struct
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

__all__ = [
    "AudioError",
    "AudioMissingError",
    "AudioEmptyError",
    "AudioFormatError",
    "AudioTooShortError",
    "AudioInvalidSamplesError",
    "AudioWriteError",
    "SilentAudioWarning",
    "AudioInfo",
    "SOUNDFILE_SUFFIXES",
    "PYAV_SUFFIXES",
    "AUDIO_SUFFIXES",
    "SILENCE_PEAK",
    "read_audio",
    "audio_info",
    "write_audio",
    "resample",
    "iter_audio",
]

SOUNDFILE_SUFFIXES: frozenset[str] = frozenset({".wav", ".flac", ".ogg", ".opus"})
"""Suffixes decoded and encoded by soundfile (libsndfile; Ogg Opus needs libsndfile >= 1.0.29)."""

# suffix -> (libsndfile container, default subtype when writing)
_SOUNDFILE_FORMATS: dict[str, tuple[str, str | None]] = {
    ".wav": ("WAV", None), ".flac": ("FLAC", None), ".ogg": ("OGG", None), ".opus": ("OGG", "OPUS"),
}
_OGG_SUFFIXES = frozenset({".ogg", ".opus"})

PYAV_SUFFIXES: frozenset[str] = frozenset({".m4a", ".mp4", ".aac"})
"""Suffixes decoded by PyAV (FFmpeg); ``.m4a`` is also written (AAC)."""

AUDIO_SUFFIXES: frozenset[str] = SOUNDFILE_SUFFIXES | PYAV_SUFFIXES
"""Every suffix :func:`read_audio` accepts."""

SILENCE_PEAK: float = 1e-5
"""Peak amplitude below which audio counts as silent (-100 dBFS, under one 16-bit step)."""

# ``data`` chunk sizes that writers which cannot seek back (a pipe, a live
# stream) leave in the header: the samples run to the end of the file.
_WAV_SIZE_UNKNOWN = (0, 0xFFFFFFFF)

# A complete AAC stream decodes to at least the container's length (the
# decoder emits whole 1024-sample frames); one frame of slack is allowed for
# other encoders' end trimming, anything shorter is a truncated stream.
_AAC_TOLERANCE_SAMPLES = 1024


class AudioError(Exception):
    """An audio file that cannot be used; ``str(err)`` is ``"<path>: <reason>"``.

    Args:
        path: the offending file.
        reason: what is wrong with it, in words.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        # Both values in ``args`` so the error pickles across worker processes.
        super().__init__(str(path), reason)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


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


# --------------------------------------------------------------------------- checks


def _check_file(path: Path) -> None:
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


# WAVE format tags whose ``fmt `` fields are fully determined by channels and bits.
_WAV_LINEAR_FORMATS = {0x0001: "PCM", 0x0003: "IEEE float", 0xFFFE: "extensible"}


def _wav_fmt_problem(fmt: bytes) -> str | None:
    """What is inconsistent in a ``fmt `` chunk of linear PCM / float audio, else None.

    libsndfile trusts ``bits per sample`` and ``channels`` and ignores
    ``block align`` and ``byte rate``, so one flipped header byte decodes to
    garbage of the wrong length or speed without any error. For linear
    formats the four fields determine each other: ``block_align = channels *
    ceil(bits / 8)`` and ``byte_rate = sample_rate * block_align``; a header
    that breaks this is corrupt. Compressed formats (ADPCM, GSM, ...) have
    their own rules and are left to libsndfile.
    """
    if len(fmt) < 16:
        return f"corrupt header: 'fmt ' chunk holds {len(fmt)} bytes, at least 16 are needed"
    tag, channels, rate, byte_rate, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag not in _WAV_LINEAR_FORMATS:
        return None
    if channels == 0 or rate == 0 or bits == 0:
        return f"corrupt header: {channels} channel(s), {rate} Hz, {bits} bits per sample"
    expected_align = channels * ((bits + 7) // 8)
    if block_align != expected_align:
        return (
            f"corrupt header: block align {block_align} bytes does not match {channels} channel(s) "
            f"x {bits} bits (expected {expected_align})"
        )
    if byte_rate != rate * block_align:
        return (
            f"corrupt header: byte rate {byte_rate} does not match {rate} Hz x {block_align} bytes "
            f"per frame (expected {rate * block_align})"
        )
    return None


@dataclass(frozen=True)
class _WavHeader:
    """What walking a RIFF/WAVE file's chunks found (nothing is decoded).

    Attributes:
        problem: what is wrong with the ``fmt `` chunk, else None.
        size_field: file offset of the ``data`` chunk's size field (None: no ``data`` chunk found).
        declared: the size that field states, in bytes.
        available: bytes that follow the ``data`` chunk header in the file.
    """

    problem: str | None = None
    size_field: int | None = None
    declared: int = 0
    available: int = 0

    @property
    def streamed(self) -> bool:
        """The ``data`` size was left unknown (0 or 0xFFFFFFFF) by a streaming writer, and samples follow."""
        return self.size_field is not None and self.declared in _WAV_SIZE_UNKNOWN and self.available > 0


def _read_wav_header(path: Path) -> _WavHeader:
    """Walk a RIFF/WAVE file's chunks up to ``data`` (other containers: an empty :class:`_WavHeader`)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return _WavHeader()  # RF64, W64, ...: left to libsndfile
        position = 12
        for _ in range(64):  # a WAV has a handful of chunks; stop on garbage
            chunk = handle.read(8)
            if len(chunk) < 8:
                return _WavHeader()
            chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            position += 8
            if chunk_id == b"fmt ":
                problem = _wav_fmt_problem(handle.read(min(chunk_size, 64)))
                if problem:
                    return _WavHeader(problem=problem)
            elif chunk_id == b"data":
                return _WavHeader(size_field=position - 4, declared=chunk_size, available=size - position)
            position += chunk_size + (chunk_size & 1)
            handle.seek(position)
    return _WavHeader()


def _wav_header_problem(header: _WavHeader, *, check_data: bool = True) -> str | None:
    """What is wrong with a WAV's header, else None.

    The ``fmt `` chunk must be consistent (:func:`_wav_fmt_problem`) and, with
    ``check_data``, the ``data`` chunk must not be cut short: libsndfile
    silently reads a truncated WAV up to its end, so a ``data`` chunk
    declaring more bytes than the file holds means the file was cut (an
    interrupted copy or download). A size left unknown by a streaming writer
    (0 or 0xFFFFFFFF) is not a cut: the samples run to the end of the file.
    """
    if header.problem or not check_data or header.size_field is None:
        return header.problem
    if header.declared not in _WAV_SIZE_UNKNOWN and header.declared > header.available:
        return f"truncated: header declares {header.declared} data bytes, file holds {header.available}"
    return None


class _StreamedWav(io.FileIO):
    """A streamed WAV, read with its unknown ``data`` size replaced by the bytes that follow.

    libsndfile takes a ``data`` size of 0 literally (no samples); this view
    of the file patches the 4-byte size field on the fly, so the samples are
    decoded from the file itself without copying it.
    """

    def __init__(self, path: Path, header: _WavHeader) -> None:
        super().__init__(path, "rb")
        self._field = int(header.size_field)  # type: ignore[arg-type]
        self._value = struct.pack("<I", min(header.available, 0xFFFFFFFE))

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        start = self.tell()
        count = super().readinto(buffer) or 0
        low, high = max(start, self._field), min(start + count, self._field + 4)
        if low < high:
            view = memoryview(buffer).cast("B")
            view[low - start : high - start] = self._value[low - self._field : high - self._field]
        return count


class _StreamedSoundFile(sf.SoundFile):
    """A soundfile handle on a :class:`_StreamedWav` that closes the view with itself."""

    def __init__(self, view: _StreamedWav) -> None:
        self._view = view
        try:
            super().__init__(view)
        except BaseException:
            view.close()
            raise

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._view.close()


def _open_soundfile(path: Path, *, check_data: bool = True) -> sf.SoundFile:
    """A soundfile handle on ``path``, after the container checks libsndfile does not make.

    Raises:
        AudioFormatError: an inconsistent or cut WAV header, a cut Ogg stream.
        sf.LibsndfileError, RuntimeError, ValueError: libsndfile refused the file.
    """
    suffix = path.suffix.lower()
    if suffix in _OGG_SUFFIXES and check_data and not _ogg_ends_cleanly(path):
        raise AudioFormatError(path, "truncated: the Ogg stream ends without an end-of-stream page")
    if suffix != ".wav":
        return sf.SoundFile(path)
    header = _read_wav_header(path)
    problem = _wav_header_problem(header, check_data=check_data)
    if problem:
        raise AudioFormatError(path, problem)
    if not header.streamed:
        return sf.SoundFile(path)
    return _StreamedSoundFile(_StreamedWav(path, header))


def _ogg_ends_cleanly(path: Path) -> bool:
    """True when the Ogg pages chain to the file's end and the last one ends the stream.

    libsndfile reports a cut Ogg file as a valid one with 0 frames; walking
    the page headers (27 bytes + segment table + payload) tells the two apart.
    """
    data = path.read_bytes()
    position, last_flags = 0, 0
    while position < len(data):
        if data[position : position + 4] != b"OggS" or position + 27 > len(data):
            return False
        segments = data[position + 26]
        table = data[position + 27 : position + 27 + segments]
        if len(table) < segments:
            return False
        last_flags = data[position + 5]
        position += 27 + segments + sum(table)
    return position == len(data) and bool(last_flags & 0x04)


# --------------------------------------------------------------------------- decoding


def _decode_soundfile(path: Path) -> tuple[np.ndarray, int]:
    """(frames, channels) float32 and the native rate."""
    try:
        handle = _open_soundfile(path)
    except sf.LibsndfileError as error:
        raise AudioFormatError(path, f"not readable audio ({error.error_string})") from None
    except (RuntimeError, ValueError) as error:  # soundfile raises these for odd headers
        raise AudioFormatError(path, f"not readable audio ({error})") from None
    with handle:
        declared, rate = handle.frames, handle.samplerate
        try:
            # Some codecs (GSM 6.10 in WAV) are not seekable: the frame count must be given.
            frames = -1 if handle.seekable() else declared
            data = handle.read(frames, dtype="float32", always_2d=True)
        except sf.LibsndfileError as error:  # the header was fine, the stream is not
            raise AudioFormatError(
                path, f"corrupt or truncated audio data ({error.error_string})"
            ) from None
        except (RuntimeError, ValueError) as error:
            raise AudioFormatError(path, f"corrupt or truncated audio data ({error})") from None
    if data.shape[0] < declared:
        raise AudioFormatError(path, f"truncated: header declares {declared} frames, decoded {data.shape[0]}")
    return data, int(rate)


def _decode_pyav(path: Path) -> tuple[np.ndarray, int]:
    """(frames, channels) float32 and the native rate, through FFmpeg."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioFormatError(path, "no audio stream in the container")
            stream = container.streams.audio[0]
            rate = int(stream.codec_context.sample_rate or stream.rate or 0)
            expected = None
            if stream.duration is not None and stream.time_base is not None and rate:
                expected = round(float(stream.duration * stream.time_base) * rate)
            # Planar float keeps channels apart whatever the codec's native format.
            resampler = av.AudioResampler(format="fltp")
            chunks = []
            for frame in container.decode(stream):
                for converted in resampler.resample(frame):
                    chunks.append(converted.to_ndarray())
            for converted in resampler.resample(None):
                chunks.append(converted.to_ndarray())
    except AudioError:
        raise
    except (av.FFmpegError, ValueError, OSError) as error:
        raise AudioFormatError(path, f"not readable audio ({error})") from None
    if not chunks or not rate:
        return np.zeros((0, 1), dtype=np.float32), rate or 1
    data = np.concatenate(chunks, axis=1).T.astype(np.float32, copy=False)  # (frames, channels)
    if expected is not None:
        if data.shape[0] + _AAC_TOLERANCE_SAMPLES < expected:
            raise AudioFormatError(path, f"truncated: header declares {expected} frames, decoded {data.shape[0]}")
        # The decoder emits whole codec frames; the container's length is the truth.
        data = data[:expected]
    return np.ascontiguousarray(data), rate


def resample(signal: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample a 1-D signal by the exact rational ratio ``sr_out / sr_in``.

    Polyphase filtering with scipy's default Kaiser window (beta 5) keeps
    aliasing out; the output has ``ceil(len * sr_out / sr_in)`` samples.

    >>> resample(np.ones(441, dtype=np.float32), 44100, 16000).shape
    (160,)
    """
    if sr_in == sr_out:
        return signal
    from scipy.signal import resample_poly

    g = math.gcd(int(sr_in), int(sr_out))
    out = resample_poly(signal, int(sr_out) // g, int(sr_in) // g)
    return out.astype(np.float32, copy=False)


def read_audio(path: str | os.PathLike, *, sr: int = 16000, min_duration: float = 0.0) -> np.ndarray:
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
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sr must be a positive integer, got {sr!r}")
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in PYAV_SUFFIXES:
        data, rate = _decode_pyav(path)
    else:
        data, rate = _decode_soundfile(path)
    if data.shape[0] == 0:
        raise AudioEmptyError(path, "no samples (the header is valid but the stream is empty)")
    duration = data.shape[0] / rate
    if duration < min_duration:
        raise AudioTooShortError(path, f"{duration:.3f} s is shorter than the minimum {min_duration:g} s")
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(data.size - np.count_nonzero(finite))
        raise AudioInvalidSamplesError(path, f"{bad} NaN or infinite samples")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    mono = resample(mono, rate, int(sr))
    if float(np.max(np.abs(mono))) < SILENCE_PEAK:
        warnings.warn(f"{path}: silent (peak below {SILENCE_PEAK:g})", SilentAudioWarning, stacklevel=2)
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
    _check_file(path)
    if path.suffix.lower() in PYAV_SUFFIXES:
        import av

        try:
            with av.open(str(path)) as container:
                if not container.streams.audio:
                    raise AudioFormatError(path, "no audio stream in the container")
                stream = container.streams.audio[0]
                rate = int(stream.codec_context.sample_rate or stream.rate or 0)
                channels = int(stream.codec_context.channels or 0)
                if stream.duration is not None and stream.time_base is not None:
                    duration = float(stream.duration * stream.time_base)
                elif container.duration is not None:
                    duration = container.duration / av.time_base
                else:
                    raise AudioFormatError(path, "the container states no duration")
        except AudioError:
            raise
        except (av.FFmpegError, ValueError, OSError) as error:
            raise AudioFormatError(path, f"unreadable header ({error})") from None
        if rate <= 0:
            raise AudioFormatError(path, "the audio stream states no sample rate")
        frames = round(duration * rate)
        return AudioInfo(duration=frames / rate, sample_rate=rate, channels=channels, frames=frames)
    try:
        with _open_soundfile(path, check_data=False) as handle:
            frames, rate, channels = int(handle.frames), int(handle.samplerate), int(handle.channels)
    except sf.LibsndfileError as error:
        raise AudioFormatError(path, f"unreadable header ({error.error_string})") from None
    except (RuntimeError, ValueError) as error:
        raise AudioFormatError(path, f"unreadable header ({error})") from None
    return AudioInfo(duration=frames / rate if rate else 0.0, sample_rate=rate, channels=channels, frames=frames)


# --------------------------------------------------------------------------- reading in blocks


def _soundfile_blocks(path: Path, frames: int) -> Iterator[tuple[np.ndarray, int]]:
    """(frames, channels) float32 blocks and the native rate; the same checks as :func:`_decode_soundfile`."""
    try:
        handle = _open_soundfile(path)
    except sf.LibsndfileError as error:
        raise AudioFormatError(path, f"not readable audio ({error.error_string})") from None
    except (RuntimeError, ValueError) as error:
        raise AudioFormatError(path, f"not readable audio ({error})") from None
    with handle:
        declared, rate, seekable = handle.frames, int(handle.samplerate), handle.seekable()
        total = 0
        while seekable or total < declared:
            try:
                data = handle.read(frames if seekable else min(frames, declared - total), dtype="float32",
                                   always_2d=True)
            except (sf.LibsndfileError, RuntimeError, ValueError) as error:
                reason = getattr(error, "error_string", error)
                raise AudioFormatError(path, f"corrupt or truncated audio data ({reason})") from None
            if not len(data):
                break
            total += len(data)
            yield data, rate
    if total < declared:
        raise AudioFormatError(path, f"truncated: header declares {declared} frames, decoded {total}")


def _pyav_blocks(path: Path, frames: int) -> Iterator[tuple[np.ndarray, int]]:
    """(frames, channels) float32 blocks and the native rate, trimmed to the container's length."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioFormatError(path, "no audio stream in the container")
            stream = container.streams.audio[0]
            rate = int(stream.codec_context.sample_rate or stream.rate or 0)
            expected = None
            if stream.duration is not None and stream.time_base is not None and rate:
                expected = round(float(stream.duration * stream.time_base) * rate)
            resampler, pending, total = av.AudioResampler(format="fltp"), [], 0
            for frame in [*container.decode(stream), None]:
                pending += [c.to_ndarray() for c in resampler.resample(frame)]
                if sum(c.shape[1] for c in pending) >= frames or (frame is None and pending):
                    data = np.concatenate(pending, axis=1).T.astype(np.float32, copy=False)
                    pending = []
                    if expected is not None:
                        data = data[: max(0, expected - total)]  # the container's length is the truth
                    total += len(data)
                    if len(data):
                        yield np.ascontiguousarray(data), rate
    except AudioError:
        raise
    except (av.FFmpegError, ValueError, OSError) as error:
        raise AudioFormatError(path, f"not readable audio ({error})") from None
    if expected is not None and total + _AAC_TOLERANCE_SAMPLES < expected:
        raise AudioFormatError(path, f"truncated: header declares {expected} frames, decoded {total}")


class _BlockResampler:
    """:func:`resample` of a signal that arrives in blocks, equal to resampling it whole.

    Output sample ``n`` depends on input samples within the polyphase filter's
    half length of ``n * down / up``; each block is resampled with
    :attr:`margin` input samples of history (a multiple of ``down``, so the
    output grid stays aligned) and only outputs whose whole support has
    arrived are emitted.
    """

    def __init__(self, sr_in: int, sr_out: int) -> None:
        g = math.gcd(int(sr_in), int(sr_out))
        self.up, self.down = int(sr_out) // g, int(sr_in) // g
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
        """The remaining outputs: ``ceil(samples * sr_out / sr_in)`` in all."""
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


def iter_audio(path: str | os.PathLike, *, sr: int = 16000, block_s: float = 60.0) -> Iterator[np.ndarray]:
    """Decode a file in consecutive float32 mono blocks at ``sr`` (about ``block_s`` seconds each).

    The blocks joined are :func:`read_audio`'s signal (a resampled file
    included: see :class:`_BlockResampler`), but memory stays bounded by the
    block, whatever the file's length. Bad files raise the same errors as
    :func:`read_audio`, some only when the bad part is reached.

    Raises:
        AudioError: as :func:`read_audio`.
    """
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sr must be a positive integer, got {sr!r}")
    path = Path(path)
    _check_file(path)
    decode = _pyav_blocks if path.suffix.lower() in PYAV_SUFFIXES else _soundfile_blocks
    resampler, peak, frames = None, 0.0, 0
    for data, rate in decode(path, max(1, int(block_s * sr))):
        if not np.isfinite(data).all():
            bad = int(data.size - np.count_nonzero(np.isfinite(data)))
            raise AudioInvalidSamplesError(path, f"{bad} NaN or infinite samples (from {frames / rate:.3f} s)")
        frames += len(data)
        resampler = resampler or _BlockResampler(rate, int(sr))
        mono = resampler.push(data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0])
        peak = max(peak, float(np.max(np.abs(mono), initial=0.0)))
        if len(mono):
            yield np.ascontiguousarray(mono, dtype=np.float32)
    if resampler is None:
        raise AudioEmptyError(path, "no samples (the header is valid but the stream is empty)")
    rest = resampler.finish()
    peak = max(peak, float(np.max(np.abs(rest), initial=0.0)))
    if peak < SILENCE_PEAK:
        warnings.warn(f"{path}: silent (peak below {SILENCE_PEAK:g})", SilentAudioWarning, stacklevel=2)
    if len(rest):
        yield rest


# --------------------------------------------------------------------------- writing


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
    writable = SOUNDFILE_SUFFIXES | {".m4a"}
    if suffix not in writable:
        raise ValueError(f"{path}: cannot write {suffix!r}; supported: {', '.join(sorted(writable))}")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"{path}: sr must be a positive integer, got {sr!r}")
    data = np.asarray(signal, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape[1] == 0:
        raise ValueError(f"{path}: signal must be (samples,) or (samples, channels), got shape {np.shape(signal)}")
    if data.shape[0] == 0:
        raise ValueError(f"{path}: refusing to write an empty signal")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: signal holds NaN or infinite samples")
    if suffix == ".m4a" and subtype is not None:
        raise ValueError(f"{path}: subtype applies to soundfile formats, not .m4a")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        if suffix == ".m4a":
            _encode_aac(temporary, data, int(sr))
        else:
            container, default_subtype = _SOUNDFILE_FORMATS[suffix]
            sf.write(temporary, data, int(sr), format=container, subtype=subtype or default_subtype)
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if _is_codec_error(error):
            raise AudioWriteError(path, f"encoder failed ({error})") from error
        raise
    return path


def _is_codec_error(error: BaseException) -> bool:
    import av

    return isinstance(error, (av.FFmpegError, sf.LibsndfileError))
