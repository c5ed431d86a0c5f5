"""Synthetic speakers and the one prosody mapping from latent arousal/valence to eSpeak controls."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.signal import lfilter

from .. import espeak
from ..audio import SAMPLE_RATE

VOICES: tuple[str, ...] = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland")
"""eSpeak voices used for speakers."""

VARIANTS: tuple[str, ...] = ("m1", "f1", "m2", "f2", "m3", "f3", "m4", "f4", "m5", "f5", "m6", "m7", "m8")
"""eSpeak voice variants, in the order speakers take them (``+whisper`` is never used)."""


# --------------------------------------------------------------------------- speakers


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: a voice/variant with its own prosodic baseline.

    Attributes:
        name: ``spk01`` ...
        voice: eSpeak voice name with variant, e.g. ``en-us+m1``.
        gender: ``"m"`` or ``"f"`` (from the variant).
        pitch: base pitch (eSpeak 0-100).
        range: base pitch range (eSpeak 0-100).
        rate: base speaking rate (words per minute).
        volume: base volume (eSpeak 0-200).
    """

    name: str
    voice: str
    gender: str
    pitch: float
    range: float
    rate: float
    volume: float


@lru_cache(maxsize=1)
def speaker_catalogue() -> tuple[Speaker, ...]:
    """All 52 speakers, in a fixed order that mixes voices and genders early.

    Speaker ``i`` always has the same voice and baseline, whatever the
    corpus seed: the seed changes what is said and felt, not who says it.
    """
    out = []
    count = len(VOICES) * len(VARIANTS)
    for i in range(count):
        v = i % len(VOICES)
        variant = VARIANTS[(i // len(VOICES) + 3 * v) % len(VARIANTS)]
        rng = np.random.default_rng([0x5BEA4E, i])
        out.append(
            Speaker(
                name=f"spk{i + 1:02d}",
                voice=f"{VOICES[v]}+{variant}",
                gender=variant[0],
                pitch=round(float(rng.uniform(35, 65)), 1),
                range=round(float(rng.uniform(35, 60)), 1),
                rate=round(float(rng.uniform(150, 185)), 1),
                volume=round(float(rng.uniform(55, 70)), 1),
            )
        )
    return tuple(out)


# --------------------------------------------------------------------------- the prosody mapping


@dataclass(frozen=True)
class MappingRow:
    """One prosody parameter as a function of the latent and per-unit jitter.

    ``value = base * (1 + ma*a) * (1 + mv*v) * (1 + mj*z) + aa*a + av*v + aj*z``,
    clipped to ``limits``, where ``a``, ``v`` are the unit's latent arousal and
    valence and ``z ~ N(0, 1)`` is drawn per unit and parameter.

    Attributes:
        parameter: ``pitch``, ``range``, ``volume``, ``rate`` (eSpeak controls)
            or ``tilt`` (spectral tilt applied after rendering, :func:`apply_tilt`).
        unit: the parameter's unit, for the docs.
        base: the speaker attribute that gives the base value, or a number.
        ma, mv, mj: multiplicative effects of arousal, valence and jitter.
        aa, av, aj: additive effects of arousal, valence and jitter.
        limits: (low, high) clip.
    """

    parameter: str
    unit: str
    base: str | float
    ma: float = 0.0
    mv: float = 0.0
    mj: float = 0.0
    aa: float = 0.0
    av: float = 0.0
    aj: float = 0.0
    limits: tuple[float, float] = (-math.inf, math.inf)

    def value(self, speaker: Speaker, a: float, v: float, z: float) -> float:
        base = getattr(speaker, self.base) if isinstance(self.base, str) else float(self.base)
        x = base * (1 + self.ma * a) * (1 + self.mv * v) * (1 + self.mj * z) + self.aa * a + self.av * v + self.aj * z
        return float(np.clip(x, *self.limits))


MAPPING: tuple[MappingRow, ...] = (
    MappingRow("pitch", "eSpeak 0-100", "pitch", aa=22.0, aj=5.0, limits=(0, 100)),
    MappingRow("range", "eSpeak 0-100", "range", mv=0.6, aa=10.0, aj=4.0, limits=(0, 100)),
    MappingRow("volume", "eSpeak 0-200", "volume", ma=0.35, mj=0.06, limits=(10, 95)),
    MappingRow("rate", "words/min", "rate", ma=0.20, mj=0.04, limits=(80, 450)),
    MappingRow("tilt", "pre-emphasis coefficient", 0.0, av=0.6, aj=0.06, limits=(-0.8, 0.8)),
)
"""The one prosody mapping (see :func:`mapping_markdown` for the docs table).

Arousal raises pitch, pitch range, loudness and rate. Valence acts through
different cues, more weakly: pitch range relative to the voice's own range,
and spectral tilt (brighter for positive valence). Every parameter also gets
per-unit jitter unrelated to the latent.
"""

TILT_PIVOT_HZ: float = 2000.0
"""Frequency whose gain :func:`apply_tilt` keeps at 1 (loudness stays about constant)."""


def _term(coefficient: float, symbol: str, multiplicative: bool) -> str:
    if coefficient == 0:
        return ""
    return f"x(1 {'+' if coefficient > 0 else '-'} {abs(coefficient):g}{symbol})" if multiplicative else \
        f"{'+' if coefficient > 0 else '-'}{abs(coefficient):g}{symbol}"


def mapping_markdown() -> str:
    """:data:`MAPPING` as a markdown table (the one in the README)."""
    lines = ["| parameter | unit | base (per speaker) | arousal a | valence v | jitter z ~ N(0,1) per unit | limits |",
             "|---|---|---|---|---|---|---|"]
    for row in MAPPING:
        base = f"speaker {row.base}" if isinstance(row.base, str) else f"{row.base:g}"
        cells = [
            " ".join(filter(None, [_term(row.ma, "a", True), _term(row.aa, "a", False)])) or "-",
            " ".join(filter(None, [_term(row.mv, "v", True), _term(row.av, "v", False)])) or "-",
            " ".join(filter(None, [_term(row.mj, "z", True), _term(row.aj, "z", False)])) or "-",
        ]
        limits = f"{row.limits[0]:g} to {row.limits[1]:g}"
        lines.append(f"| {row.parameter} | {row.unit} | {base} | {' | '.join(cells)} | {limits} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class UnitProsody:
    """The prosody of one unit: eSpeak's four controls and the spectral tilt."""

    pitch: int
    range: int
    volume: int
    rate: int
    tilt: float

    def espeak(self) -> espeak.Prosody:
        return espeak.Prosody(rate=self.rate, volume=self.volume, pitch=self.pitch, range=self.range)


def unit_prosody(speaker: Speaker, arousal: float, valence: float,
                 jitter: Sequence[float] | None = None) -> UnitProsody:
    """Prosody of a unit through :data:`MAPPING`.

    Args:
        speaker: whose baseline.
        arousal, valence: the latent values for the unit, in [-1, 1].
        jitter: one standard normal value per :data:`MAPPING` row (None: no jitter).

    >>> s = speaker_catalogue()[0]
    >>> unit_prosody(s, 1.0, 0.0).pitch > unit_prosody(s, -1.0, 0.0).pitch
    True
    """
    z = np.zeros(len(MAPPING)) if jitter is None else np.asarray(jitter, dtype=float)
    if z.shape != (len(MAPPING),):
        raise ValueError(f"jitter needs {len(MAPPING)} values (one per MAPPING row), got {z.shape}")
    values = {row.parameter: row.value(speaker, arousal, valence, zi) for row, zi in zip(MAPPING, z)}
    return UnitProsody(
        pitch=int(round(values["pitch"])),
        range=int(round(values["range"])),
        volume=int(round(values["volume"])),
        rate=int(round(values["rate"])),
        tilt=round(values["tilt"], 4),
    )


def apply_tilt(signal: np.ndarray, tilt: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Spectral tilt: first-order pre-emphasis ``x[n] - c x[n-1]`` with gain 1 at the pivot.

    Positive ``c`` brightens (more energy above the pivot), negative darkens.
    Normalising the gain at :data:`TILT_PIVOT_HZ` keeps loudness about constant.
    """
    if tilt == 0:
        return signal
    w = 2 * math.pi * TILT_PIVOT_HZ / sr
    gain = abs(1 - tilt * np.exp(-1j * w))
    return (lfilter([1.0, -tilt], [1.0], signal) / gain).astype(np.float32)




# --------------------------------------------------------------------------- voice quality (per speaker)


@dataclass(frozen=True)
class VoiceQuality:
    """A speaker's voice-quality traits, applied by :mod:`emotools.synth.channel` when switched on.

    Drawn once per speaker from its own random stream (never the corpus seed,
    never the latent), beside :class:`Speaker`, whose fields stay as they were.

    Attributes:
        vtl: formant scale factor (vocal-tract length ratio; > 1 is a shorter
            tract with higher formants), pitch unchanged.
        jitter: target local jitter (mean absolute difference of consecutive
            pitch periods over the mean period) added to eSpeak's own.
        shimmer: target local shimmer (the same for period amplitudes) added.
        breath_db: level of breath noise mixed into voiced speech, in dB
            relative to the voiced level.
        period_s: pitch-period grid of the perturbations (about the
            speaker's pitch period: 1/120 s male, 1/210 s female).
    """

    vtl: float
    jitter: float
    shimmer: float
    breath_db: float
    period_s: float


VOICE_QUALITY_RANGES: dict[str, tuple[float, float]] = {
    "vtl": (0.88, 1.12), "jitter": (0.004, 0.02), "shimmer": (0.0, 0.03), "breath_db": (-34.0, -16.0),
}
"""Uniform ranges of the per-speaker draws of :class:`VoiceQuality`."""


@lru_cache(maxsize=1)
def voice_qualities() -> tuple[VoiceQuality, ...]:
    """One :class:`VoiceQuality` per speaker of :func:`speaker_catalogue`, in the same order."""
    out = []
    for i, speaker in enumerate(speaker_catalogue()):
        rng = np.random.default_rng([0x5BEA4E, i, 1])  # not the stream of the speaker's baseline
        draws = {name: round(float(rng.uniform(*limits)), 4) for name, limits in VOICE_QUALITY_RANGES.items()}
        out.append(VoiceQuality(**draws, period_s=round(1.0 / (120.0 if speaker.gender == "m" else 210.0), 6)))
    return tuple(out)
