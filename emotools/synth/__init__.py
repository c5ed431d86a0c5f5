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

from .channel import VoiceRealism
from .corpus import (
    PRESET_REALISM,
    SIZES,
    SPLIT_RATIOS,
    CorpusSize,
    SynthError,
    cli,
    corpus_dir,
    ensure_corpus,
    preset_realism,
    write_corpus,
)
from .mechanisms import PRESETS, Mechanisms, mechanisms_markdown
from .session import Session, latent_trajectory, render_session, sentences, split_units
from .voices import (
    MAPPING,
    VARIANTS,
    VOICES,
    MappingRow,
    Speaker,
    UnitProsody,
    apply_tilt,
    mapping_markdown,
    speaker_catalogue,
    unit_prosody,
)

__all__ = [
    "Mechanisms",
    "PRESETS",
    "mechanisms_markdown",
    "VoiceRealism",
    "PRESET_REALISM",
    "preset_realism",
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
