"""LibriSpeech: read audiobooks, ``<root>/<subset>/<speaker>/<chapter>/``.

Each chapter folder holds ``<speaker>-<chapter>-<utt>.flac`` files and one
``<speaker>-<chapter>.trans.txt`` with a line ``<utterance-id> <TEXT>`` per
utterance, in reading order. The session is the chapter, so chaining a
chapter's utterances (:mod:`emotools.corpora.sessions`) restores the book's
continuous reading.

``root`` may also be a single subset folder (``.../LibriSpeech/dev-clean``):
it is recognised by speaker/chapter folders directly inside it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .base import CorpusError, Problems, finish, probe

__all__ = ["scan", "LAYOUT"]

LAYOUT = "<root>/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac (+ <speaker>-<chapter>.trans.txt)"

_UTTERANCE = re.compile(r"^(?P<speaker>\d+)-(?P<chapter>\d+)-(?P<index>\d+)$")


def _is_subset_folder(folder: Path) -> bool:
    """A subset folder holds speaker/chapter folders with transcripts directly inside."""
    return any(True for _ in folder.glob("*/*/*.trans.txt"))


def _read_transcripts(path: Path, speaker: str, chapter: str, problems: Problems) -> dict[str, str]:
    """utterance id -> text; malformed lines are reported and skipped."""
    texts: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # a byte order mark is not text
    except (OSError, UnicodeDecodeError) as error:
        problems.add(path, f"unreadable transcript file ({error})")
        return texts
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        key, _, text = line.strip().partition(" ")
        match = _UTTERANCE.match(key)
        if not match or (match["speaker"], match["chapter"]) != (speaker, chapter):
            problems.add(path, f"line {number}: {key!r} is not an utterance id of {speaker}-{chapter}")
            continue
        if key in texts:
            problems.add(path, f"line {number}: utterance {key!r} transcribed twice; the first is kept")
            continue
        texts[key] = text.strip()
    return texts


def scan(
    root: str | os.PathLike,
    *,
    subsets: Sequence[str] | None = None,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    split_file: str | os.PathLike | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Scan a LibriSpeech folder into a corpus table.

    Args:
        root: the folder holding the subsets (``train-clean-100``, ``dev-clean``, ...),
            or one subset folder.
        subsets: only these subsets (default: all found).
        ratios, seed, split_file: speaker-independent splits, see
            :func:`~emotools.corpora.splits.assign_speaker_splits`.
        progress: show a progress bar while reading headers.

    Returns:
        The corpus table (``file, utterance, speaker, session, duration, split``)
        plus ``subset``, ``chapter`` and ``transcript`` (``""`` where the
        chapter's transcript lacks the utterance). ``session`` is
        ``<speaker>-<chapter>``.

    Raises:
        CorpusError: ``root`` is missing or holds no FLAC file in the layout.
    """
    root = Path(root).expanduser().absolute()
    problems = Problems("librispeech")
    if not root.is_dir():
        raise CorpusError(root, "LibriSpeech root folder does not exist")
    if _is_subset_folder(root):
        subset_dirs = [root]
    else:
        subset_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subsets is not None:
        subset_dirs = [p for p in subset_dirs if p.name in set(subsets)]
        missing = set(subsets) - {p.name for p in subset_dirs}
        for name in sorted(missing):
            problems.add(root / name, "requested subset not found")

    candidates: list[dict] = []
    for subset_dir in subset_dirs:
        for file in sorted(subset_dir.rglob("*")):
            if not file.is_file() or file.name.startswith("."):
                continue
            parts = file.relative_to(subset_dir).parts
            is_flac = file.suffix.lower() == ".flac"
            is_trans = file.name.endswith(".trans.txt")
            if not (is_flac or is_trans):
                continue
            if len(parts) != 3:
                problems.add(file, f"outside the layout {LAYOUT}; skipped")
                continue
            speaker, chapter, name = parts
            if is_trans:
                if name != f"{speaker}-{chapter}.trans.txt":
                    problems.add(file, f"transcript file should be named {speaker}-{chapter}.trans.txt; skipped")
                continue
            match = _UTTERANCE.match(file.stem)
            if not match or (match["speaker"], match["chapter"]) != (speaker, chapter):
                problems.add(file, f"name is not {speaker}-{chapter}-<utt>.flac for its folder; skipped")
                continue
            candidates.append(
                {"file": file, "utterance": file.stem, "speaker": speaker, "chapter": chapter, "subset": subset_dir}
            )

    # Transcripts per chapter folder, matched against the audio found there.
    by_chapter: dict[Path, list[dict]] = {}
    for row in candidates:
        by_chapter.setdefault(row["file"].parent, []).append(row)
    chapter_dirs = {p.parent for s in subset_dirs for p in s.glob("*/*/*.trans.txt")} | set(by_chapter)
    for chapter_dir in sorted(chapter_dirs):
        speaker, chapter = chapter_dir.parent.name, chapter_dir.name
        rows = by_chapter.get(chapter_dir, [])
        transcript_file = chapter_dir / f"{speaker}-{chapter}.trans.txt"
        has_transcripts = transcript_file.is_file()
        if has_transcripts:
            texts = _read_transcripts(transcript_file, speaker, chapter, problems)
        else:
            problems.add(transcript_file, f"transcript file missing; {len(rows)} utterances kept without text")
            texts = {}
        audio_ids = {row["utterance"] for row in rows}
        for key in sorted(set(texts) - audio_ids):
            problems.add(chapter_dir / f"{key}.flac", "transcribed utterance has no audio file")
        for row in rows:
            row["transcript"] = texts.get(row["utterance"], "")
            if has_transcripts and row["utterance"] not in texts:
                problems.add(row["file"], f"no line in {transcript_file.name}; kept without text")

    if not candidates:
        raise CorpusError(root, f"no LibriSpeech audio found; expected {LAYOUT}")
    infos = probe([row["file"] for row in candidates], problems, progress=progress)
    out = []
    for row, info in zip(candidates, infos):
        if info is None:
            continue
        out.append(
            {
                "file": str(row["file"]),
                "utterance": row["utterance"],
                "speaker": row["speaker"],
                "session": f"{row['speaker']}-{row['chapter']}",
                "duration": info.duration,
                "subset": row["subset"].name,
                "chapter": row["chapter"],
                "transcript": row["transcript"],
            }
        )
    return finish(
        out,
        problems,
        root=root,
        extra_columns=("subset", "chapter", "transcript"),
        ratios=ratios,
        seed=seed,
        split_file=split_file,
    )

