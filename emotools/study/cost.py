"""Cost of models: time and peak memory by one method, in fresh interpreters.

The harness, shared by the long-context study and ``benchmarks/bench_models.py``:

* :func:`peak_memory`: wall time, CPU time and peak extra resident memory
  of one call (the one memory method);
* :func:`measure_inference`: a model's forward pass over one input, after a
  warm-up, timed over repeats, memory of the first pass;
* :func:`model_inference`: the same for a registered architecture on random
  features, described by a JSON-able job;
* :func:`run_isolated`: jobs run by a named worker function in a fresh
  Python process (so no earlier work of the caller inflates the memory
  figures), one result per job; a failing job gets an ``error`` and the
  rest go on, a dead worker is replaced.

The study's own measurement, :func:`measure_costs`, is inference time and
peak memory against recording length plus training time per epoch.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import models
from ..sequences import SequenceRecord
from .settings import RATE_HZ, Setting, StudyError

__all__ = ["peak_memory", "measure_inference", "model_inference", "run_isolated", "measure_costs"]


def _proc_status_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    # Linux >= 4.0: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS.
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _proc_status_kib("VmHWM") is not None


def peak_memory(fn: Callable[[], Any]) -> tuple[Any, dict[str, float | str]]:
    """Run ``fn()`` and measure its wall time, CPU time and peak extra resident memory.

    Method (Linux): the process' peak resident set (``VmHWM``) is reset to
    the current resident set just before the call (``/proc/self/clear_refs``),
    so ``VmHWM`` after the call minus ``VmRSS`` before it is the most memory
    the call held at once beyond what was already resident: activations,
    temporaries, allocator slack. Where the reset is unavailable the
    fallback is the growth of ``ru_maxrss`` (a lower bound if the process
    had peaked higher before). torch's CPU allocations go through malloc,
    which ``tracemalloc`` cannot see, so it is not used. Garbage is collected
    first: a collection during the call would free earlier objects, lower
    the resident set under the reset mark and hide the call's own peak.

    Returns:
        ``(fn's result, {"seconds", "cpu_seconds", "peak_bytes", "peak_rss_bytes",
        "memory_method"})``; ``peak_rss_bytes`` is the process' absolute
        peak resident set after the call (runtime, weights and input included).
    """
    gc.collect()
    exact = _reset_peak()
    before = (_proc_status_kib("VmRSS") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) or 0
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    after = (_proc_status_kib("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) or 0
    return result, {"seconds": seconds, "cpu_seconds": cpu, "peak_bytes": float(max(0, after - before) * 1024),
                    "peak_rss_bytes": float(after * 1024),
                    "memory_method": "VmHWM reset" if exact else "ru_maxrss growth"}


def measure_inference(model: Any, x: Any, *, repeats: int = 3, warmup_frames: int = 100) -> dict[str, Any]:
    """Time and peak memory of ``model(x)`` (batch first, time second) under ``torch.inference_mode``.

    A pass over the first ``warmup_frames`` frames pays the one-time costs
    (kernels, thread pool, lazily loaded code) first. Time: the fastest of
    ``repeats`` passes, the one least disturbed by other work (the median
    and every pass are returned too); memory: :func:`peak_memory` of the
    first pass.

    Returns:
        ``seconds, seconds_median, seconds_all, cpu_seconds, peak_bytes,
        peak_rss_bytes, memory_method``.
    """
    import torch

    if int(repeats) < 1:
        raise StudyError("measure_inference", f"needs at least 1 pass, got repeats={repeats}")
    times, cpus, first = [], [], {}
    with torch.inference_mode():
        model(x[:, : min(x.shape[1], int(warmup_frames))])
        for _ in range(int(repeats)):
            out, m = peak_memory(lambda: model(x))
            del out
            times.append(m["seconds"])
            cpus.append(m["cpu_seconds"])
            first = first or m
    return {"seconds": min(times), "seconds_median": statistics.median(times), "seconds_all": times,
            "cpu_seconds": min(cpus), "peak_bytes": first["peak_bytes"], "peak_rss_bytes": first["peak_rss_bytes"],
            "memory_method": first["memory_method"]}


def _inference_row(family: str, options: Mapping[str, Any], frames: int, job: Mapping[str, Any]) -> dict[str, Any]:
    """Build ``family`` with ``options`` and measure one pass over ``frames`` random frames (seeded)."""
    import torch

    torch.set_num_threads(int(job["threads"]))
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    n_features = int(job["n_features"])
    model = models.build(family, n_features, int(job["n_targets"]), **options).eval()
    x = torch.randn(1, frames, n_features, generator=gen)  # (batch, time, features)
    m = measure_inference(model, x, repeats=int(job["repeats"]), warmup_frames=int(job.get("warmup_frames", 100)))
    return {"frames": frames, "parameters": model.n_parameters, "memory_method": m.pop("memory_method"),
            **{f"infer_{k}": v for k, v in m.items()}}


def model_inference(job: Mapping[str, Any]) -> dict[str, Any]:
    """Inference cost of a registered architecture on random features, for :func:`run_isolated`.

    ``job`` keys: ``family`` (registered model name), ``frames``,
    ``n_features``, ``n_targets``, ``threads`` (torch threads), ``repeats``,
    optional ``warmup_frames`` (default 100) and ``model_options``.

    Returns:
        ``frames, parameters, memory_method`` and :func:`measure_inference`'s
        numbers prefixed ``infer_``.
    """
    return _inference_row(job["family"], job.get("model_options", {}), int(job["frames"]), job)


def _resolve(worker: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    module, _, name = worker.partition(":")
    return getattr(importlib.import_module(module), name)


def _worker_main() -> None:
    """Run the jobs read from stdin (JSON), one JSON line per job on stdout; used by :func:`run_isolated`."""
    payload = json.loads(sys.stdin.read())
    fn = _resolve(payload["worker"])
    if payload.get("warm_up") is not None:
        try:
            fn(payload["warm_up"])
        except Exception:  # the measurements themselves will report what is wrong
            pass
    for job in payload["jobs"]:
        try:
            row = fn(job)
        except Exception as error:  # one failing measurement never stops the others
            row = {"error": f"{type(error).__name__}: {error}"}
        row["loadavg"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(json.dumps({"id": job["id"], **row}), flush=True)


def run_isolated(worker: str, jobs: Sequence[Mapping[str, Any]], *, threads: int = 1,
                 warm_up: Mapping[str, Any] | None = None, timeout: float | None = None, progress: bool = False,
                 desc: str = "cost") -> list[dict[str, Any]]:
    """Run ``worker`` (``"module:function"``) on every job in a fresh Python process.

    The process runs with ``OMP_NUM_THREADS=threads`` and a fixed glibc mmap
    threshold (``MALLOC_MMAP_THRESHOLD_``), so freed tensors return to the
    system and each measurement starts from the same resident set; it first
    runs ``warm_up`` (result discarded), then the jobs in order. A job that
    raises gets ``{"error": ...}``; if the process dies, the job in flight
    gets the last line of its stderr as ``error`` and a new process goes on
    with the rest. ``timeout``: seconds one process may run before it is
    killed (the job in flight then gets ``error = "timeout after <s> s"``).

    Returns:
        One dict per job, in order: the worker's JSON-able result plus
        ``loadavg`` (1-min load average after the job).
    """
    from ..progress import tqdm

    todo = [{**job, "id": i} for i, job in enumerate(jobs)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": str(threads)}
    results: dict[int, dict[str, Any]] = {}
    bar = tqdm(total=len(todo), desc=desc, unit="measurement", disable=not progress)
    while todo:
        proc = subprocess.Popen([sys.executable, "-c", f"from {__name__} import _worker_main; _worker_main()"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env)
        assert proc.stdin is not None and proc.stdout is not None
        timer = threading.Timer(timeout, proc.kill) if timeout else None
        if timer is not None:
            timer.start()
        proc.stdin.write(json.dumps({"worker": worker, "warm_up": warm_up, "jobs": todo}))
        proc.stdin.close()
        for line in proc.stdout:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            results[row.pop("id")] = row
            bar.update()
        stderr = proc.stderr.read() if proc.stderr else ""
        proc.wait()
        timed_out = timer is not None and not timer.is_alive() and proc.returncode != 0
        if timer is not None:
            timer.cancel()
        left = [j for j in todo if j["id"] not in results]
        if left:  # the worker died: blame the job in flight, go on with the rest
            reason = (f"timeout after {timeout:g} s" if timed_out else stderr.strip().splitlines()[-1]
                      if stderr.strip() else f"worker exited with {proc.returncode}")
            results[left[0]["id"]] = {"error": reason}
            bar.update()
            left = left[1:]
        todo = left
    bar.close()
    return [results[i] for i in range(len(jobs))]


def _measure_one(job: dict[str, Any]) -> dict[str, Any]:
    """One (setting, length) cost measurement of :func:`measure_costs`; runs inside the worker process."""
    from ..training import FitOptions, fit

    setting = Setting(job["family"], job["knob"], job["value"])
    T = max(2, int(round(job["minutes"] * 60 * job["rate_hz"])))
    row = _inference_row(setting.family, setting.model_options, T, job)
    if job["train"]:
        F, K = int(job["n_features"]), int(job["n_targets"])
        rng = np.random.default_rng(0)
        rec = SequenceRecord(id="random", x=rng.standard_normal((T, F)).astype(np.float32),
                             time=np.arange(T) / job["rate_hz"], rate_hz=job["rate_hz"],
                             y=rng.uniform(-1, 1, (T, K)).astype(np.float32), split="train")
        options = FitOptions(epochs=int(job["train_epochs"]), chunk_s=setting.chunk_s(job["chunk_s"]),
                             batch_size=int(job["batch_size"]), model_options=setting.model_options,
                             normalization="global", seed=0)
        trained, m = peak_memory(lambda: fit(setting.family, [rec], None, options, progress=False))
        row["train_epoch_seconds"] = min(h["seconds"] for h in trained.history)
        row["train_peak_bytes"] = m["peak_bytes"]
    return row


def measure_costs(
    settings: Sequence[Setting],
    minutes: Sequence[float],
    *,
    threads: int = 1,
    repeats: int = 3,
    train: bool = True,
    train_epochs: int = 1,
    chunk_s: float = 30.0,
    batch_size: int = 16,
    n_features: int = 88,
    n_targets: int = 2,
    rate_hz: float = RATE_HZ,
    progress: bool = True,
) -> pd.DataFrame:
    """Inference time and peak memory against recording length, and training time per epoch.

    Every setting and length is measured in one fresh Python process (so no
    earlier work of the caller inflates the memory figures), on random
    features (cost does not depend on the values): a forward pass over one
    recording of ``minutes`` at ``rate_hz`` (batch 1, ``torch.inference_mode``,
    after a 100-frame warm-up; time = fastest of ``repeats`` passes), and
    ``train_epochs`` epochs of :func:`emotools.training.fit` on a recording of
    that length cut into ``chunk_s`` chunks (the fastest epoch counts).
    Memory: :func:`peak_memory`; the worker (:func:`run_isolated`) runs with a fixed glibc mmap
    threshold (``MALLOC_MMAP_THRESHOLD_``) so freed tensors return to the
    system and each measurement starts from the same resident set. A
    measurement that fails gets an ``error`` and the rest go on; if the
    worker dies, the next one continues with the remaining measurements.

    Returns:
        One row per (setting, minutes): ``family, setting, knob, value,
        receptive_field_s, parameters, minutes, frames, infer_seconds,
        infer_cpu_seconds, infer_peak_mb, train_epoch_seconds, train_peak_mb,
        infer_seconds_per_hour, threads, memory_method, loadavg, error``.
    """
    if not settings or not minutes:
        raise StudyError("measure_costs", "needs at least one setting and one length")
    if any(not m > 0 for m in minutes):
        raise StudyError("measure_costs", f"recording lengths must be > 0 minutes, got {list(minutes)}")
    jobs = [{"family": s.family, "knob": s.knob, "value": s.value, "minutes": float(m), "threads": threads,
             "repeats": repeats, "train": train, "train_epochs": train_epochs, "chunk_s": chunk_s,
             "batch_size": batch_size, "n_features": n_features, "n_targets": n_targets, "rate_hz": rate_hz}
            for s in settings for m in sorted(minutes)]
    warm_up = {**jobs[0], "minutes": 20 / 60 / rate_hz, "repeats": 1, "train_epochs": 1, "family": "mlp",
               "knob": None, "value": None}
    results = run_isolated(f"{__name__}:_measure_one", jobs, threads=threads, warm_up=warm_up, progress=progress)
    rows = []
    for job, r in zip(jobs, results):
        s = Setting(job["family"], job["knob"], job["value"])
        rows.append({
            "family": s.family, "setting": s.name, "knob": s.knob or "", "value": s.value,
            "receptive_field_s": _receptive_field_or_nan(s, rate_hz), "parameters": r.get("parameters"),
            "minutes": job["minutes"], "frames": r.get("frames"),
            "infer_seconds": r.get("infer_seconds"), "infer_cpu_seconds": r.get("infer_cpu_seconds"),
            "infer_peak_mb": _mb(r.get("infer_peak_bytes")), "train_epoch_seconds": r.get("train_epoch_seconds"),
            "train_peak_mb": _mb(r.get("train_peak_bytes")), "threads": threads,
            "memory_method": r.get("memory_method", ""), "loadavg": r.get("loadavg", float("nan")),
            "error": r.get("error", ""),
        })
    out = pd.DataFrame(rows)
    out["infer_seconds_per_hour"] = out["infer_seconds"].astype(float) * 60.0 / out["minutes"]
    return out


def _receptive_field_or_nan(setting: Setting, rate_hz: float) -> float:
    try:
        return setting.receptive_field_s(rate_hz)
    except models.ModelConfigError:  # the measurement's error says why
        return float("nan")


def _mb(value: float | None) -> float:
    return float("nan") if value is None else float(value) / 2**20
