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

from . import corpora, experiments, labels, original, paths, predict, samples, sequences, stats, synth
from .corpora.sessions import chain_sessions, write_sessions
from .experiments import GridResult
from .features import FeatureError, FeatureSpec, FeatureStore, extract, feature_names
from .features.external import from_arrays
from .labels import LabelError, LabelProtocol
from .training import FitOptions

__all__ = [
    "GroundTruth", "SessionCorpus", "DatasetGrids", "split_overview", "load_ground_truth", "load_sessions",
    "dataset_labels", "train_grids", "OriginalRuns", "run_original_protocol", "original_table", "flaw_table",
    "flaw_summary", "original_control", "seed_controls", "seed_control_intervals", "describe_seed_control",
    "save_best", "save_dataset",
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


def load_ground_truth(corpus_size: str, corpus_seed: int, *, spec: FeatureSpec, corpus_preset: str = "easy",
                      jobs: int | None = None, scheduler: str | None = None) -> GroundTruth:
    """Render (once, cached) the built-in corpus, extract its features (cached) and align them with its labels.

    Args:
        corpus_size: the corpus preset (``smoke``, ``default``, ``full``).
        corpus_seed: seed of the rendered corpus and its raters.
        spec: the features.
        corpus_preset: label mechanisms and voices (:data:`emotools.synth.PRESETS`;
            ``"easy"``: corpus v1, ``"default"``: corpus v2).
        jobs: extraction processes (``None``: all cores).
        scheduler: extract on this Dask scheduler instead (:func:`emotools.features.extract`).

    Raises:
        FeatureError: a recording's features failed (the built-in corpus has no bad files).
        SequenceError: a recording's features and labels could not be aligned.
    """
    root = synth.ensure_corpus(corpus_size, corpus_seed, preset=corpus_preset)
    table = corpora.scan("annotated", root)
    out = paths.data_dir() / "features" / f"ground_truth-{root.name}-{spec.slug}"  # root: <size>-seed<K>[-<preset>]
    store = extract(table, spec, out=out, jobs=jobs, scheduler=scheduler)
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

    @property
    def work(self) -> Path:
        """The folder of the sessions and their feature stores."""
        return self.store.root.parent

    def usable(self) -> pd.DataFrame:
        """The sessions whose features were extracted."""
        return self.sessions[self.sessions["utterance"].isin(self.store.utterances)]


def load_sessions(dataset: str, *, data_root: str | os.PathLike = "", session_minutes: float, spec: FeatureSpec,
                  max_hours: float = 0.0, jobs: int | None = None, scheduler: str | None = None) -> SessionCorpus:
    """Scan a corpus, chain each speaker's consecutive utterances into sessions, render and featurize them (cached).

    Args:
        dataset: corpus key known to :func:`emotools.corpora.scan` (``librispeech``, ...).
        data_root: the corpus root; empty: the built-in samples in its layout (rendered once).
        session_minutes: target length of a chained session.
        spec: the features.
        max_hours: use at most this many hours of audio, first speakers first (0: all).
        jobs: extraction processes (``None``: all cores).
        scheduler: extract on this Dask scheduler instead (:func:`emotools.features.extract`).

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
    store = extract(sessions, spec, out=work / f"features-{spec.slug}", jobs=jobs, scheduler=scheduler)
    return SessionCorpus(dataset, table, chains, sessions, spec, store, not os.fspath(data_root))


def dataset_labels(corpus: SessionCorpus, label_protocols: Sequence[str], *, label_seed: int
                   ) -> dict[str, dict[str, pd.DataFrame]]:
    """Label frames of every session under each label protocol (``seed`` and/or ``proxy``).

    ``seed`` is the original project's control: one ``U(0, 1)`` value per
    utterance, drawn as the original drew them (``np.random.seed(label_seed)``
    over the corpus's utterances in order, :func:`emotools.original.original_values`;
    42 is the original's), held over the utterance's frames; nothing to learn.
    ``proxy`` is an acoustic proxy of arousal and valence through the
    simulated annotation model (learnable; not emotion).

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
            drawn = original.original_values(corpus.table["utterance"].astype(str), seed=label_seed)
            per_utterance = labels.seed_labels(corpus.table, seed=label_seed, values=drawn)
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
                jobs: int | None = None, scheduler: str | None = None) -> DatasetGrids:
    """Train every architecture under each label protocol (speaker-independent splits, cached per cell).

    ``jobs``, ``scheduler``: as :func:`emotools.experiments.run_grid`.
    Checkpoints go to ``results/checkpoints/<notebook>-<label protocol>``.
    """
    grids, failed = {}, []
    for protocol, frames in label_sets.items():
        records, bad = sequences.build_records(corpus.usable(), corpus.store.load, frames)
        failed += [dict(f, label_protocol=protocol) for f in bad]
        grids[protocol] = experiments.run_grid(
            records, dataset=corpus.dataset, label_protocol=protocol, architectures=architectures, modes=modes,
            seeds=seeds, fit_options=fit_options, jobs=jobs, scheduler=scheduler,
            run_dir=paths.results_dir() / "checkpoints" / f"{notebook}-{protocol}",
        )
    return DatasetGrids(grids, pd.DataFrame(failed))


# ------------------------------------------------- the original protocol, and its flaws fixed one at a time


@dataclass
class OriginalRuns:
    """The original protocol on a corpus's utterances: its random split, and whole speakers held out."""

    records: list[sequences.SequenceRecord]  # one raw functionals vector per utterance, the original's labels
    failed: pd.DataFrame  # utterances whose functionals failed (left out, named)
    runs: dict[str, pd.DataFrame]  # "utterance" (the original's split) / "speaker": run_original rows


def run_original_protocol(table: pd.DataFrame, *, work: str | os.PathLike, name: str, label_seed: int = 42,
                          architectures: Sequence[str] = original.ORIGINAL_ARCHITECTURES,
                          options: FitOptions | None = None, max_utterances: int = 0,
                          splits: Sequence[str] = ("utterance", "speaker"), jobs: int | None = None,
                          scheduler: str | None = None, progress: bool = True) -> OriginalRuns:
    """The original project's experiment on a corpus's utterances (:mod:`emotools.original`).

    One raw eGeMAPS functionals vector per utterance (cached in
    ``work/features-<spec>``), the original's labels drawn over the
    utterances in the table's order (:func:`emotools.original.original_values`),
    the 7 architectures on length-1 inputs, MSE, 70 epochs, batch 3, last
    epoch. ``splits``: ``"utterance"`` splits as the original did (random
    80/20 over utterances); ``"speaker"`` holds out the table's test speakers
    instead (train and dev speakers train): the first flaw fixed. Cells are
    cached under ``results/checkpoints/<name>-original-<split>``.
    ``max_utterances``: the first N utterances of the table (0: all; the
    original's LibriSpeech run used 500 of dev-clean). ``jobs``, ``scheduler``:
    extraction and training workers (:func:`emotools.experiments.run_grid`).
    """
    unknown = sorted(set(splits) - {"utterance", "speaker"})
    if unknown:
        raise original.OriginalError("splits", f"unknown {unknown}: use 'utterance' and/or 'speaker'")
    table = table.iloc[:max_utterances] if max_utterances > 0 else table
    spec = FeatureSpec("eGeMAPSv02", "functionals")
    store = extract(table, spec, out=Path(work) / f"features-{spec.slug}", jobs=jobs, scheduler=scheduler,
                    progress=progress)
    drawn = original.original_values(table["utterance"].astype(str), seed=label_seed)
    kept = table[table["utterance"].astype(str).isin(store.utterances)]
    names = kept["utterance"].astype(str).tolist()
    if len(names) < 2:
        raise original.OriginalError(name, f"{len(names)} utterance(s) with features: the protocol needs at least 2")
    X = np.stack([store.load(u).iloc[0, 2:].to_numpy(np.float64) for u in names])
    values = dict(zip(original.ORIGINAL_TARGETS, np.array([drawn[u] for u in names]).T))
    records = from_arrays(X, values, ids=names, feature_names=feature_names(spec),
                          speakers=kept["speaker"].astype(str).tolist())
    held_out = ["test" if s == "test" else "train" for s in kept["split"].astype(str)]
    runs = {}
    for split in splits:
        runs[split] = original.run_original(
            records, values, architectures=architectures, options=options,
            splits=held_out if split == "speaker" else None,
            run_dir=paths.results_dir() / "checkpoints" / f"{name}-original-{split}", jobs=jobs, scheduler=scheduler,
            progress=progress)
    return OriginalRuns(records, store.failures, runs)


def original_table(runs: OriginalRuns, dataset: str, split: str = "utterance") -> pd.DataFrame:
    """Our original-protocol rows (its own split) beside the original's published MSE and CCC, with the reading."""
    table = original.compare_with_original(runs.runs[split], dataset)
    return table[["model", "target", "mse_original", "mse", "mse_train_mean", "ccc_original", "ccc", "ccc_low",
                  "ccc_high", "n_test", "reading"]]


#: The steps of the flaw table: (step, what changes), in order.
FLAW_STEPS: tuple[tuple[str, str], ...] = (
    ("1 the original", "random labels per utterance; one functionals vector per utterance; random 80/20 utterance "
                       "split; MSE loss; 70 epochs, last kept"),
    ("2 + speaker-independent split", "test speakers never trained on (train and dev speakers train)"),
    ("3 + sequences", "utterances chained into sessions, 10 Hz windowed functionals, per-session normalization, "
                      "early stopping on dev speakers; still MSE, still random labels"),
    ("4 + CCC loss", "the loss the score is"),
    ("5 + a learnable target", "the proxy labels (prosody through simulated raters) instead of random ones"),
)


def _test_mse(grid: GridResult) -> pd.DataFrame:
    """Test MSE per architecture and target of a grid (raw predictions, mean over seeds and modes)."""
    test = grid.results[(grid.results["split"] == "test") & (grid.results["postprocess"] == "none")]
    return test.groupby(["architecture", "target"])["mse"].mean().rename("mse").reset_index()


def flaw_table(runs: OriginalRuns, seed_mse: DatasetGrids | None, grids: DatasetGrids,
               corpus: SessionCorpus) -> pd.DataFrame:
    """Test CCC (95% CI) and MSE per step of :data:`FLAW_STEPS`, architecture and target (the original's 7).

    Steps 1-2 are :func:`run_original_protocol`'s runs; 3 the ``seed`` grid
    trained with MSE (``seed_mse``); 4 and 5 the notebook's ``seed`` and
    ``proxy`` grids. CIs resample test utterances under random labels (the
    units of those labels) and test speakers (else sessions) for the proxy
    (:func:`emotools.experiments.interval_table`); ``unit`` says which.
    """
    archs = list(original.ORIGINAL_ARCHITECTURES)
    parts = []
    for (step, _), split in zip(FLAW_STEPS[:2], ("utterance", "speaker")):
        run = runs.runs[split].rename(columns={"ccc_low": "low", "ccc_high": "high", "n_test": "n_units"})
        parts.append(run.assign(step=step, unit="utterance"))
    seed_grids = (seed_mse.grids.get("seed") if seed_mse is not None else None, grids.grids.get("seed"))
    for (step, _), grid in zip(FLAW_STEPS[2:4], seed_grids):
        if grid is not None:
            ci = _utterance_intervals(grid, corpus.chains).rename(columns={"utterances": "n_units"})
            parts.append(ci.merge(_test_mse(grid), on=["architecture", "target"]).assign(step=step, unit="utterance"))
    proxy = grids.grids.get("proxy")
    if proxy is not None:
        ci = experiments.interval_table(proxy)
        ci = ci[(ci["postprocess"] == "none") & (ci["mode"] == ci["mode"].iloc[0])]
        ci = ci.rename(columns={"ccc_low": "low", "ccc_high": "high"})[
            ["architecture", "target", "ccc", "low", "high", "unit", "n_units"]]
        parts.append(ci.merge(_test_mse(proxy), on=["architecture", "target"]).assign(step=FLAW_STEPS[4][0]))
    columns = ["step", "architecture", "target", "ccc", "low", "high", "mse", "unit", "n_units"]
    table = pd.concat([p[[c for c in columns if c in p.columns]] for p in parts], ignore_index=True)
    return table[table["architecture"].isin(archs)].reset_index(drop=True)


def flaw_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per step of a :func:`flaw_table`: what changed, CCC over the architectures and targets, MSE, CIs."""
    changes = dict(FLAW_STEPS)
    rows = []
    for step, group in table.groupby("step", sort=False):
        finite = group.dropna(subset=["low", "high"])
        rows.append({
            "step": step, "what changes": changes[step], "mean test CCC": group["ccc"].mean(),
            "lowest": group["ccc"].min(), "highest": group["ccc"].max(), "mean test MSE": group["mse"].mean(),
            "CIs excluding 0": f"{int(((finite['low'] > 0) | (finite['high'] < 0)).sum())} of {len(finite)}",
            "widest half-width": ((finite["high"] - finite["low"]) / 2).max() if len(finite) else np.nan,
            "CI unit": f"{group['unit'].iloc[0]} ({int(group['n_units'].iloc[0])})",
        })
    return pd.DataFrame(rows)


def _utterance_pieces(record: sequences.SequenceRecord, prediction: np.ndarray, chains: pd.DataFrame
                      ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(utterance, labels, predictions)`` per utterance of a chained test session: each frame belongs to the
    utterance playing at its time (gaps and the tail to the one before, as :func:`labels.chain_labels` labels them)."""
    segments = chains[chains["chain"] == record.id].sort_values("start", kind="stable")
    owner = np.clip(np.searchsorted(segments["start"].to_numpy(), record.time, side="right") - 1, 0, None)
    names = segments["utterance"].astype(str).to_numpy()
    return [(names[k], record.y[owner == k], prediction[owner == k]) for k in np.unique(owner)]


def _utterance_intervals(grid: GridResult, chains: pd.DataFrame, *, mode: str | None = None,
                         n_resamples: int = 2000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Test CCC per architecture and target of a grid on chained sessions, CI over test utterances (and seeds)."""
    mode = mode or grid.cells[0].mode
    rows = []
    for architecture in dict.fromkeys(c.architecture for c in grid.cells if c.mode == mode):
        cells = [c for c in grid.cells if c.mode == mode and c.architecture == architecture]
        pieces = {c.seed: [p for r, y in zip(grid.test_records, c.test_predictions)
                           for p in _utterance_pieces(r, y, chains)] for c in cells}
        first = next(iter(pieces.values()))
        units, truths = [u for u, _, _ in first], [t for _, t, _ in first]
        for j, target in enumerate(cells[0].targets):
            ci = stats.bootstrap_ccc(truths, {s: [p for _, _, p in v] for s, v in pieces.items()}, units=units,
                                     unit="utterance", target=j, n_resamples=n_resamples, level=level, seed=seed)
            rows.append({"architecture": architecture, "target": target, "ccc": ci.estimate, "low": ci.low,
                         "high": ci.high, "half_width": ci.half_width, "covers_0": not ci.excludes(0.0),
                         "utterances": ci.n_units})
    return pd.DataFrame(rows)


def original_control(runs: OriginalRuns, split: str = "utterance") -> pd.DataFrame:
    """An original-protocol run (default: its own split) as a seed control, in seed_control_intervals' columns."""
    run = runs.runs[split]
    return pd.DataFrame({
        "architecture": run["architecture"], "target": run["target"], "ccc": run["ccc"], "low": run["ccc_low"],
        "high": run["ccc_high"], "half_width": (run["ccc_high"] - run["ccc_low"]) / 2,
        "covers_0": (run["ccc_low"] <= 0) & (run["ccc_high"] >= 0), "utterances": run["n_test"]})


#: The two seed controls of a dataset notebook, as :func:`seed_controls` names them.
SEED_CONTROLS: dict[str, str] = {
    "original": "the original protocol (utterance vectors, random utterance split, MSE)",
    "sequences": "sequences (sessions, speaker split, CCC loss)",
}


def seed_controls(runs: OriginalRuns | None, grids: DatasetGrids, corpus: SessionCorpus, *,
                  mode: str = "joint") -> pd.DataFrame:
    """Both random-label controls with CIs over test utterances, column ``control`` (:data:`SEED_CONTROLS`)."""
    parts = []
    if runs is not None:
        parts.append(original_control(runs).assign(control=SEED_CONTROLS["original"]))
    sequence = seed_control_intervals(grids, corpus, mode=mode)
    if not sequence.empty:
        parts.append(sequence.assign(control=SEED_CONTROLS["sequences"]))
    if not parts:
        return pd.DataFrame()
    table = pd.concat(parts, ignore_index=True)
    return table[["control", *[c for c in table.columns if c != "control"]]]


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
    return _utterance_intervals(grid, corpus.chains, mode=mode, n_resamples=n_resamples, level=level, seed=seed)


#: The half-width below which the seed control can tell a CCC from 0 (issue: "controls with power").
SEED_CONTROL_POWER = 0.1


def describe_seed_control(intervals: pd.DataFrame) -> str:
    """One sentence per control of a :func:`seed_controls` (or :func:`seed_control_intervals`) table.

    How many CIs cover 0, how many test utterances were resampled, and
    whether the control has power (every half-width below
    :data:`SEED_CONTROL_POWER`).
    """
    if intervals.empty:
        return "no seed control in this run"
    groups = intervals.groupby("control", sort=False) if "control" in intervals else [("", intervals)]
    lines = []
    for control, rows in groups:
        widest = rows["half_width"].max()
        power = (f"every half-width is below {SEED_CONTROL_POWER:g}: the control can tell its CCC from 0"
                 if widest < SEED_CONTROL_POWER else
                 f"the widest half-width is {widest:.3f} (>= {SEED_CONTROL_POWER:g}): too little test material "
                 f"for the control to show CCC ≈ 0 within ±{SEED_CONTROL_POWER:g}")
        lines.append(f"{control}: " * bool(control) + f"{int(rows['covers_0'].sum())} of {len(rows)} 95% CIs cover 0 "
                     f"({int(rows['utterances'].iloc[0])} test utterances resampled); {power}.")
    return "\n".join(lines)


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


def save_dataset(grids: DatasetGrids, corpus: SessionCorpus, *, notebook: str, note: str,
                 sections: Sequence[tuple[str, str]] = (), tables: Mapping[str, pd.DataFrame] | None = None
                 ) -> list[Path]:
    """Write the results table (and its note), the best ``proxy`` predictor, and the summary of every notebook.

    The table carries 95% CIs (:func:`emotools.experiments.interval_table`,
    also ``results/<notebook>_intervals.csv``) and the paired CI of the best
    context model against the frame-local mlp (``<notebook>_vs_frame_local.csv``).
    ``sections`` (heading, markdown) go at the end of ``results/<notebook>.md``;
    each of ``tables`` is written as ``results/<notebook>_<key>.csv``.

    Returns:
        The files and folders written.
    """
    grid_list = list(grids.grids.values())
    written = list(experiments.write_results(grids.results, notebook, note=note,
                                             intervals=experiments.interval_table(grid_list),
                                             comparisons=experiments.frame_local_comparison(grid_list),
                                             sections=sections))
    for stem, table in (tables or {}).items():
        written.append(paths.results_dir() / f"{notebook}_{stem}.csv")
        table.to_csv(written[-1], index=False, float_format="%.6g")
    if LabelProtocol.PROXY.value in grids.grids:
        folder, _ = save_best(grids.grids[LabelProtocol.PROXY.value], notebook, corpus.spec, dataset=corpus.dataset,
                              label_protocol=LabelProtocol.PROXY.value)
        written.append(folder)
    written.append(experiments.write_summary())
    return written
