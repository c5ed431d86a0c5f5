"""Label mechanisms of corpus v2: the documented knobs that make long temporal context necessary.

Each session has two trajectories on the label grid: the **perceived**
emotion (what the raters rate) and the **vocal cue** (what drives the
prosody through :data:`~emotools.synth.voices.MAPPING`). In the ``easy``
preset (every mechanism off: the corpus of version 1, bit for bit) they are
the same latent. Each mechanism makes them differ in one way that real
continuous-emotion data shows (issue 17):

* levels: a session mood offset and a speaker baseline are added to the
  latent (before ``tanh``), so sessions are not zero-mean and normalising
  features per recording cannot recover the level;
* leaky integration: the voice shows fast expressive events, the perceived
  state integrates them over ``integration_tau`` seconds;
* sparse evidence: stretches of neutral delivery (cue 0: the speaker's
  neutral prosody) while the perceived emotion goes on;
* relative cues: the cue is the latent minus its mean over the last
  ``relative_window`` seconds (contrast with the speaker's recent baseline);
* drifting raters: each rater's lag wanders within ``lag_bounds`` during a
  session (:class:`~emotools.labels.AnnotationModel` ``lag_drift``).

All draws are seeded by (corpus seed, speaker, session) on streams of their
own, so switching a mechanism on never changes the draws of another.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from ..labels import TARGETS, AnnotationModel
from ..labels.annotation import ou_path

EVENT_SD: float = 0.8
"""sd of the expressive-event process before ``tanh`` (as the base latent's)."""


@dataclass(frozen=True)
class Mechanisms:
    """The mechanism knobs; the defaults switch every mechanism off (the ``easy`` corpus).

    Values act on the latent before ``tanh`` (the base latent there has sd 0.8).
    See :func:`mechanisms_markdown` for the table of knobs and presets.
    """

    mood_sd: float = 0.0
    speaker_sd: float = 0.0
    integration_tau: float = 0.0
    event_tau: float = 1.5
    sparse_fraction: float = 0.0
    sparse_length: float = 6.0
    relative_window: float = 0.0
    relative_weight: float = 1.0
    lag_drift: float = 0.0
    lag_bounds: tuple[float, float] = (2.0, 5.0)

    def __post_init__(self) -> None:
        for knob in fields(self):
            value = getattr(self, knob.name)
            for x in value if isinstance(value, tuple) else (value,):
                if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0:
                    raise ValueError(f"{knob.name} must be a finite number >= 0, got {value!r}")
        if not self.event_tau > 0 or not self.sparse_length > 0:
            raise ValueError(f"event_tau and sparse_length must be > 0, got {self.event_tau!r}, {self.sparse_length!r}")
        if not self.sparse_fraction < 1 or self.relative_weight > 1:
            raise ValueError("sparse_fraction must be < 1 and relative_weight <= 1, got "
                             f"{self.sparse_fraction!r}, {self.relative_weight!r}")
        low, high = self.lag_bounds
        if not low <= high:
            raise ValueError(f"lag_bounds must be (low, high) with low <= high, got {self.lag_bounds!r}")
        object.__setattr__(self, "lag_bounds", (float(low), float(high)))

    @property
    def active(self) -> bool:
        """Whether any mechanism is on (False: the ``easy`` corpus)."""
        return any((self.mood_sd, self.speaker_sd, self.integration_tau, self.sparse_fraction,
                    self.relative_window, self.lag_drift))

    def annotation_model(self, seed: int) -> AnnotationModel:
        """The corpus' annotation model: the default raters, with this lag drift."""
        if not self.lag_drift:
            return AnnotationModel(seed=int(seed))
        return AnnotationModel(seed=int(seed), lag_drift=self.lag_drift, lag_bounds=self.lag_bounds)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready knobs (for ``corpus.json``)."""
        return asdict(self) | {"lag_bounds": list(self.lag_bounds)}


_ALL_ON = Mechanisms(mood_sd=0.25, speaker_sd=0.15, integration_tau=5.0, event_tau=2.0, sparse_fraction=0.2,
                     sparse_length=4.0, relative_window=20.0, relative_weight=0.5, lag_drift=0.1)

PRESETS: dict[str, Mechanisms] = {
    "easy": Mechanisms(),
    "levels": Mechanisms(mood_sd=0.5, speaker_sd=0.3),
    "integration": Mechanisms(integration_tau=20.0, sparse_fraction=0.3),
    "relative": Mechanisms(relative_window=20.0),
    "drift": Mechanisms(lag_drift=0.1),
    "strong": Mechanisms(mood_sd=0.5, speaker_sd=0.3, integration_tau=20.0, sparse_fraction=0.3,
                         relative_window=20.0, relative_weight=0.7, lag_drift=0.1),
    "default": _ALL_ON,
}
"""The mechanism presets: ``easy`` (all off: corpus v1), one per mechanism, ``strong`` and ``default`` (all on).

A single-mechanism preset shows its mechanism strongly, alone; ``strong``
turns all of them on at those strengths, ``default`` at milder ones (shorter
integration, half the relative contrast, smaller levels), chosen so that a
context model can still learn the labels. In ``strong`` integration and the
relative contrast cancel (the contrast subtracts the slow part of the events
that the integrated label is made of) and every model stays near 0.2 CCC
(docs/corpus-v2.md).
"""

_KNOBS: dict[str, tuple[str, str]] = {
    "mood_sd": ("", "sd of the session mood offset added to the latent (levels)"),
    "speaker_sd": ("", "sd of the speaker baseline added to every session of a speaker (levels)"),
    "integration_tau": ("s", "leaky integration: the perceived state integrates the voice's events with this "
                             "time constant (0: off)"),
    "event_tau": ("s", "time constant of the expressive events the voice shows (with integration)"),
    "sparse_fraction": ("", "share of the time in evidence-free stretches: neutral delivery, emotion goes on"),
    "sparse_length": ("s", "mean length of an evidence-free stretch"),
    "relative_window": ("s", "relative cues: the cue is the latent minus w x its mean over the last N s (0: off)"),
    "relative_weight": ("", "w, how much of the recent baseline the relative cue subtracts"),
    "lag_drift": ("s/sqrt(s)", "raters' lag drift: random-walk step sd per sqrt(second) (0: fixed lags)"),
    "lag_bounds": ("s", "the drifting lag is reflected into these bounds"),
}


def resolve(preset: str | Mechanisms) -> tuple[str, Mechanisms]:
    """``(name, mechanisms)`` of a preset name or a :class:`Mechanisms` (``"custom"`` if it is no preset).

    Raises:
        ValueError: an unknown preset name.
    """
    if isinstance(preset, Mechanisms):
        names = [name for name, m in PRESETS.items() if m == preset]
        return (names[0] if names else "custom"), preset
    if preset not in PRESETS:
        raise ValueError(f"unknown mechanism preset {preset!r}; choose from {', '.join(PRESETS)}")
    return preset, PRESETS[preset]


def mechanisms_markdown() -> str:
    """The knobs and their values in every preset, as a markdown table (the one in the docs)."""
    names = list(PRESETS)
    lines = [f"| knob | unit | {' | '.join(f'`{n}`' for n in names)} | meaning |",
             "|---|---|" + "---|" * len(names) + "---|"]
    for knob, (unit, meaning) in _KNOBS.items():
        values = [getattr(PRESETS[n], knob) for n in names]
        cells = [f"{v[0]:g}-{v[1]:g}" if isinstance(v, tuple) else f"{v:g}" for v in values]
        lines.append(f"| `{knob}` | {unit or '-'} | {' | '.join(cells)} | {meaning} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the trajectories


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *key])


def session_levels(mechanisms: Mechanisms, *, seed: int, speaker_index: int, session: int) -> dict[str, float]:
    """The level (speaker baseline + session mood offset, before ``tanh``) per target; 0 with levels off."""
    speaker = _rng(seed, speaker_index, 0x5B).standard_normal(len(TARGETS)) * mechanisms.speaker_sd
    mood = _rng(seed, speaker_index, session, 0x30D).standard_normal(len(TARGETS)) * mechanisms.mood_sd
    return {t: float(s + m) for t, s, m in zip(TARGETS, speaker, mood)}


def leaky_integral(x: np.ndarray, dt: float, tau: float) -> np.ndarray:
    """``y[n] = y[n-1] + (1 - exp(-dt/tau)) (x[n] - y[n-1])`` from ``y[-1] = 0``: a leaky integrator."""
    alpha = 1.0 - math.exp(-dt / tau)
    return lfilter([alpha], [1.0, alpha - 1.0], x)


def integration_gain(dt: float, event_tau: float, integration_tau: float) -> float:
    """Gain that gives the leaky integral of an OU process (time constant ``event_tau``) the process' sd.

    For an AR(1) input (coefficient p, variance s2) through ``leaky_integral``
    (q = 1 - alpha): var = alpha^2 s2 (1 + pq) / ((1 - q^2)(1 - pq)).
    """
    p, q = math.exp(-dt / event_tau), math.exp(-dt / integration_tau)
    return math.sqrt((1 - q * q) * (1 - p * q) / ((1 - q) ** 2 * (1 + p * q)))


def trailing_mean(x: np.ndarray, frames: int) -> np.ndarray:
    """Mean of ``x`` over the last ``frames`` frames including the current one (fewer at the start)."""
    total = np.cumsum(np.concatenate([[0.0], x]))
    n = np.arange(1, x.size + 1)
    lo = np.maximum(n - frames, 0)
    return (total[n] - total[lo]) / (n - lo)


def evidence_mask(mechanisms: Mechanisms, rng: np.random.Generator, n: int, rate_hz: float) -> np.ndarray:
    """True where the voice carries emotional cues, False in evidence-free stretches.

    Stretches alternate; their lengths are gamma distributed (shape 4) with
    means ``sparse_length`` (evidence-free) and ``sparse_length (1 - f) / f``
    (with evidence), so a share ``f = sparse_fraction`` of the time is
    evidence-free on average.
    """
    f = mechanisms.sparse_fraction
    mask = np.ones(n, dtype=bool)
    if f <= 0:
        return mask
    means = (mechanisms.sparse_length * (1 - f) / f, mechanisms.sparse_length)
    position, state = 0, int(rng.random() < f)  # state 1: evidence-free
    while position < n:
        length = max(1, int(round(rng.gamma(4.0, means[state] / 4.0) * rate_hz)))
        mask[position:position + length] = not state
        position, state = position + length, 1 - state
    return mask


def shape_session(process: pd.DataFrame, mechanisms: Mechanisms, *, seed: int, speaker_index: int, session: int,
                  centre: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The perceived emotion and the vocal cue of a session from its base process (before ``tanh``).

    Args:
        process: ``time, arousal, valence``: the session's latent process before ``tanh``.
        mechanisms: the knobs.
        seed, speaker_index, session: seed the mechanisms' own draws.
        centre: seconds over which the event process is centred (as the base process).

    Returns:
        ``(perceived, cue)``: ``time, arousal, valence`` in (-1, 1), and the
        cue with an ``evidence`` column (False: neutral delivery, cue 0). With
        every mechanism off both are ``tanh`` of the process.
    """
    time = process["time"].to_numpy()
    dt = float(time[1] - time[0]) if time.size > 1 else 0.1
    levels = session_levels(mechanisms, seed=seed, speaker_index=speaker_index, session=session)
    events_rng = _rng(seed, speaker_index, session, 0xE7)
    mask = evidence_mask(mechanisms, _rng(seed, speaker_index, session, 0x5A), time.size, 1.0 / dt)
    perceived, cue = {"time": time}, {"time": time}
    for target in TARGETS:
        base = process[target].to_numpy()
        if mechanisms.integration_tau > 0:
            events = ou_path(events_rng, time.size, dt, mechanisms.event_tau, EVENT_SD)
            events -= events[: max(1, int(round(centre / dt)))].mean()
            gain = integration_gain(dt, mechanisms.event_tau, mechanisms.integration_tau)
            state = gain * leaky_integral(events, dt, mechanisms.integration_tau)
        else:
            events = state = base
        voice = events + levels[target]
        if mechanisms.relative_window > 0:
            frames = max(1, int(round(mechanisms.relative_window / dt)))
            voice = voice - mechanisms.relative_weight * trailing_mean(voice, frames)
        perceived[target] = np.tanh(state + levels[target]) if mechanisms.active else np.tanh(base)
        cue[target] = np.where(mask, np.tanh(voice), 0.0)
    return pd.DataFrame(perceived), pd.DataFrame(cue | {"evidence": mask})
