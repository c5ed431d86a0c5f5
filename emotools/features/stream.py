"""Streaming windowed functionals: one running openSMILE instance fed chunk by chunk.

:class:`StreamingExtractor` pushes float audio into openSMILE's
``cExternalAudioSource`` while ``smile_run`` turns in a background thread;
rows leave through the ``cExternalSink`` callback. The configuration is the
one :func:`emotools.features.smile_for` builds for the offline extraction
(same config file, same frame-mode include, same PCM conversion), so the
streamed rows equal :func:`emotools.features.extract_signal` of the whole
signal, bit for bit in practice; only the audio arrives in pieces.

**Knowing when a chunk is done.** ``smile_run`` blocks on a condition
variable whenever no component could do any work and the external source
waits for data. The component manager's ``execDebug`` option logs
``after tick(): nRun == N, tickNr = T`` after every tick; a log callback
reads it. A chunk is written only while the loop is idle (its last tick ran
nothing), as one write, i.e. one wake-up; the next tick with ``nRun == 0``
means openSMILE has done all the work that chunk allows, and every row it
made has passed through the sink. ``push`` returns exactly those rows.

**Memory.** The wave level is a ring buffer of :data:`RING_SECONDS` (the
offline source grows with the signal), and so are the LLD levels that feed
the functionals (option ``bufferModeConf``, which the GeMAPS configs leave
unset, i.e. growing: about 20 MB per 100 s of audio); openSMILE enlarges a
ring buffer to what its readers need (a window), so the numbers do not
change. Chunks longer than
:data:`PIECE_SECONDS` are written in pieces, each after the previous one is
processed. Rows are handed out at each ``push`` and not kept.

**Latency.** A window's row needs audio past the window's end: its last LLD
frame's analysis window (up to 60 ms from the frame start, i.e. 50 ms past
the end), the Viterbi pitch smoother, which holds frames until all its paths
agree (data-dependent, at most ``bufferLength`` frames: 40 for the GeMAPS
family), and the 3-frame moving average (one frame). :func:`max_lookahead`
states that bound; :func:`measure_lookahead` measures it on a signal.
"""

from __future__ import annotations

import collections
import ctypes
import re
import threading
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
from opensmile.core.lib import OpenSMILE, OpenSmileException, smileapi_path

from emotools import paths
from emotools.fileio import write_text

from .smile import LLD_HOP, SAMPLE_RATE, FeatureError, FeatureSet, FeatureSpec, Level, smile_for, to_int16

__all__ = ["StreamingExtractor", "max_lookahead", "measure_lookahead", "RING_SECONDS", "PIECE_SECONDS"]

RING_SECONDS: float = 4.0
"""Length (s) of the ring buffer that holds the incoming audio inside openSMILE."""

PIECE_SECONDS: float = 1.0
"""Longest piece (s) written at once; longer chunks go in pieces, each processed before the next."""

_SOURCE = "extsource"  # component names of opensmile's standard external source and sink includes
_SINK = "extsink"
_TICK = re.compile(rb"after tick\(\): nRun == (-?\d+), tickNr = (-?\d+)")
_WAIT_S = 1.0  # how often a waiting push checks that the openSMILE thread is still alive

# Bound on the audio a row needs past its window's end (s), per feature set: analysis frame past the
# last LLD frame's start (60 ms - 10 ms), Viterbi pitch smoother buffer (bufferLength frames), sma3 (1 frame).
_VITERBI_FRAMES = {FeatureSet.eGeMAPSv02: 40, FeatureSet.GeMAPSv01b: 40}


class _LogMessage(ctypes.Structure):
    """``smilelogmsg_t`` of SMILEapi.h (passed by value to the log callback)."""

    _fields_ = [("type", ctypes.c_int), ("level", ctypes.c_int),
                ("text", ctypes.c_char_p), ("module", ctypes.c_char_p)]


_LogCallback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, _LogMessage, ctypes.c_void_p)
_api = ctypes.CDLL(smileapi_path)  # our own function objects: opensmile's wrapper has no log callback
_api.smile_set_log_callback.argtypes = [ctypes.c_void_p, _LogCallback, ctypes.c_void_p]
_api.smile_set_log_callback.restype = ctypes.c_int


def max_lookahead(spec: FeatureSpec) -> float:
    """Most audio (s) past a window's end that can be needed before its row is out.

    ``(60 - 10) ms`` analysis frame + ``bufferLength`` Viterbi frames + one
    frame of the 3-frame moving average; 0.46 s for the GeMAPS family.

    Raises:
        ValueError: a feature set whose bound is not derived here (ComParE_2016).

    >>> max_lookahead(FeatureSpec())
    0.46
    """
    if spec.feature_set not in _VITERBI_FRAMES:
        raise ValueError(f"no lookahead bound derived for {spec.feature_set.value}")
    return round(0.05 + (_VITERBI_FRAMES[spec.feature_set] + 1) * LLD_HOP, 6)


def _source_config(sr: int) -> Path:
    """The external-source include: a ring-buffer wave level, and ``execDebug`` for the tick log."""
    ring = int(round(RING_SECONDS * sr))
    path = paths.cache_dir() / "opensmile" / f"StreamSource-sr{sr}-rb{ring}.conf.inc"
    text = (
        "; written by emotools.features.stream: external audio into a ring buffer, one log line per tick\n"
        "[componentInstances:cComponentManager]\n"
        f"instance[{_SOURCE}].type = cExternalAudioSource\nexecDebug = 1\n"
        f"[{_SOURCE}:cExternalAudioSource]\n"
        "writer.dmLevel = wave\nwriter.levelconf.growDyn = 0\nwriter.levelconf.isRb = 1\n"
        f"writer.levelconf.nT = {ring}\nsampleRate = {sr}\nnBits = 16\nchannels = 1\n"
    )
    if not path.is_file() or path.read_text() != text:
        write_text(path, text)
    return path


class _Engine:
    """One running openSMILE instance: the run thread, the tick log, the sink's rows.

    Holds no reference to the :class:`StreamingExtractor`, so a finalizer can stop it.
    """

    def __init__(self, spec: FeatureSpec, sr: int) -> None:
        smile = smile_for(spec)
        options = smile._options()  # exactly what opensmile's process_signal uses: no drift from offline
        options.update(source=str(_source_config(sr)), sampleRate=sr, nBits=16,
                       # the levels that feed the functionals grow with the signal unless they are ring buffers
                       bufferModeConf=options["bufferModeRbConf"])
        self.rows: collections.deque = collections.deque()
        self.error: str | None = None
        self._cond = threading.Condition()
        self._last = self._idle = -1  # last tick logged, last tick that ran nothing
        self._smile = OpenSMILE()
        try:
            self._smile.initialize(smile.config_path, options, loglevel=3)
            self._log = _LogCallback(self._on_log)  # referenced here so it outlives the run
            _api.smile_set_log_callback(self._smile._smileobj, self._log, None)
            self._smile.external_sink_set_callback_ex(_SINK, self._on_row)
        except OpenSmileException:
            self._smile.free()
            raise
        self._thread = threading.Thread(target=self._run, name="opensmile-stream", daemon=True)
        self._thread.start()
        self._wait_idle(-1)

    def _run(self) -> None:
        try:
            self._smile.run()
        except OpenSmileException as error:
            self.error = str(error)
        finally:
            with self._cond:
                self._cond.notify_all()

    def _on_log(self, _obj, message: _LogMessage, _param) -> None:
        match = _TICK.match(message.text or b"")
        if match:
            with self._cond:
                self._last = int(match.group(2))
                if int(match.group(1)) == 0:
                    self._idle = self._last
                self._cond.notify_all()

    def _on_row(self, data: np.ndarray, meta) -> None:
        self.rows.append((round(meta.time, 6), data[0].copy()))

    def _wait_idle(self, after: int) -> None:
        """Block until a tick later than ``after`` ran nothing (the loop waits for data again)."""
        with self._cond:
            while not (self._idle > after and self._idle == self._last):
                if not self._thread.is_alive():
                    raise OpenSmileException(1, self.error or "openSMILE stopped unexpectedly")
                self._cond.wait(_WAIT_S)

    def write(self, pcm: np.ndarray, piece: int) -> None:
        """Write int16 samples in pieces, each once the previous one is fully processed."""
        for begin in range(0, pcm.size, piece):
            with self._cond:
                before = self._last
            if not self._smile.external_audio_source_write_data(_SOURCE, pcm[begin:begin + piece].tobytes()):
                raise OpenSmileException(8, "the audio ring buffer is full")  # cannot happen while idle
            self._wait_idle(before)

    def finish(self) -> None:
        """End of input: openSMILE flushes and ``smile_run`` returns; then free it."""
        self._smile.external_audio_source_set_eoi(_SOURCE)
        self._thread.join()
        self._smile.free()
        if self.error:
            raise OpenSmileException(1, self.error)

    def abort(self) -> None:
        """Stop without flushing (idempotent; safe from a finalizer)."""
        if self._smile._smileobj is None:
            return
        if self._thread.is_alive():
            self._smile.abort()
            self._thread.join()
        self._smile.free()


class StreamingExtractor:
    """Windowed openSMILE functionals of a stream, equal to the offline extraction of the whole signal.

    Args:
        spec: a ``windowed`` feature spec (feature set, window, hop).
        sr: sample rate in Hz of every chunk; openSMILE works at this rate,
            as :func:`~emotools.features.extract_signal` does (no resampling).
        name: what errors name as their subject.

    Raises:
        FeatureError: a spec that is not windowed, a bad rate, or openSMILE
            failing to start.

    >>> with StreamingExtractor(FeatureSpec(window=1.0, hop=0.1)) as stream:  # doctest: +SKIP
    ...     for chunk in chunks:
    ...         rows = stream.push(chunk)  # start, end, 88 features of the windows now complete
    ...     rows = stream.close()          # the windows only the end of the audio completes
    """

    def __init__(self, spec: FeatureSpec = FeatureSpec(), sr: int = SAMPLE_RATE, *, name: str = "<stream>") -> None:
        self.spec = spec
        self.name = str(name)
        if spec.level is not Level.windowed:
            raise FeatureError(self.name, f"streaming needs a windowed spec, got level {spec.level.value!r}")
        if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
            raise FeatureError(self.name, f"sample rate must be a positive integer, got {sr!r}")
        self.sr = int(sr)
        self.samples = 0
        self._closed = False
        self._columns: list[str] | None = None
        try:
            self._engine = _Engine(spec, self.sr)
        except OpenSmileException as error:
            raise FeatureError(self.name, f"openSMILE failed to start: {error}") from None
        self._finalizer = weakref.finalize(self, self._engine.abort)

    @property
    def seconds(self) -> float:
        """Audio pushed so far, in seconds."""
        return self.samples / self.sr

    @property
    def closed(self) -> bool:
        """True after :meth:`close` or :meth:`abort`."""
        return self._closed

    def push(self, chunk: np.ndarray) -> pd.DataFrame:
        """Feed the next samples; returns the rows of the windows they completed, in order.

        Args:
            chunk: float samples in [-1, 1], shape ``(samples,)`` or
                ``(1, samples)``, any length (also 0 or 1).

        Returns:
            ``start``, ``end`` (s, float64) and the feature columns (float32),
            as :func:`~emotools.features.extract_signal`; possibly no rows.

        Raises:
            FeatureError: a closed stream, a non-float or multi-channel chunk,
                NaN or infinite samples (the chunk is then not used and the
                stream goes on), or openSMILE failing (the stream is then closed).
        """
        x = self._checked(chunk)
        try:
            self._engine.write(to_int16(x), max(1, int(PIECE_SECONDS * self.sr)))
        except OpenSmileException as error:
            self.abort()
            raise FeatureError(self.name, f"openSMILE failed: {error}") from None
        self.samples += x.size
        return self._drain()

    def close(self) -> pd.DataFrame:
        """End of the audio: the rows the offline extraction emits only at the end (often none).

        Raises:
            FeatureError: already closed, or openSMILE failing.
        """
        self._check_open()
        self._closed = True
        self._finalizer.detach()
        try:
            self._engine.finish()
        except OpenSmileException as error:
            raise FeatureError(self.name, f"openSMILE failed: {error}") from None
        return self._drain()

    def abort(self) -> None:
        """Stop now, without the trailing rows; idempotent. The thread ends and openSMILE is freed."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> StreamingExtractor:
        return self

    def __exit__(self, *exc) -> None:
        self.abort()

    def _check_open(self) -> None:
        if self._closed:
            raise FeatureError(self.name, "the stream is closed")

    def _checked(self, chunk: np.ndarray) -> np.ndarray:
        """The chunk as a 1-D float array, or a FeatureError naming what is wrong with it."""
        self._check_open()
        x = np.asarray(chunk)
        if x.ndim == 2 and x.shape[0] == 1:
            x = x[0]
        if x.ndim != 1:
            raise FeatureError(self.name, f"expected a mono chunk (samples,), got shape {np.shape(chunk)}")
        if not np.issubdtype(x.dtype, np.floating):
            raise FeatureError(self.name, f"expected float samples in [-1, 1], got dtype {x.dtype}")
        if not np.isfinite(x).all():
            raise FeatureError(self.name, f"NaN or infinite samples in the chunk at {self.seconds:.3f} s")
        return x

    def _drain(self) -> pd.DataFrame:
        """The rows the sink delivered since the last call, as a frame like the offline one."""
        rows = self._engine.rows
        taken = [rows.popleft() for _ in range(len(rows))]
        if self._columns is None:
            self._columns = list(smile_for(self.spec).feature_names)
        start = np.array([t for t, _ in taken], dtype=np.float64)
        values = np.array([v for _, v in taken], dtype=np.float32).reshape(len(taken), len(self._columns))
        frame = pd.DataFrame(values, columns=self._columns)
        frame.insert(0, "end", np.round(start + self.spec.window, 6))
        frame.insert(0, "start", start)
        frame.attrs = {"rate_hz": self.spec.rate_hz, "spec": self.spec.to_dict()}
        return frame


def measure_lookahead(signal: np.ndarray, sr: int = SAMPLE_RATE, spec: FeatureSpec = FeatureSpec(), *,
                      step: int = 16) -> pd.DataFrame:
    """When each window's row comes out of a stream, in audio time past the window's end.

    Streams ``signal`` in chunks of ``step`` samples; a row counts as out
    after the chunk whose :meth:`StreamingExtractor.push` returned it.

    Args:
        signal: float samples in [-1, 1].
        sr: sample rate in Hz.
        spec: a windowed spec.
        step: chunk size in samples: the resolution of the measurement.

    Returns:
        One row per window emitted before the end of the audio: ``start``,
        ``end`` and ``lookahead`` (s of audio pushed past ``end``, rounded up
        to ``step``). Windows that only :meth:`~StreamingExtractor.close`
        emits are left out.
    """
    found = []
    with StreamingExtractor(spec, sr, name="<lookahead probe>") as stream:
        x = np.asarray(signal)
        for begin in range(0, x.size, step):
            rows = stream.push(x[begin:begin + step])
            found += [(s, e, stream.seconds - e) for s, e in zip(rows["start"], rows["end"])]
    return pd.DataFrame(found, columns=["start", "end", "lookahead"])
