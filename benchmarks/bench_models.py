"""Speed and memory of every sequence model on CPU -> benchmarks/results/bench_models.json.

Per architecture (default sizes, 88 eGeMAPS features, 2 targets):

* parameters;
* training step time: batch of 16 chunks x 300 frames (30 s at 10 Hz),
  forward + CCC loss + backward + gradient clipping + Adam step; fastest
  of 10 steps after 3 warm-up steps (median in the JSON);
* inference time and peak memory at T = 1k, 4k, 16k, 36k frames (36k
  frames = 1 hour at 10 Hz), batch 1, ``torch.inference_mode``.

Memory method: every (architecture, T) runs in a fresh subprocess. The
process builds the model, makes the input and runs a warm-up pass on the
first 1000 frames; then ``ru_maxrss`` (the kernel's high-water mark of
the resident set) is read before and after one full-length pass. The
difference is the extra memory the pass needed; the absolute peak (which
includes the ~0.3-0.5 GB of the Python + torch runtime) is reported too.
``tracemalloc`` cannot see torch's C++ allocations, so it is not used.
CPU time (``time.process_time``, all threads) is recorded beside wall time.
Time is the fastest of 3 passes (the first one included; the median is
in the JSON too): the minimum is the estimate least disturbed by other
processes on a shared machine (the load average is recorded).

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
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "bench_models.json"
LENGTHS = (1000, 4000, 16000, 36000)
N_FEATURES, N_TARGETS = 88, 2
TARGET_SECONDS, TARGET_BYTES = 2.0, 1 << 30


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def worker_infer(name: str, T: int, threads: int, repeats: int) -> dict:
    import torch

    from emotools import models

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = models.build(name, N_FEATURES, N_TARGETS).eval()
    x = torch.randn(1, T, N_FEATURES)
    with torch.inference_mode():
        model(x[:, : min(T, 1000)])  # warm-up: kernels, caches
    before = _maxrss_bytes()
    times, cpu = [], []
    with torch.inference_mode():
        for i in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            y = model(x)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            if i == 0:
                after = _maxrss_bytes()
            del y
    return {"model": name, "T": T, "seconds": min(times), "seconds_median": statistics.median(times), "seconds_all": times,
            "cpu_seconds": min(cpu),
            "peak_delta_bytes": after - before, "peak_rss_bytes": after}


def worker_train(name: str, threads: int, steps: int = 10, warmup: int = 3) -> dict:
    import torch

    from emotools import metrics, models

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = models.build(name, N_FEATURES, N_TARGETS).train()
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(16, 300, N_FEATURES), torch.randn(16, 300, N_TARGETS)
    lengths = torch.full((16,), 300)
    times, cpu = [], []
    for i in range(warmup + steps):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = metrics.ccc_loss(model(x, lengths), y)
        optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    rf = model.receptive_field
    return {"model": name, "parameters": model.n_parameters, "receptive_field_frames": rf,
            "receptive_field_s_at_10hz": None if rf is None else rf / 10.0,
            "train_step_seconds": min(times), "train_step_seconds_median": statistics.median(times),
            "train_step_cpu_seconds": min(cpu)}


def _run_worker(args: list[str], timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--worker", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="architectures (default: all registered)")
    parser.add_argument("--lengths", nargs="*", type=int, default=list(LENGTHS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--merge", action="store_true",
                        help="replace only these models' rows in an existing --out file (re-measure a few)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        kind, name, *rest = args.worker
        if kind == "infer":
            result = worker_infer(name, int(rest[0]), args.threads, args.repeats)
        else:
            result = worker_train(name, args.threads)
        print(json.dumps(result))
        return 0

    from tqdm.auto import tqdm

    from emotools import models

    names = args.models or list(models.MODELS)
    started = time.time()
    load_before = os.getloadavg()
    rows = []
    for name in tqdm(names, desc="models"):
        row = _run_worker(["train", name, "--threads", str(args.threads)], timeout=600)
        row.setdefault("model", name)
        row["inference"] = {}
        for T in args.lengths:
            res = _run_worker(["infer", name, str(T), "--threads", str(args.threads), "--repeats", str(args.repeats)],
                              timeout=900)
            row["inference"][str(T)] = res
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
        "memory_method": "fresh subprocess per measurement; ru_maxrss after one full pass minus ru_maxrss after a "
                         "1000-frame warm-up (peak_delta_bytes); peak_rss_bytes = absolute high-water mark",
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    print(markdown_table(result))
    return 0


def _line(row: dict, lengths: list[int]) -> str:
    parts = [f"{row['model']:22s}", f"params={row.get('parameters', '?')}",
             f"step={1000 * row.get('train_step_seconds', float('nan')):.0f}ms"]
    for T in lengths:
        r = row["inference"][str(T)]
        parts.append(f"T={T}: " + (f"{r['seconds']:.3f}s {r['peak_delta_bytes'] / 2**20:.0f}MB" if "seconds" in r else r["error"]))
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
