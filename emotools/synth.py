"""The built-in speech corpus with known emotion trajectories.

No licensed emotion corpus can be downloaded everywhere, so the toolkit
renders its own: real synthesized speech (eSpeak NG, :mod:`emotools.espeak`)
whose prosody follows known arousal and valence trajectories, rated by
simulated annotators (:mod:`emotools.labels`).

A session (one recording) of M minutes:

1. latent arousal a(t) and valence v(t) in [-1, 1] on a 10 Hz grid: each
   ``tanh`` of an Ornstein-Uhlenbeck process (sd 0.8, time constant drawn
   from 5-10 s per session and target), seeded per session;
2. a sequence of short units (2-5 words of a sentence, about 1-1.5 s),
   separated by pauses (0.12-0.35 s inside a sentence, 0.4-0.9 s between
   sentences); each unit's prosody comes from the latent averaged over the
   unit's expected span through :data:`MAPPING`, plus per-unit jitter that
   is unrelated to the latent (so one unit is noisy evidence and temporal
   integration pays);
3. ratings by :class:`~emotools.labels.AnnotationModel` (K raters with lag,
   smoothing, drifting noise, bias and scale); gold = mean of the raters.

Written in the annotated-corpus format of :mod:`emotools.corpora`:
``audio/<recording>.wav`` (16 kHz), ``annotations/<recording>.csv`` (``time,
arousal, valence``, per-rater, ``*_latent`` and ``*_ceiling`` columns),
``metadata.csv`` (``recording, speaker, split`` and more), plus
``units/<recording>.csv`` (every unit's text, times and prosody) and
``corpus.json`` (the configuration, speakers, mapping and rater traits).
Generation is idempotent (finished recordings are skipped) and atomic.

Speakers are eSpeak voice/variant combinations (``en-us``, ``en``,
``en-gb-x-rp``, ``en-gb-scotland`` with ``+m1..+m8``, ``+f1..+f5``; never
``+whisper``, whose F0 is garbage), each with its own base pitch, range,
rate and volume: 52 in all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import time as _time
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from . import espeak, paths
from .labels import RATE_HZ, TARGETS, AnnotationModel, annotate, frame_times

__all__ = [
    "SR",
    "VOICES",
    "VARIANTS",
    "Speaker",
    "speaker_catalogue",
    "MappingRow",
    "MAPPING",
    "mapping_markdown",
    "UnitProsody",
    "unit_prosody",
    "apply_tilt",
    "latent_trajectory",
    "sentences",
    "split_units",
    "Session",
    "render_session",
    "CorpusSize",
    "SIZES",
    "SPLIT_RATIOS",
    "SynthError",
    "write_corpus",
    "corpus_dir",
    "ensure_corpus",
    "cli",
]

logger = logging.getLogger("emotools.synth")

SR: int = 16000
"""Sample rate of the corpus' audio."""

VOICES: tuple[str, ...] = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland")
"""eSpeak voices used for speakers."""

VARIANTS: tuple[str, ...] = ("m1", "f1", "m2", "f2", "m3", "f3", "m4", "f4", "m5", "f5", "m6", "m7", "m8")
"""eSpeak voice variants, in the order speakers take them (``+whisper`` is never used)."""

SPLIT_RATIOS: tuple[float, float, float] = (4 / 6, 1 / 6, 1 / 6)
"""Speaker shares of train/dev/test: 24 speakers give 16/4/4."""

_CORPUS_VERSION = 1  # bump when the generated audio or labels change for the same config


class SynthError(Exception):
    """The corpus cannot be generated; ``str(err)`` is ``"<what>: <reason>"``."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(str(what), reason)
        self.what = str(what)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.what}: {self.reason}"


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
        lines.append(f"| {row.parameter} | {row.unit} | {base} | {' | '.join(cells)} | {row.limits[0]:g} to {row.limits[1]:g} |")
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


def unit_prosody(speaker: Speaker, arousal: float, valence: float, jitter: Sequence[float] | None = None) -> UnitProsody:
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


def apply_tilt(signal: np.ndarray, tilt: float, sr: int = SR) -> np.ndarray:
    """Spectral tilt: first-order pre-emphasis ``x[n] - c x[n-1]`` with gain 1 at the pivot.

    Positive ``c`` brightens (more energy above the pivot), negative darkens.
    Normalising the gain at :data:`TILT_PIVOT_HZ` keeps loudness about constant.
    """
    if tilt == 0:
        return signal
    w = 2 * math.pi * TILT_PIVOT_HZ / sr
    gain = abs(1 - tilt * np.exp(-1j * w))
    return (lfilter([1.0, -tilt], [1.0], signal) / gain).astype(np.float32)


# --------------------------------------------------------------------------- latent and text


def latent_trajectory(
    rng: np.random.Generator, duration: float, *, rate_hz: float = RATE_HZ, tau: tuple[float, float] = (5.0, 10.0),
    sd: float = 0.8, centre: float | None = None,
) -> pd.DataFrame:
    """Latent arousal and valence: ``tanh`` of Ornstein-Uhlenbeck processes.

    Args:
        rng: the session's generator.
        duration: seconds (the grid is :func:`~emotools.labels.frame_times`).
        rate_hz: grid rate.
        tau: (min, max) of the time constant, drawn per target.
        sd: stationary sd of the process before ``tanh`` (0.8 gives a latent sd ~0.5).
        centre: if given, the process is shifted so that its mean over the first
            ``centre`` seconds is 0: every session varies around a neutral
            baseline, so normalising features per session loses nothing of the
            latent (a speaker's voice, not their mood, sets their baseline).

    Returns:
        ``time, arousal, valence`` with values in (-1, 1).
    """
    time = frame_times(duration, rate_hz)
    out = {"time": time}
    dt = 1.0 / rate_hz
    for target in TARGETS:
        phi = math.exp(-dt / rng.uniform(*tau))
        e = rng.standard_normal(time.size)
        e[1:] *= math.sqrt(1 - phi * phi)
        x = sd * lfilter([1.0], [1.0, -phi], e)
        if centre is not None:
            x -= x[: max(1, int(round(centre * rate_hz)))].mean()
        out[target] = np.tanh(x)
    return pd.DataFrame(out)


@lru_cache(maxsize=1)
def sentences() -> tuple[str, ...]:
    """The sentence pool shipped in ``emotools/data/sentences.txt``."""
    text = resources.files("emotools").joinpath("data/sentences.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def split_units(sentence: str, *, words_per_unit: float = 3.5) -> list[str]:
    """Cut a sentence into units of about ``words_per_unit`` words (about 1-1.5 s each).

    >>> split_units("The cat slept on the warm stones beside the fire.")
    ['The cat slept on', 'the warm stones', 'beside the fire.']
    """
    words = sentence.split()
    parts = max(1, round(len(words) / words_per_unit))
    return [" ".join(chunk) for chunk in np.array_split(np.array(words, dtype=object), parts) if len(chunk)]


# --------------------------------------------------------------------------- one session


@dataclass
class Session:
    """A rendered session: audio, latent trajectory and unit table."""

    recording: str
    speaker: Speaker
    audio: np.ndarray
    latent: pd.DataFrame
    units: pd.DataFrame

    @property
    def duration(self) -> float:
        return self.audio.size / SR


_PAUSE_IN_SENTENCE = (0.12, 0.35)
_PAUSE_AFTER_SENTENCE = (0.4, 0.9)
_EDGE_SILENCE = 0.3
_NOISE_FLOOR = 1e-4  # rms of the background noise (about -80 dBFS), so pauses are not digital zero


def _session_rngs(seed: int, speaker_index: int, session: int) -> tuple[np.random.Generator, np.random.Generator]:
    latent = np.random.default_rng([int(seed), speaker_index, session, 1])
    script = np.random.default_rng([int(seed), speaker_index, session, 2])
    return latent, script


def render_session(speaker_index: int, session: int, *, minutes: float, seed: int) -> Session:
    """Render one session of a speaker (deterministic in all arguments).

    Args:
        speaker_index: position in :func:`speaker_catalogue`.
        session: session number of that speaker (0-based).
        minutes: target length; the last unit may run over by a second or two.
        seed: corpus seed.

    Returns:
        The :class:`Session`; ``units`` has one row per unit with its text,
        ``start``/``end`` (s), the latent values that set its prosody, the
        jitter draws and the resulting parameters.
    """
    speaker = speaker_catalogue()[speaker_index]
    recording = f"{speaker.name}_s{session + 1:02d}"
    latent_rng, rng = _session_rngs(seed, speaker_index, session)
    target = float(minutes) * 60.0
    latent = latent_trajectory(latent_rng, target + 30.0, centre=target)
    lat = {t: latent[t].to_numpy() for t in TARGETS}
    pool = sentences()
    order = rng.permutation(len(pool))
    pieces = [np.zeros(int(_EDGE_SILENCE * SR), dtype=np.float32)]
    position = pieces[0].size
    rows = []
    sentence_index = 0
    while position / SR < target:
        sentence_id = int(order[sentence_index % len(order)])
        sentence_index += 1
        units = split_units(pool[sentence_id])
        for k, text in enumerate(units):
            start = position / SR
            if start >= target:
                break
            expected = len(text.split()) * 60.0 / speaker.rate * 0.85  # espeak's words are short
            lo, hi = int(round(start * RATE_HZ)), int(round((start + expected) * RATE_HZ)) + 1
            a, v = float(lat["arousal"][lo:hi].mean()), float(lat["valence"][lo:hi].mean())
            z = rng.standard_normal(len(MAPPING))
            prosody = unit_prosody(speaker, a, v, z)
            audio = apply_tilt(espeak.render(text, speaker.voice, prosody.espeak(), sr=SR), prosody.tilt)
            pause = rng.uniform(*(_PAUSE_IN_SENTENCE if k < len(units) - 1 else _PAUSE_AFTER_SENTENCE))
            pieces += [audio, np.zeros(int(round(pause * SR)), dtype=np.float32)]
            rows.append({
                "unit": len(rows), "sentence": sentence_id, "text": text,
                "start": round(start, 4), "end": round((position + audio.size) / SR, 4),
                "arousal": round(a, 4), "valence": round(v, 4),
                **{f"z_{row.parameter}": round(float(zi), 4) for row, zi in zip(MAPPING, z)},
                **asdict(prosody),
            })
            position += audio.size + pieces[-1].size
    pieces.append(np.zeros(int(_EDGE_SILENCE * SR), dtype=np.float32))
    audio = np.concatenate(pieces)
    audio += (_NOISE_FLOOR * rng.standard_normal(audio.size)).astype(np.float32)
    np.clip(audio, -1.0, 1.0, out=audio)
    duration = audio.size / SR
    times = frame_times(duration)
    latent = latent.iloc[: times.size].reset_index(drop=True)
    return Session(recording, speaker, audio, latent, pd.DataFrame(rows))


# --------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class CorpusSize:
    """How much to render: speakers x sessions x minutes."""

    speakers: int
    sessions: int
    minutes: float

    @property
    def total_minutes(self) -> float:
        return self.speakers * self.sessions * self.minutes


SIZES: dict[str, CorpusSize] = {
    "smoke": CorpusSize(speakers=6, sessions=1, minutes=0.5),
    "default": CorpusSize(speakers=24, sessions=1, minutes=1.5),
    "full": CorpusSize(speakers=48, sessions=2, minutes=2.5),
}
"""Preset sizes: ``smoke`` (tests, seconds to render), ``default`` (36 min,
24 speakers, 4 in test: the ground-truth notebook's default run),
``full`` (4 h, 48 speakers, 8 in test: the full study)."""


def _atomic_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _atomic_csv(path: Path, frame: pd.DataFrame) -> None:
    _atomic_text(path, frame.to_csv(index=False, float_format="%.6f", lineterminator="\n"))


def _recording_files(root: Path, recording: str) -> tuple[Path, Path, Path]:
    return (root / "audio" / f"{recording}.wav", root / "units" / f"{recording}.csv",
            root / "annotations" / f"{recording}.csv")


def _render_and_write(root: str, speaker_index: int, session: int, minutes: float, seed: int,
                      model: AnnotationModel) -> dict[str, Any]:
    """Worker: render one recording and write its files (annotation last)."""
    from .audio import write_audio
    from .corpora.annotated import write_annotation

    started = _time.perf_counter()
    result = render_session(speaker_index, session, minutes=minutes, seed=seed)
    audio_path, units_path, annotation_path = _recording_files(Path(root), result.recording)
    write_audio(audio_path, result.audio, SR)
    _atomic_csv(units_path, result.units)
    write_annotation(annotation_path, annotate(result.latent, model=model, key=result.recording))
    return {"recording": result.recording, "duration": result.duration, "seconds": _time.perf_counter() - started}


def _config(size: CorpusSize, seed: int, model: AnnotationModel) -> dict[str, Any]:
    return {
        "format": "emotools.synth",
        "version": _CORPUS_VERSION,
        "seed": int(seed),
        "speakers": size.speakers,
        "sessions": size.sessions,
        "minutes": size.minutes,
        "sample_rate": SR,
        "label_rate_hz": RATE_HZ,
        "split_ratios": list(SPLIT_RATIOS),
        "annotation_model": model.to_dict(),
        "mapping": [asdict(row) | {"limits": list(row.limits)} for row in MAPPING],
        "tilt_pivot_hz": TILT_PIVOT_HZ,
        "pauses": {"in_sentence": list(_PAUSE_IN_SENTENCE), "after_sentence": list(_PAUSE_AFTER_SENTENCE),
                   "edges": _EDGE_SILENCE, "noise_floor": _NOISE_FLOOR},
        "sentences_sha256": hashlib.sha256("\n".join(sentences()).encode()).hexdigest(),
        "espeak_ng": espeak.version(),
    }


def _metadata(size: CorpusSize, seed: int) -> pd.DataFrame:
    from .corpora.splits import assign_speaker_splits

    rows = []
    for speaker in speaker_catalogue()[: size.speakers]:
        for session in range(size.sessions):
            recording = f"{speaker.name}_s{session + 1:02d}"
            rows.append({"recording": recording, "speaker": speaker.name, "voice": speaker.voice,
                         "gender": speaker.gender})
    table = assign_speaker_splits(pd.DataFrame(rows), ratios=SPLIT_RATIOS, seed=seed)
    return table[["recording", "speaker", "split", "voice", "gender"]]


def write_corpus(
    out: str | os.PathLike,
    *,
    speakers: int,
    sessions: int = 1,
    minutes: float = 1.5,
    seed: int = 0,
    model: AnnotationModel | None = None,
    jobs: int | None = None,
    progress: bool = True,
) -> Path:
    """Render the corpus into ``out`` (idempotent: finished recordings are skipped).

    Args:
        out: corpus root folder.
        speakers: number of speakers (1-52), the first of :func:`speaker_catalogue`.
        sessions: recordings per speaker.
        minutes: length of each recording.
        seed: corpus seed (latent trajectories, texts, jitter, splits, raters).
        model: annotation model (default: ``AnnotationModel(seed=seed)``).
        jobs: worker processes (default: 2 for more than 5 minutes of audio to
            render, else 1; never more than the CPUs).
        progress: show a tqdm bar over recordings.

    Returns:
        ``out`` as a Path.

    Raises:
        SynthError: bad sizes, or ``out`` holds a corpus made with another
            configuration, or a recording failed to render.
    """
    from .progress import tqdm

    catalogue = speaker_catalogue()
    if not 1 <= int(speakers) <= len(catalogue):
        raise SynthError("speakers", f"must be 1-{len(catalogue)}, got {speakers}")
    if int(sessions) < 1:
        raise SynthError("sessions", f"must be >= 1, got {sessions}")
    if not (math.isfinite(minutes) and 0.05 <= minutes <= 600):
        raise SynthError("minutes", f"must be between 0.05 and 600, got {minutes}")
    size = CorpusSize(int(speakers), int(sessions), float(minutes))
    model = AnnotationModel(seed=int(seed)) if model is None else model
    root = Path(out).expanduser().absolute()
    config = _config(size, seed, model)
    config_path = root / "corpus.json"
    if config_path.exists():
        try:
            existing = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise SynthError(config_path, f"unreadable ({error}); remove the folder to regenerate") from None
        if existing != config:
            changed = sorted(k for k in set(existing) | set(config) if existing.get(k) != config.get(k))
            raise SynthError(root, f"holds a corpus with another configuration (differs in {', '.join(changed)}); "
                                   "use another folder or remove it")
    else:
        _atomic_text(config_path, json.dumps(config, indent=2) + "\n")

    metadata = _metadata(size, seed)
    todo = []
    for i in range(size.speakers):
        for session in range(size.sessions):
            recording = f"{catalogue[i].name}_s{session + 1:02d}"
            if not all(p.exists() for p in _recording_files(root, recording)):
                todo.append((i, session))
    if not jobs:  # worker start-up (~2 s) only pays off for more than a few minutes of audio
        jobs = 2 if len(todo) * size.minutes > 5 else 1
    jobs = max(1, min(int(jobs), os.cpu_count() or 1, len(todo) or 1))
    failures = []
    bar = tqdm(total=len(todo), desc="synth", unit="rec", disable=not progress or not todo)
    args = [(str(root), i, s, size.minutes, int(seed), model) for i, s in todo]
    if jobs == 1:
        for a in args:
            try:
                _render_and_write(*a)
            except Exception as error:  # recorded, reported below; the others go on
                failures.append(f"{catalogue[a[1]].name} session {a[2] + 1}: {error}")
            bar.update()
    else:
        import multiprocessing

        context = multiprocessing.get_context("forkserver" if sys.platform != "win32" else "spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {pool.submit(_render_and_write, *a): a for a in args}
            for future in as_completed(futures):
                a = futures[future]
                try:
                    future.result()
                except Exception as error:  # recorded, reported below; the others go on
                    failures.append(f"{catalogue[a[1]].name} session {a[2] + 1}: {error}")
                bar.update()
    bar.close()
    if failures:
        raise SynthError(root, f"{len(failures)} recording(s) failed: " + "; ".join(failures))
    text = metadata.to_csv(index=False, lineterminator="\n")
    metadata_path = root / "metadata.csv"  # written last: its presence marks a finished corpus
    if not metadata_path.exists() or metadata_path.read_text(encoding="utf-8") != text:
        _atomic_text(metadata_path, text)
    return root


def corpus_dir(size: str = "default", seed: int = 0) -> Path:
    """Where :func:`ensure_corpus` keeps a preset: ``data_dir()/ground_truth/<size>-seed<seed>``."""
    if size not in SIZES:
        raise ValueError(f"unknown corpus size {size!r}; choose from {', '.join(SIZES)}")
    return paths.data_dir() / "ground_truth" / f"{size}-seed{int(seed)}"


def ensure_corpus(size: Literal["smoke", "default", "full"] = "default", seed: int = 0, *,
                  jobs: int | None = None, progress: bool = True) -> Path:
    """The preset corpus, rendered into ``DATA_DIR`` on first use and cached.

    The cache is keyed by the full configuration (``corpus.json``: sizes,
    seed, mapping, annotation model, sentence pool, eSpeak version, format
    version); a corpus rendered with another configuration is rendered again.

    Args:
        size: ``"smoke"``, ``"default"`` or ``"full"`` (see :data:`SIZES`).
        seed: corpus seed.
        jobs: worker processes for a first render.
        progress: show progress while rendering.

    Returns:
        The corpus root, ready for ``emotools.corpora.scan("annotated", root)``.
    """
    root = corpus_dir(size, seed)
    preset = SIZES[size]
    config_path = root / "corpus.json"
    if config_path.exists():
        try:
            existing = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            existing = {}
        if existing == _config(preset, seed, AnnotationModel(seed=int(seed))):
            if (root / "metadata.csv").exists():
                return root
        elif existing.get("format") == "emotools.synth":
            # a cached corpus from another version of this code: never serve it stale
            logger.warning("%s was rendered by another version of emotools.synth; rendering it again", root)
            shutil.rmtree(root)
    return write_corpus(root, speakers=preset.speakers, sessions=preset.sessions, minutes=preset.minutes,
                        seed=seed, jobs=jobs, progress=progress)


# --------------------------------------------------------------------------- CLI


def cli(argv: Sequence[str]) -> int:
    """``python -m emotools synth``: render the corpus with known emotion trajectories."""
    parser = argparse.ArgumentParser(
        prog="python -m emotools synth",
        description="Render speech with known arousal/valence trajectories and simulated raters "
                    "into the annotated-corpus format (idempotent).",
    )
    parser.add_argument("--size", choices=list(SIZES), default="default",
                        help="preset for speakers/sessions/minutes (default: default)")
    parser.add_argument("--out", type=Path, help="corpus folder (default: DATA_DIR/ground_truth/<size>-seed<K>)")
    parser.add_argument("--speakers", type=int, help="number of speakers (1-52)")
    parser.add_argument("--sessions", type=int, help="recordings per speaker")
    parser.add_argument("--minutes", type=float, help="minutes per recording")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    parser.add_argument("--jobs", type=int, help="worker processes (default: up to 2)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(list(argv))
    preset = SIZES[args.size]
    custom = any(x is not None for x in (args.speakers, args.sessions, args.minutes))
    if custom and args.out is None:
        parser.error("--out is required with --speakers/--sessions/--minutes")
    out = args.out if args.out is not None else corpus_dir(args.size, args.seed)
    started = _time.perf_counter()
    try:
        root = write_corpus(
            out,
            speakers=args.speakers if args.speakers is not None else preset.speakers,
            sessions=args.sessions if args.sessions is not None else preset.sessions,
            minutes=args.minutes if args.minutes is not None else preset.minutes,
            seed=args.seed, jobs=args.jobs, progress=not args.quiet,
        )
    except SynthError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    metadata = pd.read_csv(root / "metadata.csv")
    print(f"{root}: {len(metadata)} recordings, {metadata['speaker'].nunique()} speakers "
          f"({', '.join(f'{k} {v}' for k, v in metadata.groupby('split')['speaker'].nunique().items())}), "
          f"{_time.perf_counter() - started:.1f} s")
    return 0
