"""eSpeak NG through ctypes: bit-exact speech from text and four prosody controls.

The ``espeakng-loader`` wheel ships ``libespeak-ng`` and its voice data, so
nothing is installed by hand. The library runs in synchronous mode: a
callback collects 16-bit samples at its native 22,050 Hz, which are
resampled to the requested rate with :func:`emotools.audio.resample`.

Why a fork per utterance: eSpeak keeps state between calls (e.g. the phase of
its pitch "flutter"), so rendering the same text twice in one process
differs by tens of samples; and it draws noise (the breath of some
variants) from a generator that ``espeak_Initialize`` seeds from the clock,
so two processes differ too. So a small helper process (the "zygote": only
``ctypes`` and the library, started on first use with ``python -m
emotools.espeak``) initialises eSpeak once and never synthesises itself;
every utterance is rendered in a child forked from it, which starts from that
identical, pristine state, re-seeds the noise generators
(``espeak_ng_SetRandSeed``, libc ``srand``) with a constant, renders, and
exits. The same text, voice and prosody therefore give the same samples in
every call and every run. Forking the small helper instead of the caller
(which may hold hundreds of MB and threads) keeps a fork at about a
millisecond. POSIX only (``os.fork``).

eSpeak NG is GPL-3.0; it is loaded as a shared library at run time.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import operator
import os
import signal
import struct
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .errors import EmotoolsError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["EspeakError", "Prosody", "render", "native_rate", "version"]

# espeak_AUDIO_OUTPUT, espeak_POSITION_TYPE, flags (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_INITIALIZE_DONT_EXIT = 0x8000
# espeak_PARAMETER
_PARAMETERS = {"rate": 1, "volume": 2, "pitch": 3, "range": 4}

_RAND_SEED = 1  # noise generator seed of every rendering child
# Status of a request (the rendering child's exit code, or the zygote's own).
_OK, _BAD_VOICE, _SYNTH_FAILED, _CRASHED = 0, 3, 4, 5
_FRAME = struct.Struct("<iQ")  # status, payload length


class EspeakError(EmotoolsError):
    """eSpeak could not render an utterance; ``str(err)`` is ``"<what>: <reason>"``.

    Args:
        what: the utterance or voice concerned.
        reason: what went wrong, in words.
    """


@dataclass(frozen=True)
class Prosody:
    """The four ``espeak_SetParameter`` controls, in eSpeak's own units.

    Attributes:
        rate: speaking rate in words per minute (80-450; eSpeak's default 175).
        volume: amplitude (0-200; default 100; above ~100 loud voices clip).
        pitch: base pitch within the voice's range (0-100; default 50).
        range: pitch range (0-100; default 50; 0 is monotone).
    """

    rate: int = 175
    volume: int = 100
    pitch: int = 50
    range: int = 50

    def __post_init__(self) -> None:
        for name, low, high in (("rate", 80, 450), ("volume", 0, 200), ("pitch", 0, 100), ("range", 0, 100)):
            value = getattr(self, name)
            try:
                if isinstance(value, bool):
                    raise TypeError
                value = operator.index(value)
            except TypeError:
                raise TypeError(f"Prosody.{name} must be an int, got {value!r}") from None
            if not low <= value <= high:
                raise ValueError(f"Prosody.{name}={value} is outside eSpeak's range [{low}, {high}]")
            object.__setattr__(self, name, int(value))


# --------------------------------------------------------------------------- the zygote (helper process)


class _Library:
    """libespeak-ng, initialised in synchronous mode (lives in the zygote)."""

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        self.libc = ctypes.CDLL(None)
        self.libc.srand.argtypes = [ctypes.c_uint]
        data = espeakng_loader.get_data_path().encode()
        self.rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT)
        if self.rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed with {self.rate} (data path {data.decode()})")
        self.version = lib.espeak_Info(None).decode()
        self._chunks: list[bytes] = []
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
        self._callback = callback_type(self._collect)  # referenced as long as the library
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, count, events) -> int:
        if count > 0:
            self._chunks.append(ctypes.string_at(wav, count * 2))
        return 0  # continue

    def synthesize(self, request: dict) -> tuple[int, bytes]:
        """Render in THIS process (only ever called in a forked child): (status, int16 bytes)."""
        lib = self.lib
        lib.espeak_ng_SetRandSeed(_RAND_SEED)
        self.libc.srand(_RAND_SEED)
        if lib.espeak_SetVoiceByName(request["voice"].encode("utf-8")) != 0:
            return _BAD_VOICE, b""
        for name, parameter in _PARAMETERS.items():
            lib.espeak_SetParameter(parameter, int(request[name]), 0)
        text = request["text"].encode("utf-8")
        self._chunks = []
        if lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != 0:
            return _SYNTH_FAILED, b""
        lib.espeak_Synchronize()
        return _OK, b"".join(self._chunks)


def _read_exact(stream: BinaryIO | int, size: int) -> bytes:
    parts, left = [], size
    while left:
        block = os.read(stream, min(left, 1 << 16)) if isinstance(stream, int) else stream.read(left)
        if not block:
            break
        parts.append(block)
        left -= len(block)
    return b"".join(parts)


def _send(stream: BinaryIO, status: int, payload: bytes) -> None:
    stream.write(_FRAME.pack(status, len(payload)) + payload)
    stream.flush()


def _render_in_child(library: _Library, request: dict) -> tuple[int, bytes]:
    """Fork, render in the child, collect its samples through a pipe."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = _CRASHED
        try:
            os.close(read_fd)
            status, pcm = library.synthesize(request)
            view = memoryview(_FRAME.pack(status, len(pcm)) + pcm)
            while view:
                view = view[os.write(write_fd, view):]
        finally:
            os._exit(status)
    os.close(write_fd)
    try:
        header = _read_exact(read_fd, _FRAME.size)
        status, length = _FRAME.unpack(header) if len(header) == _FRAME.size else (_CRASHED, 0)
        pcm = _read_exact(read_fd, length)
    finally:
        os.close(read_fd)
        _, wait_status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(wait_status)
    if code != status or len(pcm) != length:
        return (code if code != _OK else _CRASHED), b""
    return status, pcm


def _zygote_main() -> int:
    """The helper process: requests on stdin, samples on stdout (framed)."""
    # The protocol gets its own copy of stdout; fd 1 goes to stderr, so that
    # nothing the library might print can corrupt a frame.
    # Ctrl-C (or a Jupyter kernel's interrupt of its process group) is for the
    # caller; this process ends when the caller closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inp, out = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    try:
        library = _Library()
    except Exception as error:  # reported to the caller, which raises EspeakError
        _send(out, _CRASHED, f"{type(error).__name__}: {error}".encode())
        return 1
    _send(out, _OK, json.dumps({"rate": library.rate, "version": library.version}).encode())
    while True:
        header = _read_exact(inp, _FRAME.size)
        if len(header) < _FRAME.size:
            return 0  # the caller closed the pipe (or exited)
        _, length = _FRAME.unpack(header)
        request = json.loads(_read_exact(inp, length))
        _send(out, *_render_in_child(library, request))


# --------------------------------------------------------------------------- the caller's side


class _Client:
    """Talks to one zygote; one request at a time."""

    def __init__(self) -> None:
        env = dict(os.environ)
        package_parent = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.process = subprocess.Popen([sys.executable, "-m", "emotools.espeak"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, env=env, close_fds=True)
        status, payload = self._receive()
        if status != _OK:
            self.close()
            raise EspeakError("eSpeak NG", f"cannot start ({payload.decode(errors='replace') or 'no answer'})")
        hello = json.loads(payload)
        self.rate, self.version = int(hello["rate"]), str(hello["version"])

    def _receive(self) -> tuple[int, bytes]:
        header = _read_exact(self.process.stdout, _FRAME.size)
        if len(header) < _FRAME.size:
            return _CRASHED, b""
        status, length = _FRAME.unpack(header)
        return status, _read_exact(self.process.stdout, length)

    def request(self, payload: dict) -> tuple[int, bytes]:
        data = json.dumps(payload).encode()
        with self.lock:
            try:
                _send(self.process.stdin, _OK, data)
            except (BrokenPipeError, OSError):
                return _CRASHED, b""
            return self._receive()

    def alive(self) -> bool:
        return self.pid == os.getpid() and self.process.poll() is None

    def close(self) -> None:
        if self.pid != os.getpid():
            return  # a forked copy: the zygote belongs to the parent
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_client: _Client | None = None
_client_lock = threading.Lock()


def _get_client() -> _Client:
    global _client
    with _client_lock:
        if _client is None or not _client.alive():
            _client = _Client()  # first use, a forked process, or a helper that died
        return _client


@atexit.register
def _close_client() -> None:
    if _client is not None:
        _client.close()


def native_rate() -> int:
    """eSpeak's output rate in Hz (22,050)."""
    return _get_client().rate


def version() -> str:
    """The eSpeak NG library version, e.g. ``"1.52.0"``."""
    return _get_client().version


def render(text: str, voice: str, prosody: Prosody = Prosody(), *, sr: int | None = None) -> np.ndarray:
    """Speak ``text`` with a voice and prosody: float32 mono samples at ``sr``.

    Bit-exact: the same arguments give the same samples in every call and
    every process (see the module docstring).

    Args:
        text: plain text (UTF-8; no SSML).
        voice: an eSpeak voice, optionally with a variant, e.g. ``"en-us+m3"``.
            eSpeak silently ignores unknown variants; callers should use known ones.
        prosody: rate, volume, pitch and range.
        sr: output sample rate in Hz (None: :data:`emotools.audio.SAMPLE_RATE`; the
            default is resolved at call time so that the zygote never imports the audio stack).

    Returns:
        A 1-D float32 ``np.ndarray`` in [-1, 1].

    Raises:
        EspeakError: empty text, unknown voice, or a failed synthesis.

    >>> from emotools.audio import SAMPLE_RATE
    >>> x = render("Hello.", "en-us+m3")
    >>> x.dtype, 0.25 < x.size / SAMPLE_RATE < 1.0  # about half a second
    (dtype('float32'), True)
    """
    import numpy as np

    from .audio import SAMPLE_RATE, resample

    if not isinstance(text, str) or not text.strip():
        raise EspeakError(repr(text), "empty text")
    if "\x00" in text or "\x00" in voice:
        raise EspeakError(repr(text), "NUL character in text or voice")
    client = _get_client()
    status, pcm = client.request({"text": text, "voice": voice, **asdict(prosody)})
    if status == _BAD_VOICE:
        raise EspeakError(voice, "unknown eSpeak voice")
    if status != _OK:
        raise EspeakError(repr(text), f"synthesis failed (status {status})")
    if not pcm:
        raise EspeakError(repr(text), "eSpeak produced no samples")
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    return resample(samples, client.rate, SAMPLE_RATE if sr is None else int(sr))


if __name__ == "__main__":
    sys.exit(_zygote_main())
