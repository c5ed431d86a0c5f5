"""Agreement: between raters, and of the gold standard with its noise-free ceiling."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..metrics import ccc
from .annotation import TARGETS, LabelError

# --------------------------------------------------------------------------- agreement


def _raters_of(frame: pd.DataFrame, target: str) -> list[str]:
    prefix = f"{target}_r"
    return sorted((c for c in frame.columns if c.startswith(prefix) and c[len(prefix):].isdigit()),
                  key=lambda c: int(c[len(prefix):]))


def rater_agreement(frame: pd.DataFrame, target: str) -> float:
    """Mean pairwise CCC between the rater columns of one recording (NaN with < 2 raters)."""
    columns = _raters_of(frame, target)
    pairs = [ccc(frame[a], frame[b]) for a, b in itertools.combinations(columns, 2)]
    return float(np.mean(pairs)) if pairs else float("nan")


def ceiling_ccc(frame: pd.DataFrame, target: str) -> float:
    """CCC of the gold standard against the ceiling reference: the annotation ceiling."""
    column = f"{target}_ceiling"
    if column not in frame.columns:
        raise LabelError(target, f"frame has no {column!r} column (only simulated annotations do)")
    return ccc(frame[target], frame[column])


def agreement(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Inter-rater agreement and annotation ceiling, per recording and target.

    Args:
        frames: utterance -> label frame with rater and ceiling columns.

    Returns:
        One row per (utterance, target): ``raters``, ``rater_ccc`` (mean
        pairwise), ``gold_vs_ceiling``, ``gold_vs_latent`` (CCC); plus a row per
        target with utterance ``"(all)"`` over all frames concatenated.
    """
    rows = []
    for target in TARGETS:
        for utterance, frame in frames.items():
            rows.append(_agreement_row(utterance, target, frame))
        if frames:
            rows.append(_agreement_row("(all)", target, pd.concat(list(frames.values()), ignore_index=True)))
    columns = ["utterance", "target", "raters", "rater_ccc", "gold_vs_ceiling", "gold_vs_latent"]
    return pd.DataFrame(rows, columns=columns)


def _agreement_row(utterance: str, target: str, frame: pd.DataFrame) -> dict[str, Any]:
    latent = f"{target}_latent"
    return {
        "utterance": utterance,
        "target": target,
        "raters": len(_raters_of(frame, target)),
        "rater_ccc": rater_agreement(frame, target),
        "gold_vs_ceiling": ceiling_ccc(frame, target) if f"{target}_ceiling" in frame.columns else float("nan"),
        "gold_vs_latent": ccc(frame[target], frame[latent]) if latent in frame.columns else float("nan"),
    }
