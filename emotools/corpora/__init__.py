"""Corpus scanners, speaker-independent splits and session chaining.

Every scanner turns a folder laid out like the real corpus into a corpus
table: one row per utterance with ``file`` (absolute path), ``utterance``,
``speaker``, ``session`` (chapter / video / recording), ``duration`` (s) and
``split`` (train / dev / test), plus corpus-specific columns. Problems found
on the way are logged and listed in ``table.attrs["problems"]``.

>>> sorted(CORPORA)
['annotated', 'librispeech', 'voxceleb1', 'voxceleb2']
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pandas as pd

from . import annotated, librispeech, voxceleb
from .annotated import AnnotationError, read_annotation, write_annotation
from .base import COLUMNS, CorpusError, summarize
from .sessions import chain_sessions, join_segments, write_sessions
from .splits import SPLITS, assign_speaker_splits, leaking_speakers, read_split_file, write_split_file

__all__ = [
    "CORPORA",
    "COLUMNS",
    "SPLITS",
    "scan",
    "CorpusError",
    "AnnotationError",
    "read_annotation",
    "write_annotation",
    "assign_speaker_splits",
    "leaking_speakers",
    "read_split_file",
    "write_split_file",
    "chain_sessions",
    "join_segments",
    "write_sessions",
    "summarize",
    "limit_hours",
]

CORPORA: dict[str, Callable[..., pd.DataFrame]] = {
    "librispeech": librispeech.scan,
    "voxceleb1": voxceleb.scan_voxceleb1,
    "voxceleb2": voxceleb.scan_voxceleb2,
    "annotated": annotated.scan,
}
"""Corpus key -> scanner ``scan(root, *, ratios, seed, split_file, progress, ...)``."""


def scan(key: str, root: str | os.PathLike, **options) -> pd.DataFrame:
    """Scan the corpus ``key`` found at ``root`` into a corpus table.

    Args:
        key: one of :data:`CORPORA` (``librispeech``, ``voxceleb1``, ``voxceleb2``, ``annotated``).
        root: the corpus folder.
        **options: passed to the scanner (``ratios``, ``seed``, ``split_file``,
            ``progress``; LibriSpeech also ``subsets``).

    Raises:
        ValueError: unknown key (the message lists the known ones).
        CorpusError: the corpus cannot be scanned at all.
    """
    if key not in CORPORA:
        raise ValueError(f"unknown corpus {key!r}; known: {', '.join(sorted(CORPORA))}")
    return CORPORA[key](root, **options)


def limit_hours(table: pd.DataFrame, hours: float) -> pd.DataFrame:
    """Whole speakers, taken in turn from each split (sorted ids), until ``hours`` of audio.

    For a quick run on a large corpus: the subset keeps every split and never
    cuts a speaker in two, so the splits stay speaker-independent.
    """
    if not hours > 0:
        raise ValueError(f"hours must be > 0, got {hours!r}")
    splits = table["split"].astype(str)
    order = [s for s in SPLITS if s in set(splits)] + sorted(set(splits) - set(SPLITS))
    per_split = {split: sorted(table.loc[splits == split, "speaker"].astype(str).unique()) for split in order}
    seconds = table.groupby(table["speaker"].astype(str))["duration"].sum()
    chosen, total = [], 0.0
    queues = [list(v) for v in per_split.values()]
    first_round = True  # every split keeps at least one speaker
    while (first_round or total < hours * 3600) and any(queues):
        for queue in queues:
            if queue and (first_round or total < hours * 3600):
                speaker = queue.pop(0)
                chosen.append(speaker)
                total += float(seconds[speaker])
        first_round = False
    subset = table[table["speaker"].astype(str).isin(chosen)].copy()
    subset.attrs = dict(table.attrs)
    return subset
