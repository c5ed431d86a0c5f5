"""The cost of training the architecture grid, as ``run_grid`` pays it -> benchmarks/results/bench_training.json.

For each architecture, from the cells of one real ``experiments.run_grid``
call on the default ground-truth records (9 architectures x 3 seeds, the
default ``FitOptions``, the default ``jobs``):

* seconds per epoch (the history's ``seconds``: training steps + the dev pass)
  and train frames per second (training frames / seconds per epoch);
* epochs run and epochs to the best dev CCC;
* overhead seconds by kind: worker process start (interpreter + imports,
  first cell of each worker), optimizer construction, checkpoint writes,
  the rest of ``fit`` outside its epochs, dev/test prediction, the
  post-processing search, scoring, saving the cell, and what is left;
* total cell seconds and the worker's peak resident memory during the cell
  (``VmHWM`` reset before each cell);
* test CCC per architecture and seed (raw predictions, mean over targets),
  for the accuracy check;

and the whole grid's wall time.

``--against <commit>`` runs the same measurement on another revision in the
same invocation, back to back: the revision is exported (``git archive``,
so the repository's worktree list is left alone) into a temporary folder
and measured in a subprocess whose ``PYTHONPATH`` points at it. Both
revisions get the same records as plain arrays (built once with this
checkout's code, or loaded from ``--records``) and construct their own
``SequenceRecord`` objects from them; each trains with its own default
``FitOptions``. The timing wrappers live in this script, so the measurement
is identical for both. Supported revisions: 8dfa16a and later (``run_grid``
with ``label_protocol=`` and ``fit_options=``).

Usage::

    python benchmarks/bench_training.py --quick                  # 3 archs, 1 seed, 2 epochs: checks the script
    python benchmarks/bench_training.py --against 8dfa16a        # the full grid, both revisions
    python benchmarks/bench_training.py --records recs.pkl --against 8dfa16a --out /tmp/b.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "results" / "bench_training.json"
ARCHS = ["mlp", "lstm", "tdnn", "attention", "tdnn_lstm", "attention_tdnn", "attention_lstm",
         "attention_tdnn_lstm", "tcn"]  # 01_ground_truth's grid
QUICK_ARCHS = ["mlp", "lstm", "attention_tdnn"]

# --------------------------------------------------------------------------- in the grid's worker processes

_TIMES: dict[str, float] = {}
_ORIGINAL_JOB = None
_PATCHED = False
_JOBS_IN_PROCESS = 0


def _timed(kind: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _TIMES[kind] = _TIMES.get(kind, 0.0) + time.perf_counter() - t0
    return wrapper


def _patch() -> None:
    """Wrap the functions whose time is an overhead kind (idempotent; the same names at every revision)."""
    global _PATCHED
    if _PATCHED:
        return
    import torch

    from emotools import experiments, postprocess, training
    from emotools.training import trainer

    torch.optim.Adam.__init__ = _timed("optimizer_init", torch.optim.Adam.__init__)
    trainer._atomic_save = _timed("checkpoint_writes", trainer._atomic_save)
    training.fit = _timed("fit", training.fit)
    trainer.TrainedModel.predict = _timed("predict_dev_test", trainer.TrainedModel.predict)
    postprocess.fit_chain = _timed("postprocess_search", postprocess.fit_chain)
    experiments.score_rows = _timed("scoring", experiments.score_rows)
    experiments._save_cell = _timed("save_cell", experiments._save_cell)
    _PATCHED = True


def _process_age() -> float | None:
    # Seconds since this process was created (Linux), None elsewhere.
    try:
        stat = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - int(stat[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _status_bytes(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def instrumented_job(args: tuple) -> Any:
    """``experiments._train_cell_job`` with every overhead kind timed; the timings ride on the cell as ``bench``."""
    global _JOBS_IN_PROCESS
    age = _process_age()
    _patch()
    from emotools import experiments

    job = _ORIGINAL_JOB or experiments._train_cell_job
    _TIMES.clear()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
    except OSError:
        pass
    t0 = time.perf_counter()
    cell = job(args)
    cell.bench = {"job_seconds": time.perf_counter() - t0, "times": dict(_TIMES), "pid": os.getpid(),
                  "process_start_seconds": age if _JOBS_IN_PROCESS == 0 else 0.0,
                  "peak_rss_bytes": _status_bytes("VmHWM")}
    _JOBS_IN_PROCESS += 1
    return cell


# --------------------------------------------------------------------------- one revision, in a subprocess


def _records(data: dict[str, Any]) -> list:
    from emotools.sequences import SequenceRecord

    return [SequenceRecord(**r) for r in data["records"]]


def _cell_summary(cell: Any, n_train_frames: int) -> dict[str, Any]:
    h = cell.history
    epoch_s = [float(s) for s in h["seconds"]]
    best = int(h["epoch"].iloc[int(h["dev_ccc"].astype(float).fillna(-1e9).to_numpy().argmax())])
    b = getattr(cell, "bench", {})
    t = dict(b.get("times", {}))
    epochs_total = sum(epoch_s)
    fit_other = t.get("fit", 0.0) - epochs_total - t.get("optimizer_init", 0.0) - t.get("checkpoint_writes", 0.0)
    overhead = {
        "process_start": b.get("process_start_seconds") or 0.0,
        "optimizer_init": t.get("optimizer_init", 0.0),
        "checkpoint_writes": t.get("checkpoint_writes", 0.0),
        "fit_setup_other": max(0.0, fit_other),
        "predict_dev_test": t.get("predict_dev_test", 0.0),
        "postprocess_search": t.get("postprocess_search", 0.0),
        "scoring": t.get("scoring", 0.0),
        "save_cell": t.get("save_cell", 0.0),
    }
    accounted = t.get("fit", 0.0) + sum(t.get(k, 0.0) for k in ("predict_dev_test", "postprocess_search",
                                                                 "scoring", "save_cell"))
    overhead["other"] = max(0.0, b.get("job_seconds", cell.seconds) - accounted)
    return {
        "architecture": cell.architecture, "seed": cell.seed, "epochs": len(epoch_s), "best_epoch": best,
        "seconds_per_epoch": epochs_total / max(1, len(epoch_s)),
        "train_frames_per_s": n_train_frames * len(epoch_s) / epochs_total if epochs_total else None,
        "epoch_seconds_total": epochs_total, "cell_seconds": b.get("job_seconds", cell.seconds),
        "overhead_seconds": overhead, "peak_rss_bytes": b.get("peak_rss_bytes"), "pid": b.get("pid"),
    }


def worker(data_path: Path, out: Path, archs: list[str], seeds: list[int], epochs: int | None,
           jobs: int | None) -> None:
    """Measure one grid with the emotools on ``PYTHONPATH``; write the raw measurement to ``out``."""
    t_import = time.perf_counter()
    import torch

    import emotools
    from emotools import experiments
    from emotools.training import FitOptions

    import_seconds = time.perf_counter() - t_import
    global _ORIGINAL_JOB
    import bench_training as me  # this file as a module, so spawned workers can unpickle the job

    me._ORIGINAL_JOB = _ORIGINAL_JOB = experiments._train_cell_job
    experiments._train_cell_job = me.instrumented_job
    with open(data_path, "rb") as f:
        data = pickle.load(f)
    records = _records(data)
    options = FitOptions() if epochs is None else FitOptions(epochs=epochs)
    n_train = sum(len(r.x) for r in records if r.split == "train")
    with tempfile.TemporaryDirectory(prefix="bench_training_run_") as run_dir:
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        grid = experiments.run_grid(records, dataset="bench", label_protocol="annotation", architectures=archs,
                                    seeds=seeds, fit_options=options, run_dir=run_dir, jobs=jobs, progress=False)
        wall = time.perf_counter() - t0
        load_after = os.getloadavg()
    test = grid.results[(grid.results["split"] == "test")]
    ccc = {post: {f"{a}/{s}": float(g["ccc"].mean()) for (a, s), g in t.groupby(["architecture", "seed"])}
           for post, t in test.groupby("postprocess")}
    result = {
        "emotools_version": emotools.__version__, "torch": torch.__version__, "fit_options": options.to_dict(),
        "jobs": jobs, "default_jobs": os.cpu_count(), "import_seconds": import_seconds,
        "grid_wall_seconds": wall, "loadavg_before": load_before, "loadavg_after": load_after,
        "n_train_frames": n_train, "cells": [_cell_summary(c, n_train) for c in grid.cells],
        "test_ccc": ccc,
    }
    out.write_text(json.dumps(result, indent=1, default=float))


# --------------------------------------------------------------------------- the driver


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _export(commit: str, folder: Path) -> Path:
    """The tree of ``commit`` in ``folder`` (git archive | tar): a checkout that leaves the repository alone."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def _record_arrays(records_path: str | None) -> dict[str, Any]:
    """The default ground-truth records as plain arrays (from a pickle, or built with this checkout's code)."""
    if records_path:
        with open(records_path, "rb") as f:
            records = pickle.load(f)
    else:
        from emotools import pipeline
        from emotools.features import FeatureSpec

        records = pipeline.load_ground_truth("default", 0, spec=FeatureSpec("eGeMAPSv02", "windowed",
                                                                             window=1.0, hop=0.1)).records
    keys = ("id", "x", "time", "rate_hz", "y", "speaker", "session", "split", "feature_names", "target_names")
    return {"records": [{k: getattr(r, k) for k in keys} for r in records]}


def _mean_of(cells: list[dict[str, Any]], key: str) -> float:
    return statistics.fmean(c[key] for c in cells)


def _summarise(raw: dict[str, Any]) -> dict[str, Any]:
    """Per-architecture means over seeds, and the test CCC statistics."""
    per_arch: dict[str, Any] = {}
    for arch in dict.fromkeys(c["architecture"] for c in raw["cells"]):
        cells = [c for c in raw["cells"] if c["architecture"] == arch]
        mean = functools.partial(_mean_of, cells)
        kinds = cells[0]["overhead_seconds"]
        ccc = [raw["test_ccc"]["none"][f"{arch}/{c['seed']}"] for c in cells]
        per_arch[arch] = {
            "seconds_per_epoch": mean("seconds_per_epoch"), "train_frames_per_s": mean("train_frames_per_s"),
            "epochs": mean("epochs"), "epochs_to_best": mean("best_epoch"), "cell_seconds": mean("cell_seconds"),
            "overhead_seconds": {k: statistics.fmean(c["overhead_seconds"][k] for c in cells) for k in kinds},
            "peak_rss_bytes": max(c["peak_rss_bytes"] or 0 for c in cells),
            "test_ccc": ccc, "test_ccc_mean": statistics.fmean(ccc),
            "test_ccc_sd": statistics.stdev(ccc) if len(ccc) > 1 else 0.0,
            "test_ccc_min": min(ccc), "test_ccc_max": max(ccc),
        }
    cell_total = sum(c["cell_seconds"] for c in raw["cells"])
    epochs_total = sum(c["epoch_seconds_total"] for c in raw["cells"])
    return {"grid_wall_seconds": raw["grid_wall_seconds"], "cells_seconds_total": cell_total,
            "epoch_seconds_share": epochs_total / cell_total if cell_total else None, "per_architecture": per_arch}


def _measure(root: Path, data_path: Path, args: argparse.Namespace, scratch: Path, name: str) -> dict[str, Any]:
    out = scratch / f"{name}.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(HERE)])}
    for var, sub in (("EMOTOOLS_DATA_DIR", "data"), ("EMOTOOLS_RESULTS_DIR", "results"),
                     ("EMOTOOLS_FIGURES_DIR", "figures"), ("EMOTOOLS_CACHE_DIR", "cache")):
        env[var] = str(scratch / name / sub)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--data", str(data_path), "--raw-out",
           str(out), "--archs", *args.archs, "--seeds", *map(str, args.seeds)]
    if args.epochs:
        cmd += ["--epochs", str(args.epochs)]
    if args.jobs:
        cmd += ["--jobs", str(args.jobs)]
    print(f"[{name}] measuring {root} ...", flush=True)
    uptime_before = _uptime()
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=str(scratch), check=True)
    raw = json.loads(out.read_text())
    raw["subprocess_seconds"] = time.perf_counter() - t0
    raw["uptime_before"], raw["uptime_after"] = uptime_before, _uptime()
    print(f"[{name}] grid wall {raw['grid_wall_seconds']:.1f} s", flush=True)
    return {"raw": raw, "summary": _summarise(raw)}


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def _compare(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Wall-time ratio and, per architecture (a list of rows), the new mean test CCC against the old seeds' spread."""
    acc = []
    for arch, o in old["summary"]["per_architecture"].items():
        n = new["summary"]["per_architecture"].get(arch)
        if n is None:
            continue
        diff = n["test_ccc_mean"] - o["test_ccc_mean"]
        acc.append({"architecture": arch, "old_epochs": o["epochs"], "new_epochs": n["epochs"],
                    "old_mean": o["test_ccc_mean"], "old_sd": o["test_ccc_sd"], "old_min": o["test_ccc_min"],
                    "old_max": o["test_ccc_max"], "new_mean": n["test_ccc_mean"], "new_sd": n["test_ccc_sd"],
                    "difference": diff, "within_old_range": o["test_ccc_min"] <= n["test_ccc_mean"],
                    "within_old_sd": diff >= -o["test_ccc_sd"],
                    "epoch_speedup": o["seconds_per_epoch"] / n["seconds_per_epoch"],
                    "cell_speedup": o["cell_seconds"] / n["cell_seconds"]})
    return {"grid_wall_ratio": old["summary"]["grid_wall_seconds"] / new["summary"]["grid_wall_seconds"],
            "old_grid_wall_seconds": old["summary"]["grid_wall_seconds"],
            "new_grid_wall_seconds": new["summary"]["grid_wall_seconds"],
            "accuracy": acc}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--against", help="also measure this git revision (e.g. 8dfa16a), back to back")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_ARCHS}, seed 0, 2 epochs: checks the script")
    p.add_argument("--records", help="a pickle of the ground-truth records (default: build them)")
    p.add_argument("--archs", nargs="+", default=None)
    p.add_argument("--seeds", nargs="+", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None, help="cap FitOptions.epochs (default: each revision's)")
    p.add_argument("--jobs", type=int, default=None, help="run_grid jobs (default: run_grid's default)")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--raw-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.archs = args.archs or QUICK_ARCHS
        args.seeds = args.seeds or [0]
        args.epochs = args.epochs or 2
    args.archs = args.archs or ARCHS
    args.seeds = args.seeds or [0, 1, 2]
    if args.worker:
        worker(Path(args.data), Path(args.raw_out), args.archs, args.seeds, args.epochs, args.jobs)
        return 0

    import torch

    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    head = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        scratch = Path(tmp)
        data_path = scratch / "records.pkl"
        with open(data_path, "wb") as f:
            pickle.dump(_record_arrays(args.records), f)
        revisions = {}
        if args.against:
            commit = _git("rev-parse", args.against)
            old_root = _export(commit, scratch / "against")
            revisions["against"] = {"commit": commit, **_measure(old_root, data_path, args, scratch, "against")}
        revisions["current"] = {"commit": head, "dirty": dirty, **_measure(ROOT, data_path, args, scratch, "current")}
    result = {
        "benchmark": "bench_training", "started": started, "quick": args.quick, "architectures": args.archs,
        "seeds": args.seeds, "epochs_cap": args.epochs, "jobs": args.jobs, "cpu_count": os.cpu_count(),
        "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
        "processor": platform.processor(), "revisions": revisions,
    }
    if "against" in revisions:
        result["comparison"] = _compare(revisions["against"], revisions["current"])
        print(json.dumps({"grid_wall_ratio": result["comparison"]["grid_wall_ratio"]}))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
