"""Corpora with time-continuous arousal/valence annotations (our generic format).

RECOLA, SEWA and similar corpora are converted into this layout (recipe in
the README)::

    <root>/metadata.csv                  recording, speaker[, split][, any extra column]
    <root>/audio/<recording>.wav         (.flac, .ogg, .opus and .m4a are read too)
    <root>/annotations/<recording>.csv   time, arousal, valence[, arousal_r1, valence_r1, ...][, extras]

Annotation files hold one row per label frame on a fixed grid: ``time`` in
seconds, strictly increasing with a constant step; ``arousal`` and
``valence`` are the gold standard; ``arousal_r<k>`` / ``valence_r<k>`` are
optional per-rater traces; any other column (e.g. ``arousal_latent`` in the
synthetic corpus) is carried along unchecked. Each recording is one session.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..audio import AUDIO_SUFFIXES
from ..fileio import atomic_write
from ..timing import exact_rate
from .base import COLUMNS, CorpusError, Problems, finish, inside, probe
from .csvfiles import check_separator, read_csv
from .splits import SPLITS

__all__ = [
    "AnnotationError",
    "ANNOTATION_COLUMNS",
    "RATER_COLUMN",
    "read_annotation",
    "check_annotation",
    "write_annotation",
    "scan",
]

ANNOTATION_COLUMNS: tuple[str, str, str] = ("time", "arousal", "valence")
"""Columns every annotation file has, first and in this order."""

RATER_COLUMN = re.compile(r"^(arousal|valence)_r\d+$")
"""Per-rater columns: ``arousal_r1``, ``valence_r2``, ..."""

_AUDIO_ORDER = (".wav", *sorted(AUDIO_SUFFIXES - {".wav"}))
_RATE_TOLERANCE = 0.01  # a step may differ from the median step by 1 % (CSV rounding)
_END_TOLERANCE = 1.0  # seconds an annotation may end past or before its audio before it is reported


class AnnotationError(CorpusError):
    """An annotation file that cannot be used; ``str(err)`` is ``"<path>: <reason>"``."""


def _line(index: int) -> int:
    return int(index) + 2  # 1-based, after the header line


def check_annotation(frame: pd.DataFrame, path: str | os.PathLike = "<annotation>") -> pd.DataFrame:
    """Validate an annotation table and return it normalised (float columns, standard order).

    Args:
        frame: a table with ``time``, ``arousal``, ``valence`` (+ raters, extras).
        path: named in error messages.

    Returns:
        A copy: ``time, arousal, valence`` first, then the other columns in
        their order; ``attrs["rate_hz"]`` holds the frame rate.

    Raises:
        AnnotationError: missing columns, non-numeric or NaN labels, fewer
            than two frames, time not strictly increasing or not on a fixed grid.
    """
    frame = frame.copy()
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in ANNOTATION_COLUMNS if c not in frame.columns]
    if missing:
        raise AnnotationError(
            path, f"missing column(s) {missing}; expected {', '.join(ANNOTATION_COLUMNS)} (found {list(frame.columns)})"
        )
    duplicated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicated:
        raise AnnotationError(path, f"duplicate column(s) {duplicated}")
    labels = [*ANNOTATION_COLUMNS, *(c for c in frame.columns if RATER_COLUMN.match(c))]
    for column in labels:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            index = int(np.flatnonzero(bad.to_numpy())[0])
            raise AnnotationError(
                path, f"column {column!r} line {_line(index)}: {frame[column].iat[index]!r} is not a number"
            )
        values = values.astype(float)
        nan = ~np.isfinite(values.to_numpy())
        if nan.any():
            index = int(np.flatnonzero(nan)[0])
            raise AnnotationError(
                path, f"NaN or infinite value in column {column!r} at line {_line(index)} ({int(nan.sum())} in all)"
            )
        frame[column] = values
    if len(frame) < 2:
        raise AnnotationError(path, f"{len(frame)} frame(s); at least 2 are needed to know the rate")
    time = frame["time"].to_numpy()
    if time[0] < 0:
        raise AnnotationError(path, f"negative time {time[0]:g} s at line {_line(0)}")
    step = np.diff(time)
    if (step <= 0).any():
        index = int(np.flatnonzero(step <= 0)[0]) + 1
        raise AnnotationError(
            path,
            f"time is not strictly increasing at line {_line(index)} ({time[index]:g} s after {time[index - 1]:g} s)",
        )
    median = float(np.median(step))
    off = np.abs(step - median) > _RATE_TOLERANCE * median
    if off.any():
        index = int(np.flatnonzero(off)[0]) + 1
        raise AnnotationError(
            path,
            f"time is not on a fixed grid: step {step[index - 1]:g} s at line {_line(index)}, "
            f"while the median step is {median:g} s",
        )
    order = [*ANNOTATION_COLUMNS, *(c for c in frame.columns if c not in ANNOTATION_COLUMNS)]
    frame = frame[order].reset_index(drop=True)
    frame.attrs["rate_hz"] = exact_rate(median)
    return frame


def read_annotation(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate one annotation CSV.

    Args:
        path: ``<root>/annotations/<recording>.csv``.

    Returns:
        ``time`` (s), ``arousal``, ``valence`` and any rater / extra columns;
        ``attrs["rate_hz"]`` is the frame rate, ``attrs["path"]`` the file.

    Raises:
        AnnotationError: missing or unreadable file (a ``;``- or tab-separated
            file is named as such), or any problem listed in :func:`check_annotation`.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(path, "annotation file does not exist")
    frame = read_csv(path, AnnotationError, skipinitialspace=True)
    check_separator(path, frame, ANNOTATION_COLUMNS, AnnotationError)
    frame = check_annotation(frame, path)
    frame.attrs["path"] = str(path)
    return frame


def write_annotation(path: str | os.PathLike, frame: pd.DataFrame) -> Path:
    """Validate an annotation table and write it as CSV, atomically.

    Args:
        path: target file (parents are created).
        frame: ``time, arousal, valence`` (+ raters, extras) on a fixed grid.

    Returns:
        The path written.

    Raises:
        AnnotationError: the table breaks the format (nothing is written).
    """
    path = Path(path)
    checked = check_annotation(frame, path)
    with atomic_write(path) as temporary:
        checked.to_csv(temporary, index=False, float_format="%.9g")
    return path


def _read_metadata(path: Path) -> pd.DataFrame:
    meta = read_csv(path, CorpusError, dtype=str, keep_default_na=False, skipinitialspace=True)
    check_separator(path, meta, ("recording", "speaker"), CorpusError)
    missing = [c for c in ("recording", "speaker") if c not in meta.columns]
    if missing:
        raise CorpusError(path, f"missing column(s) {missing}; expected recording, speaker[, split]")
    return meta.apply(lambda column: column.str.strip())


def scan(
    root: str | os.PathLike,
    *,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    split_file: str | os.PathLike | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Scan an annotated corpus into a corpus table.

    Splits come from the split file if given, else from ``metadata.csv``'s
    ``split`` column where filled in, else are assigned by speaker (seeded).

    Args:
        root: the corpus folder (``metadata.csv``, ``audio/``, ``annotations/``).
        ratios, seed, split_file: see :func:`~emotools.corpora.splits.assign_speaker_splits`.
        progress: show a progress bar while reading headers and annotations.

    Returns:
        The corpus table plus ``annotation`` (CSV path), ``label_rate`` (Hz)
        and any extra metadata columns. ``utterance`` and ``session`` are the
        recording name.

    Raises:
        CorpusError: ``root`` is missing, ``metadata.csv`` is malformed, or
            no recording is usable.
    """
    root = Path(root).expanduser().absolute()
    problems = Problems("annotated")
    if not root.is_dir():
        raise CorpusError(root, "annotated corpus root folder does not exist")
    audio_dir, annotation_dir, metadata_file = root / "audio", root / "annotations", root / "metadata.csv"
    found_audio = [
        (f.relative_to(audio_dir).with_suffix("").as_posix(), f)
        for f in sorted(audio_dir.rglob("*"))
        if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES and not f.name.startswith(".")
    ] if audio_dir.is_dir() else []
    found_annotations = [
        (f.relative_to(annotation_dir).with_suffix("").as_posix(), f)
        for f in sorted(annotation_dir.rglob("*.csv"))
        if f.is_file() and not f.name.startswith(".")
    ] if annotation_dir.is_dir() else []

    if metadata_file.is_file():
        meta = _read_metadata(metadata_file)
    else:
        problems.add(metadata_file, "metadata.csv missing: each recording is taken as its own speaker")
        names = sorted({name for name, _ in found_audio + found_annotations})
        meta = pd.DataFrame({"recording": names, "speaker": names})
    extras = [c for c in meta.columns if c not in ("recording", "speaker", "split")
              and c not in COLUMNS and c not in ("annotation", "label_rate")]

    candidates: list[dict] = []
    listed: set[str] = set()
    given_splits: dict[str, str] = {}
    for index, record in meta.iterrows():
        where = f"{metadata_file} line {_line(index)}"
        name, speaker = record["recording"], record["speaker"]
        if not name or not speaker:
            problems.add(where, "empty recording or speaker; row skipped")
            continue
        if name in listed:
            problems.add(where, f"recording {name!r} listed again; the first row is kept")
            continue
        listed.add(name)
        audio_base = inside(audio_dir, name)
        annotation = inside(annotation_dir, f"{name}.csv")
        if audio_base is None or annotation is None:
            problems.add(where, f"recording name {name!r} points outside the corpus folder; skipped")
            continue
        audio = next((audio_base.with_name(audio_base.name + s) for s in _AUDIO_ORDER
                      if audio_base.with_name(audio_base.name + s).is_file()), None)
        has_annotation = annotation.is_file()
        if audio is None and not has_annotation:
            problems.add(where, f"recording {name!r} has neither audio nor annotation; skipped")
            continue
        if audio is None:
            problems.add(annotation, f"annotation without audio (no {audio_base}.wav); skipped")
            continue
        if not has_annotation:
            problems.add(audio, f"audio without annotation (no {annotation}); skipped")
            continue
        split = record.get("split", "") if "split" in meta.columns else ""
        if split:
            if split not in SPLITS:
                problems.add(where, f"unknown split {split!r} (expected {', '.join(SPLITS)}); assigned by speaker")
            elif given_splits.setdefault(speaker, split) != split:
                problems.add(
                    where,
                    f"speaker {speaker!r} is given splits {given_splits[speaker]!r} and {split!r}; "
                    f"all their recordings go to {given_splits[speaker]!r} (speaker independence)",
                )
        candidates.append({"name": name, "speaker": speaker, "audio": audio, "annotation": annotation,
                           **{c: record[c] for c in extras}})

    for name, file in found_audio:
        if name not in listed:
            problems.add(file, "audio not listed in metadata.csv; skipped")
    for name, file in found_annotations:
        if name not in listed:
            problems.add(file, "annotation not listed in metadata.csv; skipped")
    if not candidates:
        raise CorpusError(root, "no usable recording; expected metadata.csv, audio/<recording>.wav and "
                                "annotations/<recording>.csv")

    infos = probe([c["audio"] for c in candidates], problems, progress=progress)
    rows = []
    for candidate, info in zip(candidates, infos):
        if info is None:
            continue
        try:
            labels = read_annotation(candidate["annotation"])
        except AnnotationError as error:
            problems.add(error.path, f"{error.reason}; recording skipped")
            continue
        end = float(labels["time"].iat[-1])
        if end > info.duration + _END_TOLERANCE:
            problems.add(candidate["annotation"],
                         f"annotation runs to {end:g} s but the audio lasts {info.duration:g} s; kept")
        elif end < info.duration - _END_TOLERANCE:
            problems.add(candidate["annotation"],
                         f"annotation ends at {end:g} s but the audio lasts {info.duration:g} s; "
                         "kept (the rest of the audio is unlabelled)")
        rows.append({
            "file": str(candidate["audio"]),
            "utterance": candidate["name"],
            "speaker": candidate["speaker"],
            "session": candidate["name"],
            "duration": info.duration,
            "annotation": str(candidate["annotation"]),
            "label_rate": float(labels.attrs["rate_hz"]),
            **{c: candidate[c] for c in extras},
        })
    return finish(
        rows,
        problems,
        root=root,
        extra_columns=("annotation", "label_rate", *extras),
        ratios=ratios,
        seed=seed,
        split_file=split_file,
        fixed_splits=given_splits,
    )
