"""Peak memory and wall time of ``python -m emotools predict`` on long files -> benchmarks/results/bench_predict.json.

For each length (default 1 h and 3 h) a 16 kHz WAV of speech is written in
blocks (the built-in corpus' audio, repeated; never held whole in memory),
then ``python -m emotools predict FILE --checkpoint DIR`` runs in a fresh
subprocess. Peak memory is that child's ``ru_maxrss`` (the kernel's
high-water mark of its resident set, from ``os.wait4``), so it includes the
~0.4 GB of the Python + torch runtime. Wall time includes starting Python
and importing torch. The load average is recorded beside each run.

With ``--compare-minutes M`` the predictor is also run on the first M
minutes whole (one block) and in the default blocks, in this process; the
largest absolute difference is recorded (for an unbounded model, an LSTM,
that is what the :data:`emotools.predict.UNBOUNDED_OVERLAP_S` overlap costs).

Usage::

    python benchmarks/bench_predict.py --checkpoint results/models/01_ground_truth
    python benchmarks/bench_predict.py --checkpoint DIR --hours 1 --compare-minutes 30 --out /tmp/p.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SR = 16000


def speech_source() -> np.ndarray:
    """Rendered speech of the built-in smoke corpus (rendered on first use)."""
    from emotools import synth
    from emotools.audio import read_audio

    folder = synth.ensure_corpus("smoke", seed=0, jobs=1, progress=False)
    return np.concatenate([read_audio(p) for p in sorted(Path(folder).rglob("*.wav"))])


def write_long(path: Path, source: np.ndarray, seconds: float) -> Path:
    """``seconds`` of ``source`` repeated, written block by block."""
    total = int(seconds * SR)
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as out:
        done = 0
        while done < total:
            part = source[: min(len(source), total - done)]
            out.write(part)
            done += len(part)
    return path


def run_predict(audio: Path, checkpoint: Path, out: Path) -> dict[str, float]:
    """One ``python -m emotools predict`` in a child process: wall time and the child's peak RSS."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "emotools", "predict", str(audio), "--checkpoint",
                              str(checkpoint), "--out", str(out)], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env={**os.environ, "MPLBACKEND": "Agg"})
    stderr = child.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"predict failed on {audio}:\n{stderr[-2000:]}")
    return {"wall_s": round(wall, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "loadavg_1min": os.getloadavg()[0]}


def compare_blocks(checkpoint: Path, source: np.ndarray, minutes: float) -> dict[str, float]:
    """Largest |blocked - whole| over the first ``minutes`` of speech."""
    from emotools.predict import BLOCK_S, load_predictor

    predictor = load_predictor(checkpoint)
    signal = np.resize(source, int(minutes * 60 * SR))
    whole = predictor.predict_signal(signal, block_s=float("inf"))
    blocked = predictor.predict_signal(signal, block_s=BLOCK_S)
    cols = list(predictor.targets)
    return {"minutes": minutes, "block_s": BLOCK_S,
            "max_abs_diff": float(np.abs(whole[cols].to_numpy() - blocked[cols].to_numpy()).max()),
            "architecture": predictor.info.get("architecture")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "results" / "models" / "01_ground_truth")
    parser.add_argument("--hours", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--compare-minutes", type=float, default=0.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_predict.json")
    args = parser.parse_args()
    source = speech_source()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as folder:
        for hours in args.hours:
            audio = write_long(Path(folder) / f"long{hours:g}h.wav", source, hours * 3600)
            row = {"hours": hours, **run_predict(audio, args.checkpoint, Path(folder) / "out")}
            print(row, flush=True)
            runs.append(row)
            audio.unlink()
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
              "checkpoint": args.checkpoint.name, "runs": runs}
    if args.compare_minutes:
        result["blocked_vs_whole"] = compare_blocks(args.checkpoint, source, args.compare_minutes)
        print(result["blocked_vs_whole"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
