"""One rendered session: latent trajectories, the script, and the audio whose prosody follows the latent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from .. import espeak
from ..audio import SAMPLE_RATE
from ..features import RATE_HZ
from ..labels import TARGETS, frame_times
from ..labels.annotation import ou_path
from .channel import VoiceRealism, apply_channel
from .mechanisms import PRESETS, Mechanisms, shape_session
from .voices import MAPPING, Speaker, apply_tilt, speaker_catalogue, unit_prosody

# --------------------------------------------------------------------------- latent and text


def latent_trajectory(
    rng: np.random.Generator, duration: float, *, rate_hz: float = RATE_HZ, tau: tuple[float, float] = (5.0, 10.0),
    sd: float = 0.8, centre: float | None = None, raw: bool = False,
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
        raw: return the process before ``tanh`` (the mechanisms act on it).

    Returns:
        ``time, arousal, valence`` with values in (-1, 1) (any value if ``raw``).
    """
    time = frame_times(duration, rate_hz)
    out = {"time": time}
    dt = 1.0 / rate_hz
    for target in TARGETS:
        x = ou_path(rng, time.size, dt, rng.uniform(*tau), sd)  # tau drawn first, then the path
        if centre is not None:
            x -= x[: max(1, int(round(centre * rate_hz)))].mean()
        out[target] = x if raw else np.tanh(x)
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
    cue: pd.DataFrame | None = None  # the vocal cue that drives the prosody (the latent itself under ``easy``)

    @property
    def duration(self) -> float:
        return self.audio.size / SAMPLE_RATE


PAUSE_IN_SENTENCE = (0.12, 0.35)
PAUSE_AFTER_SENTENCE = (0.4, 0.9)
EDGE_SILENCE = 0.3
NOISE_FLOOR = 1e-4  # rms of the background noise (about -80 dBFS), so pauses are not digital zero


def _session_rngs(seed: int, speaker_index: int, session: int) -> tuple[np.random.Generator, np.random.Generator]:
    latent = np.random.default_rng([int(seed), speaker_index, session, 1])
    script = np.random.default_rng([int(seed), speaker_index, session, 2])
    return latent, script


def session_trajectories(speaker_index: int, session: int, *, minutes: float, seed: int,
                         mechanisms: Mechanisms | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A session's perceived emotion (what raters rate) and vocal cue (what drives the prosody), no audio.

    Both run 30 s past ``minutes`` (the render trims them to the audio); see
    :func:`~emotools.synth.mechanisms.shape_session`. Without mechanisms
    (``easy``) both are the latent of :func:`latent_trajectory`.
    """
    latent_rng, _ = _session_rngs(seed, speaker_index, session)
    target = float(minutes) * 60.0
    process = latent_trajectory(latent_rng, target + 30.0, centre=target, raw=True)
    return shape_session(process, mechanisms or PRESETS["easy"], seed=seed, speaker_index=speaker_index,
                         session=session, centre=target)


def render_session(speaker_index: int, session: int, *, minutes: float, seed: int,
                   mechanisms: Mechanisms | None = None, realism: VoiceRealism | None = None,
                   sentence_pool: Sequence[int] | None = None) -> Session:
    """Render one session of a speaker (deterministic in all arguments).

    Args:
        speaker_index: position in :func:`speaker_catalogue`.
        session: session number of that speaker (0-based).
        minutes: target length; the last unit may run over by a second or two.
        seed: corpus seed.
        mechanisms: the label mechanisms (default: none, the ``easy`` corpus).
        realism: voice quality and recording conditions (:mod:`~emotools.synth.channel`;
            default: none, today's audio).
        sentence_pool: indices into :func:`sentences` this session may read (default: all).

    Returns:
        The :class:`Session`; ``units`` has one row per unit with its text,
        ``start``/``end`` (s), the cue values that set its prosody (with
        mechanisms on also ``evidence``: 0 for neutral delivery), the jitter
        draws and the resulting parameters.
    """
    speaker = speaker_catalogue()[speaker_index]
    recording = f"{speaker.name}_s{session + 1:02d}"
    mechanisms = mechanisms or PRESETS["easy"]
    _, rng = _session_rngs(seed, speaker_index, session)
    target = float(minutes) * 60.0
    latent, cue = session_trajectories(speaker_index, session, minutes=minutes, seed=seed, mechanisms=mechanisms)
    lat = {t: cue[t].to_numpy() for t in TARGETS}
    evidence = cue["evidence"].to_numpy()
    pool = sentences()
    order = rng.permutation(len(pool)) if sentence_pool is None else \
        np.asarray(sentence_pool, dtype=int)[rng.permutation(len(sentence_pool))]
    pieces = [np.zeros(int(EDGE_SILENCE * SAMPLE_RATE), dtype=np.float32)]
    position = pieces[0].size
    rows = []
    sentence_index = 0
    while position / SAMPLE_RATE < target:
        sentence_id = int(order[sentence_index % len(order)])
        sentence_index += 1
        units = split_units(pool[sentence_id])
        for k, text in enumerate(units):
            start = position / SAMPLE_RATE
            if start >= target:
                break
            expected = len(text.split()) * 60.0 / speaker.rate * 0.85  # espeak's words are short
            lo, hi = int(round(start * RATE_HZ)), int(round((start + expected) * RATE_HZ)) + 1
            a, v = float(lat["arousal"][lo:hi].mean()), float(lat["valence"][lo:hi].mean())
            if not evidence[lo]:  # an evidence-free stretch: the speaker's neutral delivery
                a = v = 0.0
            z = rng.standard_normal(len(MAPPING))
            prosody = unit_prosody(speaker, a, v, z)
            audio = apply_tilt(espeak.render(text, speaker.voice, prosody.espeak(), sr=SAMPLE_RATE), prosody.tilt)
            pause = rng.uniform(*(PAUSE_IN_SENTENCE if k < len(units) - 1 else PAUSE_AFTER_SENTENCE))
            pieces += [audio, np.zeros(int(round(pause * SAMPLE_RATE)), dtype=np.float32)]
            rows.append({
                "unit": len(rows), "sentence": sentence_id, "text": text,
                "start": round(start, 4), "end": round((position + audio.size) / SAMPLE_RATE, 4),
                "arousal": round(a, 4), "valence": round(v, 4),
                **({"evidence": int(evidence[lo])} if mechanisms.active else {}),
                **{f"z_{row.parameter}": round(float(zi), 4) for row, zi in zip(MAPPING, z)},
                **asdict(prosody),
            })
            position += audio.size + pieces[-1].size
    pieces.append(np.zeros(int(EDGE_SILENCE * SAMPLE_RATE), dtype=np.float32))
    audio = np.concatenate(pieces)
    audio += (NOISE_FLOOR * rng.standard_normal(audio.size)).astype(np.float32)
    if realism is not None and realism.channel:  # per speaker/session, never from the latent
        audio = apply_channel(audio, speaker_index, session, seed=seed, realism=realism)
    np.clip(audio, -1.0, 1.0, out=audio)
    duration = audio.size / SAMPLE_RATE
    times = frame_times(duration)
    latent = latent.iloc[: times.size].reset_index(drop=True)
    cue = cue.iloc[: times.size].reset_index(drop=True)
    return Session(recording, speaker, audio, latent, pd.DataFrame(rows), cue)


