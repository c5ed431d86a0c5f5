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
from .sessions import chain_sessions, render_session, write_sessions
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
    "render_session",
    "write_sessions",
    "summarize",
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
