"""The ``original`` protocol: the original project's experiment, run through the package, and its reading.

The original project trained its 7 architectures on one eGeMAPSv02
functionals vector (88 values) per utterance, raw, against labels drawn
uniformly at random, and reported test MSE near 0.086 and CCC near 0 (or
NaN). This module reproduces that protocol exactly where it can:

* labels: ``np.random.seed(42)``, then ``np.random.uniform(0, 1, n)`` for
  arousal and again for valence (:func:`original_labels`);
* split: scikit-learn's ``train_test_split(range(n), test_size=0.2,
  random_state=42)``, 80/20 over utterances, no dev set (:func:`original_split`);
* training: each architecture of the registry on length-1 sequences, one
  model per target, a sigmoid output, MSE loss, 70 epochs, batch size 3,
  Adam at a constant 1e-3 (Keras' default: no warm-up, no decay, no gradient
  clipping), raw features, the last epoch kept (:func:`original_options`).

What differs: the architectures are the package's (same families, not the
original's Keras layers and widths), Keras' Adam epsilon is 1e-7 (torch's
1e-8), and the CCC of a constant prediction is 0 here where the original's
code printed NaN.

The reading (:func:`read_result`): an MSE-trained model on U(0, 1) labels
that learns nothing predicts about the train mean, so its MSE is about the
test labels' variance (1/12 = 0.083); one whose sigmoid saturates predicts a
constant 1, MSE = mean((1 - y)^2) (about 1/3: the original's TDNN rows). Every
result row carries both reference MSEs and whether the prediction was constant.

>>> train, test = original_split(10)
>>> test.tolist(), len(train)
([8, 1], 8)
>>> arousal, valence = original_labels(3)
>>> [round(float(v), 4) for v in arousal]
[0.3745, 0.9507, 0.732]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import metrics
from .errors import EmotoolsError
from .features.external import from_arrays
from .sequences import SequenceRecord
from .stats import bootstrap_ccc
from .training import FitOptions

__all__ = [
    "OriginalError",
    "ORIGINAL_MODELS",
    "ORIGINAL_ARCHITECTURES",
    "ORIGINAL_TARGETS",
    "RESULTS_CSV",
    "original_labels",
    "original_values",
    "original_split",
    "original_options",
    "original_records",
    "run_original",
    "read_result",
    "original_results",
    "compare_with_original",
    "cli",
]

#: The original's model names -> the registry's architectures, in the original's order.
ORIGINAL_MODELS: dict[str, str] = {
    "LSTM": "lstm",
    "TDNN": "tdnn",
    "Attention": "attention",
    "TDNN + LSTM": "tdnn_lstm",
    "Attention + TDNN": "attention_tdnn",
    "Attention + LSTM": "attention_lstm",
    "Attention + TDNN + LSTM": "attention_tdnn_lstm",
}
ORIGINAL_ARCHITECTURES: tuple[str, ...] = tuple(ORIGINAL_MODELS.values())
ORIGINAL_TARGETS: tuple[str, ...] = ("arousal", "valence")
#: The original's published test results: dataset, model, target, mse, ccc (NaN as printed).
RESULTS_CSV: Path = Path(__file__).parent / "data" / "original_results.csv"
#: Relative distance from a reference MSE within which a result "is" that reference.
SAME_MSE: float = 0.15

Features = np.ndarray | str | os.PathLike | Sequence[SequenceRecord]


class OriginalError(EmotoolsError, ValueError):
    """Input the original protocol cannot run on: ``OriginalError(subject, reason)``."""


# --------------------------------------------------------------------------- labels, split, options


def original_labels(n: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Arousal and valence as the original drew them: ``np.random.seed(seed)``, two ``uniform(0, 1, n)``.

    A private ``np.random.RandomState(seed)`` gives the same stream and leaves
    the global state alone.
    """
    if int(n) != n or n < 1:
        raise OriginalError("n", f"must be a positive integer, got {n!r}")
    rng = np.random.RandomState(seed)
    arousal = rng.uniform(0, 1, int(n))
    valence = rng.uniform(0, 1, int(n))
    return arousal, valence


def original_values(utterances: Sequence[str], seed: int = 42) -> dict[str, tuple[float, float]]:
    """Utterance -> (arousal, valence): :func:`original_labels` drawn over ``utterances`` in their order.

    The original drew one value per file in the order it listed them; a
    corpus table's order (sorted paths) plays that part here, so an utterance
    keeps its label whichever of the others fail extraction.
    """
    names = [str(u) for u in utterances]
    if len(set(names)) != len(names):
        raise OriginalError("utterances", "duplicate utterance ids")
    arousal, valence = original_labels(len(names), seed)
    return {u: (float(a), float(v)) for u, a, v in zip(names, arousal, valence)}


def original_split(n: int, test_size: float = 0.2, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices exactly as ``sklearn.model_selection.train_test_split(range(n), ...)``.

    scikit-learn's ShuffleSplit: ``RandomState(seed).permutation(n)``; the
    first ``ceil(test_size * n)`` indices are the test set, the next ones the
    training set (in that order).
    """
    if int(n) != n or n < 2:
        raise OriginalError("n", f"must be an integer >= 2, got {n!r}")
    if not 0 < test_size < 1:
        raise OriginalError("test_size", f"must be in (0, 1), got {test_size!r}")
    n_test = math.ceil(test_size * n)
    if n_test >= n:
        raise OriginalError("test_size", f"{test_size} leaves no training utterance of {n}")
    order = np.random.RandomState(seed).permutation(int(n))
    return order[n_test:], order[:n_test]


def original_options(**changes: Any) -> FitOptions:
    """The original's training as :class:`~emotools.training.FitOptions` (``changes`` applied).

    MSE loss, 70 epochs, batch size 3, Adam at a constant 1e-3 without
    warm-up, weight decay or gradient clipping (Keras' defaults), raw
    features, whole (length-1) records, a sigmoid output, float32.
    """
    options = FitOptions(
        loss="mse", epochs=70, batch_size=3, lr=1e-3, weight_decay=0.0, clip_norm=0.0, warmup_steps=0,
        lr_schedule="constant", chunk_s=None, normalization="none", model_options={"output": "sigmoid"},
        precision="float32",
    )
    return options.replace(**changes)


# --------------------------------------------------------------------------- records


def _matrix(X: Features) -> tuple[np.ndarray, list[str] | None, tuple[str, ...] | None]:
    """Features as ``(utterances, features)``, with ids and names where records carried them."""
    if isinstance(X, (np.ndarray, str, os.PathLike)):
        return X, None, None
    records = list(X)
    if not records:
        raise OriginalError("features", "no records")
    long = [r.id for r in records if len(r) != 1]
    if long:
        raise OriginalError(long[0], f"the original protocol takes one vector per utterance; {len(long)} "
                                     "record(s) have several frames (use utterance-level functionals)")
    return np.concatenate([r.x for r in records]), [r.id for r in records], records[0].feature_names


def original_records(
    X: Features,
    labels: Mapping[str, np.ndarray | Sequence[float]] | None = None,
    *,
    label_seed: int = 42,
    split_seed: int = 42,
    test_size: float = 0.2,
    splits: Sequence[str] | None = None,
    speakers: Sequence[str] | None = None,
) -> list[SequenceRecord]:
    """Length-1 records with the original's labels and ``split`` ``"train"`` / ``"test"``.

    Args:
        X: ``(utterances, features)`` (an array or a ``.npy`` path) or
            length-1 records (their features, ids and speakers are used, not
            their labels or splits).
        labels: target -> one value per utterance; None: the original's
            random labels (:func:`original_labels` with ``label_seed``).
        label_seed, split_seed, test_size: the original's 42, 42 and 0.2.
        splits: ``"train"`` / ``"test"`` per utterance instead of the
            original's random split (e.g. whole speakers: a fixed flaw).
        speakers: one speaker per utterance (default: the records').
    """
    x, ids, names = _matrix(X)
    n = len(np.load(x, mmap_mode="r")) if isinstance(x, (str, os.PathLike)) else len(x)
    if labels is None:
        labels = dict(zip(ORIGINAL_TARGETS, original_labels(n, label_seed)))
    if splits is None:
        train, _ = original_split(n, test_size, split_seed)
        chosen = np.full(n, "test", dtype=object)
        chosen[train] = "train"
        splits = list(chosen)
    else:
        splits = [str(v) for v in splits]
        unknown = sorted(set(splits) - {"train", "test"})
        if len(splits) != n or unknown or {"train", "test"} - set(splits):
            raise OriginalError("splits", f"need 'train' or 'test' for each of {n} utterances, both present; got "
                                          f"{len(splits)} value(s){f', unknown {unknown}' if unknown else ''}")
    if speakers is None and not isinstance(X, (np.ndarray, str, os.PathLike)):
        speakers = [r.speaker for r in X]
    return from_arrays(x, labels, ids=ids, feature_names=names, speakers=speakers, splits=splits)


# --------------------------------------------------------------------------- run and read


def run_original(
    X: Features,
    labels: Mapping[str, np.ndarray | Sequence[float]] | None = None,
    *,
    architectures: Sequence[str] = ORIGINAL_ARCHITECTURES,
    options: FitOptions | None = None,
    label_seed: int = 42,
    split_seed: int = 42,
    splits: Sequence[str] | None = None,
    n_resamples: int = 2000,
    run_dir: str | os.PathLike | None = None,
    jobs: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    device: str | None = None,
) -> pd.DataFrame:
    """Train and score the original protocol: every architecture, one model per target.

    The training is :func:`emotools.experiments.run_grid`'s (mode
    ``"separate"``, no dev set: the last epoch is kept, no AVEC chain), so
    cells run in parallel and a ``run_dir`` caches them like any grid.

    Args:
        X, labels, label_seed, split_seed, splits: as :func:`original_records`.
        architectures: registry names (default: the original's 7).
        options: how to train (default :func:`original_options`; its
            ``targets`` default to the labels').
        n_resamples: bootstrap resamples of the CCC interval (test
            utterances are the units: each is independent here).
        run_dir: where the cells are cached (default: a temporary folder,
            nothing kept).
        jobs, scheduler, progress, device: as :func:`emotools.experiments.run_grid`
            (with a ``scheduler``, give a ``run_dir`` every worker sees).

    Returns:
        One row per architecture and target: ``model`` (the original's name),
        ``architecture``, ``target``, ``mse``, ``ccc``, ``ccc_low``,
        ``ccc_high`` (95% bootstrap CI), ``n_train``, ``n_test``, and the
        reading: ``mse_train_mean``, ``mse_constant_1``, ``pred_mean``,
        ``pred_std``, ``constant`` and ``reading`` (:func:`read_result`).
    """
    from .experiments import run_grid

    records = original_records(X, labels, label_seed=label_seed, split_seed=split_seed, splits=splits)
    train = [r for r in records if r.split == "train"]
    options = options or original_options()
    targets = options.targets or records[0].target_names
    with tempfile.TemporaryDirectory(prefix="emotools-original-") as scratch:
        grid = run_grid(records, dataset="original", label_protocol="original", architectures=architectures,
                        modes=("separate",), seeds=(options.seed,), targets=targets, fit_options=options,
                        postprocess_chain=False, run_dir=run_dir if run_dir is not None else scratch, jobs=jobs,
                        scheduler=scheduler, progress=progress, device=device)
    names = {arch: model for model, arch in ORIGINAL_MODELS.items()}
    rows = []
    for cell in grid.cells:
        for k, target in enumerate(cell.targets):
            j = records[0].target_names.index(target)
            y_train = np.array([r.y[0, j] for r in train], dtype=np.float64)
            y_test = np.array([r.y[0, j] for r in grid.test_records], dtype=np.float64)
            pred = np.array([p[0, k] for p in cell.test_predictions], dtype=np.float64)
            row = {"model": names.get(cell.architecture, cell.architecture), "architecture": cell.architecture,
                   "target": target, **_scores(y_train, y_test, pred, n_resamples)}
            rows.append({**row, "reading": read_result(row)})
    return pd.DataFrame(rows)


def _scores(y_train: np.ndarray, y_test: np.ndarray, pred: np.ndarray, n_resamples: int) -> dict[str, Any]:
    """MSE, CCC with its interval over test utterances, and the reference numbers of the reading."""
    interval = bootstrap_ccc([y_test[i : i + 1] for i in range(len(y_test))],
                             [pred[i : i + 1] for i in range(len(pred))], unit="utterance",
                             n_resamples=n_resamples)
    return {
        "mse": metrics.mse(y_test, pred), "ccc": metrics.ccc(y_test, pred),
        "ccc_low": interval.low, "ccc_high": interval.high, "n_train": len(y_train), "n_test": len(y_test),
        "mse_train_mean": float(np.mean((y_test - y_train.mean()) ** 2)),
        "mse_constant_1": float(np.mean((1.0 - y_test) ** 2)),
        "pred_mean": float(pred.mean()), "pred_std": float(pred.std()),
        "constant": bool(pred.min() == pred.max()),
    }


def read_result(row: Mapping[str, Any]) -> str:
    """What one result means, from its ``mse``, ``mse_train_mean``, ``mse_constant_1``, ``pred_mean``, ``constant``.

    >>> read_result({"mse": 0.34, "mse_train_mean": 0.083, "mse_constant_1": 0.33, "pred_mean": 1.0,
    ...              "constant": True})
    'saturated: predicts a constant 1, MSE = the constant-1 predictor (0.330); CCC: NaN in the original, 0 here'
    """
    mse, base, one = row["mse"], row["mse_train_mean"], row["mse_constant_1"]
    constant = "; CCC: NaN in the original, 0 here" if row["constant"] else ""
    if abs(mse - one) <= SAME_MSE * one and row["pred_mean"] > 0.9:
        verb = "predicts a constant 1" if row["constant"] else "predicts about 1"
        return f"saturated: {verb}, MSE = the constant-1 predictor ({one:.3f}){constant}"
    if abs(mse - base) <= SAME_MSE * base:
        return f"learns nothing: MSE = predicting the train mean ({base:.3f}){constant}"
    side = "below" if mse < base else "above"
    return f"MSE {side} predicting the train mean ({base:.3f}){constant}"


def original_results(dataset: str | None = None) -> pd.DataFrame:
    """The original's published test results (``dataset``, ``model``, ``target``, ``mse``, ``ccc``).

    LibriSpeech and VoxCeleb1 report arousal and valence (identical tables);
    VoxCeleb2 reports one target that the original does not name
    (``target == "unspecified"``).
    """
    table = pd.read_csv(RESULTS_CSV)
    if dataset is None:
        return table
    if dataset not in set(table["dataset"]):
        raise OriginalError(dataset, f"the original reported no results for it; known: {sorted(set(table['dataset']))}")
    return table[table["dataset"] == dataset].reset_index(drop=True)


def compare_with_original(ours: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Our :func:`run_original` rows with the original's published ``mse_original`` / ``ccc_original`` beside them.

    Rows are matched by model and target; where the original reported one
    unnamed target (VoxCeleb2), its numbers stand beside each of ours.
    """
    published = original_results(dataset).rename(
        columns={"target": "original_target", "mse": "mse_original", "ccc": "ccc_original"})
    known = set(published["original_target"])
    single = next(iter(known)) if len(known) == 1 else None
    keyed = ours.assign(original_target=[t if t in known or single is None else single for t in ours["target"]])
    merged = keyed.merge(published.drop(columns="dataset"), on=["model", "original_target"], how="left")
    first = ["model", "architecture", "target", "mse_original", "mse", "ccc_original", "ccc", "ccc_low", "ccc_high"]
    return merged[first + [c for c in merged.columns if c not in first]]


# --------------------------------------------------------------------------- command line


def cli(argv: Sequence[str]) -> int:
    """``python -m emotools original``: the original protocol on a corpus, beside the published numbers."""
    from . import corpora, paths, pipeline, samples
    from .fileio import write_text

    parser = argparse.ArgumentParser(
        prog="python -m emotools original",
        description="Run the original project's protocol (one raw eGeMAPS functionals vector per utterance, its "
                    "random labels and split, 7 architectures, MSE, 70 epochs of batch 3) on a corpus and write "
                    "results/<name>.md and CSVs with the original's published numbers beside ours.",
    )
    parser.add_argument("--dataset", required=True, choices=sorted(set(original_results()["dataset"])),
                        help="corpus layout, and whose published numbers stand beside ours")
    parser.add_argument("--data-root", default="", help="corpus root (default: the built-in samples)")
    parser.add_argument("--utterances", type=int, default=0,
                        help="the first N utterances in corpus order (default 0: all; the original used 500 "
                             "of LibriSpeech dev-clean)")
    parser.add_argument("--split", action="append", choices=["utterance", "speaker"],
                        help="utterance: the original's random split; speaker: test speakers held out "
                             "(repeatable; default: both)")
    parser.add_argument("--epochs", type=int, default=70, help="epochs (default: the original's 70)")
    parser.add_argument("--name", default="", help="results file stem (default: original_<dataset>)")
    parser.add_argument("--jobs", type=int, default=0, help="worker processes (default 0: all cores)")
    parser.add_argument("--scheduler", default=None, metavar="tls://HOST:PORT",
                        help="extract and train on this Dask scheduler (results and data folders on a shared file "
                             "system; certificates from Dask's configuration; docs/cluster.md)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(list(argv))
    name = args.name or f"original_{args.dataset}"
    splits = tuple(dict.fromkeys(args.split or ["utterance", "speaker"]))
    try:
        root = Path(args.data_root) if args.data_root else samples.ensure_samples(args.dataset,
                                                                                  progress=not args.no_progress)
        table = corpora.scan(args.dataset, root, progress=not args.no_progress)
        runs = pipeline.run_original_protocol(
            table, work=paths.data_dir() / "original" / name, name=name, max_utterances=args.utterances,
            options=original_options(epochs=args.epochs), splits=splits, jobs=args.jobs or None,
            scheduler=args.scheduler, progress=not args.no_progress)
    except (EmotoolsError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    folder = paths.results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    shown = "the built-in samples" if not args.data_root else f"`{root.name}`"
    parts = [f"# {name}\n", f"The original protocol (`emotools.original`) on {args.dataset} at {shown}: "
             f"{len(runs.records)} utterances, {args.epochs} epochs. Written by `python -m emotools original "
             f"{' '.join(argv)}`.\n"]
    headings = {"utterance": "Its own random utterance split, beside the published numbers",
                "speaker": "Test speakers held out (the first flaw fixed)"}
    controls = []
    for split in splits:
        table_ = pipeline.original_table(runs, args.dataset, split)
        parts.append(f"## {headings[split]}\n\n{table_.round(4).to_markdown(index=False)}\n")
        runs.runs[split].to_csv(folder / f"{name}_{split}.csv", index=False, float_format="%.6g")
        controls.append(pipeline.original_control(runs, split).assign(control=f"{split} split"))
    control = pd.concat(controls, ignore_index=True)
    parts.append("## As a random-label control (95% CI over test utterances)\n\n"
                 + pipeline.describe_seed_control(control).replace("\n", "\n\n") + "\n")
    write_text(folder / f"{name}.md", "\n".join(parts))
    print(f"wrote {paths.shown(folder / f'{name}.md')}")
    print(pipeline.describe_seed_control(control))
    return 0
