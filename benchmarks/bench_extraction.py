"""Extraction speed, measured side by side on the same few minutes of speech.

1. The wrapper (``emotools.features.extract``, one process: decode, openSMILE,
   parquet) against the raw ``SMILExtract`` binary (one process per file:
   decode, openSMILE, CSV), the physical limit for the feature set.
   Target: >= 0.9x the binary's throughput.
2. One-pass windowed functionals against one ``opensmile.Smile.process_signal``
   call per window, at a 0.1 s hop. Target: >= 30x.
3. ``extract`` with 1 against 2 local worker processes. Target: >= 1.8x.

Current opensmile wheels ship no binary; the ``opensmile==2.4.2`` wheel ships
``SMILExtract`` (openSMILE 3.0.1) and runs the current configs. It is fetched
once with ``pip download --no-deps`` into the cache folder; it is not a
runtime dependency. The speech is rendered by :mod:`emotools.synth`
(eSpeak NG) and cached as 16-bit WAV files.

Usage::

    python benchmarks/bench_extraction.py [--minutes 6] [--repeats 3]

Writes ``benchmarks/results/bench_extraction.json`` and prints a Markdown table.
Each time is the best of ``--repeats`` interleaved runs, on two clocks: CPU
seconds (this process plus the binary's processes), which compare the work of
single-process runs even on a busy shared machine, and wall seconds, the only
meaningful clock for the worker scaling (whose result is only as good as the
cores that are actually free: the load average is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import opensmile
import pandas as pd

from emotools import paths
from emotools.audio import audio_info, read_audio, write_audio
from emotools.features import SAMPLE_RATE, FeatureSpec, available_cores, extract, extract_signal, smile_for

RESULTS = Path(__file__).resolve().parent / "results" / "bench_extraction.json"
BINARY_WHEEL = "opensmile==2.4.2"
SEGMENT_MINUTES = 0.5


def _cpu() -> float:
    """CPU seconds (user + system) of this process and of its waited-for children (the binary)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def interleaved(repeats: int, runs: dict[str, Callable[[], object]]) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU seconds of each run, alternating between the runs so that changing load hits all alike."""
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            wall, cpu = time.perf_counter(), _cpu()
            run()
            times[name]["cpu"].append(_cpu() - cpu)
            times[name]["wall"].append(time.perf_counter() - wall)
    return times


def speech_files(minutes: float) -> list[Path]:
    """``minutes`` of eSpeak NG speech as 30-s WAV files (rendered once, then cached)."""
    from emotools import synth

    folder = paths.cache_dir() / "bench_extraction" / "audio"
    count = max(2, round(minutes / SEGMENT_MINUTES))
    files = [folder / f"speech_{i:02d}.wav" for i in range(count)]
    speakers = len(synth.speaker_catalogue())
    for i, path in enumerate(files):
        if not path.is_file():
            session = synth.render_session(i % speakers, i // speakers, minutes=SEGMENT_MINUTES, seed=0)
            write_audio(path, session.audio, SAMPLE_RATE)
    return files


def smilextract() -> tuple[Path, str]:
    """Path and version line of the ``SMILExtract`` binary from the opensmile 2.4.2 wheel."""
    folder = paths.cache_dir() / "opensmile-2.4.2"
    binary = folder / "SMILExtract"
    if not binary.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        wheels = list(folder.glob("opensmile-2.4.2-*.whl"))
        if not wheels:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", BINARY_WHEEL, "-d", str(folder)],
                           check=True, stdout=subprocess.DEVNULL)
            wheels = list(folder.glob("opensmile-2.4.2-*.whl"))
        with zipfile.ZipFile(wheels[0]) as wheel, open(binary, "wb") as handle:
            handle.write(wheel.read("opensmile/core/bin/linux/SMILExtract"))
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    banner = subprocess.run([str(binary), "-h"], capture_output=True, text=True).stdout
    version = next((line.strip() for line in banner.splitlines() if "openSMILE version" in line), "unknown")
    return binary, version


def binary_command(binary: Path, spec: FeatureSpec, wav: Path, csv: Path) -> list[str]:
    """SMILExtract on one file with the same config and options the wrapper uses."""
    smile = smile_for(spec)
    shared = Path(smile.default_config_root) / "shared"  # the opensmile package's config/shared
    sink = "-lld_csv_output" if spec.level.value == "lld" else "-func_csv_output"
    return [
        str(binary), "-C", smile.config_path, "-l", "0",
        "-source", str(shared / "standard_wave_input.conf.inc"),
        "-sink", str(shared / "standard_data_output_no_lld_de.conf.inc"),
        "-bufferModeRbConf", str(shared / "BufferModeRb.conf.inc"),
        "-frameModeFunctionalsConf",
        smile.options.get("frameModeFunctionalsConf", str(shared / "FrameModeFunctionals.conf.inc")),
        "-I", str(wav), sink, str(csv),
    ]


def wrapper_vs_binary(files: list[Path], seconds: float, binary: Path, repeats: int, scratch: Path) -> list[dict]:
    table = pd.DataFrame({"file": [str(f) for f in files], "utterance": [f.stem for f in files]})
    rows = []
    for spec in (FeatureSpec(level="functionals"), FeatureSpec(level="windowed", window=1.0, hop=0.1),
                 FeatureSpec(level="lld")):
        csv_dir = scratch / f"csv-{spec.slug}"
        csv_dir.mkdir()

        def run_binary(spec: FeatureSpec = spec, csv_dir: Path = csv_dir) -> None:
            for wav in files:
                subprocess.run(binary_command(binary, spec, wav, csv_dir / f"{wav.stem}.csv"), check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def run_wrapper(spec: FeatureSpec = spec) -> None:
            out = scratch / f"store-{spec.slug}"
            shutil.rmtree(out, ignore_errors=True)
            extract(table, spec, out=out, jobs=1, progress=False)

        times = interleaved(repeats, {"binary": run_binary, "wrapper": run_wrapper})
        # Same numbers? (openSMILE 3.0.1 binary vs the library in opensmile 2.6.0)
        ours = pd.read_parquet(scratch / f"store-{spec.slug}" / "features" / f"{files[0].stem}.parquet")
        theirs = pd.read_csv(csv_dir / f"{files[0].stem}.csv", sep=";")
        values = theirs.drop(columns=[c for c in ("name", "frameTime", "frameIndex") if c in theirs]).to_numpy()
        mine = ours.iloc[:, 2:].to_numpy(dtype=np.float64)
        same_shape = values.shape == mine.shape
        scale = np.maximum(np.abs(values), 1e-3) if same_shape else None
        row = {"level": spec.slug}
        for clock in ("cpu", "wall"):
            binary_s, wrapper_s = min(times["binary"][clock]), min(times["wrapper"][clock])
            row[clock] = {
                "binary_s": round(binary_s, 3), "wrapper_s": round(wrapper_s, 3),
                "binary_x_realtime": round(seconds / binary_s, 1), "wrapper_x_realtime": round(seconds / wrapper_s, 1),
                "wrapper_over_binary": round(binary_s / wrapper_s, 3),
            }
        rows.append({
            **row,
            "same_shape": bool(same_shape),
            "max_relative_difference": float(np.max(np.abs(mine - values) / scale)) if same_shape else None,
        })
        print(rows[-1], flush=True)
    return rows


def one_pass_vs_per_window(path: Path, repeats: int) -> list[dict]:
    signal = read_audio(path, sr=SAMPLE_RATE)
    smile = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.Functionals)
    rows = []
    for window in (1.0, 4.0):
        spec = FeatureSpec(level="windowed", window=window, hop=0.1)
        frames = extract_signal(signal, SAMPLE_RATE, spec)
        one_pass = interleaved(repeats, {"one": lambda spec=spec: extract_signal(signal, SAMPLE_RATE, spec)})["one"]

        def per_window(frames: pd.DataFrame = frames) -> None:
            for start, end in zip(frames["start"], frames["end"]):
                snippet = signal[round(start * SAMPLE_RATE): round((end + 0.04) * SAMPLE_RATE)]
                smile.process_signal(snippet, SAMPLE_RATE)

        each = interleaved(1, {"each": per_window})["each"]  # slow: once
        row = {"window_s": window, "hop_s": 0.1, "audio_s": round(signal.size / SAMPLE_RATE, 2),
               "windows": len(frames)}
        for clock in ("cpu", "wall"):
            one, every = min(one_pass[clock]), min(each[clock])
            row[clock] = {"one_pass_s": round(one, 3), "per_window_s": round(every, 3),
                          "per_window_call_ms": round(1000 * every / len(frames), 2), "speedup": round(every / one, 1)}
        rows.append(row)
        print(rows[-1], flush=True)
    return rows


def workers(files: list[Path], seconds: float, repeats: int, scratch: Path) -> list[dict]:
    table = pd.DataFrame({"file": [str(f) for f in files], "utterance": [f.stem for f in files]})
    spec = FeatureSpec(level="windowed", window=1.0, hop=0.1)
    summaries: dict[int, list[dict]] = {1: [], 2: []}

    def run(jobs: int) -> Callable[[], None]:
        def go() -> None:
            out = scratch / f"workers-{jobs}"
            shutil.rmtree(out, ignore_errors=True)
            summaries[jobs].append(extract(table, spec, out=out, jobs=jobs, progress=False).summary)
        return go

    times = interleaved(repeats, {"1": run(1), "2": run(2)})
    rows = []
    for jobs in (1, 2):
        walls = times[str(jobs)]["wall"]
        best = int(np.argmin(walls))
        summary = summaries[jobs][best]
        rows.append({
            "jobs": jobs, "wall_s": round(walls[best], 3), "x_realtime": round(seconds / walls[best], 1),
            "all_runs_s": [round(t, 3) for t in walls],
            # CPU seconds spent inside the tasks, and how many cores they kept busy on average:
            "task_cpu_s": summary["task_cpu_s"], "cores_busy": round(summary["task_cpu_s"] / walls[best], 2),
        })
    # The first pool of a process also starts the fork server (once per session).
    rows[1]["first_run_s"] = round(times["2"]["wall"][0], 3)
    rows[1]["speedup"] = round(rows[0]["wall_s"] / rows[1]["wall_s"], 2)
    rows[1]["speedup_first_run"] = round(rows[0]["wall_s"] / rows[1]["first_run_s"], 2)
    for row in rows:
        print(row, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="minutes of speech (default: 6)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement, best kept (default: 3)")
    args = parser.parse_args(argv)

    files = speech_files(args.minutes)
    seconds = sum(audio_info(f).duration for f in files)
    binary, binary_version = smilextract()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        result = {
            "benchmark": "bench_extraction",
            "audio": {"files": len(files), "seconds": round(seconds, 2),
                      "source": "emotools.synth (eSpeak NG), 16 kHz"},
            "machine": {"cores": available_cores(), "platform": platform.platform(),
                        "python": platform.python_version(),
                        "load_average_before": [round(x, 2) for x in load_before]},
            "versions": {"opensmile": opensmile.__version__, "SMILExtract": binary_version},
            "repeats": args.repeats,
            "wrapper_vs_binary": wrapper_vs_binary(files, seconds, binary, args.repeats, scratch),
            "one_pass_vs_per_window": one_pass_vs_per_window(files[0], args.repeats),
            "workers": workers(files, seconds, args.repeats, scratch),
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        }
    targets = {
        "wrapper_over_binary>=0.9 (cpu)": {r["level"]: r["cpu"]["wrapper_over_binary"] >= 0.9
                                           for r in result["wrapper_vs_binary"]},
        "one_pass_speedup>=30 (cpu)": {f"window {r['window_s']:g} s": r["cpu"]["speedup"] >= 30
                                       for r in result["one_pass_vs_per_window"]},
        "two_workers>=1.8 (wall)": result["workers"][1]["speedup"] >= 1.8,
    }
    result["targets_met"] = targets
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    partial = RESULTS.with_suffix(".json.tmp")
    partial.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(partial, RESULTS)

    print(f"\n{seconds / 60:.1f} min of speech in {len(files)} files, {available_cores()} cores\n")
    print("| measurement | emotools | reference | ratio, CPU time | ratio, wall clock | target |")
    print("|---|---|---|---|---|---|")
    for r in result["wrapper_vs_binary"]:
        c, w = r["cpu"], r["wall"]
        print(f"| {r['level']}: wrapper vs `SMILExtract` | {c['wrapper_x_realtime']}x real time per core | "
              f"{c['binary_x_realtime']}x | {c['wrapper_over_binary']:.2f} | {w['wrapper_over_binary']:.2f} | >= 0.9 |")
    for r in result["one_pass_vs_per_window"]:
        c, w = r["cpu"], r["wall"]
        print(f"| {r['window_s']:g} s windows, 0.1 s hop: one pass vs one call per window | {c['one_pass_s']} s CPU | "
              f"{c['per_window_s']} s CPU ({r['windows']} calls, {c['per_window_call_ms']} ms each) | "
              f"{c['speedup']}x | {w['speedup']}x | >= 30x |")
    w = result["workers"]
    print(f"| 2 vs 1 local workers (windowed 1 s / 0.1 s) | {w[1]['x_realtime']}x real time, "
          f"{w[1]['cores_busy']} cores busy | {w[0]['x_realtime']}x, {w[0]['cores_busy']} cores busy | | "
          f"{w[1]['speedup']}x ({w[1]['speedup_first_run']}x with the fork server's start) | >= 1.8x |")
    load = result["machine"]["load_average_before"], result["load_average_after"]
    print(f"\nload average (1, 5, 15 min) before {load[0]}, after {load[1]}")
    print(f"\ntargets met: {json.dumps(targets)}\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
