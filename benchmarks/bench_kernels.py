"""The training-step kernels behind issue 14's per-epoch speed-up, each against what it replaced.

Every pair runs the same work on the same tensors, interleaved, one torch
thread, median of ``--repeats`` timings (milliseconds of the thread's CPU
time, steadier than wall time on a shared machine); ``ratio`` is
old / new (> 1: the new way is faster). Shapes are those of an attention
model's training step on the default corpus: batch 8 x 300 frames, hidden
64, 4 heads, window 50 (so 6 blocks of 50 queries against 150 keys).

* dropout (mask and scaling): ``torch.rand(...) >= p`` (the code before) and
  torch's own ``F.dropout`` (``bernoulli_``) against 16-bit lanes of 64-bit
  random integers (``emotools.models.blocks.dropout``);
* attention mask: ``masked_fill_`` of the scores against adding a 0/-inf bias,
  forward and backward;
* padding: ``masked_fill`` against multiplying by the mask, forward and
  backward;
* GELU forward and backward on a transposed convolution output against a
  contiguous one;
* key/value windows: ``unfold`` against concatenated block views, forward
  and backward;
* one attention-model training epoch (``fit`` on the default ground-truth
  records, mean seconds of epochs 2-3) in float32 and under bfloat16
  autocast (skipped with ``--no-epoch``, and meaningful only where the CPU
  has native bfloat16: the JSON records whether it has).

Usage::

    python benchmarks/bench_kernels.py [--repeats 30] [--no-epoch]

Writes ``benchmarks/results/bench_kernels.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from emotools.fileio import write_text
from emotools.models.blocks import _three_block_windows, dropout
from emotools.training import resolve_precision

RESULTS = Path(__file__).resolve().parent / "results" / "bench_kernels.json"
B, T, D, H, W = 8, 300, 64, 4, 50  # batch, frames, hidden, heads, window


def _time(fn: Callable[[], Any]) -> float:
    # CPU time of this thread (torch runs one thread here): steadier than wall time on a shared machine
    t0 = time.thread_time()
    fn()
    return (time.thread_time() - t0) * 1e3


def pair(name: str, old: Callable[[], Any], new: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """Median milliseconds of ``old`` and ``new``, interleaved after one warm-up call each."""
    old(), new()
    times: dict[str, list[float]] = {"old": [], "new": []}
    for _ in range(repeats):
        times["old"].append(_time(old))
        times["new"].append(_time(new))
    o, n = statistics.median(times["old"]), statistics.median(times["new"])
    return {"kernel": name, "old_ms": o, "new_ms": n, "ratio": o / n}


def kernels(repeats: int) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    n_blocks = T // W
    weights = torch.rand(B * n_blocks, H, W, 3 * W)  # attention weights of one layer
    keep = torch.rand(B * n_blocks, 1, W, 3 * W) > 0.3
    bias = torch.zeros(keep.shape).masked_fill_(~keep, float("-inf"))
    scores = torch.randn(B * n_blocks, H, W, 3 * W, requires_grad=True)
    grad_scores = torch.randn(scores.shape)
    h = torch.randn(B, T, D, requires_grad=True)
    mask = torch.rand(B, T) > 0.1
    conv_out = torch.randn(B, D, T).transpose(1, 2).detach().requires_grad_()
    contiguous = conv_out.detach().contiguous().requires_grad_()
    grad_h = torch.randn(B, T, D)
    k = torch.randn(B, H, T, D // H, requires_grad=True)

    def unfold_windows(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, 0, W, W)).unfold(2, 3 * W, W).permute(0, 2, 1, 4, 3).reshape(
            B * n_blocks, H, 3 * W, D // H)

    grad_k = torch.randn(B * n_blocks, H, 3 * W, D // H)
    return [
        pair("dropout: rand >= p (before) -> int16 lanes", lambda: weights * torch.rand_like(weights).ge_(0.1).mul_(
            1 / 0.9), lambda: dropout(weights, 0.1), repeats),
        pair("dropout: torch F.dropout (bernoulli_) -> int16 lanes",
             lambda: F.dropout(weights, 0.1, training=True), lambda: dropout(weights, 0.1), repeats),
        pair("attention mask: masked_fill_ -> bias add (fwd+bwd)",
             lambda: scores.clone().masked_fill_(~keep, float("-inf")).backward(grad_scores),
             lambda: scores.clone().add_(bias).backward(grad_scores), repeats),
        pair("padding: masked_fill -> multiply (fwd+bwd)",
             lambda: h.masked_fill(~mask[..., None], 0.0).backward(grad_h),
             lambda: (h * mask[..., None].to(h.dtype)).backward(grad_h), repeats),
        pair("GELU: transposed -> contiguous (fwd+bwd)", lambda: F.gelu(conv_out).backward(grad_h),
             lambda: F.gelu(contiguous).backward(grad_h), repeats),
        pair("key/value windows: unfold -> concatenated blocks (fwd+bwd)",
             lambda: unfold_windows(k).backward(grad_k),
             lambda: _three_block_windows(k, W, n_blocks, 0).backward(grad_k), repeats),
    ]


def attention_epochs() -> dict[str, Any]:
    """Seconds per training epoch of the default attention model, float32 and bfloat16, on the default records."""
    from emotools import pipeline
    from emotools.features import FeatureSpec
    from emotools.training import FitOptions, fit

    records = pipeline.load_ground_truth("default", 0, spec=FeatureSpec("eGeMAPSv02", "windowed", window=1.0,
                                                                        hop=0.1)).records
    train = [r for r in records if r.split == "train"]
    dev = [r for r in records if r.split == "dev"]
    out: dict[str, Any] = {"native_bfloat16": resolve_precision("auto", "cpu") == "bfloat16"}
    seconds: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    for _ in range(2):  # interleaved
        for precision in seconds:
            trained = fit("attention", train, dev, FitOptions(epochs=3, patience=99, precision=precision),
                          progress=False)
            seconds[precision] += [row["seconds"] for row in trained.history[1:]]
            out[f"{precision}_dev_ccc"] = trained.history[-1]["dev_ccc"]
    out.update({f"{p}_seconds_per_epoch": statistics.median(v) for p, v in seconds.items()})
    out["ratio"] = out["float32_seconds_per_epoch"] / out["bfloat16_seconds_per_epoch"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--no-epoch", action="store_true", help="skip the attention-epoch comparison")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    result: dict[str, Any] = {
        "benchmark": "bench_kernels", "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "repeats": args.repeats,
        "torch": torch.__version__, "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "loadavg_before": list(os.getloadavg()), "kernels": kernels(args.repeats),
    }
    if not args.no_epoch:
        result["attention_epoch"] = attention_epochs()
    result["loadavg_after"] = list(os.getloadavg())
    write_text(RESULTS, json.dumps(result, indent=1) + "\n")
    for row in result["kernels"]:
        print(f"{row['kernel']:<62} {row['old_ms']:8.2f} ms -> {row['new_ms']:8.2f} ms  {row['ratio']:5.2f}x")
    if "attention_epoch" in result:
        print("attention epoch:", json.dumps(result["attention_epoch"]))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
