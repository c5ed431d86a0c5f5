"""What every corpus scanner shares: the table's columns, problem reports,
header probing, safe paths, split assignment and sanity logging.

A scanner walks its layout and produces one dict per utterance; :func:`finish`
turns those into the corpus table every later step reads. Problems (a missing
transcript, an unreadable header, a path that leaves the corpus) never stop a
scan: they are logged, listed in ``table.attrs["problems"]`` as
``{"file": ..., "reason": ...}``, and the scan goes on with the rest.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..audio import AudioError, AudioInfo, audio_info
from ..errors import EmotoolsError
from ..progress import tqdm
from .splits import SPLITS, assign_speaker_splits

__all__ = [
    "COLUMNS",
    "CorpusError",
    "Problems",
    "natural_key",
    "inside",
    "probe",
    "finish",
    "summarize",
]

logger = logging.getLogger("emotools.corpora")

COLUMNS: tuple[str, ...] = ("file", "utterance", "speaker", "session", "duration", "split")
"""Columns every corpus table starts with, in this order."""

_LOGGED_PROBLEMS = 50  # individual warnings per scan; the rest are counted


class CorpusError(EmotoolsError):
    """A corpus that cannot be scanned at all (missing root, no audio in the layout, ...).

    ``str(err)`` is ``"<path>: <reason>"``; per-file problems are not errors
    but entries in ``table.attrs["problems"]``.
    """


class Problems(list):
    """The problems found by one scan: ``{"file", "reason"}`` dicts, each logged once."""

    def __init__(self, corpus: str) -> None:
        super().__init__()
        self.corpus = corpus

    def add(self, file: str | os.PathLike, reason: str) -> None:
        """Record (and log) one problem with one file."""
        self.append({"file": str(file), "reason": reason})
        if len(self) <= _LOGGED_PROBLEMS:
            logger.warning("%s: %s: %s", self.corpus, file, reason)
        elif len(self) == _LOGGED_PROBLEMS + 1:
            logger.warning("%s: more problems; see table.attrs['problems']", self.corpus)


def natural_key(text: str) -> tuple:
    """Sort key that orders digit runs by value: ``"utt-2" < "utt-10"``.

    >>> sorted(["c10", "c9"], key=natural_key)
    ['c9', 'c10']
    """
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", str(text)))


def inside(base: Path, relative: str) -> Path | None:
    """``base / relative`` if it stays inside ``base`` (lexically), else None.

    Names from metadata files are untrusted: ``../x`` or an absolute path must
    not make a scan read (or a later step write) outside the corpus.
    """
    if not relative or "\x00" in relative:
        return None
    if Path(relative).is_absolute():
        return None
    base_norm = os.path.normpath(os.path.abspath(base))
    target = os.path.normpath(os.path.join(base_norm, relative))
    if os.path.commonpath([base_norm, target]) != base_norm or target == base_norm:
        return None
    return Path(target)


def probe(files: Sequence[Path], problems: Problems, *, progress: bool = True) -> list[AudioInfo | None]:
    """Read every file's header (not its samples); None where unusable (reported)."""
    infos: list[AudioInfo | None] = []
    for file in tqdm(files, desc=f"{problems.corpus}: headers", unit="file", disable=not progress, leave=False):
        try:
            info = audio_info(file)
        except AudioError as error:
            problems.add(file, f"{error.reason}; skipped")
            infos.append(None)
            continue
        if info.frames <= 0:
            problems.add(file, "no samples (empty audio stream); skipped")
            infos.append(None)
            continue
        infos.append(info)
    return infos


def finish(
    rows: Iterable[dict],
    problems: Problems,
    *,
    root: Path,
    extra_columns: Sequence[str] = (),
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    split_file: str | os.PathLike | None = None,
    fixed_splits: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Build the corpus table: drop duplicate ids, assign splits, order, log.

    Args:
        rows: one dict per utterance with the :data:`COLUMNS` (``split`` optional).
        problems: this scan's problem list, attached as ``attrs["problems"]``.
        root: the corpus root (recorded in ``attrs["root"]``).
        extra_columns: corpus-specific columns kept after the standard ones.
        ratios, seed, split_file: see :func:`~emotools.corpora.splits.assign_speaker_splits`.
        fixed_splits: speaker -> split given by the corpus itself (metadata).

    Returns:
        The table, rows ordered by speaker, session, utterance (natural order).
    """
    columns = [*COLUMNS, *extra_columns]
    table = pd.DataFrame(list(rows), columns=columns)
    duplicated = table["utterance"].duplicated(keep="first")
    for _, row in table[duplicated].iterrows():
        problems.add(row["file"], f"duplicate utterance id {row['utterance']!r}; the first one is kept")
    table = table[~duplicated]
    if len(table):
        order = sorted(
            range(len(table)),
            key=lambda i: (
                natural_key(table["speaker"].iat[i]),
                natural_key(table["session"].iat[i]),
                natural_key(table["utterance"].iat[i]),
            ),
        )
        table = table.iloc[order]
    table = table.reset_index(drop=True)
    table["duration"] = table["duration"].astype(float)
    table = assign_speaker_splits(table, ratios=ratios, seed=seed, split_file=split_file, fixed=fixed_splits)
    table.attrs["corpus"] = problems.corpus
    table.attrs["root"] = str(root)
    table.attrs["problems"] = list(problems)
    logger.info("%s", summarize(table))
    return table


def summarize(table: pd.DataFrame) -> str:
    """One line of sanity counts (SpeechBrain style): speakers, utterances, hours, per split.

    >>> summarize(pd.DataFrame({"speaker": ["a", "a", "b"], "duration": [1800.0, 1800.0, 3600.0],
    ...                         "split": ["train", "train", "test"]}))
    '2 speakers, 3 utterances, 2.00 h (train 1/2/1.00 h, dev 0/0/0.00 h, test 1/1/1.00 h speakers/utterances/hours)'
    """
    name = table.attrs.get("corpus")
    parts = []
    for split in SPLITS:
        part = table[table["split"] == split] if "split" in table else table.iloc[:0]
        parts.append(f"{split} {part['speaker'].nunique()}/{len(part)}/{part['duration'].sum() / 3600:.2f} h")
    line = (
        f"{table['speaker'].nunique()} speakers, {len(table)} utterances, "
        f"{table['duration'].sum() / 3600:.2f} h ({', '.join(parts)} speakers/utterances/hours)"
    )
    problems = table.attrs.get("problems")
    if problems:
        line += f"; {len(problems)} problems"
    return f"{name}: {line}" if name else line
