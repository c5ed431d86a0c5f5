"""The experiment grid: architectures x training modes x seeds -> tidy results.

One call trains every cell of a grid on the same records, scores it on dev
and test under both CCC protocols (raw and after the AVEC post-processing
chain), and returns tidy tables the notebooks show and save. Finished cells
are cached on disk (keyed by a hash of the data and every option), so an
interrupted run resumes and a rerun with the same settings is instant.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from . import metrics, parallel, paths, postprocess, training
from .fileio import write_text
from .labels import TARGETS
from .metrics import CCCProtocol
from .models import arch_order
from .sequences import SequenceRecord
from .training import FitOptions, TrainingError

__all__ = ["RESULT_COLUMNS", "Mode", "FitOptions", "by_split", "score_rows", "per_speaker", "Cell", "GridResult",
           "run_grid", "summary_table", "write_results", "write_summary"]

log = logging.getLogger(__name__)

Mode = Literal["joint", "separate"]

#: Column order of the tidy results table.
RESULT_COLUMNS = [
    "dataset", "label_protocol", "architecture", "target", "mode", "seed", "split", "postprocess",
    "ccc", "ccc_protocol", "ccc_per_recording", "pearson", "mse", "rmse", "n_recordings", "n_frames",
]

CCC_PROTOCOL = CCCProtocol.CONCAT.value  # the `ccc` column: one CCC over all recordings concatenated (AVEC 2019 / MuSe)


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
    """Everything a notebook shows: tidy results, learning curves, test predictions."""

    results: pd.DataFrame
    histories: pd.DataFrame
    cells: list[Cell]
    test_records: list[SequenceRecord]

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
        trained = training.fit(arch, splits["train"], splits["dev"], fit_options.replace(targets=group, seed=seed),
                               checkpoint_dir=sub, progress=progress, device=device)
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


def _train_cell_job(args: tuple) -> Cell:
    """Train, score and save one cell on one CPU thread (the unit of parallel work)."""
    import torch

    arch, mode, seed, splits, targets, folder, fit_options, use_postprocess, device = args
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: one thread each, cells in parallel
    try:
        cell = _train_cell(arch, mode, seed, splits, targets, folder, fit_options, use_postprocess, False, device)
    finally:
        torch.set_num_threads(threads)
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
    progress: bool = True,
    device: str | None = None,
) -> GridResult:
    """Train and score every (architecture, mode, seed) cell.

    Args:
        records: labelled records with ``split`` in train/dev/test.
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
        device: ``"cuda"`` / ``"cpu"``; default cuda when available.

    Returns:
        A :class:`GridResult`; ``results`` has :data:`RESULT_COLUMNS`.
    """
    from .progress import tqdm

    fit_options = fit_options if fit_options is not None else FitOptions()
    if not isinstance(fit_options, FitOptions):
        raise TrainingError("fit_options", f"must be a FitOptions, got {type(fit_options).__name__}")
    splits = by_split(records)
    for name in ("train", "dev", "test"):
        if not splits[name]:
            raise TrainingError(f"{dataset}/{label_protocol}", f"no {name} records (splits: "
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
    for task, cell, error in parallel.run_each(_train_cell_job, tasks, jobs=jobs):
        if error is not None:
            bar.close()
            raise error
        done[task[:3]] = cell
        bar.set_postfix_str(f"{task[0]} {task[1]} seed {task[2]} done")
        bar.update()
    bar.close()
    cells = [done[p] for p in plan]
    rows = [{"dataset": dataset, "label_protocol": label_protocol, "architecture": c.architecture, "mode": c.mode,
             "seed": c.seed, **r} for c in cells for r in c.rows]
    results = pd.DataFrame(rows)[RESULT_COLUMNS]
    histories = pd.concat([c.history.assign(architecture=c.architecture, mode=c.mode, seed=c.seed) for c in cells],
                          ignore_index=True)
    return GridResult(results, histories, cells, splits["test"])


# ------------------------------------------------------------------------ tables


def summary_table(results: pd.DataFrame, *, split: str = "test", postprocess: str = "none",
                  metrics_: Sequence[str] = ("ccc", "mse")) -> pd.DataFrame:
    """Mean ± sd over seeds per (dataset, label_protocol, mode, architecture), a column per target and metric."""
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
    order = {a: i for i, a in enumerate(arch_order(wide["architecture"].unique()))}
    return wide.sort_values(["dataset", "label_protocol", "mode", "architecture"],
                            key=lambda s: s.map(order) if s.name == "architecture" else s).reset_index(drop=True)


def write_results(results: pd.DataFrame, name: str, *, note: str = "") -> tuple[Path, Path]:
    """Write ``results/<name>.csv`` (tidy) and ``results/<name>.md`` (mean ± sd on test)."""
    folder = paths.results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / f"{name}.csv"
    results.to_csv(csv, index=False, float_format="%.6g")
    md = folder / f"{name}.md"
    parts = [f"# {name}\n"]
    if note:
        parts.append(note.strip() + "\n")
    for post in ("none", "avec"):
        if (results["postprocess"] == post).any():
            label = "raw predictions" if post == "none" else "after the AVEC post-processing chain (tuned on dev)"
            parts.append(f"## Test, {label}\n\nCCC: one CCC over all test recordings concatenated "
                         "(AVEC 2019 / MuSe); mean ± sd over seeds where there are several.\n")
            parts.append(summary_table(results, postprocess=post).to_markdown(index=False) + "\n")
    write_text(md, "\n".join(parts))
    return csv, md


def write_summary(names: Sequence[str] | None = None) -> Path:
    """``results/summary.md``: the test tables of every notebook's results CSV, joined."""
    folder = paths.results_dir()
    csvs = [folder / f"{n}.csv" for n in names] if names else sorted(folder.glob("*.csv"))
    frames = []
    for csv in csvs:
        try:
            df = pd.read_csv(csv)
        except (OSError, ValueError):
            continue
        if set(RESULT_COLUMNS) <= set(df.columns):
            frames.append(df)
    out = folder / "summary.md"
    text = ["# Summary of all notebooks\n",
            "Test split, raw predictions. CCC: one CCC over all test recordings concatenated "
            "(AVEC 2019 / MuSe). Mean ± sd over seeds where there are several.\n"]
    if frames:
        text.append(summary_table(pd.concat(frames, ignore_index=True)).to_markdown(index=False))
    write_text(out, "\n".join(text) + "\n")
    return out
