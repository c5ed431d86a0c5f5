"""VoxCeleb1 and VoxCeleb2: celebrity speech cut from YouTube videos.

* VoxCeleb1: ``<root>/wav/<id>/<video>/<nnnnn>.wav`` (16 kHz WAV);
* VoxCeleb2: ``<root>/aac/<id>/<video>/<nnnnn>.m4a`` (AAC), also found as
  ``<root>/dev/aac/...`` and ``<root>/test/aac/...`` (the two archives
  extracted side by side); VoxCeleb1's ``dev/wav`` and ``test/wav`` are
  accepted the same way.

The session is the video (``<id>/<video>``): its numbered segments follow the
video's time order, which :mod:`emotools.corpora.sessions` uses to chain
them. Utterance ids are the standard ``<id>/<video>/<nnnnn>``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..audio import AUDIO_SUFFIXES
from .base import CorpusError, Problems, finish, probe

__all__ = ["scan_voxceleb1", "scan_voxceleb2", "scan"]

#: version -> (audio folder name, suffix)
_LAYOUTS: dict[int, tuple[str, str]] = {1: ("wav", ".wav"), 2: ("aac", ".m4a")}
_SUBSETS = ("", "dev", "test")


def scan(
    root: str | os.PathLike,
    *,
    version: int,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    split_file: str | os.PathLike | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Scan a VoxCeleb1 (``version=1``) or VoxCeleb2 (``version=2``) folder.

    Args:
        root: the folder holding ``wav/`` (VoxCeleb1) or ``aac/`` / ``dev/aac/`` /
            ``test/aac/`` (VoxCeleb2).
        version: 1 or 2.
        ratios, seed, split_file: speaker-independent splits, see
            :func:`~emotools.corpora.splits.assign_speaker_splits`.
        progress: show a progress bar while reading headers.

    Returns:
        The corpus table plus ``subset`` (``""``, ``"dev"`` or ``"test"``: the
        archive folder the file came from) and ``video``.

    Raises:
        CorpusError: ``root`` is missing or holds no audio in the layout.
        ValueError: ``version`` is not 1 or 2.
    """
    if version not in _LAYOUTS:
        raise ValueError(f"VoxCeleb version must be 1 or 2, got {version!r}")
    folder, suffix = _LAYOUTS[version]
    corpus = f"voxceleb{version}"
    layout = f"<root>/[dev/|test/]{folder}/<id>/<video>/<nnnnn>{suffix}"
    root = Path(root).expanduser().absolute()
    problems = Problems(corpus)
    if not root.is_dir():
        raise CorpusError(root, f"{corpus} root folder does not exist")

    candidates: list[dict] = []
    for subset in _SUBSETS:
        base = root / subset / folder if subset else root / folder
        if not base.is_dir():
            continue
        for file in sorted(base.rglob("*")):
            if not file.is_file() or file.name.startswith(".") or file.suffix.lower() not in AUDIO_SUFFIXES:
                continue
            parts = file.relative_to(base).parts
            if len(parts) != 3 or file.suffix.lower() != suffix:
                problems.add(file, f"outside the layout {layout}; skipped")
                continue
            speaker, video, _ = parts
            candidates.append({"file": file, "speaker": speaker, "video": video, "subset": subset})
    if not candidates:
        raise CorpusError(root, f"no {corpus} audio found; expected {layout}")

    infos = probe([row["file"] for row in candidates], problems, progress=progress)
    rows = [
        {
            "file": str(row["file"]),
            "utterance": f"{row['speaker']}/{row['video']}/{row['file'].stem}",
            "speaker": row["speaker"],
            "session": f"{row['speaker']}/{row['video']}",
            "duration": info.duration,
            "subset": row["subset"],
            "video": row["video"],
        }
        for row, info in zip(candidates, infos)
        if info is not None
    ]
    return finish(
        rows,
        problems,
        root=root,
        extra_columns=("subset", "video"),
        ratios=ratios,
        seed=seed,
        split_file=split_file,
    )


def scan_voxceleb1(root: str | os.PathLike, **options) -> pd.DataFrame:
    """Scan VoxCeleb1 (``<root>/wav/<id>/<video>/<nnnnn>.wav``); options as :func:`scan`."""
    return scan(root, version=1, **options)


def scan_voxceleb2(root: str | os.PathLike, **options) -> pd.DataFrame:
    """Scan VoxCeleb2 (``<root>/[dev/|test/]aac/<id>/<video>/<nnnnn>.m4a``); options as :func:`scan`."""
    return scan(root, version=2, **options)
