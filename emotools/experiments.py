"""The experiment grid: architectures x training modes x seeds -> tidy results.

One call trains every cell of a grid on the same records, scores it on dev
and test under both CCC protocols (raw and after the AVEC post-processing
chain), and returns tidy tables the notebooks show and save. Finished cells
are cached on disk (keyed by a hash of the data and every option), so an
interrupted run resumes and a rerun with the same settings is instant.
Cells train in local worker processes or as Dask tasks on a cluster
(:mod:`emotools.parallel`); a cell that fails is tried once more, then
recorded in :attr:`GridResult.failed` while the others finish.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from . import metrics, parallel, paths, postprocess, stats, training
from .fileio import write_text
from .labels import TARGETS
from .metrics import CCCProtocol
from .models import arch_order
from .sequences import SequenceRecord
from .training import FitOptions, TrainingError

__all__ = ["RESULT_COLUMNS", "FAILED_COLUMNS",
           "INTERVAL_COLUMNS", "COMPARISON_COLUMNS", "Mode", "FitOptions", "by_split", "score_rows",
           "per_speaker", "Cell", "GridResult", "run_grid", "cell_predictions", "interval_table",
           "frame_local_comparison", "summary_table", "write_results", "write_summary"]

log = logging.getLogger(__name__)

Mode = Literal["joint", "separate"]

#: Columns of :attr:`GridResult.failed`: the cells that failed twice, and why.
FAILED_COLUMNS = ["architecture", "mode", "seed", "reason"]

#: Column order of the tidy results table.
RESULT_COLUMNS = [
    "dataset", "label_protocol", "architecture", "target", "mode", "seed", "split", "postprocess",
    "ccc", "ccc_protocol", "ccc_per_recording", "pearson", "mse", "rmse", "n_recordings", "n_frames",
]

CCC_PROTOCOL = CCCProtocol.CONCAT.value  # the `ccc` column: one CCC over all recordings concatenated (AVEC 2019 / MuSe)

_SYSTEM_KEYS = ["dataset", "label_protocol", "mode", "architecture", "target", "postprocess"]

#: Column order of :func:`interval_table`: a system's test CCC with its bootstrap CI, and its difference to the best.
INTERVAL_COLUMNS = [
    *_SYSTEM_KEYS, "ccc", "ccc_sd", "ccc_low", "ccc_high", "level", "unit", "n_units", "n_seeds", "seeds_resampled",
    "n_resamples", "method", "best", "runner_up", "diff_to_best", "diff_low", "diff_high", "separable_from_best",
]

#: Column order of :func:`frame_local_comparison`: the paired CI of (best context model - frame-local model).
COMPARISON_COLUMNS = [
    "dataset", "label_protocol", "mode", "target", "postprocess", "context_model", "frame_local", "context_ccc",
    "frame_local_ccc", "difference", "diff_low", "diff_high", "excludes_zero", "level", "unit", "n_units", "n_seeds",
    "n_resamples", "method",
]


def by_split(records: Iterable[SequenceRecord]) -> dict[str, list[SequenceRecord]]:
    """``{"train": [...], "dev": [...], "test": [...]}`` by each record's ``split``."""
    out: dict[str, list[SequenceRecord]] = {"train": [], "dev": [], "test": []}
    for r in records:
        out.setdefault(r.split, []).append(r)
    return out


def score_rows(records: Sequence[SequenceRecord], predictions: Sequence[np.ndarray],
               targets: Sequence[str]) -> list[dict[str, Any]]:
    """Metric rows per target: CCC (concatenated), mean per-recording CCC, Pearson, MSE, RMSE."""
    ev = training.evaluate(list(predictions), list(records), targets=list(targets))
    truths = np.concatenate([r.select_targets(targets).y for r in records])
    preds = np.concatenate([np.asarray(p).reshape(len(p), -1) for p in predictions])
    rows = []
    for k, row in enumerate(ev.to_dict("records")):
        rows.append({
            "target": row["target"], "ccc": row["ccc_concat"], "ccc_protocol": CCC_PROTOCOL,
            "ccc_per_recording": row["ccc_per_recording"], "pearson": row["pearson"],
            "mse": metrics.mse(truths[:, k], preds[:, k]), "rmse": row["rmse"],
            "n_recordings": row["n_recordings"], "n_frames": row["n_frames"],
        })
    return rows


def per_speaker(records: Sequence[SequenceRecord], predictions: Sequence[np.ndarray],
                targets: Sequence[str]) -> pd.DataFrame:
    """CCC (concatenated over each speaker's recordings) per speaker and target."""
    rows = []
    speakers = sorted({r.speaker for r in records})
    for spk in speakers:
        idx = [i for i, r in enumerate(records) if r.speaker == spk]
        for row in score_rows([records[i] for i in idx], [predictions[i] for i in idx], targets):
            rows.append({"speaker": spk, **row})
    return pd.DataFrame(rows)


@dataclass
class Cell:
    """One trained grid cell: an architecture in one mode with one seed."""

    architecture: str
    mode: Mode
    seed: int
    targets: tuple[str, ...]
    rows: list[dict[str, Any]]
    history: pd.DataFrame
    test_predictions: list[np.ndarray]
    postprocessor: dict[str, Any] | None
    model_paths: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class GridResult:
    """Everything a notebook shows: tidy results, learning curves, test predictions.

    ``results``, ``histories`` and ``cells`` hold the finished cells;
    ``failed`` (:data:`FAILED_COLUMNS`) the cells that failed twice, with the
    reason (a rerun trains only those: the finished ones are cached).
    """

    results: pd.DataFrame
    histories: pd.DataFrame
    cells: list[Cell]
    test_records: list[SequenceRecord]
    failed: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FAILED_COLUMNS))

    def predictions(self, *, mode: Mode = "joint", seed: int | None = None) -> dict[str, list[np.ndarray]]:
        """``{architecture: test predictions (time, targets)}`` for one mode and seed (first seed by default)."""
        cells = [c for c in self.cells if c.mode == mode]
        seed = cells[0].seed if seed is None and cells else seed
        return {c.architecture: c.test_predictions for c in cells if c.seed == seed}

    def best_model(self, *, metric: str = "ccc", split: str = "dev") -> Cell:
        """The cell with the highest mean ``metric`` over targets on ``split`` (raw predictions)."""
        r = self.results[(self.results["split"] == split) & (self.results["postprocess"] == "none")]
        means = r.groupby(["architecture", "mode", "seed"])[metric].mean()
        arch, mode, seed = means.idxmax()
        return next(c for c in self.cells if (c.architecture, c.mode, c.seed) == (arch, mode, seed))


def _fingerprint(records: Sequence[SequenceRecord], options: dict[str, Any]) -> str:
    h = hashlib.sha1(json.dumps(options, sort_keys=True, default=str).encode())
    for r in records:
        h.update(r.id.encode() + r.split.encode())
        h.update(np.ascontiguousarray(r.x).tobytes())
        if r.y is not None:
            h.update(np.ascontiguousarray(r.y).tobytes())
    return h.hexdigest()[:16]


def _save_cell(folder: Path, cell: Cell) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "test_predictions.npz", *cell.test_predictions)
    cell.history.to_csv(folder / "history.csv", index=False)
    meta = {"architecture": cell.architecture, "mode": cell.mode, "seed": cell.seed, "targets": list(cell.targets),
            "rows": cell.rows, "postprocessor": cell.postprocessor, "model_paths": cell.model_paths,
            "seconds": cell.seconds}
    write_text(folder / "cell.json", json.dumps(meta, default=float))  # written last: marks the cell finished


def _load_cell(folder: Path) -> Cell | None:
    try:
        meta = json.loads((folder / "cell.json").read_text())
        with np.load(folder / "test_predictions.npz") as z:
            preds = [z[f"arr_{i}"] for i in range(len(z.files))]
        history = pd.read_csv(folder / "history.csv")
    except (OSError, ValueError, KeyError):
        return None
    return Cell(meta["architecture"], meta["mode"], meta["seed"], tuple(meta["targets"]), meta["rows"], history,
                preds, meta["postprocessor"], meta["model_paths"], meta["seconds"])


def _train_cell(arch: str, mode: Mode, seed: int, splits: dict[str, list[SequenceRecord]], targets: tuple[str, ...],
                folder: Path, fit_options: FitOptions, use_postprocess: bool, progress: bool,
                device: str | None = None) -> Cell:
    start = time.perf_counter()
    groups = [targets] if mode == "joint" else [(t,) for t in targets]
    dev_preds = [np.zeros((len(r), 0), np.float32) for r in splits["dev"]]
    test_preds = [np.zeros((len(r), 0), np.float32) for r in splits["test"]]
    histories, model_paths, label_stats = [], {}, {}
    for group in groups:
        sub = folder / "+".join(group)
        trained = training.fit(arch, splits["train"], splits["dev"] or None,
                               fit_options.replace(targets=group, seed=seed), checkpoint_dir=sub, progress=progress,
                               device=device)
        model_paths["+".join(group)] = str(sub / "model.pt")
        h = trained.history_frame.assign(group="+".join(group))
        histories.append(h)
        label_stats.update(trained.label_stats)
        dev_new = trained.predict(splits["dev"], device=device)
        test_new = trained.predict(splits["test"], device=device)
        dev_preds = [np.concatenate([a, b], axis=1) for a, b in zip(dev_preds, dev_new)]
        test_preds = [np.concatenate([a, b], axis=1) for a, b in zip(test_preds, test_new)]
    rows = []
    for split, recs, preds in (("dev", splits["dev"], dev_preds), ("test", splits["test"], test_preds)):
        if recs:  # no dev split: the last epoch is kept and only test is scored
            rows += [{"split": split, "postprocess": "none", **r} for r in score_rows(recs, preds, targets)]
    chain = None
    if use_postprocess:
        pp = postprocess.fit_chain(dev_preds, splits["dev"], label_stats=label_stats, targets=targets)
        chain = pp.to_dict()
        for split, recs, preds in (("dev", splits["dev"], dev_preds), ("test", splits["test"], test_preds)):
            rows += [{"split": split, "postprocess": "avec", **r} for r in score_rows(recs, pp.apply(preds), targets)]
    history = pd.concat(histories, ignore_index=True)
    return Cell(arch, mode, seed, targets, rows, history, test_preds, chain, model_paths,
                round(time.perf_counter() - start, 1))


def _cost_rank(architecture: str) -> int:
    # Rough cost order of a cell (0: slowest), for scheduling only: attention families, LSTM families, the rest.
    return 0 if "attention" in architecture else 1 if "lstm" in architecture else 2


def _cell_name(task: tuple) -> str:
    """``"lstm joint seed 0"``: a cell task as warnings name it."""
    return f"cell {task[0]} {task[1]} seed {task[2]}"


def _train_cell_job(args: tuple) -> Cell:
    """Train, score and save one cell on one CPU thread (the unit of parallel work)."""
    arch, mode, seed, splits, targets, folder, fit_options, use_postprocess, device = args
    with parallel.torch_threads(1):  # small models: one thread each, cells in parallel
        cell = _train_cell(arch, mode, seed, splits, targets, folder, fit_options, use_postprocess, False, device)
    _save_cell(folder, cell)
    return cell


def run_grid(
    records: Sequence[SequenceRecord],
    *,
    dataset: str,
    label_protocol: str,
    architectures: Sequence[str],
    modes: Sequence[Mode] = ("joint",),
    seeds: Sequence[int] = (0,),
    targets: Sequence[str] = TARGETS,
    fit_options: FitOptions | None = None,
    postprocess_chain: bool = True,
    run_dir: str | os.PathLike | None = None,
    jobs: int | None = None,
    scheduler: str | None = None,
    dask_workers: int | None = None,
    security: str | os.PathLike | Any | None = None,
    progress: bool = True,
    device: str | None = None,
) -> GridResult:
    """Train and score every (architecture, mode, seed) cell.

    A cell that fails (an exception, its worker killed or out of memory) is
    tried once more; if it fails again, a warning names it and its reason,
    it goes to :attr:`GridResult.failed`, and the other cells finish. A
    rerun trains only the cells not yet cached.

    Args:
        records: labelled records with ``split`` in train/dev/test. Without
            dev records (``postprocess_chain=False`` only), every cell keeps
            its last epoch and only test is scored: the original protocol's
            random utterance split (:mod:`emotools.original`).
        dataset: name for the results table (e.g. ``"ground_truth"``).
        label_protocol: where the labels came from, for the table
            (``"annotation"``, ``"seed"``, ``"proxy"``, ...).
        architectures: registered model names.
        modes: ``"joint"`` (one model for all targets) and/or ``"separate"``
            (one model per target, as the original project trained).
        seeds: training seeds.
        targets: label columns.
        fit_options: how every cell trains (:class:`emotools.training.FitOptions`;
            default ``FitOptions()``); its ``targets`` and ``seed`` are set per
            cell from ``targets``, ``modes`` and ``seeds``.
        postprocess_chain: also score after the AVEC chain tuned on dev.
        run_dir: where checkpoints and finished cells are cached (default
            ``results/checkpoints/<dataset>-<label_protocol>``).
        jobs: cells trained at once, each in its own process on one CPU
            thread (default: all cores). Results do not depend on it; the
            longest cells (attention, then LSTM families) start first so that
            no worker is left with a long cell at the end.
        scheduler: train each cell as one task on this running Dask scheduler
            (``tls://HOST:PORT``, or ``tcp://`` on a private network only)
            instead; ``run_dir`` must then be on a file system every worker
            sees at the same path (docs/cluster.md). Results do not depend on it.
        dask_workers: start a local Dask cluster with this many single-threaded
            workers instead (not with ``scheduler``).
        security: TLS certificates (:func:`emotools.parallel.dask_security`:
            a folder with ``ca.pem``, ``cert.pem``, ``key.pem``); default
            Dask's configuration.
        device: ``"cuda"`` / ``"cpu"``; default cuda when available.

    Returns:
        A :class:`GridResult`; ``results`` has :data:`RESULT_COLUMNS`.

    Raises:
        TrainingError: a split is missing, or ``fit_options`` is not a FitOptions.
        ValueError: contradictory Dask options (both ``scheduler`` and ``dask_workers``, ...).
        Exception: the first cell's error when no cell could be trained.
    """
    from .progress import tqdm

    fit_options = fit_options if fit_options is not None else FitOptions()
    if not isinstance(fit_options, FitOptions):
        raise TrainingError("fit_options", f"must be a FitOptions, got {type(fit_options).__name__}")
    parallel.check_backend(scheduler=scheduler, dask_workers=dask_workers, security=security)
    splits = by_split(records)
    for name in ("train", "dev", "test"):
        if not splits[name] and not (name == "dev" and not postprocess_chain):
            why = " (the AVEC chain is tuned on dev: postprocess_chain=False runs without)" if name == "dev" else ""
            raise TrainingError(f"{dataset}/{label_protocol}", f"no {name} records{why} (splits: "
                                f"{ {k: len(v) for k, v in splits.items()} })")
    targets = tuple(targets)
    run_dir = (Path(run_dir) if run_dir is not None
               else paths.results_dir() / "checkpoints" / f"{dataset}-{label_protocol}")
    # seed and targets are the grid's, per cell: not part of the grid's key
    key = _fingerprint(records, {**fit_options.to_dict(), "targets": targets, "seed": None, "post": postprocess_chain})
    plan = [(a, m, s) for m in modes for s in seeds for a in architectures]
    folders = {p: run_dir / key / f"{p[0]}-{p[1]}-seed{p[2]}" for p in plan}
    done = {p: c for p in plan if (c := _load_cell(folders[p])) is not None}
    todo = [p for p in plan if p not in done]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo) or 1))
    todo.sort(key=lambda p: _cost_rank(p[0]))  # stable: plan order within a rank
    tasks = [(*p, splits, targets, folders[p], fit_options, postprocess_chain, device) for p in todo]
    bar = tqdm(total=len(plan), initial=len(done), desc=f"{dataset}/{label_protocol}", unit="model",
               disable=not progress)
    failed, errors = [], []
    for task, cell, error in parallel.run_each(_train_cell_job, tasks, jobs=jobs, scheduler=scheduler,
                                               dask_workers=dask_workers, security=security, retries=1,
                                               name=_cell_name):
        if error is not None:  # never stops the grid: the finished cells are cached and returned
            failed.append(dict(zip(FAILED_COLUMNS, (*task[:3], parallel.reason(error)))))
            errors.append(error)
            log.warning("%s/%s %s failed twice, left out (GridResult.failed): %s", dataset, label_protocol,
                        _cell_name(task), failed[-1]["reason"])
        else:
            done[task[:3]] = cell
        bar.set_postfix_str(f"{task[0]} {task[1]} seed {task[2]} {'failed' if error else 'done'}")
        bar.update()
    bar.close()
    if errors and not done:
        errors[0].add_note(f"{dataset}/{label_protocol}: every cell of the grid failed ({len(errors)})")
        raise errors[0]
    plan = [p for p in plan if p in done]
    cells = [done[p] for p in plan]
    rows = [{"dataset": dataset, "label_protocol": label_protocol, "architecture": c.architecture, "mode": c.mode,
             "seed": c.seed, **r} for c in cells for r in c.rows]
    results = pd.DataFrame(rows)[RESULT_COLUMNS]
    histories = pd.concat([c.history.assign(architecture=c.architecture, mode=c.mode, seed=c.seed) for c in cells],
                          ignore_index=True)
    return GridResult(results, histories, cells, splits["test"], pd.DataFrame(failed, columns=FAILED_COLUMNS))


# ------------------------------------------------------------------------ intervals


def cell_predictions(cell: Cell, kind: str = "none") -> list[np.ndarray]:
    """A cell's test predictions as its ``postprocess == kind`` rows scored them.

    ``"none"``: the raw predictions; ``"avec"``: the cell's AVEC chain (fit on
    dev) applied to them.

    Raises:
        TrainingError: an unknown ``kind``, or ``"avec"`` for a cell trained without the chain.
    """
    if kind == "none":
        return list(cell.test_predictions)
    if kind != "avec":
        raise TrainingError("postprocess", f"unknown {kind!r}: use 'none' or 'avec'")
    if cell.postprocessor is None:
        raise TrainingError(f"{cell.architecture}-{cell.mode}-seed{cell.seed}", "was trained without the AVEC chain")
    return postprocess.PostProcessor.from_dict(cell.postprocessor).apply(cell.test_predictions)


@dataclass(frozen=True)
class _Bootstrap:
    """Bootstrap settings shared by every interval of a table."""

    n_resamples: int = 2000
    level: float = 0.95
    seed: int = 0

    def kwargs(self) -> dict[str, Any]:
        return {"n_resamples": self.n_resamples, "level": self.level, "seed": self.seed, "ccc_protocol": CCC_PROTOCOL}


@dataclass
class _Group:
    """One grid's test systems for one (mode, postprocess, target): what a bootstrap compares."""

    grid: GridResult
    mode: str
    kind: str
    target: str
    truths: list[np.ndarray]
    systems: dict[str, dict[int, list[np.ndarray]]]  # {architecture: {seed: per-recording predictions}}

    @property
    def keys(self) -> dict[str, Any]:
        first = self.grid.results.iloc[0]
        return {"dataset": first["dataset"], "label_protocol": first["label_protocol"], "mode": self.mode,
                "target": self.target, "postprocess": self.kind}

    def units(self) -> tuple[list[str] | None, str, int]:
        """The resampling unit: test speakers when there are >= 2, else test recordings; and their count."""
        speakers = [r.speaker for r in self.grid.test_records]
        if len(set(speakers)) >= 2:
            return speakers, "speaker", len(set(speakers))
        return None, "recording", len(speakers)

    def _ccc(self, split: str) -> pd.core.groupby.SeriesGroupBy:
        r = self.grid.results
        r = r[(r["split"] == split) & (r["postprocess"] == self.kind) & (r["mode"] == self.mode)
              & (r["target"] == self.target)]
        return r.groupby("architecture")["ccc"]

    def test_means(self, split: str = "test") -> pd.Series:
        """Mean CCC over seeds per architecture from the grid's results rows (on ``split``)."""
        return self._ccc(split).mean()

    def sds(self) -> pd.Series:
        """Sd of the test CCC over seeds per architecture (NaN for one seed)."""
        return self._ccc("test").std()


def _groups(grids: GridResult | Iterable[GridResult]) -> Iterable[tuple[_Group, int]]:
    """Every grid's (mode, postprocess, target) groups and the target's column, post-processing applied once."""
    for grid in [grids] if isinstance(grids, GridResult) else grids:
        if not grid.cells:
            continue
        targets = grid.cells[0].targets
        truths = [r.select_targets(targets).y for r in grid.test_records]
        for mode in dict.fromkeys(c.mode for c in grid.cells):
            for kind in ("none", "avec"):
                if not ((grid.results["postprocess"] == kind) & (grid.results["mode"] == mode)).any():
                    continue
                systems: dict[str, dict[int, list[np.ndarray]]] = {}
                for c in grid.cells:
                    if c.mode == mode:
                        systems.setdefault(c.architecture, {})[c.seed] = cell_predictions(c, kind)
                for k, target in enumerate(targets):
                    yield _Group(grid, mode, kind, target, truths, systems), k


def _interval_fields(iv: stats.Interval) -> dict[str, Any]:
    return {"ccc": iv.estimate, "ccc_low": iv.low, "ccc_high": iv.high, "level": iv.level, "unit": iv.unit,
            "n_units": iv.n_units, "n_seeds": iv.n_seeds, "seeds_resampled": iv.seeds_resampled,
            "n_resamples": iv.n_resamples, "method": iv.method}


def _group_intervals(group: _Group, k: int, opts: _Bootstrap) -> list[dict[str, Any]]:
    """Interval rows of one group: each architecture's CI and, with several, the paired CI to the best."""
    units, unit, n_units = group.units()
    means, sds = group.test_means(), group.sds()
    rows = []
    if n_units < 2:
        log.warning("%s/%s: no confidence interval: %d test %s", group.keys["dataset"], group.keys["label_protocol"],
                    n_units, unit)
        for arch, seeds in group.systems.items():
            rows.append({"architecture": arch, "ccc": means.get(arch, np.nan), "ccc_low": np.nan, "ccc_high": np.nan,
                         "level": opts.level, "unit": unit, "n_units": n_units, "n_seeds": len(seeds),
                         "seeds_resampled": False, "n_resamples": 0, "method": ""})
    elif len(group.systems) == 1:
        [(arch, seeds)] = group.systems.items()
        iv = stats.bootstrap_ccc(group.truths, seeds, units=units, unit=unit, target=k, **opts.kwargs())
        rows.append({"architecture": arch, **_interval_fields(iv)})
    else:
        sep = stats.separable_from_best(group.truths, group.systems, units=units, unit=unit, target=k,
                                        **opts.kwargs())
        for arch, iv in sep.intervals.items():
            d = sep.differences.get(arch)
            rows.append({"architecture": arch, **_interval_fields(iv), "best": arch == sep.best_if_separable,
                         "runner_up": sep.runner_up, "diff_to_best": 0.0 if d is None else d.estimate,
                         "diff_low": np.nan if d is None else d.low, "diff_high": np.nan if d is None else d.high,
                         "separable_from_best": None if d is None else d.excludes(0.0)})
    for row in rows:
        row.update(group.keys, ccc_sd=sds.get(row["architecture"], np.nan))
        if abs(row["ccc"] - means.get(row["architecture"], np.nan)) > 1e-6:
            log.warning("%s %s %s: bootstrap estimate %.6f differs from the results rows' mean %.6f",
                        row["architecture"], group.target, group.kind, row["ccc"], means.get(row["architecture"]))
    return rows


def interval_table(grids: GridResult | Iterable[GridResult], *, n_resamples: int = 2000, level: float = 0.95,
                   seed: int = 0) -> pd.DataFrame:
    """Test CCC with a bootstrap CI per (dataset, label_protocol, mode, architecture, target, postprocess).

    ``ccc`` is the mean over seeds of the test CCC (equal to the results rows'
    mean) and ``ccc_sd`` its sd over seeds. The CI resamples the test
    speakers (all recordings of a speaker together) when there are at least
    2, else the test recordings, and the seeds too (hierarchical bootstrap,
    :func:`emotools.stats.separable_from_best`); ``unit``, ``n_units`` and
    ``n_seeds`` say so. With a single test unit the CI is NaN. ``postprocess
    == "avec"`` scores each cell's AVEC chain applied to its raw predictions.
    Per group, ``best`` is True only for the best architecture whose paired CI
    of (best - runner-up) excludes 0; ``diff_*`` is every other architecture's
    paired CI of (best - it).

    Returns:
        One row per system, :data:`INTERVAL_COLUMNS`.
    """
    opts = _Bootstrap(n_resamples, level, seed)
    rows = []
    for group, k in _groups(grids):
        try:
            rows += _group_intervals(group, k, opts)
        except stats.StatsError as error:
            log.warning("%s %s %s: no confidence interval: %s", group.keys["dataset"], group.target, group.kind, error)
    table = pd.DataFrame(rows, columns=INTERVAL_COLUMNS)
    table["best"] = table["best"].eq(True)  # NaN (no comparison in the group) -> False
    return table


def frame_local_comparison(grids: GridResult | Iterable[GridResult], *, frame_local: str = "mlp",
                           n_resamples: int = 2000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Paired CI of (best context model - frame-local model) on test, raw and after the AVEC chain.

    The context model is every architecture but ``frame_local``; the one
    compared is chosen on **dev** (highest mean dev CCC over seeds for that
    target and post-processing), so test is reported once for what dev chose.
    Units and seeds are resampled as in :func:`interval_table`;
    ``excludes_zero`` says whether the difference is resolved. With a single
    test unit the row has the difference and a NaN CI.

    Returns:
        One row per (dataset, label_protocol, mode, target, postprocess),
        :data:`COMPARISON_COLUMNS`; empty when no grid has ``frame_local`` and another architecture.
    """
    opts = _Bootstrap(n_resamples, level, seed)
    rows = []
    for group, k in _groups(grids):
        dev = group.test_means("dev").drop(frame_local, errors="ignore")
        units, unit, n_units = group.units()
        if frame_local not in group.systems or dev.empty:
            continue
        context, means = str(dev.idxmax()), group.test_means()
        row = {**group.keys, "context_model": context, "frame_local": frame_local, "context_ccc": means[context],
               "frame_local_ccc": means[frame_local], "difference": means[context] - means[frame_local],
               "diff_low": np.nan, "diff_high": np.nan, "excludes_zero": False, "level": opts.level, "unit": unit,
               "n_units": n_units, "n_seeds": len(group.systems[context]), "n_resamples": 0, "method": ""}
        if n_units >= 2:  # else: no CI, the difference alone
            d = stats.paired_difference(group.truths, group.systems[context], group.systems[frame_local],
                                        names=(context, frame_local), units=units, unit=unit, target=k,
                                        **opts.kwargs())
            row.update(difference=d.estimate, diff_low=d.low, diff_high=d.high, excludes_zero=d.excludes(0.0),
                       n_seeds=d.n_seeds, n_resamples=d.n_resamples, method=d.method)
        rows.append(row)
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


# ------------------------------------------------------------------------ tables


def summary_table(results: pd.DataFrame, *, split: str = "test", postprocess: str = "none",
                  metrics_: Sequence[str] = ("ccc", "mse"), intervals: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean ± sd over seeds per (dataset, label_protocol, mode, architecture), a column per target and metric.

    With ``intervals`` (from :func:`interval_table`, test split only) every
    ``ccc <target>`` column is followed by its ``95% CI <target>`` and the
    best architecture's CCC is bold where its paired CI to the runner-up
    excludes 0.
    """
    r = results[(results["split"] == split) & (results["postprocess"] == postprocess)]
    keys = ["dataset", "label_protocol", "mode", "architecture", "target"]
    agg = r.groupby(keys)[list(metrics_)].agg(["mean", "std", "count"])
    out = {}
    for m in metrics_:
        mean, sd = agg[(m, "mean")], agg[(m, "std")].fillna(0.0)
        n = agg[(m, "count")]
        out[m] = [f"{a:.3f} ± {b:.3f}" if c > 1 else f"{a:.3f}" for a, b, c in zip(mean, sd, n)]
    table = pd.DataFrame(out, index=agg.index).reset_index()
    wide = table.pivot_table(index=keys[:-1], columns="target", values=list(metrics_), aggfunc="first")
    wide.columns = [f"{m} {t}" for m, t in wide.columns]
    wide = wide.reset_index()
    if intervals is not None and "ccc" in metrics_:
        wide = _with_intervals(wide, intervals[intervals["postprocess"] == postprocess])
    order = {a: i for i, a in enumerate(arch_order(wide["architecture"].unique()))}
    return wide.sort_values(["dataset", "label_protocol", "mode", "architecture"],
                            key=lambda s: s.map(order) if s.name == "architecture" else s).reset_index(drop=True)


def _ci_text(low: float, high: float) -> str:
    return "n/a" if np.isnan(low) or np.isnan(high) else f"[{low:.3f}, {high:.3f}]"


def _with_intervals(wide: pd.DataFrame, intervals: pd.DataFrame) -> pd.DataFrame:
    """``wide`` with a CI column after each ``ccc <target>`` column and the separable best in bold."""
    system = ["dataset", "label_protocol", "mode", "architecture"]
    by_key = intervals.drop_duplicates([*system, "target"]).set_index([*system, "target"])
    columns = []
    for col in wide.columns:
        columns.append(col)
        if not col.startswith("ccc "):
            continue
        target = col[len("ccc "):]
        found = [by_key.loc[key] if key in by_key.index else None
                 for key in (tuple(row) + (target,) for row in wide[system].itertuples(index=False))]
        level = intervals["level"].iloc[0] if len(intervals) else 0.95
        ci = f"{level:.0%} CI {target}"
        wide[ci] = ["" if f is None else _ci_text(f["ccc_low"], f["ccc_high"]) for f in found]
        wide[col] = [f"**{v}**" if f is not None and bool(f["best"]) else v for v, f in zip(wide[col], found)]
        columns.append(ci)
    return wide[columns]


def _resampling_text(row: Mapping[str, Any]) -> str:
    """How a row's interval was made: "95% CI: bootstrap over the 4 test speakers and the 3 seeds, ..."."""
    if row["n_units"] < 2 or not row["n_resamples"]:
        return f"no CI: only {row['n_units']} test {row['unit']}"
    seeds = f" and the {row['n_seeds']} seeds" if row["seeds_resampled"] else ""
    return (f"{row['level']:.0%} CI: bootstrap over the {row['n_units']} test {row['unit']}s{seeds}, "
            f"{row['n_resamples']} resamples, {row['method']}")


def _best_text(group: pd.DataFrame) -> str | None:
    """"best X, separable from ..." or "best not resolved: X - Y = d [lo, hi]" for one comparison group."""
    runner = group["runner_up"].dropna()
    if runner.empty:
        return None
    diff = group[group["architecture"] == runner.iloc[0]].iloc[0]
    best = group.loc[group["ccc"].idxmax(), "architecture"]
    d = f"{best} - {diff['architecture']} = {diff['diff_to_best']:.3f} {_ci_text(diff['diff_low'], diff['diff_high'])}"
    return f"best **{best}**, separable from the runner-up: {d}" if group["best"].any() else f"best not resolved: {d}"


def interval_notes(intervals: pd.DataFrame, *, postprocess: str = "none") -> list[str]:
    """Lines to print under a table: how the CIs were made, and per target whether the best is resolved."""
    part = intervals[intervals["postprocess"] == postprocess]
    scopes = ["dataset", "label_protocol", "mode"]
    lines = []
    how = {key: _resampling_text(g.iloc[0]) for key, g in part.groupby(scopes, sort=False)}
    if len(set(how.values())) == 1:
        lines.append(next(iter(how.values())) + ".")
    else:
        lines += [f"{' · '.join(map(str, key))}: {text}." for key, text in how.items()]
    several = part.groupby(scopes).ngroups > 1
    for key, group in part.groupby([*scopes, "target"], sort=False):
        text = _best_text(group)
        if text is not None:
            lines.append(f"{' · '.join(map(str, key if several else key[-1:]))}: {text}.")
    return lines


def comparison_markdown(comparisons: pd.DataFrame) -> str:
    """The context-vs-frame-local table as markdown, with a line saying how the CIs were made."""
    if comparisons.empty:
        return ""
    rows = []
    for _, c in comparisons.iterrows():
        rows.append({"label_protocol": c["label_protocol"], "mode": c["mode"], "target": c["target"],
                     "predictions": "raw" if c["postprocess"] == "none" else "AVEC chain",
                     "context model (dev choice)": c["context_model"],
                     "CCC context": f"{c['context_ccc']:.3f}", f"CCC {c['frame_local']}": f"{c['frame_local_ccc']:.3f}",
                     "difference": f"{c['difference']:.3f}", f"{c['level']:.0%} CI": _ci_text(c["diff_low"],
                                                                                           c["diff_high"]),
                     "resolved": "yes" if c["excludes_zero"] else "not resolved" if c["n_resamples"] else "no CI"})
    first = comparisons.iloc[0].to_dict()
    how = _resampling_text({**first, "seeds_resampled": first["n_seeds"] > 1})
    return (pd.DataFrame(rows).to_markdown(index=False) + f"\n\nPaired CI of (context model - {first['frame_local']})"
            f", both scored on the same resampled test units. {how}. The context model is the best on dev; "
            "\"resolved\": the CI excludes 0.\n")


def write_results(results: pd.DataFrame, name: str, *, note: str = "", intervals: pd.DataFrame | None = None,
                  comparisons: pd.DataFrame | None = None,
                  sections: Sequence[tuple[str, str]] = ()) -> tuple[Path, ...]:
    """Write ``results/<name>.csv`` (tidy) and ``results/<name>.md`` (mean ± sd and CIs on test).

    Args:
        results: tidy results (:data:`RESULT_COLUMNS`).
        name: file stem, usually the notebook's name.
        note: text under the title.
        intervals: :func:`interval_table` of the same grids: adds the CI
            columns, the resampling line and the "best" verdict under each
            table, and writes ``results/<name>_intervals.csv``.
        comparisons: :func:`frame_local_comparison`: a section in the
            markdown and ``results/<name>_vs_frame_local.csv``.
        sections: extra ``(heading, markdown)`` sections appended at the end.

    Returns:
        The files written: the CSV, the markdown, then the intervals and comparisons CSVs when given.
    """
    folder = paths.results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / f"{name}.csv"
    results.to_csv(csv, index=False, float_format="%.6g")
    written = [csv, folder / f"{name}.md"]
    parts = [f"# {name}\n"]
    if note:
        parts.append(note.strip() + "\n")
    for post in ("none", "avec"):
        if (results["postprocess"] == post).any():
            label = "raw predictions" if post == "none" else "after the AVEC post-processing chain (tuned on dev)"
            parts.append(f"## Test, {label}\n\nCCC: one CCC over all test recordings concatenated "
                         "(AVEC 2019 / MuSe); mean ± sd over seeds where there are several.\n")
            parts.append(summary_table(results, postprocess=post, intervals=intervals).to_markdown(index=False) + "\n")
            if intervals is not None:
                parts.append("\n\n".join(interval_notes(intervals, postprocess=post)) + "\n")
    for extra, stem in ((intervals, "intervals"), (comparisons, "vs_frame_local")):
        if extra is not None:
            written.append(folder / f"{name}_{stem}.csv")
            extra.to_csv(written[-1], index=False, float_format="%.6g")
    if comparisons is not None and not comparisons.empty:
        parts.append("## Context model vs frame-local model (test)\n\n" + comparison_markdown(comparisons))
    parts += [f"## {heading}\n\n{body.strip()}\n" for heading, body in sections]
    write_text(written[1], "\n".join(parts))
    return tuple(written)


def _intervals_beside(csv: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(csv.with_name(f"{csv.stem}_intervals.csv"))
    except (OSError, ValueError):
        return None


def write_summary(names: Sequence[str] | None = None) -> Path:
    """``results/summary.md``: the test tables of every notebook's results CSV (and CIs where written), joined."""
    folder = paths.results_dir()
    csvs = [folder / f"{n}.csv" for n in names] if names else sorted(folder.glob("*.csv"))
    frames, intervals = [], []
    for csv in csvs:
        try:
            df = pd.read_csv(csv)
        except (OSError, ValueError):
            continue
        if set(RESULT_COLUMNS) <= set(df.columns):
            frames.append(df)
            if (iv := _intervals_beside(csv)) is not None and set(INTERVAL_COLUMNS) <= set(iv.columns):
                intervals.append(iv)
    out = folder / "summary.md"
    text = ["# Summary of all notebooks\n",
            "Test split, raw predictions. CCC: one CCC over all test recordings concatenated "
            "(AVEC 2019 / MuSe). Mean ± sd over seeds where there are several; 95% CI where the notebook "
            "wrote one (bootstrap over test speakers, or recordings, and seeds; see each notebook's table).\n"]
    if frames:
        joined = pd.concat(intervals, ignore_index=True) if intervals else None
        text.append(summary_table(pd.concat(frames, ignore_index=True), intervals=joined).to_markdown(index=False))
    write_text(out, "\n".join(text) + "\n")
    return out
