"""The notebooks' shared steps: load a corpus with features and labels, train the grid, save.

Each notebook reads *parameters, load, run, show, save*. The dataset
notebooks (``LibriSpeech``, ``VoxCeleb1``, ``VoxCeleb2``, mirroring the
original project's per-dataset notebooks) differ only in their corpus, and
``01_ground_truth`` and ``long_context`` share the built-in corpus; the
steps they have in common live here, so a notebook holds only what differs.
The *show* step is :mod:`emotools.plots`: this module draws nothing (nothing
but the notebooks imports ``plots``), and nothing in the package imports it.

The dataset notebooks::

    corpus = pipeline.load_sessions(DATASET, data_root=..., session_minutes=..., spec=FeatureSpec(...))
    label_sets = pipeline.dataset_labels(corpus, label_protocols, label_seed=...)
    grids = pipeline.train_grids(corpus, label_sets, notebook=NOTEBOOK, fit_options=FitOptions(...), ...)
    pipeline.save_dataset(grids, corpus, notebook=NOTEBOOK, note=...)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import corpora, experiments, labels, paths, predict, samples, sequences, stats, synth
from .corpora.sessions import chain_sessions, write_sessions
from .experiments import GridResult
from .features import FeatureError, FeatureSpec, FeatureStore, extract
from .labels import LabelError, LabelProtocol
from .training import FitOptions

__all__ = [
    "GroundTruth", "SessionCorpus", "DatasetGrids", "split_overview", "load_ground_truth", "load_sessions",
    "dataset_labels", "train_grids", "beside_original", "seed_control_intervals", "describe_seed_control", "save_best",
    "save_dataset",
]

#: Label protocols a dataset notebook can train on (corpora without emotion labels).
DATASET_PROTOCOLS: tuple[str, ...] = (LabelProtocol.SEED.value, LabelProtocol.PROXY.value)


def split_overview(table: pd.DataFrame, unit: str = "recordings") -> pd.DataFrame:
    """Speakers, ``unit`` (rows) and minutes of audio per split of a corpus table."""
    return table.groupby("split").agg(**{"speakers": ("speaker", "nunique"), unit: ("utterance", "size"),
                                         "minutes": ("duration", lambda d: round(d.sum() / 60, 1))})


# ---------------------------------------------------------------- the built-in corpus


@dataclass
class GroundTruth:
    """The built-in corpus with features, its raters' label frames and the labelled records."""

    corpus_size: str
    corpus_seed: int
    table: pd.DataFrame
    spec: FeatureSpec
    store: FeatureStore
    label_frames: dict[str, pd.DataFrame]
    records: list[sequences.SequenceRecord]


def load_ground_truth(corpus_size: str, corpus_seed: int, *, spec: FeatureSpec,
                      jobs: int | None = None) -> GroundTruth:
    """Render (once, cached) the built-in corpus, extract its features (cached) and align them with its labels.

    Args:
        corpus_size: the corpus preset (``smoke``, ``default``, ``full``).
        corpus_seed: seed of the rendered corpus and its raters.
        spec: the features.
        jobs: extraction processes (``None``: all cores).

    Raises:
        FeatureError: a recording's features failed (the built-in corpus has no bad files).
        SequenceError: a recording's features and labels could not be aligned.
    """
    table = corpora.scan("annotated", synth.ensure_corpus(corpus_size, corpus_seed))
    out = paths.data_dir() / "features" / f"ground_truth-{corpus_size}-seed{corpus_seed}-{spec.slug}"
    store = extract(table, spec, out=out, jobs=jobs)
    if not store.failures.empty:
        first = store.failures.iloc[0]
        raise FeatureError(first["file"], f"{len(store.failures)} recording(s) of the built-in corpus failed "
                                          f"extraction; this one: {first['reason']}")
    label_frames = labels.annotation_labels(table)
    records, failed = sequences.build_records(table, store.load, label_frames)
    if failed:
        raise sequences.SequenceError(failed[0]["id"], f"{len(failed)} recording(s) could not be aligned with their "
                                                       f"labels; this one: {failed[0]['reason']}")
    return GroundTruth(corpus_size, corpus_seed, table, spec, store, label_frames, records)


# --------------------------------------------------------------- the dataset notebooks


@dataclass
class SessionCorpus:
    """A corpus of short utterances chained into sessions of a few minutes, with their features."""

    dataset: str
    table: pd.DataFrame  # the scanned utterances
    chains: pd.DataFrame  # which utterances make each session
    sessions: pd.DataFrame  # the sessions, a corpus table of their own
    spec: FeatureSpec
    store: FeatureStore
    from_samples: bool  # the built-in samples, not a real copy of the corpus

    def summary(self) -> str:
        """The scan's summary and what extraction did."""
        done = {k: self.store.summary[k] for k in ("processed", "reused", "failed", "audio_seconds")}
        return f"{corpora.summarize(self.table)}\nfeatures: {done}"

    def usable(self) -> pd.DataFrame:
        """The sessions whose features were extracted."""
        return self.sessions[self.sessions["utterance"].isin(self.store.utterances)]


def load_sessions(dataset: str, *, data_root: str | os.PathLike = "", session_minutes: float, spec: FeatureSpec,
                  max_hours: float = 0.0, jobs: int | None = None) -> SessionCorpus:
    """Scan a corpus, chain each speaker's consecutive utterances into sessions, render and featurize them (cached).

    Args:
        dataset: corpus key known to :func:`emotools.corpora.scan` (``librispeech``, ...).
        data_root: the corpus root; empty: the built-in samples in its layout (rendered once).
        session_minutes: target length of a chained session.
        spec: the features.
        max_hours: use at most this many hours of audio, first speakers first (0: all).
        jobs: extraction processes (``None``: all cores).

    Returns:
        The sessions and their feature store; recordings that failed are in
        ``store.failures`` (the rest go on).
    """
    root = Path(data_root) if os.fspath(data_root) else samples.ensure_samples(dataset)
    table = corpora.scan(dataset, root)
    if max_hours > 0:
        table = corpora.limit_hours(table, max_hours)
    chains = chain_sessions(table, target_minutes=session_minutes)
    where = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:8]
    work = paths.data_dir() / "sessions" / f"{dataset}-{where}-{session_minutes:g}min"
    sessions = write_sessions(chains, work)
    store = extract(sessions, spec, out=work / f"features-{spec.slug}", jobs=jobs)
    return SessionCorpus(dataset, table, chains, sessions, spec, store, not os.fspath(data_root))


def dataset_labels(corpus: SessionCorpus, label_protocols: Sequence[str], *, label_seed: int
                   ) -> dict[str, dict[str, pd.DataFrame]]:
    """Label frames of every session under each label protocol (``seed`` and/or ``proxy``).

    ``seed`` is the original project's control (one ``U(0, 1)`` value per
    utterance, nothing to learn); ``proxy`` an acoustic proxy of arousal and
    valence through the simulated annotation model (learnable; not emotion).

    Raises:
        LabelError: an unknown label protocol, before any labelling.
    """
    unknown = [p for p in label_protocols if p not in DATASET_PROTOCOLS]
    if unknown:
        raise LabelError(", ".join(map(str, unknown)),
                         f"unknown label protocol(s): a dataset notebook uses {' and/or '.join(DATASET_PROTOCOLS)}")
    label_sets = {}
    for protocol in dict.fromkeys(label_protocols):
        if protocol == LabelProtocol.SEED:
            per_utterance = labels.seed_labels(corpus.table, seed=label_seed)
            label_sets[protocol] = labels.chain_labels(corpus.chains, per_utterance)
        else:
            label_sets[protocol] = labels.proxy_labels(corpus.sessions, corpus.store)
    return label_sets


@dataclass
class DatasetGrids:
    """One trained grid per label protocol, and the sessions that could not be made into records."""

    grids: dict[str, GridResult]
    failed: pd.DataFrame

    @property
    def results(self) -> pd.DataFrame:
        """Every grid's tidy results, one table (column ``label_protocol`` tells them apart)."""
        return pd.concat([g.results for g in self.grids.values()], ignore_index=True)


def train_grids(corpus: SessionCorpus, label_sets: Mapping[str, Mapping[str, pd.DataFrame]], *, notebook: str,
                architectures: Sequence[str], modes: Sequence[str], seeds: Sequence[int], fit_options: FitOptions,
                jobs: int | None = None) -> DatasetGrids:
    """Train every architecture under each label protocol (speaker-independent splits, cached per cell).

    Checkpoints go to ``results/checkpoints/<notebook>-<label protocol>``.
    """
    grids, failed = {}, []
    for protocol, frames in label_sets.items():
        records, bad = sequences.build_records(corpus.usable(), corpus.store.load, frames)
        failed += [dict(f, label_protocol=protocol) for f in bad]
        grids[protocol] = experiments.run_grid(
            records, dataset=corpus.dataset, label_protocol=protocol, architectures=architectures, modes=modes,
            seeds=seeds, fit_options=fit_options, jobs=jobs,
            run_dir=paths.results_dir() / "checkpoints" / f"{notebook}-{protocol}",
        )
    return DatasetGrids(grids, pd.DataFrame(failed))


#: The original project's published test figures for (nearly) every architecture: random labels, one vector per
#: utterance, a random utterance split, MSE loss. Its own protocol, not comparable with ours (issue 16 reruns it).
ORIGINAL = {"original (own protocol): CCC": "≈ 0 or NaN", "original (own protocol): MSE": "≈ 0.086"}


def beside_original(results: pd.DataFrame) -> pd.DataFrame:
    """Test CCC and MSE per architecture and label protocol (raw predictions), beside the original's numbers."""
    test = results[(results["split"] == "test") & (results["postprocess"] == "none")]
    side = test.groupby(["label_protocol", "architecture"], sort=False)[["ccc", "mse"]].mean()
    side = side.unstack("label_protocol")
    side.columns = [f"ours {p}: {m.upper()}" for m, p in side.columns]
    for i, (column, value) in enumerate(ORIGINAL.items()):
        side.insert(i, column, value)
    return side.loc[list(dict.fromkeys(test["architecture"]))]


def _utterance_pieces(record: sequences.SequenceRecord, prediction: np.ndarray, chains: pd.DataFrame
                      ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(utterance, labels, predictions)`` per utterance of a chained test session: each frame belongs to the
    utterance playing at its time (gaps and the tail to the one before, as :func:`labels.chain_labels` labels them)."""
    segments = chains[chains["chain"] == record.id].sort_values("start", kind="stable")
    owner = np.clip(np.searchsorted(segments["start"].to_numpy(), record.time, side="right") - 1, 0, None)
    names = segments["utterance"].astype(str).to_numpy()
    return [(names[k], record.y[owner == k], prediction[owner == k]) for k in np.unique(owner)]


def seed_control_intervals(grids: DatasetGrids, corpus: SessionCorpus, *, mode: str = "joint",
                           n_resamples: int = 2000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Test CCC of every architecture under the ``seed`` control with a bootstrap CI over test utterances.

    The control's labels are one value per utterance, so utterances are the
    independent units: each test session is cut at its utterances and the
    bootstrap resamples them (and seeds, when there are several;
    :func:`emotools.stats.bootstrap_ccc`, CCC of the resampled utterances
    concatenated, raw predictions). The estimate is the table's test CCC.

    Returns:
        One row per architecture and target: ``ccc``, ``low``, ``high``,
        ``half_width``, ``covers_0``, ``utterances``; empty without a ``seed`` grid.
    """
    grid = grids.grids.get(LabelProtocol.SEED.value)
    if grid is None:
        return pd.DataFrame()
    rows = []
    for architecture in dict.fromkeys(c.architecture for c in grid.cells if c.mode == mode):
        cells = [c for c in grid.cells if c.mode == mode and c.architecture == architecture]
        pieces = {c.seed: [p for r, y in zip(grid.test_records, c.test_predictions)
                           for p in _utterance_pieces(r, y, corpus.chains)] for c in cells}
        first = next(iter(pieces.values()))
        units, truths = [u for u, _, _ in first], [t for _, t, _ in first]
        for j, target in enumerate(cells[0].targets):
            ci = stats.bootstrap_ccc(truths, {s: [p for _, _, p in v] for s, v in pieces.items()}, units=units,
                                     unit="utterance", target=j, n_resamples=n_resamples, level=level, seed=seed)
            rows.append({"architecture": architecture, "target": target, "ccc": ci.estimate, "low": ci.low,
                         "high": ci.high, "half_width": ci.half_width, "covers_0": not ci.excludes(0.0),
                         "utterances": ci.n_units})
    return pd.DataFrame(rows)


#: The half-width below which the seed control can tell a CCC from 0 (issue: "controls with power").
SEED_CONTROL_POWER = 0.1


def describe_seed_control(intervals: pd.DataFrame) -> str:
    """One sentence on a :func:`seed_control_intervals` table: how many CIs cover 0, and whether it has power."""
    if intervals.empty:
        return "no seed control in this run"
    widest = intervals["half_width"].max()
    power = (f"every half-width is below {SEED_CONTROL_POWER:g}: the control can tell its CCC from 0"
             if widest < SEED_CONTROL_POWER else
             f"the widest half-width is {widest:.3f} (>= {SEED_CONTROL_POWER:g}): too little test material "
             f"for the control to show CCC ≈ 0 within ±{SEED_CONTROL_POWER:g}")
    return (f"{int(intervals['covers_0'].sum())} of {len(intervals)} 95% CIs cover 0 "
            f"({int(intervals['utterances'].iloc[0])} test utterances resampled); {power}.")


# ------------------------------------------------------------------------------- save


def save_best(grid: GridResult, notebook: str, spec: FeatureSpec, **info: Any) -> tuple[Path, Any]:
    """Save the grid's best model on dev as ``results/models/<notebook>`` for ``python -m emotools predict``.

    Returns:
        The predictor folder and the chosen cell (``architecture``, ``mode``, ...).
    """
    best = grid.best_model()
    folder = predict.save_predictor(paths.results_dir() / "models" / notebook, spec, best.model_paths,
                                    best.postprocessor, architecture=best.architecture, mode=best.mode, **info)
    return folder, best


def save_dataset(grids: DatasetGrids, corpus: SessionCorpus, *, notebook: str, note: str) -> list[Path]:
    """Write the results table (and its note), the best ``proxy`` predictor, and the summary of every notebook.

    The table carries 95% CIs (:func:`emotools.experiments.interval_table`,
    also ``results/<notebook>_intervals.csv``) and the paired CI of the best
    context model against the frame-local mlp (``<notebook>_vs_frame_local.csv``).

    Returns:
        The files and folders written.
    """
    grid_list = list(grids.grids.values())
    written = list(experiments.write_results(grids.results, notebook, note=note,
                                             intervals=experiments.interval_table(grid_list),
                                             comparisons=experiments.frame_local_comparison(grid_list)))
    if LabelProtocol.PROXY.value in grids.grids:
        folder, _ = save_best(grids.grids[LabelProtocol.PROXY.value], notebook, corpus.spec, dataset=corpus.dataset,
                              label_protocol=LabelProtocol.PROXY.value)
        written.append(folder)
    written.append(experiments.write_summary())
    return written
