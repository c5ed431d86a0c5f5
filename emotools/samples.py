"""Tiny LibriSpeech, VoxCeleb1 and VoxCeleb2 corpora, rendered, in the real layouts.

The dataset notebooks need a ``data_root`` that exists on every machine, so
``python -m emotools samples`` renders a few speakers per corpus with eSpeak
NG (the same speakers, prosody mapping and latent trajectories as
:mod:`emotools.synth`) and lays them out exactly as the real corpora are::

    DATA_DIR/samples/librispeech/dev-clean/<speaker>/<chapter>/<speaker>-<chapter>-<nnnn>.flac
                                                      <speaker>-<chapter>.trans.txt
    DATA_DIR/samples/voxceleb1/wav/<id1xxxx>/<video>/<nnnnn>.wav
    DATA_DIR/samples/voxceleb2/dev/aac/<id0xxxx>/<video>/<nnnnn>.m4a   (AAC)

Each chapter / video is one rendered session cut into utterances of two
sentences at sentence pauses, in order, so chaining a chapter's utterances
restores the session. Users point ``data_root`` at their real copies instead.
Generation is idempotent: a corpus whose ``.complete`` marker matches the
configuration is skipped, an interrupted one is rendered again (same names,
same content); every file is written atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from . import paths
from .audio import SAMPLE_RATE, write_audio
from .errors import EmotoolsError
from .fileio import write_text

__all__ = ["SAMPLE_CORPORA", "SampleSize", "SamplesError", "samples_dir", "sample_root", "write_samples",
           "ensure_samples", "cli"]

SampleCorpus = Literal["librispeech", "voxceleb1", "voxceleb2"]
SAMPLE_CORPORA: tuple[str, ...] = ("librispeech", "voxceleb1", "voxceleb2")
"""Corpus keys (as in :data:`emotools.corpora.CORPORA`) rendered as samples."""

_CATALOGUE_OFFSET = {"librispeech": 0, "voxceleb1": 8, "voxceleb2": 16}  # distinct voices per corpus
_SENTENCES_PER_UTTERANCE = 2
_MARGIN = 0.15  # seconds of pause kept before and after an utterance
_VERSION = 1


class SamplesError(EmotoolsError, ValueError):
    """Sample corpora that cannot be rendered as asked; ``str(err)`` is ``"<what>: <reason>"``.

    A ``ValueError`` too, as these refusals were before they had their own class.
    """


@dataclass(frozen=True)
class SampleSize:
    """Speakers per corpus, chapters/videos per speaker, minutes per chapter/video."""

    speakers: int = 6
    sessions: int = 2
    minutes: float = 0.5


def samples_dir() -> Path:
    """``DATA_DIR/samples``."""
    return paths.data_dir() / "samples"


def sample_root(corpus: SampleCorpus, *, out: str | os.PathLike | None = None) -> Path:
    """The root to pass to ``emotools.corpora.scan(corpus, root)`` for a sample corpus."""
    if corpus not in SAMPLE_CORPORA:
        raise SamplesError(repr(corpus), f"unknown sample corpus; choose from {', '.join(SAMPLE_CORPORA)}")
    return Path(out if out is not None else samples_dir()).expanduser().absolute() / corpus


def _video_id(rng: np.random.Generator) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), size=11))


def _transcript(text: str) -> str:
    """LibriSpeech style: upper case, no punctuation but apostrophes."""
    return re.sub(r"\s+", " ", re.sub(r"[^A-Z' ]", " ", text.upper())).strip()


def _utterances(session) -> list[tuple[int, int, str]]:
    """(first sample, last sample, text) per utterance of two sentences, in order."""
    units = session.units
    blocks = (units["sentence"] != units["sentence"].shift()).cumsum()
    sentences = units.groupby(blocks, sort=True).agg(start=("start", "first"), end=("end", "last"),
                                                     text=("text", " ".join))
    out = []
    rows = list(sentences.itertuples())
    for i in range(0, len(rows), _SENTENCES_PER_UTTERANCE):
        group = rows[i : i + _SENTENCES_PER_UTTERANCE]
        first = max(0, int((group[0].start - _MARGIN) * SAMPLE_RATE))
        last = min(session.audio.size, int((group[-1].end + _MARGIN) * SAMPLE_RATE))
        out.append((first, last, " ".join(g.text for g in group)))
    return out


def _names(corpus: str, index: int, session: int, rng: np.random.Generator) -> tuple[str, str]:
    """(speaker, chapter-or-video) names in the corpus' own style."""
    if corpus == "librispeech":
        return str(1001 + 37 * index), str(120000 + 1013 * index + 17 * session)
    speaker = f"id{10001 + index}" if corpus == "voxceleb1" else f"id{index * 37 + 12:05d}"
    return speaker, _video_id(rng)


def _write_corpus(corpus: str, root: Path, size: SampleSize, seed: int, progress: bool) -> Path:
    from .progress import tqdm
    from .synth import render_session, speaker_catalogue

    config = {"format": "emotools.samples", "version": _VERSION, "corpus": corpus, "seed": int(seed),
              "speakers": size.speakers, "sessions": size.sessions, "minutes": size.minutes}
    marker, started = root / ".complete", root / ".config.json"
    for path in (marker, started):
        if path.exists():
            try:
                existing = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                existing = None
            if existing != config:
                raise SamplesError(root, f"holds samples made with another configuration ({path.name}); "
                                         "use another folder or remove it")
    if marker.exists():
        return root
    write_text(started, json.dumps(config) + "\n")
    offset = _CATALOGUE_OFFSET[corpus]
    if offset + size.speakers > len(speaker_catalogue()):
        raise SamplesError(corpus, f"at most {len(speaker_catalogue()) - offset} speakers, got {size.speakers}")
    corpus_seed = int(seed) * 1000 + SAMPLE_CORPORA.index(corpus) + 1
    jobs = [(i, s) for i in range(size.speakers) for s in range(size.sessions)]
    for i, s in tqdm(jobs, desc=f"samples {corpus}", unit="session", disable=not progress):
        names_rng = np.random.default_rng([corpus_seed, i, s])
        speaker, chapter = _names(corpus, i, s, names_rng)
        session = render_session(offset + i, s, minutes=size.minutes, seed=corpus_seed)
        utterances = _utterances(session)
        if corpus == "librispeech":
            folder = root / "dev-clean" / speaker / chapter
            lines = []
            for k, (first, last, text) in enumerate(utterances):
                name = f"{speaker}-{chapter}-{k:04d}"
                write_audio(folder / f"{name}.flac", session.audio[first:last], SAMPLE_RATE)
                lines.append(f"{name} {_transcript(text)}")
            write_text(folder / f"{speaker}-{chapter}.trans.txt", "\n".join(lines) + "\n")
        else:
            folder = (root / "wav" if corpus == "voxceleb1" else root / "dev" / "aac") / speaker / chapter
            suffix = ".wav" if corpus == "voxceleb1" else ".m4a"
            for k, (first, last, _) in enumerate(utterances):
                write_audio(folder / f"{k + 1:05d}{suffix}", session.audio[first:last], SAMPLE_RATE)
    write_text(marker, json.dumps(config) + "\n")
    return root


def write_samples(
    out: str | os.PathLike | None = None,
    *,
    corpora: Sequence[str] = SAMPLE_CORPORA,
    size: SampleSize = SampleSize(),
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Path]:
    """Render the sample corpora (idempotent).

    Args:
        out: parent folder (default: ``DATA_DIR/samples``); each corpus goes
            into ``<out>/<corpus>``.
        corpora: which of :data:`SAMPLE_CORPORA`.
        size: speakers, sessions (chapters / videos) and minutes per session.
        seed: changes texts and trajectories (not the voices).
        progress: show tqdm bars.

    Returns:
        corpus key -> root folder for ``emotools.corpora.scan(key, root)``.
    """
    unknown = set(corpora) - set(SAMPLE_CORPORA)
    if unknown:
        raise SamplesError(str(sorted(unknown)), f"unknown sample corpus; choose from {', '.join(SAMPLE_CORPORA)}")
    if size.speakers < 1 or size.sessions < 1 or not size.minutes > 0:
        raise SamplesError("size", f"speakers and sessions must be >= 1 and minutes > 0, got {size}")
    return {c: _write_corpus(c, sample_root(c, out=out), size, seed, progress) for c in corpora}


def ensure_samples(corpus: SampleCorpus, *, progress: bool = True) -> Path:
    """The default sample corpus root under ``DATA_DIR/samples``, rendered on first use."""
    return write_samples(corpora=[corpus], progress=progress)[corpus]


def cli(argv: Sequence[str]) -> int:
    """``python -m emotools samples``: render the sample corpora in their real layouts."""
    parser = argparse.ArgumentParser(
        prog="python -m emotools samples",
        description="Render tiny LibriSpeech (FLAC), VoxCeleb1 (WAV) and VoxCeleb2 (AAC .m4a) corpora "
                    "with eSpeak NG, laid out as the real corpora (idempotent).",
    )
    parser.add_argument("--out", type=Path, help="parent folder (default: DATA_DIR/samples)")
    parser.add_argument("--corpus", action="append", choices=list(SAMPLE_CORPORA),
                        help="only this corpus (repeatable; default: all)")
    parser.add_argument("--speakers", type=int, default=SampleSize.speakers, help="speakers per corpus")
    parser.add_argument("--sessions", type=int, default=SampleSize.sessions, help="chapters/videos per speaker")
    parser.add_argument("--minutes", type=float, default=SampleSize.minutes, help="minutes per chapter/video")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(list(argv))
    try:
        roots = write_samples(args.out, corpora=args.corpus or SAMPLE_CORPORA,
                              size=SampleSize(args.speakers, args.sessions, args.minutes),
                              seed=args.seed, progress=not args.no_progress)
    except (EmotoolsError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for corpus, root in roots.items():
        print(f"{corpus}: {root}")
    return 0
