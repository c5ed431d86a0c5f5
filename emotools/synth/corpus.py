"""The ground-truth corpus on disk: sizes, idempotent atomic rendering, the cache of presets, the CLI."""

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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from .. import espeak, paths
from ..audio import SAMPLE_RATE
from ..errors import EmotoolsError
from ..features import RATE_HZ
from ..fileio import write_text
from ..labels import AnnotationModel, annotate
from ..parallel import run_each
from .channel import REALISM_OFF, VoiceRealism
from .mechanisms import PRESETS, Mechanisms, resolve
from .session import (
    EDGE_SILENCE,
    NOISE_FLOOR,
    PAUSE_AFTER_SENTENCE,
    PAUSE_IN_SENTENCE,
    render_session,
    sentences,
)
from .voices import MAPPING, TILT_PIVOT_HZ, speaker_catalogue

logger = logging.getLogger("emotools.synth")

SPLIT_RATIOS: tuple[float, float, float] = (4 / 6, 1 / 6, 1 / 6)
"""Speaker shares of train/dev/test: 24 speakers give 16/4/4."""

_CORPUS_VERSION = 1  # bump when the generated audio or labels change for the same config


class SynthError(EmotoolsError):
    """The corpus cannot be generated; ``str(err)`` is ``"<what>: <reason>"``."""


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


def _recording_files(root: Path, recording: str) -> tuple[Path, Path, Path]:
    return (root / "audio" / f"{recording}.wav", root / "units" / f"{recording}.csv",
            root / "annotations" / f"{recording}.csv")


@dataclass(frozen=True)
class _Recording:
    """One recording to render: a task for a worker process (picklable)."""

    root: str
    speaker_index: int
    session: int
    minutes: float
    seed: int
    model: AnnotationModel
    mechanisms: Mechanisms = PRESETS["easy"]
    realism: VoiceRealism = VoiceRealism()
    sentence_pool: tuple[int, ...] | None = None

    def __str__(self) -> str:
        return f"{speaker_catalogue()[self.speaker_index].name} session {self.session + 1}"


def _render_and_write(task: _Recording) -> dict[str, Any]:
    """Worker: render one recording and write its files (annotation last)."""
    from ..audio import write_audio
    from ..corpora.annotated import write_annotation

    started = _time.perf_counter()
    result = render_session(task.speaker_index, task.session, minutes=task.minutes, seed=task.seed,
                            mechanisms=task.mechanisms, realism=task.realism, sentence_pool=task.sentence_pool)
    audio_path, units_path, annotation_path = _recording_files(Path(task.root), result.recording)
    write_audio(audio_path, result.audio, SAMPLE_RATE)
    write_text(units_path, result.units.to_csv(index=False, float_format="%.6f", lineterminator="\n"))
    write_annotation(annotation_path, annotate(result.latent, model=task.model, key=result.recording))
    return {"recording": result.recording, "duration": result.duration, "seconds": _time.perf_counter() - started}


def _config(size: CorpusSize, seed: int, model: AnnotationModel,
            preset: str | Mechanisms = "easy", realism: VoiceRealism = REALISM_OFF) -> dict[str, Any]:
    name, mechanisms = resolve(preset)
    config = {
        "format": "emotools.synth",
        "version": _CORPUS_VERSION,
        "seed": int(seed),
        "speakers": size.speakers,
        "sessions": size.sessions,
        "minutes": size.minutes,
        "sample_rate": SAMPLE_RATE,
        "label_rate_hz": RATE_HZ,
        "split_ratios": list(SPLIT_RATIOS),
        "annotation_model": model.to_dict(),
        "mapping": [asdict(row) | {"limits": list(row.limits)} for row in MAPPING],
        "tilt_pivot_hz": TILT_PIVOT_HZ,
        "pauses": {"in_sentence": list(PAUSE_IN_SENTENCE), "after_sentence": list(PAUSE_AFTER_SENTENCE),
                   "edges": EDGE_SILENCE, "noise_floor": NOISE_FLOOR},
        "sentences_sha256": hashlib.sha256("\n".join(sentences()).encode()).hexdigest(),
        "espeak_ng": espeak.version(),
    }
    if not realism.is_off:  # as for the mechanisms: today's config stays as it was
        config |= {"realism": realism.to_dict()}
    if mechanisms.active:  # the easy config stays the version-1 dict, so its cached corpora stay valid
        config |= {"preset": name, "mechanisms": mechanisms.to_dict()}
    return config


HELD_OUT_VOICES: dict[str, tuple[str, ...]] = {
    "train": ("en-us", "en-gb-x-rp"), "dev": ("en",), "test": ("en-gb-scotland",),
}
"""Base voices per split when ``VoiceRealism.held_out_voices`` is on: dev and test accents are never trained on."""


PRESET_REALISM: dict[str, VoiceRealism] = {"default": VoiceRealism.full(), "strong": VoiceRealism.full()}
"""Voice realism per corpus preset: corpus v2 (``default``, ``strong``) has every voice knob on; the single-mechanism
presets keep v1's voices, so that each mechanism's effect on the labels is measured alone."""


def preset_realism(preset: str | Mechanisms) -> VoiceRealism:
    """The voice realism that goes with a preset (:data:`PRESET_REALISM`; none for the others)."""
    return PRESET_REALISM.get(resolve(preset)[0], REALISM_OFF)


def sentence_splits(seed: int) -> dict[str, tuple[int, ...]]:
    """Disjoint parts of :func:`sentences` per split (``SPLIT_RATIOS`` of the pool, drawn with the corpus seed)."""
    from ..corpora.splits import SPLITS, split_counts

    order = np.random.default_rng([int(seed), 0x5E47]).permutation(len(sentences()))
    bounds = np.cumsum([0, *split_counts(order.size, SPLIT_RATIOS)])
    return {split: tuple(sorted(int(i) for i in order[lo:hi])) for split, lo, hi in zip(SPLITS, bounds, bounds[1:])}


def _voice_splits(size: CorpusSize) -> dict[str, str]:
    """speaker -> split by base voice (:data:`HELD_OUT_VOICES`)."""
    by_voice = {voice: split for split, voices in HELD_OUT_VOICES.items() for voice in voices}
    return {s.name: by_voice[s.voice.split("+")[0]] for s in speaker_catalogue()[: size.speakers]}


def _metadata(size: CorpusSize, seed: int, realism: VoiceRealism = REALISM_OFF) -> pd.DataFrame:
    from ..corpora.splits import assign_speaker_splits

    rows = []
    for speaker in speaker_catalogue()[: size.speakers]:
        for session in range(size.sessions):
            recording = f"{speaker.name}_s{session + 1:02d}"
            rows.append({"recording": recording, "speaker": speaker.name, "voice": speaker.voice,
                         "gender": speaker.gender})
    fixed = _voice_splits(size) if realism.held_out_voices else None
    table = assign_speaker_splits(pd.DataFrame(rows), ratios=SPLIT_RATIOS, seed=seed, fixed=fixed)
    return table[["recording", "speaker", "split", "voice", "gender"]]


def write_corpus(
    out: str | os.PathLike,
    *,
    speakers: int,
    sessions: int = 1,
    minutes: float = 1.5,
    seed: int = 0,
    model: AnnotationModel | None = None,
    preset: str | Mechanisms = "easy",
    realism: VoiceRealism | None = None,
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
        model: annotation model (default: the preset's, ``AnnotationModel(seed=seed)``
            with the preset's lag drift).
        preset: label mechanisms, a name in :data:`~emotools.synth.mechanisms.PRESETS`
            or a :class:`~emotools.synth.mechanisms.Mechanisms`.
        realism: voice quality, recording conditions, held-out voices and
            sentences (:class:`~emotools.synth.channel.VoiceRealism`; default:
            the preset's, :func:`preset_realism`: all on for ``default``, off
            for the others).
        jobs: worker processes (default: 2 for more than 5 minutes of audio to
            render, else 1; never more than the CPUs).
        progress: show a tqdm bar over recordings.

    Returns:
        ``out`` as a Path.

    Raises:
        SynthError: bad sizes or preset, or ``out`` holds a corpus made with
            another configuration, or a recording failed to render.
    """
    from ..progress import tqdm

    catalogue = speaker_catalogue()
    if not 1 <= int(speakers) <= len(catalogue):
        raise SynthError("speakers", f"must be 1-{len(catalogue)}, got {speakers}")
    if int(sessions) < 1:
        raise SynthError("sessions", f"must be >= 1, got {sessions}")
    if not (math.isfinite(minutes) and 0.05 <= minutes <= 600):
        raise SynthError("minutes", f"must be between 0.05 and 600, got {minutes}")
    size = CorpusSize(int(speakers), int(sessions), float(minutes))
    try:
        name, mechanisms = resolve(preset)
    except ValueError as error:
        raise SynthError("preset", str(error)) from None
    model = mechanisms.annotation_model(int(seed)) if model is None else model
    root = Path(out).expanduser().absolute()
    realism = preset_realism(name) if realism is None else realism
    config = _config(size, seed, model, mechanisms, realism)
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
        write_text(config_path, json.dumps(config, indent=2) + "\n")

    metadata = _metadata(size, seed, realism)
    splits = dict(zip(metadata["speaker"], metadata["split"]))
    pools = sentence_splits(seed) if realism.held_out_sentences else {}
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
    tasks = [_Recording(str(root), i, s, size.minutes, int(seed), model, mechanisms, realism,
                        pools.get(splits[catalogue[i].name])) for i, s in todo]
    with tqdm(total=len(todo), desc="synth", unit="rec", disable=not progress or not todo) as bar:
        for task, _, error in run_each(_render_and_write, tasks, jobs=jobs):
            if error is not None:  # recorded, reported below; the others go on
                failures.append(f"{task}: {error}")
            bar.update()
    if failures:
        raise SynthError(root, f"{len(failures)} recording(s) failed: " + "; ".join(failures))
    text = metadata.to_csv(index=False, lineterminator="\n")
    metadata_path = root / "metadata.csv"  # written last: its presence marks a finished corpus
    if not metadata_path.exists() or metadata_path.read_text(encoding="utf-8") != text:
        write_text(metadata_path, text)
    return root


def corpus_dir(size: str = "default", seed: int = 0, preset: str = "easy") -> Path:
    """Where :func:`ensure_corpus` keeps a corpus: ``data_dir()/ground_truth/<size>-seed<seed>[-<preset>]``.

    The ``easy`` preset (corpus v1) has no suffix, so its caches stay valid.
    """
    if size not in SIZES:
        raise ValueError(f"unknown corpus size {size!r}; choose from {', '.join(SIZES)}")
    name, _ = resolve(preset)
    return paths.data_dir() / "ground_truth" / (f"{size}-seed{int(seed)}" + ("" if name == "easy" else f"-{name}"))


def ensure_corpus(size: Literal["smoke", "default", "full"] = "default", seed: int = 0, *, preset: str = "easy",
                  jobs: int | None = None, progress: bool = True) -> Path:
    """The preset corpus, rendered into ``DATA_DIR`` on first use and cached.

    The cache is keyed by the full configuration (``corpus.json``: sizes,
    seed, mapping, annotation model, sentence pool, eSpeak version, format
    version); a corpus rendered with another configuration is rendered again.

    Args:
        size: ``"smoke"``, ``"default"`` or ``"full"`` (see :data:`SIZES`).
        seed: corpus seed.
        preset: label mechanisms, a name in :data:`~emotools.synth.mechanisms.PRESETS`
            (``"easy"``: corpus v1; ``"default"``: every mechanism on).
        jobs: worker processes for a first render.
        progress: show progress while rendering.

    Returns:
        The corpus root, ready for ``emotools.corpora.scan("annotated", root)``.
    """
    root = corpus_dir(size, seed, preset)
    mechanisms = PRESETS[preset]
    config_path = root / "corpus.json"
    if config_path.exists():
        try:
            existing = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            existing = {}
        if existing == _config(SIZES[size], seed, mechanisms.annotation_model(int(seed)), preset,
                               preset_realism(preset)):
            if (root / "metadata.csv").exists():
                return root
        elif existing.get("format") == "emotools.synth":
            # a cached corpus from another version of this code: never serve it stale
            logger.warning("%s was rendered by another version of emotools.synth; rendering it again", root)
            shutil.rmtree(root)
    dims = SIZES[size]
    return write_corpus(root, speakers=dims.speakers, sessions=dims.sessions, minutes=dims.minutes,
                        seed=seed, preset=preset, jobs=jobs, progress=progress)


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
    parser.add_argument("--preset", choices=list(PRESETS), default="easy",
                        help="label mechanisms and voices (default: easy, corpus v1; 'default': corpus v2, every "
                             "mechanism and voice knob on; see docs/builtin-corpus.md)")
    parser.add_argument("--out", type=Path,
                        help="corpus folder (default: DATA_DIR/ground_truth/<size>-seed<K>[-<preset>])")
    parser.add_argument("--speakers", type=int, help="number of speakers (1-52)")
    parser.add_argument("--sessions", type=int, help="recordings per speaker")
    parser.add_argument("--minutes", type=float, help="minutes per recording")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    parser.add_argument("--jobs", type=int, help="worker processes (default: up to 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(list(argv))
    preset = SIZES[args.size]
    custom = any(x is not None for x in (args.speakers, args.sessions, args.minutes))
    if custom and args.out is None:
        parser.error("--out is required with --speakers/--sessions/--minutes")
    out = args.out if args.out is not None else corpus_dir(args.size, args.seed, args.preset)
    started = _time.perf_counter()
    try:
        root = write_corpus(
            out,
            speakers=args.speakers if args.speakers is not None else preset.speakers,
            sessions=args.sessions if args.sessions is not None else preset.sessions,
            minutes=args.minutes if args.minutes is not None else preset.minutes,
            seed=args.seed, preset=args.preset, jobs=args.jobs, progress=not args.no_progress,
        )
    except EmotoolsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    metadata = pd.read_csv(root / "metadata.csv")
    print(f"{root}: {len(metadata)} recordings, {metadata['speaker'].nunique()} speakers "
          f"({', '.join(f'{k} {v}' for k, v in metadata.groupby('split')['speaker'].nunique().items())}), "
          f"{_time.perf_counter() - started:.1f} s")
    return 0
