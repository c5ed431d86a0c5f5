"""Speaker-independent train/dev/test splits.

Every utterance of a speaker lands in the same split, so a model is always
tested on voices it never heard. The assignment is deterministic: speakers
are ordered by a keyed hash of ``(seed, speaker)`` and cut by counts
apportioned from the ratios, so the same seed gives the same split on every
machine, and adding a speaker moves few others. Even a tiny corpus gets at
least one speaker in every split whose ratio is positive, when it has enough
speakers.

A split file (CSV with columns ``speaker, split``) overrides the assignment
for the speakers it lists; the rest are assigned as above.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..fileio import write_text
from .csvfiles import check_separator, read_csv

__all__ = [
    "SPLITS",
    "split_counts",
    "assign_speaker_splits",
    "read_split_file",
    "write_split_file",
    "leaking_speakers",
]

logger = logging.getLogger("emotools.corpora")

SPLITS: tuple[str, str, str] = ("train", "dev", "test")


def _check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(r) for r in ratios)
    if len(values) != 3 or not all(math.isfinite(r) and r >= 0 for r in values):
        raise ValueError(f"ratios must be three non-negative numbers (train, dev, test), got {tuple(ratios)!r}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"ratios must sum to 1, got {tuple(ratios)!r} (sum {sum(values):g})")
    return values  # type: ignore[return-value]


def split_counts(n: int, ratios: Sequence[float]) -> tuple[int, int, int]:
    """How many of ``n`` speakers go to train, dev and test.

    Largest-remainder apportionment of ``n * ratios``; then every split with a
    positive ratio gets at least one speaker, taken from the largest split,
    as long as ``n`` is at least the number of such splits. With fewer
    speakers, the splits with the largest ratios get one each.

    >>> split_counts(6, (0.8, 0.1, 0.1))
    (4, 1, 1)
    >>> split_counts(100, (0.8, 0.1, 0.1))
    (80, 10, 10)
    >>> split_counts(2, (0.8, 0.1, 0.1))
    (1, 1, 0)
    """
    weights = [float(r) for r in ratios]
    total = sum(weights)
    if n <= 0 or total <= 0:
        return (0, 0, 0)
    exact = [n * w / total for w in weights]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(3), key=lambda i: (-(exact[i] - counts[i]), -weights[i], i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    positive = sorted((i for i in range(3) if weights[i] > 0), key=lambda i: (-weights[i], i))
    if n < len(positive):
        counts = [0, 0, 0]
        for i in positive[:n]:
            counts[i] = 1
        return tuple(counts)  # type: ignore[return-value]
    for i in positive:
        if counts[i] == 0:
            donor = max((j for j in range(3) if counts[j] > 1), key=lambda j: (counts[j], -j))
            counts[donor] -= 1
            counts[i] += 1
    return tuple(counts)  # type: ignore[return-value]


def _rank(speaker: str, seed: int) -> bytes:
    return hashlib.blake2b(f"{seed}\x00{speaker}".encode(), digest_size=16).digest()


def _split_file_error(path: Path, reason: str) -> ValueError:
    return ValueError(f"{path}: {reason}")


def read_split_file(path: str | os.PathLike) -> dict[str, str]:
    """Read a ``speaker, split`` CSV into a mapping.

    Raises:
        ValueError: not parsable CSV (a ``;``- or tab-separated file is named as
            such), missing columns, an unknown split name, or a speaker listed
            with two different splits (the message names the file and row).
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    frame = read_csv(path, _split_file_error, dtype=str, keep_default_na=False, skipinitialspace=True)
    check_separator(path, frame, ("speaker", "split"), _split_file_error)
    missing = {"speaker", "split"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: split file lacks column(s) {sorted(missing)}; expected 'speaker,split'")
    mapping: dict[str, str] = {}
    for row, (speaker, split) in enumerate(zip(frame["speaker"].str.strip(), frame["split"].str.strip()), start=2):
        if split not in SPLITS:
            raise ValueError(f"{path}: line {row}: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        if mapping.get(speaker, split) != split:
            raise ValueError(f"{path}: line {row}: speaker {speaker!r} listed in {mapping[speaker]!r} and {split!r}")
        mapping[speaker] = split
    return mapping


def write_split_file(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Freeze a table's speaker -> split assignment as a split file (``speaker, split``)."""
    path = Path(path)
    pairs = table[["speaker", "split"]].drop_duplicates().sort_values(["split", "speaker"])
    return write_text(path, pairs.to_csv(index=False))


def leaking_speakers(table: pd.DataFrame) -> dict[str, list[str]]:
    """Speakers found in more than one split, with their splits (empty when independent)."""
    groups = table.groupby("speaker", sort=True)["split"].unique()
    return {str(s): sorted(map(str, v)) for s, v in groups.items() if len(v) > 1}


def assign_speaker_splits(
    table: pd.DataFrame,
    *,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    split_file: str | os.PathLike | None = None,
    fixed: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Assign each speaker (and so each of its utterances) to train, dev or test.

    Args:
        table: any table with a ``speaker`` column; an existing ``split``
            column is replaced.
        ratios: shares of speakers for (train, dev, test); non-negative, sum 1.
        seed: changes the (deterministic) assignment.
        split_file: CSV ``speaker, split`` whose entries override everything.
        fixed: speaker -> split given by the corpus (e.g. its metadata);
            the split file wins over these.

    Returns:
        A copy of ``table`` with a ``split`` column.

    Raises:
        ValueError: bad ratios, or a malformed split file.
    """
    ratios = _check_ratios(ratios)
    given: dict[str, str] = {str(k): str(v) for k, v in (fixed or {}).items()}
    for speaker, split in given.items():
        if split not in SPLITS:
            raise ValueError(f"speaker {speaker!r}: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if split_file is not None:
        given.update(read_split_file(split_file))
    speakers = sorted(set(table["speaker"].astype(str)))
    assignment = {s: given[s] for s in speakers if s in given}
    free = sorted((s for s in speakers if s not in assignment), key=lambda s: _rank(s, seed))
    if split_file is not None and free:
        logger.info("%d speakers not in the split file %s are assigned by ratio", len(free), split_file)
    desired = split_counts(len(speakers), ratios)
    taken = [sum(1 for v in assignment.values() if v == split) for split in SPLITS]
    need = [max(0, d - t) for d, t in zip(desired, taken)]
    counts = need if sum(need) == len(free) else split_counts(len(free), need if sum(need) else ratios)
    start = 0
    for split, count in zip(SPLITS, counts):
        for speaker in free[start : start + count]:
            assignment[speaker] = split
        start += count
    out = table.copy()
    out["split"] = [assignment[str(s)] for s in out["speaker"]]
    return out
