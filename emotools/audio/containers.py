"""Container checks libsndfile does not make, and opening a file for decoding with errors that name it.

libsndfile trusts a WAV header's ``bits per sample`` and ``channels`` and
silently reads a cut WAV or Ogg file up to its end; the checks here catch
those files before any sample is decoded. :func:`soundfile_handle` and
:func:`pyav_stream` open a file and turn every library error into an
:class:`~emotools.audio.AudioFormatError` that names the file.
"""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile as sf

from .common import AudioError, AudioFormatError

_OGG_SUFFIXES = frozenset({".ogg", ".opus"})

# ``data`` chunk sizes that writers which cannot seek back (a pipe, a live
# stream) leave in the header: the samples run to the end of the file.
_WAV_SIZE_UNKNOWN = (0, 0xFFFFFFFF)


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
class WavHeader:
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


def read_wav_header(path: Path) -> WavHeader:
    """Walk a RIFF/WAVE file's chunks up to ``data`` (other containers: an empty :class:`WavHeader`)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return WavHeader()  # RF64, W64, ...: left to libsndfile
        position = 12
        for _ in range(64):  # a WAV has a handful of chunks; stop on garbage
            chunk = handle.read(8)
            if len(chunk) < 8:
                return WavHeader()
            chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            position += 8
            if chunk_id == b"fmt ":
                problem = _wav_fmt_problem(handle.read(min(chunk_size, 64)))
                if problem:
                    return WavHeader(problem=problem)
            elif chunk_id == b"data":
                return WavHeader(size_field=position - 4, declared=chunk_size, available=size - position)
            position += chunk_size + (chunk_size & 1)
            handle.seek(position)
    return WavHeader()


def wav_header_problem(header: WavHeader, *, check_data: bool = True) -> str | None:
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

    def __init__(self, path: Path, header: WavHeader) -> None:
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


def open_soundfile(path: Path, *, check_data: bool = True) -> sf.SoundFile:
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
    header = read_wav_header(path)
    problem = wav_header_problem(header, check_data=check_data)
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


def soundfile_handle(path: Path, what: str, *, check_data: bool = True) -> sf.SoundFile:
    """:func:`open_soundfile`, with libsndfile's refusal as ``AudioFormatError(path, "<what> (<why>)")``."""
    try:
        return open_soundfile(path, check_data=check_data)
    except sf.LibsndfileError as error:
        raise AudioFormatError(path, f"{what} ({error.error_string})") from None
    except (RuntimeError, ValueError) as error:  # soundfile raises these for odd headers
        raise AudioFormatError(path, f"{what} ({error})") from None


@contextlib.contextmanager
def pyav_stream(path: Path, what: str) -> Iterator[tuple[Any, Any, int]]:
    """``(container, first audio stream, rate)`` of a file opened with PyAV (rate 0: none stated).

    Inside the block, FFmpeg's errors become ``AudioFormatError(path, "<what> (<why>)")``.
    """
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioFormatError(path, "no audio stream in the container")
            stream = container.streams.audio[0]
            yield container, stream, int(stream.codec_context.sample_rate or stream.rate or 0)
    except AudioError:
        raise
    except (av.FFmpegError, ValueError, OSError) as error:
        raise AudioFormatError(path, f"{what} ({error})") from None
