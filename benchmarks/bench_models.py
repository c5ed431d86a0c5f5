"""Speed and memory of every sequence model on CPU -> benchmarks/results/bench_models.json.

Per architecture (default sizes, 88 eGeMAPS features, 2 targets):

* parameters;
* training step time: batch of 16 chunks x 300 frames (30 s at 10 Hz),
  forward + CCC loss + backward + gradient clipping + Adam step; fastest
  of 10 steps after 3 warm-up steps (median in the JSON);
* inference time and peak memory at T = 1k, 4k, 16k, 36k frames (36k
  frames = 1 hour at 10 Hz), batch 1, ``torch.inference_mode``.

Method: the study's one cost harness (:mod:`emotools.study.cost`). Each
architecture is measured in a fresh Python process
(:func:`~emotools.study.cost.run_isolated`, fixed glibc mmap threshold), the
lengths in increasing order, each after a warm-up pass over the first 1000
frames (:func:`~emotools.study.cost.model_inference`). Memory is
:func:`~emotools.study.cost.peak_memory`'s: the process' peak resident set
(``VmHWM``) is reset just before the pass, so the peak after it minus the
resident set before it is the extra memory the pass needed
(``peak_delta_bytes``); the absolute peak, which includes the ~0.3-0.5 GB of
the Python + torch runtime, is ``peak_rss_bytes``. CPU time
(``time.process_time``, all threads) is recorded beside wall time. Time is
the fastest of 3 passes (the median and every pass are in the JSON too): the
minimum is the estimate least disturbed by other processes on a shared
machine (the load average is recorded).

Usage::

    python benchmarks/bench_models.py                 # all models, 2 threads
    python benchmarks/bench_models.py --models lstm tcn --lengths 1000 4000 --out /tmp/b.json
    python benchmarks/bench_models.py --models tcn --merge   # re-measure one model in place
    python benchmarks/bench_models.py --threads 1 --out benchmarks/results/bench_models_1thread.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "bench_models.json"
LENGTHS = (1000, 4000, 16000, 36000)
N_FEATURES, N_TARGETS = 88, 2
TARGET_SECONDS, TARGET_BYTES = 2.0, 1 << 30
WARMUP_FRAMES = 1000


def worker_train(job: dict) -> dict:
    """Training step time of one architecture; runs in a :func:`emotools.study.cost.run_isolated` worker."""
    import torch

    from emotools import metrics, models

    torch.set_num_threads(int(job["threads"]))
    torch.manual_seed(0)
    model = models.build(job["family"], N_FEATURES, N_TARGETS).train()
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(16, 300, N_FEATURES), torch.randn(16, 300, N_TARGETS)  # (batch, time, features)
    lengths = torch.full((16,), 300)
    times, cpu = [], []
    for i in range(int(job["warmup"]) + int(job["steps"])):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = metrics.ccc_loss(y, model(x, lengths))
        optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        if i >= int(job["warmup"]):
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    rf = model.receptive_field
    return {"parameters": model.n_parameters, "receptive_field_frames": rf,
            "receptive_field_s_at_10hz": None if rf is None else rf / 10.0,
            "train_step_seconds": min(times), "train_step_seconds_median": statistics.median(times),
            "train_step_cpu_seconds": min(cpu)}


def _inference(row: dict) -> dict:
    """The harness's inference row under this benchmark's names (``seconds``, ``peak_delta_bytes``, ...)."""
    if "error" in row:
        return {"error": row["error"]}
    out = {"T": row["frames"], "seconds": row["infer_seconds"], "seconds_median": row["infer_seconds_median"],
           "seconds_all": row["infer_seconds_all"], "cpu_seconds": row["infer_cpu_seconds"],
           "peak_delta_bytes": row["infer_peak_bytes"], "peak_rss_bytes": row["infer_peak_rss_bytes"]}
    return {**out, "memory_method": row["memory_method"], "loadavg": row.get("loadavg")}


def measure(name: str, lengths: list[int], threads: int, repeats: int) -> dict:
    """One architecture: a training-step process, then one inference process over every length."""
    from emotools.study.cost import run_isolated

    train = run_isolated(f"{Path(__file__).stem}:worker_train", [{"family": name, "threads": threads,
                                                                    "warmup": 3, "steps": 10}],
                         threads=threads, timeout=600)[0]
    train.pop("loadavg", None)
    jobs = [{"family": name, "frames": T, "n_features": N_FEATURES, "n_targets": N_TARGETS, "threads": threads,
             "repeats": repeats, "warmup_frames": WARMUP_FRAMES} for T in lengths]
    inference = run_isolated("emotools.study.cost:model_inference", jobs, threads=threads, timeout=900 * len(jobs))
    return {"model": name, **train, "inference": {str(T): _inference(r) for T, r in zip(lengths, inference)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="architectures (default: all registered)")
    parser.add_argument("--lengths", nargs="*", type=int, default=list(LENGTHS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--merge", action="store_true",
                        help="replace only these models' rows in an existing --out file (re-measure a few)")
    args = parser.parse_args(argv)

    from emotools import models
    from emotools.progress import tqdm

    # the harness's worker processes import this file's worker_train by module name
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent),
                                                            os.environ.get("PYTHONPATH")]))

    names = args.models or list(models.MODELS)
    started = time.time()
    load_before = os.getloadavg()
    rows = []
    for name in tqdm(names, desc="models"):
        row = measure(name, sorted(args.lengths), args.threads, args.repeats)
        row["loadavg_1min"] = os.getloadavg()[0]
        longest = row["inference"].get(str(max(args.lengths)), {})
        if "seconds" in longest:
            row["meets_target"] = longest["seconds"] <= TARGET_SECONDS and longest["peak_delta_bytes"] <= TARGET_BYTES
        rows.append(row)
        print(_line(row, args.lengths), flush=True)

    import torch

    result = {
        "benchmark": "bench_models",
        "description": "CPU train-step time (16 x 300 frames) and inference time / peak memory per sequence length",
        "threads": args.threads,
        "lengths": args.lengths,
        "target": {"frames": 36000, "seconds": TARGET_SECONDS, "bytes": TARGET_BYTES},
        "memory_method": "emotools.study.cost.peak_memory in a fresh run_isolated process per architecture: VmHWM "
                         "reset before one full pass after a 1000-frame warm-up; peak_delta_bytes = VmHWM after "
                         "minus VmRSS before, peak_rss_bytes = absolute high-water mark",
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
                    "processor": platform.processor() or platform.machine(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "wall_seconds": time.time() - started,
        "models": rows,
    }
    if args.merge and args.out.is_file():
        old = json.loads(args.out.read_text())
        if old.get("threads") != args.threads or old.get("lengths") != args.lengths:
            print(f"error: {args.out} was measured with other threads/lengths; not merging", file=sys.stderr)
            return 2
        fresh = {r["model"]: r for r in rows}
        rows = [fresh.pop(r["model"], r) for r in old["models"]] + list(fresh.values())
        result["models"] = rows
        result["wall_seconds"] += old.get("wall_seconds", 0.0)
        result["machine"]["loadavg_before"] = old["machine"]["loadavg_before"]
    from emotools.fileio import write_text

    write_text(args.out, json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    print(markdown_table(result))
    return 0


def _line(row: dict, lengths: list[int]) -> str:
    parts = [f"{row['model']:22s}", f"params={row.get('parameters', '?')}",
             f"step={1000 * row.get('train_step_seconds', float('nan')):.0f}ms"]
    for T in lengths:
        r = row["inference"][str(T)]
        shown = f"{r['seconds']:.3f}s {r['peak_delta_bytes'] / 2**20:.0f}MB" if "seconds" in r else r["error"]
        parts.append(f"T={T}: {shown}")
    return "  ".join(parts)


def markdown_table(result: dict) -> str:
    """The README table from a result dict."""
    lengths = result["lengths"]
    head = ["model", "params", "RF frames (s)", "train step ms"] + [f"infer {T // 1000}k s / MB" for T in lengths]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result["models"]:
        rf = row.get("receptive_field_frames")
        cells = [row["model"], f"{row.get('parameters', 0):,}",
                 "unbounded" if rf is None else f"{rf} ({rf / 10:g} s)",
                 f"{1000 * row.get('train_step_seconds', float('nan')):.0f}"]
        for T in lengths:
            r = row["inference"][str(T)]
            cells.append(f"{r['seconds']:.2f} / {r['peak_delta_bytes'] / 2**20:.0f}" if "seconds" in r else "error")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
