"""The training grid on Dask vs the local pool -> benchmarks/results/bench_grid_dask.json.

A fixed fraction of the full study's training, timed three ways on this
machine: the local process pool (``jobs=2``), a Dask ``LocalCluster`` with 1
worker and with 2 workers (single-threaded worker processes; the cluster's
start-up is timed apart from the grid). The fraction: the ``default``
ground-truth records (24 speakers, 36 min of audio), every architecture of
the ground-truth notebook, 1 seed, joint mode, ``--epochs`` epochs (no early
stop), each backend with a fresh checkpoint folder. The full study is the
``full`` preset (48 speakers, 240 min), 3 seeds, joint and separate modes
(1 + 2 models per cell), 10 epochs: ``scale`` in the JSON is that ratio,
and docs/cluster.md turns the measured seconds into the full study's
estimate. Every backend must give the same results table (checked).

Usage::

    python benchmarks/bench_grid_dask.py              # ~2-5 min on 2 cores
    python benchmarks/bench_grid_dask.py --epochs 1 --architectures mlp tcn   # checks the script
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "bench_grid_dask.json"
ARCHS = ["mlp", "lstm", "tdnn", "attention", "tdnn_lstm", "attention_tdnn", "attention_lstm",
         "attention_tdnn_lstm", "tcn"]  # 01_ground_truth's grid
DEFAULT_MINUTES, FULL_MINUTES = 36.0, 240.0  # audio of the default and full presets (emotools.synth)
FULL_SEEDS, FULL_MODELS_PER_CELL, FULL_EPOCHS = 3, 1 + 2, 10  # 3 seeds; joint (1 model) + separate (2); 10 epochs


def _timed_grid(records: list, options: Any, architectures: list[str], **backend: Any) -> tuple[float, Any]:
    """Wall seconds of one run_grid in a fresh checkpoint folder, and its results."""
    from emotools import experiments

    with tempfile.TemporaryDirectory(prefix="bench-grid-") as run_dir:
        started = time.perf_counter()
        grid = experiments.run_grid(records, dataset="bench", label_protocol="annotation",
                                    architectures=architectures, seeds=[0], fit_options=options, run_dir=run_dir,
                                    progress=False, **backend)
        return time.perf_counter() - started, grid.results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per cell (default: 4)")
    parser.add_argument("--architectures", nargs="+", default=ARCHS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import dask
    import pandas as pd
    from distributed import LocalCluster

    from emotools import pipeline
    from emotools.features import FeatureSpec
    from emotools.training import FitOptions

    data = pipeline.load_ground_truth("default", 0, jobs=1,
                                      spec=FeatureSpec("eGeMAPSv02", "windowed", window=1.0, hop=0.1))
    options = FitOptions(epochs=args.epochs, patience=args.epochs + 1)
    runs: dict[str, dict[str, Any]] = {}
    reference = None
    report: dict[str, Any] = {"benchmark": "bench_grid_dask", "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                              "cpu_count": os.cpu_count(), "python": platform.python_version(),
                              "loadavg_start": os.getloadavg(), "architectures": args.architectures,
                              "epochs": args.epochs, "seeds": [0], "modes": ["joint"], "corpus": "default",
                              "records": len(data.records)}
    backends = [("local pool (jobs=2)", None, {"jobs": 2}), ("dask LocalCluster(1)", 1, {}),
                ("dask LocalCluster(2)", 2, {})]
    for name, workers, backend in backends:
        load_before = os.getloadavg()
        start_s = 0.0
        if workers is None:
            wall, results = _timed_grid(data.records, options, args.architectures, **backend)
        else:
            started = time.perf_counter()
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}), LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                    silence_logs=logging.ERROR) as cluster:
                start_s = time.perf_counter() - started
                wall, results = _timed_grid(data.records, options, args.architectures,
                                            scheduler=cluster.scheduler_address)
        if reference is None:
            reference = results
        pd.testing.assert_frame_equal(results, reference)  # the backend never changes a result
        runs[name] = {"workers": workers or backend["jobs"], "cells": len(args.architectures),
                      "grid_wall_s": round(wall, 2), "cluster_start_s": round(start_s, 2),
                      "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
        print(f"{name}: {wall:.1f} s for {len(args.architectures)} cells (+{start_s:.1f} s cluster start), "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
    one, two = runs["dask LocalCluster(1)"]["grid_wall_s"], runs["dask LocalCluster(2)"]["grid_wall_s"]
    scale = (FULL_SEEDS * FULL_MODELS_PER_CELL * FULL_EPOCHS / args.epochs * FULL_MINUTES / DEFAULT_MINUTES
             * len(ARCHS) / len(args.architectures))
    report.update(runs=runs, identical_results=True, speedup_2_workers=round(one / two, 3),
                  efficiency_2_workers=round(one / (2 * two), 3), scale=round(scale, 2),
                  scale_formula=f"{FULL_SEEDS} seeds x {FULL_MODELS_PER_CELL} models (joint + separate) x "
                                f"{FULL_EPOCHS}/{args.epochs} epochs x {FULL_MINUTES:g}/{DEFAULT_MINUTES:g} min "
                                f"x {len(ARCHS)}/{len(args.architectures)} architectures",
                  full_study_estimate_s={"1 worker": round(one * scale), "2 workers": round(two * scale)},
                  loadavg_end=os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"speedup with 2 workers {one / two:.2f}x; full study ~{one * scale / 3600:.1f} h on 1 worker, "
          f"~{two * scale / 3600:.1f} h on 2 -> {args.out}")


if __name__ == "__main__":
    main()
