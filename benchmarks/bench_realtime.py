"""Real-time factor of streamed features + streamed models on one CPU core -> benchmarks/results/bench_realtime.json.

Speech of the built-in smoke corpus (repeated to ``--seconds``) is pushed in
chunks through one streaming openSMILE (:class:`emotools.features.StreamingExtractor`)
and, per family, its causal model (lookahead 0) streamed in torch
(:class:`emotools.models.StreamingModel`) and as its exported ONNX streaming-step graph
(:class:`emotools.realtime.OnnxStream`: state in, state out; not for dsus,
which has no step graph yet). The process is pinned to one core, torch and
onnxruntime use one thread. Weights are random: the cost does not depend on
them. Each chunk size is run ``--repeats`` times; per model the fastest run
counts (least disturbed by other work). RTF = (features + model seconds) /
audio seconds; ``rtf_cpu`` the same in process CPU time. The machine's cores
and ``uptime`` before and after are recorded.

Usage::

    python benchmarks/bench_realtime.py
    python benchmarks/bench_realtime.py --seconds 30 --chunks 0.1 --repeats 1 --out /tmp/r.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FAMILIES = ["mlp", "lstm", "tdnn", "attention", "tdnn_lstm", "attention_tdnn", "attention_lstm",
            "attention_tdnn_lstm", "tcn", "dsus"]


def speech(seconds: float) -> np.ndarray:
    """``seconds`` of the built-in smoke corpus' speech, repeated (rendered on first use)."""
    from emotools import synth
    from emotools.audio import SAMPLE_RATE, read_audio

    folder = synth.ensure_corpus("smoke", seed=0, jobs=1, progress=False)
    source = np.concatenate([read_audio(p) for p in sorted(Path(folder).rglob("*.wav"))])
    return np.resize(source, int(seconds * SAMPLE_RATE))


def uptime() -> str:
    """``uptime``'s line (load averages), or the load averages alone where the command is missing."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def pin_one_core() -> int:
    """Pin this process (and the threads it starts) to one core; return it."""
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def build_models(families: list[str], folder: Path) -> dict[str, tuple]:
    """``{spec: (model, step graph path or None)}``: each family's causal model (random weights), its streaming-step
    graph exported where the family has one (not dsus: :data:`emotools.export.NO_STEP`)."""
    import torch

    from emotools.export import OnnxError, export_step, step_model
    from emotools.models import build

    out = {}
    for family in families:
        spec = f"{family}:causal"
        torch.manual_seed(0)
        model = build(spec, n_features=88, n_targets=2).eval()
        try:
            step_model(model)
        except OnnxError:
            out[spec] = (model, None)
            continue
        out[spec] = (model, export_step(model, folder / f"{family}.step.onnx"))
    return out


def live_models(built: dict[str, tuple]) -> list:
    """Fresh streams (starting at frame 0) of every built model: torch, and ONNX where exported."""
    from emotools import realtime
    from emotools.models import StreamingModel

    out = []
    for spec, (model, path) in built.items():
        out.append(realtime.LiveModel(f"{spec} · torch", StreamingModel(model), None, spec, "torch"))
        if path is not None:
            out.append(realtime.LiveModel(f"{spec} · onnx", realtime.OnnxStream(realtime.onnx_runner(path)),
                                          None, spec, "onnx"))
    return out


def measure(signal: np.ndarray, families: list[str], chunks: list[float], repeats: int) -> list[dict]:
    """Rows of :func:`emotools.realtime.compute_table`, fastest of ``repeats`` per (model, chunk)."""
    import pandas as pd

    from emotools import realtime
    from emotools.audio import SAMPLE_RATE
    from emotools.features import FeatureSpec

    spec = FeatureSpec("eGeMAPSv02", "windowed", window=1.0, hop=0.1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, realtime.one_thread():
        built = build_models(families, Path(tmp))
        for chunk_s in chunks:
            runs = []
            for _ in range(repeats):
                models = live_models(built)
                session = realtime.stream_session(signal, models, spec=spec, sr=SAMPLE_RATE, chunk_s=chunk_s)
                runs.append(realtime.compute_table(session, models).assign(loadavg_1min=os.getloadavg()[0]))
                print(f"chunk {chunk_s:g} s: run {len(runs)}/{repeats} done", file=sys.stderr)
            table = pd.concat(runs, ignore_index=True)
            best = table.loc[table.groupby("model", sort=False)["rtf"].idxmin()]
            rows += best.round(6).to_dict("records")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="audio streamed per run")
    parser.add_argument("--chunks", type=float, nargs="+", default=[0.1, 1.0], help="chunk sizes in seconds")
    parser.add_argument("--families", nargs="+", default=FAMILIES)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_realtime.json")
    args = parser.parse_args(argv)

    import onnxruntime
    import torch

    core = pin_one_core()
    before = uptime()
    signal = speech(args.seconds)
    rows = measure(signal, args.families, args.chunks, args.repeats)
    result = {
        "what": "real-time factor of streamed openSMILE features + a streamed causal model, one core, one thread",
        "machine": {"cores": os.cpu_count(), "pinned_to_core": core, "processor": platform.processor(),
                    "system": platform.system(), "python": platform.python_version(), "torch": torch.__version__,
                    "onnxruntime": onnxruntime.__version__},
        "uptime_before": before, "uptime_after": uptime(),
        "settings": {"seconds": args.seconds, "chunks_s": args.chunks, "repeats": args.repeats,
                     "features": "eGeMAPSv02 windowed, window 1 s, hop 0.1 s", "weights": "random (cost only)"},
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
