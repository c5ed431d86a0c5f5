"""The corpus's realism check: per eGeMAPS functional, its spread and per-speaker variety, and the degenerate ones.

No real speech is available to compare with here (nothing is downloaded), so
this is a check for *degeneracy*, not a realism score: a functional that is
constant or nearly constant within a speaker, while it varies in real
speech, lets a model learn "the synthesizer" instead of the voice. For each
eGeMAPSv02 functional, computed per unit (2-5 words, about 1 s), the check
reports the corpus's inter-quartile range, the within-speaker IQR (median
and smallest over speakers), the between-speaker spread (IQR of the speaker
medians), and whether the feature is degenerate: nearly constant within at
least one speaker. Every eGeMAPS functional varies within a real speaker's
utterances, so every one flagged here is a defect of the corpus.

>>> import pandas as pd
>>> units = pd.DataFrame({"speaker": ["a"] * 4 + ["b"] * 4, "x": [1, 2, 3, 4, 5, 6, 7, 8],
...                       "flat": [1.0] * 4 + [2.0, 3.0, 4.0, 5.0]})
>>> degenerate_features(realism_table(units))
['flat']
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..audio import SAMPLE_RATE, read_audio
from ..errors import EmotoolsError
from ..features import FeatureSpec, extract_signal

logger = logging.getLogger("emotools.synth")

FUNCTIONALS = FeatureSpec(level="functionals")
"""eGeMAPSv02 functionals of one signal (one row per unit)."""

RTOL: float = 0.05
"""A speaker's IQR below this share of the corpus IQR is "nearly constant within the speaker"."""

UNIFORM: float = 0.25
"""Speaker medians spread less than this share of the within-speaker IQR: "the same for every speaker"."""

NOT_FEATURES: tuple[str, ...] = ("speaker", "recording", "unit", "start", "end")


def unit_functionals(audio: np.ndarray, units: pd.DataFrame, *, sr: int = SAMPLE_RATE,
                     min_s: float = 0.3) -> pd.DataFrame:
    """eGeMAPS functionals of every unit of a session (rows of ``units`` with ``start``/``end`` in seconds).

    Units shorter than ``min_s`` are skipped (too short for stable functionals).
    """
    rows = []
    for unit in units.itertuples(index=False):
        lo, hi = int(round(unit.start * sr)), min(audio.size, int(round(unit.end * sr)))
        if (hi - lo) < min_s * sr:
            continue
        features = extract_signal(audio[lo:hi], sr, FUNCTIONALS).drop(columns=["start", "end"], errors="ignore")
        rows.append({"unit": int(unit.unit), "start": unit.start, "end": unit.end, **features.iloc[0].to_dict()})
    return pd.DataFrame(rows)


def merge_units(units: pd.DataFrame, seconds: float) -> pd.DataFrame:
    """Consecutive units joined into segments of at least ``seconds`` (pauses inside), for longer functionals.

    Per-unit functionals vary mostly with the words; over several seconds the
    words average out and what remains is the voice, the room and the emotion.
    """
    rows, first = [], None
    for unit in units.itertuples(index=False):
        first = unit if first is None else first
        if unit.end - first.start >= seconds:
            rows.append({"unit": int(first.unit), "start": first.start, "end": unit.end})
            first = None
    return pd.DataFrame(rows, columns=["unit", "start", "end"])


def corpus_functionals(root: str | os.PathLike, *, recordings: Sequence[str] | None = None,
                       segment_s: float | None = None) -> pd.DataFrame:
    """Unit (or :func:`merge_units` segment) functionals of a corpus on disk (``metadata.csv``, ``audio/``, ``units/``).

    A recording that cannot be read is named in one warning and left out;
    the rest go on. ``df.attrs["failed"]`` lists them.
    """
    root = Path(root)
    metadata = pd.read_csv(root / "metadata.csv")
    if recordings is not None:
        metadata = metadata[metadata["recording"].isin(list(recordings))]
    tables, failed = [], []
    for row in metadata.itertuples(index=False):
        try:
            audio = read_audio(root / "audio" / f"{row.recording}.wav", sr=SAMPLE_RATE)
            units = pd.read_csv(root / "units" / f"{row.recording}.csv")
            table = unit_functionals(audio, units if segment_s is None else merge_units(units, segment_s))
        except (EmotoolsError, OSError, ValueError, KeyError) as error:
            logger.warning("%s: left out of the realism check (%s)", row.recording, error)
            failed.append(f"{row.recording}: {error}")
            continue
        tables.append(table.assign(speaker=row.speaker, recording=row.recording))
    out = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    out.attrs["failed"] = failed
    return out


def _iqr(x: pd.Series | np.ndarray) -> float:
    q1, q3 = np.nanpercentile(np.asarray(x, dtype=float), [25, 75])
    return float(q3 - q1)


def realism_table(features: pd.DataFrame, *, speaker: str = "speaker", rtol: float = RTOL,
                  uniform: float = UNIFORM) -> pd.DataFrame:
    """Per feature: corpus IQR, within-speaker IQR, between-speaker spread, and whether it is degenerate.

    A feature is nearly constant within a speaker when that speaker's IQR is
    at most ``rtol`` times the corpus IQR, or at most 1e-6 of its magnitude
    (this catches a feature that is constant everywhere); it is
    ``degenerate`` when that holds for at least one speaker. Separately,
    ``uniform`` marks a feature whose speaker medians spread (IQR) less than
    ``uniform`` times its within-speaker IQR: every voice and recording
    looks the same in it (real voices and rooms differ in most functionals).

    Args:
        features: one row per unit, a ``speaker`` column and numeric feature columns.
        speaker: the speaker column.
        rtol, uniform: see above.

    Returns:
        One row per feature: ``feature, iqr, within_iqr`` (median over
        speakers), ``within_iqr_min``, ``between_iqr`` (IQR of the speaker
        medians), ``within_share`` (``within_iqr / iqr``), ``flat_speakers``,
        ``degenerate``, ``between_share`` (``between_iqr / within_iqr``),
        ``uniform``; degenerate features first, then by ``within_share``.
    """
    columns = [c for c in features.columns if c not in NOT_FEATURES and c != speaker
               and pd.api.types.is_numeric_dtype(features[c])]
    groups = features.groupby(speaker)
    rows = []
    for column in columns:
        corpus_iqr = _iqr(features[column])
        within = groups[column].agg(_iqr)
        medians = groups[column].median()
        flat = within <= np.maximum(rtol * corpus_iqr, 1e-6 * medians.abs())
        rows.append({
            "feature": column, "iqr": corpus_iqr, "within_iqr": float(within.median()),
            "within_iqr_min": float(within.min()), "between_iqr": _iqr(medians),
            "within_share": float(within.median() / corpus_iqr) if corpus_iqr > 0 else 0.0,
            "flat_speakers": int(flat.sum()), "degenerate": bool(flat.any()),
        })
        between_share = rows[-1]["between_iqr"] / rows[-1]["within_iqr"] if rows[-1]["within_iqr"] > 0 else 0.0
        rows[-1] |= {"between_share": float(between_share), "uniform": bool(between_share < uniform)}
    table = pd.DataFrame(rows)
    return table.sort_values(["degenerate", "within_share"], ascending=[False, True], ignore_index=True)


def degenerate_features(table: pd.DataFrame) -> list[str]:
    """The features :func:`realism_table` marked degenerate."""
    return table.loc[table["degenerate"], "feature"].tolist()


def realism_markdown(table: pd.DataFrame, *, title: str = "corpus", rows: int = 10) -> str:
    """A short markdown summary: the counts, the degenerate features, the least varied ones."""
    bad = degenerate_features(table)
    uniform = table.loc[table["uniform"], "feature"].tolist()
    lines = [
        f"**Realism check ({title})**: {len(table)} eGeMAPS functionals per unit; "
        f"{len(bad)} degenerate (nearly constant within at least one speaker), "
        f"{len(uniform)} the same for every speaker (speaker medians spread < {UNIFORM:g} x within-speaker IQR). "
        "No real speech is compared here: this checks degeneracy, not realism.",
        "",
        "degenerate: " + (", ".join(f"`{name}`" for name in bad) if bad else "none"),
        "",
        "same for every speaker: " + (", ".join(f"`{name}`" for name in uniform) if uniform else "none"),
        "",
        "| feature | corpus IQR | within-speaker IQR (median) | between-speaker IQR | within / corpus "
        "| flat speakers |",
        "|---|---|---|---|---|---|",
    ]
    for row in table.head(rows).itertuples(index=False):
        lines.append(f"| {row.feature} | {row.iqr:.4g} | {row.within_iqr:.4g} | {row.between_iqr:.4g} | "
                     f"{row.within_share:.2f} | {row.flat_speakers} |")
    return "\n".join(lines)


def realism_check(features: pd.DataFrame | str | os.PathLike, *, title: str = "corpus",
                  rtol: float = RTOL) -> tuple[pd.DataFrame, str]:
    """The realism table and its markdown summary, from unit functionals or a corpus root."""
    if not isinstance(features, pd.DataFrame):
        features = corpus_functionals(features)
    table = realism_table(features, rtol=rtol)
    return table, realism_markdown(table, title=title)


def sessions_functionals(sessions: Iterable[object], *, segment_s: float | None = None) -> pd.DataFrame:
    """Unit (or :func:`merge_units` segment) functionals of rendered :class:`~emotools.synth.Session` objects."""
    tables = [unit_functionals(s.audio, s.units if segment_s is None else merge_units(s.units, segment_s))
              .assign(speaker=s.speaker.name, recording=s.recording) for s in sessions]
    return pd.concat(tables, ignore_index=True)


def compare_voices(*, speakers: int = 8, minutes: float = 0.75, seed: int = 0,
                   segment_s: float = 4.0) -> pd.DataFrame:
    """:func:`realism_table` of v1's voices (realism off) and v2's (every voice knob on), per unit and per segment.

    The same speakers, sessions and seed render twice (session 1 of the
    first ``speakers``); one table with the columns ``voices`` (``v1``/``v2``)
    and ``level`` (``unit``/``segment``) before :func:`realism_table`'s.
    """
    from .channel import VoiceRealism
    from .session import render_session

    tables = []
    for voices, realism in (("v1", VoiceRealism.off()), ("v2", VoiceRealism.full())):
        sessions = [render_session(i, 0, minutes=minutes, seed=seed, realism=realism) for i in range(speakers)]
        for level, segment in (("unit", None), ("segment", segment_s)):
            features = sessions_functionals(sessions, segment_s=segment)
            table = realism_table(features).assign(rows=len(features))
            tables.append(table.assign(voices=voices, level=level))
    out = pd.concat(tables, ignore_index=True)
    return out[["voices", "level", *[c for c in out.columns if c not in ("voices", "level")]]]


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (voices, level) of :func:`compare_voices`: rows, degenerate and uniform counts, median between/within."""
    return (table.groupby(["voices", "level"], sort=False)
            .agg(rows=("rows", "first"), features=("feature", "size"), degenerate=("degenerate", "sum"),
                 uniform=("uniform", "sum"), between_share_median=("between_share", "median"))
            .reset_index())


def cli(argv: Sequence[str] | None = None) -> int:
    """``python -m emotools.synth.realism [--speakers N] [--minutes M] [--out PREFIX]``: v1 against v2 voices."""
    import argparse

    from .. import paths
    from ..fileio import write_text

    parser = argparse.ArgumentParser(prog="python -m emotools.synth.realism",
                                     description="The realism check of the built-in corpus's voices: v1 (today's) "
                                                 "against v2 (every voice knob on), on the same small render.")
    parser.add_argument("--speakers", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=0.75)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="prefix of the .csv (every feature) and _summary.csv files "
                             "(default: results/corpus_realism)")
    args = parser.parse_args(argv)
    prefix = args.out if args.out is not None else paths.results_dir() / "corpus_realism"
    table = compare_voices(speakers=args.speakers, minutes=args.minutes, seed=args.seed)
    write_text(f"{prefix}.csv", table.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    write_text(f"{prefix}_summary.csv", summary(table).to_csv(index=False, float_format="%.4f", lineterminator="\n"))
    print(summary(table).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
