"""Voice quality and recording conditions applied to a rendered session, never depending on its labels.

eSpeak's voices are too clean and too alike: on eGeMAPS functionals the
spectral family is nearly constant, jitter low, and every session sounds
recorded in the same place. This module adds, to a session's finished audio:

- per speaker (:class:`~emotools.synth.voices.VoiceQuality`): vocal-tract
  length (formants scaled, pitch kept), jitter and shimmer (per-period
  perturbations of timing and amplitude), breathiness (shaped noise
  following the voiced envelope);
- per session (:class:`RecordingConditions`): microphone colouration (low
  and high shelves and a peak), room reverberation (a synthesized impulse
  response: direct path plus exponentially decaying noise with a drawn RT60)
  and background noise (coloured, at a drawn SNR).

Every draw comes from the speaker index, the session and the corpus seed on
streams of their own, never from the latent or the labels: two sessions
with different emotions and the same seeds get the same channel.
:class:`VoiceRealism` holds the knobs; its default (``VoiceRealism()``,
:meth:`VoiceRealism.off`) is the identity and leaves today's corpus bit for
bit as it was.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache

import numpy as np
from scipy.ndimage import map_coordinates
from scipy.signal import butter, fftconvolve, istft, sosfilt, sosfiltfilt, stft

from .. import espeak
from ..audio import SAMPLE_RATE
from .voices import VoiceQuality, speaker_catalogue, unit_prosody, voice_qualities

EFFECTS: tuple[str, ...] = ("vocal_tract", "jitter_shimmer", "breathiness", "microphone", "reverb", "noise")
"""The audio knobs of :class:`VoiceRealism`, in the order they are applied."""


@dataclass(frozen=True)
class VoiceRealism:
    """The knobs of voices closer to real speech (all off: today's corpus, bit for bit).

    Attributes:
        vocal_tract: scale each speaker's formants by its ``vtl``.
        jitter_shimmer: per-period timing and amplitude perturbations.
        breathiness: breath noise mixed into voiced speech.
        microphone: a random gentle EQ per session.
        reverb: a synthesized room impulse response per session.
        noise: coloured background noise at a drawn SNR per session.
        held_out_voices: dev/test speakers use eSpeak base voices never heard
            in training (:data:`emotools.synth.corpus.HELD_OUT_VOICES`).
        held_out_sentences: train/dev/test read disjoint parts of the sentence pool.
        rt60_s: range of the reverberation time drawn per session (s).
        drr_db: range of the direct-to-reverberant ratio (dB).
        snr_db: range of the SNR drawn per session (dB, against the speaker's
            neutral speech level).
        eq_db: largest shelf gain of the microphone (dB; the peak gets 2/3 of it).
    """

    vocal_tract: bool = False
    jitter_shimmer: bool = False
    breathiness: bool = False
    microphone: bool = False
    reverb: bool = False
    noise: bool = False
    held_out_voices: bool = False
    held_out_sentences: bool = False
    rt60_s: tuple[float, float] = (0.15, 0.7)
    drr_db: tuple[float, float] = (0.0, 12.0)
    snr_db: tuple[float, float] = (8.0, 35.0)
    eq_db: float = 6.0

    def __post_init__(self) -> None:
        for name in ("rt60_s", "drr_db", "snr_db"):
            lo, hi = (float(v) for v in getattr(self, name))
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ValueError(f"{name} must be a finite (low, high) range, got {getattr(self, name)!r}")
            object.__setattr__(self, name, (lo, hi))
        if self.rt60_s[0] <= 0:
            raise ValueError(f"rt60_s must be positive, got {self.rt60_s!r}")
        if not (math.isfinite(self.eq_db) and 0 <= self.eq_db <= 24):
            raise ValueError(f"eq_db must be between 0 and 24 dB, got {self.eq_db!r}")

    @classmethod
    def off(cls) -> VoiceRealism:
        """Everything off: today's corpus."""
        return cls()

    @classmethod
    def full(cls) -> VoiceRealism:
        """Every knob on, default ranges."""
        return cls(**{f.name: True for f in fields(cls) if f.type in ("bool", bool)})

    @property
    def channel(self) -> bool:
        """Whether any audio knob is on (else :func:`apply_channel` is not called at all)."""
        return any(getattr(self, name) for name in EFFECTS)

    @property
    def is_off(self) -> bool:
        """Whether the corpus is today's (no audio knob, no held-out voices or sentences)."""
        return not (self.channel or self.held_out_voices or self.held_out_sentences)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields (for ``corpus.json``)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


REALISM_OFF: VoiceRealism = VoiceRealism()
"""Every knob off: today's corpus."""


# --------------------------------------------------------------------------- per-session draws


@dataclass(frozen=True)
class RecordingConditions:
    """One session's recording conditions (all drawn, whichever knobs are on).

    Attributes:
        low_hz, low_db: low-shelf corner and gain of the microphone.
        high_hz, high_db: high-shelf corner and gain.
        peak_hz, peak_db, peak_q: the presence peak (or dip).
        rt60_s: reverberation time (60 dB decay).
        drr_db: direct-to-reverberant energy ratio.
        snr_db: background noise level below the speaker's neutral speech level.
        noise_beta: noise colour, power spectrum ~ 1/f^beta (0 white, 1 pink, 2 brown).
    """

    low_hz: float
    low_db: float
    high_hz: float
    high_db: float
    peak_hz: float
    peak_db: float
    peak_q: float
    rt60_s: float
    drr_db: float
    snr_db: float
    noise_beta: float


def _rng(seed: int, speaker_index: int, session: int, stream: int) -> np.random.Generator:
    # streams 1 and 2 are the session's latent and script (session.py); 3+ are the channel's own
    return np.random.default_rng([int(seed), int(speaker_index), int(session), 100 + stream])


def recording_conditions(seed: int, speaker_index: int, session: int,
                         realism: VoiceRealism | None = None) -> RecordingConditions:
    """The drawn conditions of one session (a function of the seeds only, never of the audio or labels).

    ``realism`` gives the ranges (default: :meth:`VoiceRealism.full`'s).
    """
    realism = VoiceRealism.full() if realism is None else realism
    rng = _rng(seed, speaker_index, session, 0)
    eq = realism.eq_db
    return RecordingConditions(
        low_hz=float(rng.uniform(80, 300)), low_db=float(rng.uniform(-eq, eq)),
        high_hz=float(rng.uniform(2500, 6000)), high_db=float(rng.uniform(-eq, eq)),
        peak_hz=float(rng.uniform(600, 3500)), peak_db=float(rng.uniform(-2 * eq / 3, 2 * eq / 3)),
        peak_q=float(rng.uniform(0.7, 2.0)),
        rt60_s=float(rng.uniform(*realism.rt60_s)), drr_db=float(rng.uniform(*realism.drr_db)),
        snr_db=float(rng.uniform(*realism.snr_db)), noise_beta=float(rng.uniform(0.0, 2.0)),
    )


# --------------------------------------------------------------------------- effects


def active_rms(x: np.ndarray, sr: int = SAMPLE_RATE, *, frame_s: float = 0.02, floor_db: float = 35.0) -> float:
    """RMS over the active frames: those within ``floor_db`` of the loudest 5 % (speech level without pauses)."""
    n = max(1, int(frame_s * sr))
    frames = np.asarray(x, dtype=np.float64)[: x.size // n * n].reshape(-1, n)
    if frames.size == 0:
        return 0.0
    power = (frames ** 2).mean(axis=1)
    active = power >= np.percentile(power, 95) * 10 ** (-floor_db / 10)
    return float(math.sqrt(power[active].mean()))


def _lpc_log_envelope(power: np.ndarray, order: int) -> np.ndarray:
    """Log LPC envelope ``-log|A(f)|`` of each column of a power spectrum (bins, frames); Levinson-Durbin."""
    r = np.fft.irfft(power, axis=0)[: order + 1].T  # autocorrelation, (frames, order + 1)
    r[:, 0] *= 1 + 1e-9
    r[:, 0] += 1e-12
    a = np.zeros_like(r)
    a[:, 0] = 1.0
    error = r[:, 0].copy()
    for i in range(1, order + 1):
        k = -(a[:, :i] * r[:, i:0:-1]).sum(axis=1) / error
        a[:, 1:i + 1] = a[:, 1:i + 1] + k[:, None] * a[:, i - 1::-1][:, :i]
        error *= 1 - k * k
    spectrum = np.fft.rfft(a, n=2 * (power.shape[0] - 1), axis=1).T  # (bins, frames)
    return -np.log(np.abs(spectrum) + 1e-9)


def shift_formants(x: np.ndarray, factor: float, sr: int = SAMPLE_RATE, *, order: int = 18) -> np.ndarray:
    """Scale the spectral envelope's frequency axis by ``factor``, keeping the harmonics (pitch) in place.

    Each STFT frame's envelope is its LPC envelope (``order`` poles: the
    formants); the frame is multiplied by ``env(f / factor) / env(f)``, so
    formants move from ``f`` to ``factor * f`` while the harmonics stay.
    """
    if factor == 1.0:
        return x
    nper = 512
    _, _, spec = stft(x, fs=sr, nperseg=nper, noverlap=nper * 3 // 4)  # (bins, frames)
    envelope = _lpc_log_envelope(np.abs(spec) ** 2, order)
    source = np.arange(spec.shape[0]) / factor
    lo = np.clip(np.floor(source).astype(int), 0, spec.shape[0] - 1)
    hi = np.clip(lo + 1, 0, spec.shape[0] - 1)
    w = np.clip(source - lo, 0.0, 1.0)[:, None]
    warped = (1 - w) * envelope[lo] + w * envelope[hi]
    gain = np.exp(np.clip(warped - envelope, -3.0, 3.0))  # at most ~26 dB either way
    _, y = istft(spec * gain, fs=sr, nperseg=nper, noverlap=nper * 3 // 4)
    return _fit_length(y, x.size)


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    out[: min(n, y.size)] = y[:n]
    return out


JITTER_SCALE = math.sqrt(6.0) * math.sqrt(2.0 / math.pi)
"""E|d(k+2) - 2 d(k+1) + d(k)| for iid standard normal delays: local jitter per unit delay sd."""
SHIMMER_SCALE = math.sqrt(2.0) * math.sqrt(2.0 / math.pi)
"""E|g(k+1) - g(k)| for iid standard normal gains: local shimmer per unit gain sd."""


def perturb_periods(x: np.ndarray, jitter: float, shimmer: float, period_s: float, rng: np.random.Generator,
                    sr: int = SAMPLE_RATE) -> np.ndarray:
    """Jitter and shimmer: a random delay and gain per period, linear in between.

    On a grid of ``period_s``, each knot gets a delay ``d_k ~ N(0, s_d)`` and
    a gain ``1 + g_k``, ``g_k ~ N(0, s_g)``; the output is
    ``(1 + g(t)) x(t - d(t))`` (cubic-spline interpolation). A period that
    spans knots k..k+1 then lasts ``T + d_(k+1) - d_k``, so the local jitter
    is ``JITTER_SCALE * s_d / T`` and the local shimmer ``SHIMMER_SCALE * s_g``:
    ``s_d`` and ``s_g`` are set so that they equal ``jitter`` and ``shimmer``.
    """
    n = x.size
    knots = int(math.ceil(n / (period_s * sr))) + 2
    delay = rng.standard_normal(knots) * (jitter * period_s * sr / JITTER_SCALE)  # samples
    gain = 1.0 + rng.standard_normal(knots) * (shimmer / SHIMMER_SCALE)
    position = np.arange(n) / (period_s * sr)
    knot_axis = np.arange(knots)
    coordinates = np.arange(n) - np.interp(position, knot_axis, delay)
    warped = map_coordinates(np.asarray(x, dtype=np.float64), coordinates[None, :], order=3, mode="nearest")
    return (warped * np.interp(position, knot_axis, gain)).astype(np.float32)


def add_breath(x: np.ndarray, level_db: float, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Mix in aspiration noise (1.5-6 kHz) that follows the voiced envelope at ``level_db`` below it.

    The envelope is the 10 ms RMS of the signal below 1 kHz (voicing), so
    breath comes with voiced sounds, not with pauses or fricatives alone.
    """
    voiced = sosfilt(butter(4, 1000, "low", fs=sr, output="sos"), x)
    smooth = butter(2, 50, "low", fs=sr, output="sos")
    envelope = np.sqrt(np.maximum(sosfiltfilt(smooth, voiced ** 2), 0.0))
    noise = sosfilt(butter(2, (1500, min(6000, 0.45 * sr)), "band", fs=sr, output="sos"), rng.standard_normal(x.size))
    noise /= max(float(np.sqrt((noise ** 2).mean())), 1e-12)
    return (x + 10 ** (level_db / 20) * envelope * noise).astype(np.float32)


def _biquad(kind: str, f0: float, gain_db: float, q: float, sr: int) -> np.ndarray:
    """One RBJ-cookbook biquad (``lowshelf``, ``highshelf``, ``peak``) as a second-order section."""
    a = 10 ** (gain_db / 40)
    w = 2 * math.pi * f0 / sr
    cos, alpha = math.cos(w), math.sin(w) / (2 * q)
    if kind == "peak":
        b = [1 + alpha * a, -2 * cos, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cos, 1 - alpha / a]
    else:
        s = 1 if kind == "lowshelf" else -1
        root = 2 * math.sqrt(a) * alpha
        b = [a * ((a + 1) - s * (a - 1) * cos + root), s * 2 * a * ((a - 1) - s * (a + 1) * cos),
             a * ((a + 1) - s * (a - 1) * cos - root)]
        den = [(a + 1) + s * (a - 1) * cos + root, -s * 2 * ((a - 1) + s * (a + 1) * cos),
               (a + 1) + s * (a - 1) * cos - root]
    return np.concatenate([np.array(b) / den[0], np.array(den) / den[0]])


def microphone_sos(conditions: RecordingConditions, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The microphone's EQ as second-order sections: low shelf, high shelf, peak (shelf slope 1)."""
    shelf_q = 1 / math.sqrt(2)
    return np.stack([
        _biquad("lowshelf", conditions.low_hz, conditions.low_db, shelf_q, sr),
        _biquad("highshelf", conditions.high_hz, conditions.high_db, shelf_q, sr),
        _biquad("peak", conditions.peak_hz, conditions.peak_db, conditions.peak_q, sr),
    ])


def room_impulse_response(rt60_s: float, drr_db: float, rng: np.random.Generator,
                          sr: int = SAMPLE_RATE, *, predelay_s: float = 0.003) -> np.ndarray:
    """Direct path (a unit impulse) plus a tail of noise decaying 60 dB in ``rt60_s``.

    The tail starts ``predelay_s`` after the direct path, lasts ``1.2 * rt60_s``
    and holds ``10^(-drr_db/10)`` of the direct path's energy.
    """
    start = int(round(predelay_s * sr))
    t = np.arange(int(round(1.2 * rt60_s * sr))) / sr
    tail = rng.standard_normal(t.size) * np.exp(-3 * math.log(10) * t / rt60_s)
    tail *= math.sqrt(10 ** (-drr_db / 10) / (tail ** 2).sum())
    ir = np.zeros(start + t.size)
    ir[0] = 1.0
    ir[start:] += tail
    return ir


def coloured_noise(n: int, beta: float, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Unit-RMS noise with power spectrum ~ 1/f^beta (flat below 20 Hz)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / sr), 20.0)
    noise = np.fft.irfft(spectrum * f ** (-beta / 2), n)
    return noise / max(float(np.sqrt((noise ** 2).mean())), 1e-12)


# --------------------------------------------------------------------------- the chain


REFERENCE_TEXT = "The weather was calm, and we walked along the river until the evening."
"""What each speaker says at neutral prosody to set the level the SNR refers to."""


@lru_cache(maxsize=64)
def _neutral_speech(speaker_index: int, sr: int) -> np.ndarray:
    speaker = speaker_catalogue()[speaker_index]
    audio = espeak.render(REFERENCE_TEXT, speaker.voice, unit_prosody(speaker, 0.0, 0.0).espeak(), sr=sr)
    audio.setflags(write=False)
    return audio


def _voice(x: np.ndarray, quality: VoiceQuality, realism: VoiceRealism, rng: np.random.Generator,
           sr: int) -> np.ndarray:
    if realism.vocal_tract:
        x = shift_formants(x, quality.vtl, sr)
    if realism.jitter_shimmer:
        x = perturb_periods(x, quality.jitter, quality.shimmer, quality.period_s, rng, sr)
    if realism.breathiness:
        x = add_breath(x, quality.breath_db, rng, sr)
    return x


def _room(x: np.ndarray, conditions: RecordingConditions, realism: VoiceRealism, rng: np.random.Generator,
          sr: int) -> np.ndarray:
    if realism.microphone:
        x = sosfilt(microphone_sos(conditions, sr), x)
    if realism.reverb:
        x = fftconvolve(x, room_impulse_response(conditions.rt60_s, conditions.drr_db, rng, sr))[: x.size]
    return np.asarray(x, dtype=np.float32)


def apply_channel(audio: np.ndarray, speaker_index: int, session: int, *, seed: int, realism: VoiceRealism,
                  sr: int = SAMPLE_RATE) -> np.ndarray:
    """The speaker's voice quality and the session's recording conditions applied to ``audio``.

    Order: vocal tract, jitter/shimmer, breath (the voice); microphone,
    reverberation (the room); noise. Every random draw is seeded by
    ``(seed, speaker_index, session)`` on streams of its own, so the same
    seeds give the same channel whatever the audio says or feels. The
    microphone and room keep the level of the speaker's neutral speech (a
    fixed sentence at neutral prosody), and the SNR refers to that level,
    not to this audio's: a louder session is not given louder noise.

    Returns:
        float32 audio of the same length (not clipped).
    """
    quality = voice_qualities()[speaker_index]
    conditions = recording_conditions(seed, speaker_index, session, realism)
    x = _voice(np.asarray(audio, dtype=np.float32), quality, realism, _rng(seed, speaker_index, session, 1), sr)
    if not (realism.microphone or realism.reverb or realism.noise):
        return x
    dry = _neutral_speech(speaker_index, sr)
    level = active_rms(dry, sr)
    # the recording level is set so that the speaker's neutral speech keeps its level through microphone and room
    x = _room(x, conditions, realism, _rng(seed, speaker_index, session, 2), sr)
    if realism.microphone or realism.reverb:
        x *= level / active_rms(_room(dry, conditions, realism, _rng(seed, speaker_index, session, 2), sr), sr)
    if realism.noise:
        noise = coloured_noise(x.size, conditions.noise_beta, _rng(seed, speaker_index, session, 3), sr)
        x = x + level * 10 ** (-conditions.snr_db / 20) * noise
    return x.astype(np.float32)
