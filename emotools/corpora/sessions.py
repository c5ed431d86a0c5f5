"""Long sessions from short utterances.

LibriSpeech and VoxCeleb utterances last seconds; temporal models need
minutes. :func:`chain_sessions` strings a speaker's consecutive utterances
(chapter / video order, then utterance order) into chained sessions of about
``target_minutes``, and records where each utterance starts and ends inside
its chain; :func:`join_segments` produces a chain's audio so that those
times hold to the sample; :func:`write_sessions` renders every chain to a
file and returns a corpus table of the long recordings.

Chaining rule: utterances are appended until the chain reaches the target;
a speaker's last chain, if shorter than ``min_fraction * target``, is merged
into the previous one. A chain never mixes speakers or splits.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ..audio import SAMPLE_RATE, AudioError, read_audio, write_audio
from ..fileio import write_text
from ..progress import tqdm
from .base import Problems, natural_key, summarize

__all__ = ["chain_sessions", "join_segments", "write_sessions"]

logger = logging.getLogger("emotools.corpora")

_NEEDED = ("file", "utterance", "speaker", "session", "duration")
_DRIFT_WARNING_S = 0.01  # decoded length vs header length before a warning is logged


def chain_sessions(
    table: pd.DataFrame,
    *,
    target_minutes: float = 3.0,
    within: Literal["speaker", "session"] = "speaker",
    gap: float = 0.0,
    min_fraction: float = 0.5,
) -> pd.DataFrame:
    """Chain each speaker's consecutive utterances into sessions of about ``target_minutes``.

    Args:
        table: a corpus table (``file, utterance, speaker, session, duration``; ``split`` kept).
        target_minutes: a chain is closed once it reaches this length.
        within: ``"speaker"`` chains across a speaker's chapters / videos (in
            order); ``"session"`` never crosses a chapter / video.
        gap: seconds of silence between consecutive utterances.
        min_fraction: a group's last chain shorter than this fraction of the
            target joins the chain before it.

    Returns:
        One row per utterance, in chain order, with the input columns plus
        ``chain`` (id ``<speaker or session>#<k>``), ``position`` (0-based order
        in the chain), ``start`` and ``end`` (seconds inside the chain) and
        ``chain_duration``.

    Raises:
        ValueError: missing columns, bad options, or a duration that is not a
            positive number.

    >>> t = pd.DataFrame({"file": ["a", "b", "c"], "utterance": ["u1", "u2", "u3"], "speaker": "s",
    ...                   "session": "c1", "duration": [60.0, 60.0, 30.0]})
    >>> chain_sessions(t, target_minutes=2)[["chain", "start", "end"]].values.tolist()
    [['s#000', 0.0, 60.0], ['s#000', 60.0, 120.0], ['s#000', 120.0, 150.0]]
    """
    missing = [c for c in _NEEDED if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; expected a corpus table")
    if not target_minutes > 0:
        raise ValueError(f"target_minutes must be positive, got {target_minutes!r}")
    if within not in ("speaker", "session"):
        raise ValueError(f"within must be 'speaker' or 'session', got {within!r}")
    if not gap >= 0 or not 0 <= min_fraction <= 1:
        raise ValueError(f"need gap >= 0 and 0 <= min_fraction <= 1, got gap={gap!r}, min_fraction={min_fraction!r}")
    durations = pd.to_numeric(table["duration"], errors="coerce").to_numpy(dtype=float)
    bad = ~(np.isfinite(durations) & (durations > 0))
    if bad.any():
        names = table["utterance"].to_numpy()[bad][:5].tolist()
        raise ValueError(f"{int(bad.sum())} utterance(s) without a positive duration, e.g. {names}")

    target = 60.0 * float(target_minutes)
    keys = ["speaker"] if within == "speaker" else ["speaker", "session"]
    if "split" in table.columns:
        keys = ["split", *keys]
    frames = []
    numbers: dict[str, int] = {}  # next chain number per owner (unique ids even across splits)
    for group_key, group in table.groupby(keys, sort=False):
        group_key = group_key if isinstance(group_key, tuple) else (group_key,)
        order = sorted(range(len(group)), key=lambda i: (natural_key(group["session"].iat[i]),
                                                         natural_key(group["utterance"].iat[i])))
        group = group.iloc[order]
        lengths = group["duration"].to_numpy(dtype=float)
        chains: list[list[int]] = [[]]
        total = 0.0
        for i, length in enumerate(lengths):
            if total >= target:
                chains.append([])
                total = 0.0
            chains[-1].append(i)
            total += length + (gap if len(chains[-1]) > 1 else 0.0)
        if len(chains) > 1 and lengths[chains[-1]].sum() < min_fraction * target:
            chains[-2].extend(chains.pop())
        owner = str(group_key[-1])
        for members in chains:
            k = numbers[owner] = numbers.get(owner, -1) + 1
            part = group.iloc[members].copy()
            ends = np.cumsum(lengths[members] + gap) - gap
            part["chain"] = f"{owner}#{k:03d}"
            part["position"] = np.arange(len(members))
            part["start"] = ends - lengths[members]
            part["end"] = ends
            part["chain_duration"] = float(ends[-1])
            frames.append(part)
    if not frames:
        out = table.iloc[:0].copy()
        for column in ("chain", "position", "start", "end", "chain_duration"):
            out[column] = pd.Series(dtype=float if column != "chain" else str)
        return out
    out = pd.concat(frames, ignore_index=True)
    out["position"] = out["position"].astype(int)
    return out


def join_segments(segments: pd.DataFrame, *, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The audio of one chain: its utterances at their ``start`` / ``end`` times.

    Each utterance occupies samples ``round(start * sr)`` to ``round(end * sr)``
    exactly (a decoded length that differs from the header's by a sample or
    two is padded or trimmed), so every timestamp of :func:`chain_sessions`
    holds in the rendered signal; gaps are silence.

    Args:
        segments: the rows of one chain from :func:`chain_sessions`.
        sr: output sample rate.

    Returns:
        float32 mono signal of ``round(chain_duration * sr)`` samples.

    Raises:
        ValueError: rows from several chains, or none.
        AudioError: an utterance cannot be decoded (names the file).
    """
    if segments.empty or segments["chain"].nunique() != 1:
        raise ValueError("join_segments needs the rows of exactly one chain")
    segments = segments.sort_values("position")
    total = int(round(float(segments["end"].max()) * sr))
    signal = np.zeros(total, dtype=np.float32)
    for file, start, end in zip(segments["file"], segments["start"], segments["end"]):
        a, b = int(round(start * sr)), int(round(end * sr))
        audio = read_audio(file, sr=sr)
        if abs(len(audio) - (b - a)) > _DRIFT_WARNING_S * sr:
            logger.warning("%s: decoded %.3f s, header says %.3f s; fitted to the header", file,
                           len(audio) / sr, (b - a) / sr)
        n = min(len(audio), b - a)
        signal[a : a + n] = audio[:n]
    return signal


def write_sessions(
    chains: pd.DataFrame,
    out: str | os.PathLike,
    *,
    sr: int = SAMPLE_RATE,
    suffix: Literal[".flac", ".wav"] = ".flac",
    progress: bool = True,
) -> pd.DataFrame:
    """Render every chain to ``<out>/<speaker>/<chain>.flac`` and table them as a corpus.

    A chain whose audio fails to decode is skipped and listed in
    ``attrs["problems"]``; the rest are written. The chain table itself is
    saved as ``<out>/segments.csv`` (utterance start/end per chain).

    Args:
        chains: the output of :func:`chain_sessions`.
        out: target folder.
        sr: sample rate of the rendered files.
        suffix: audio format.
        progress: show a progress bar.

    Returns:
        A corpus table, one row per chain (``utterance`` and ``session`` are
        the chain id) plus ``n_utterances``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    problems = Problems("sessions")
    rows = []
    groups = list(chains.groupby("chain", sort=False))
    for chain, segments in tqdm(groups, desc="sessions: render", unit="chain", disable=not progress, leave=False):
        first = segments.iloc[0]
        file = out / _safe_name(str(first["speaker"])) / f"{_safe_name(str(chain))}{suffix}"
        try:
            signal = join_segments(segments, sr=sr)
        except AudioError as error:
            problems.add(error.path, f"{error.reason}; chain {chain!r} skipped")
            continue
        write_audio(file, signal, sr)
        row = {"file": str(file), "utterance": chain, "speaker": first["speaker"], "session": chain,
               "duration": len(signal) / sr, "n_utterances": len(segments)}
        if "split" in segments.columns:
            row["split"] = first["split"]
        rows.append(row)
    write_text(out / "segments.csv", chains.to_csv(index=False))
    columns = ["file", "utterance", "speaker", "session", "duration", "split", "n_utterances"]
    table = pd.DataFrame(rows, columns=[c for c in columns if c != "split" or "split" in chains.columns])
    table.attrs["corpus"] = "sessions"
    table.attrs["root"] = str(out)
    table.attrs["problems"] = list(problems)
    if "split" in table.columns:
        logger.info("%s", summarize(table))
    return table


def _safe_name(text: str) -> str:
    """A file-name-safe version of an id (VoxCeleb ids contain ``/``)."""
    return "".join(c if c.isalnum() or c in "-_.#" else "_" for c in text).lstrip(".") or "_"
