"""opensmile's public API against its private ctypes core, side by side on the same few minutes of speech.

``emotools.features`` runs every level through the public route,
``opensmile.Smile(options=...).process_signal`` (the windowed level adds a
frame-mode include as the ``frameModeFunctionalsConf`` option). Until this
benchmark it drove ``libSMILEapi`` through ``opensmile.core.lib`` internals
(``smileapi``, ``OpenSMILE._smileobj``) with a leaner sink callback. That
route is rebuilt here, as it was, so the two can be timed and compared:

* same numbers: maximum absolute and relative difference of every feature
  and frame start (target: within 1e-5);
* speed: CPU seconds of this process (openSMILE runs in it), best of
  ``--repeats`` interleaved runs over all files, windowed 1 s and 4 s
  windows at a 0.1 s hop, plus the LLD and functionals levels.
  ``public_over_private`` > 1 means the public route takes longer.

The speech is the built-in corpus' smoke preset (eSpeak NG, about three
minutes; rendered once into the data folder).

Usage::

    python benchmarks/bench_opensmile.py [--repeats 5]

Writes ``benchmarks/results/bench_opensmile.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import opensmile
import pandas as pd
from bench_extraction import interleaved
from opensmile.core.lib import ExternalSinkCallbackEx, OpenSMILE, smileapi

from emotools import corpora, synth
from emotools.audio import read_audio
from emotools.features import SAMPLE_RATE, FeatureSpec, Level, available_cores, extract_signal, smile_for, to_int16
from emotools.fileio import write_text

RESULTS = Path(__file__).resolve().parent / "results" / "bench_opensmile.json"
SPECS = (
    FeatureSpec(level="windowed", window=1.0, hop=0.1),
    FeatureSpec(level="windowed", window=4.0, hop=0.1),
    FeatureSpec(level="lld"),
    FeatureSpec(level="functionals"),
)
TOLERANCE = 1e-5


def private_route(signal: np.ndarray, spec: FeatureSpec) -> pd.DataFrame:
    """The route emotools used before: libSMILEapi through opensmile.core.lib internals, a raw-copy sink."""
    smile = smile_for(spec)  # the same config file and frame-mode include
    root = smile.default_config_root
    options = {
        "source": os.path.join(root, opensmile.config.EXTERNAL_INPUT_CONFIG),
        "sink": os.path.join(root, opensmile.config.EXTERNAL_OUTPUT_SINGLE_CONFIG),
        "sinkLevel": "lld" if spec.level is Level.lld else "func",
        "bufferModeRbConf": os.path.join(root, "shared", "BufferModeRb.conf.inc"),
        "frameModeFunctionalsConf": smile.options.get(
            "frameModeFunctionalsConf", os.path.join(root, "shared", "FrameModeFunctionals.conf.inc")),
        "nBits": "16",
        "sampleRate": str(SAMPLE_RATE),
    }
    chunks: list[bytes] = []
    times: list[float] = []

    def sink(data: Any, frames: int, size: int, meta: Any, _: Any) -> int:
        chunks.append(ctypes.string_at(data, frames * size * 4))
        times.append(meta[0].time)
        return 1

    callback = ExternalSinkCallbackEx(sink)
    engine = OpenSMILE()
    try:
        engine.initialize(config_file=smile.config_path, options=options, loglevel=0)
        engine._check_smile_result(smileapi.smile_extsink_set_data_callback_ex(
            engine._smileobj, opensmile.config.EXTERNAL_OUTPUT_COMPONENT.encode(), callback, None))
        engine.external_audio_source_write_data(opensmile.config.EXTERNAL_SOURCE_COMPONENT, to_int16(signal).tobytes())
        engine.external_audio_source_set_eoi(opensmile.config.EXTERNAL_SOURCE_COMPONENT)
        engine.run()
    finally:
        engine.free()
    values = np.frombuffer(bytearray(b"".join(chunks)), dtype=np.float32).reshape(-1, len(smile.feature_names))
    frame = pd.DataFrame(values, columns=smile.feature_names)
    frame.insert(0, "start", np.round(times, 6))
    return frame


def public_route(signal: np.ndarray, spec: FeatureSpec) -> pd.DataFrame:
    """The package's route: ``emotools.features.extract_signal`` (``opensmile.Smile.process_signal``)."""
    return extract_signal(signal, SAMPLE_RATE, spec).drop(columns="end")


def parity(signals: list[np.ndarray], spec: FeatureSpec) -> dict[str, Any]:
    """Largest differences between the two routes over all files (features, then frame starts)."""
    absolute = relative = start = 0.0
    frames = 0
    for signal in signals:
        ours, theirs = public_route(signal, spec), private_route(signal, spec)
        assert ours.shape == theirs.shape and list(ours.columns) == list(theirs.columns), spec.slug
        a, b = ours.iloc[:, 1:].to_numpy(np.float64), theirs.iloc[:, 1:].to_numpy(np.float64)
        absolute = max(absolute, float(np.abs(a - b).max()))
        relative = max(relative, float((np.abs(a - b) / np.maximum(np.abs(b), 1e-3)).max()))
        start = max(start, float(np.abs(ours["start"] - theirs["start"]).max()))
        frames += len(ours)
    return {"frames": frames, "max_abs_difference": absolute, "max_relative_difference": relative,
            "max_start_difference_s": start, "within_tolerance": max(absolute, relative, start) <= TOLERANCE}


def compare(signals: list[np.ndarray], seconds: float, spec: FeatureSpec, repeats: int) -> dict[str, Any]:
    row: dict[str, Any] = {"spec": spec.slug, **parity(signals, spec)}
    times = interleaved(repeats, {
        route.__name__: (lambda route=route: [route(x, spec) for x in signals])
        for route in (private_route, public_route)
    })
    for clock in ("cpu", "wall"):
        runs = {name: times[f"{name}_route"][clock] for name in ("private", "public")}
        row[clock] = {
            **{f"{name}_s": round(min(t), 3) for name, t in runs.items()},
            **{f"{name}_x_realtime": round(seconds / min(t), 1) for name, t in runs.items()},
            "public_over_private": round(min(runs["public"]) / min(runs["private"]), 3),
            **{f"all_{name}_s": [round(x, 3) for x in t] for name, t in runs.items()},
        }
    print({k: row[k] for k in ("spec", "max_abs_difference", "within_tolerance")}, row["cpu"]["public_over_private"],
          flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved runs per route, best kept (default: 5)")
    args = parser.parse_args(argv)

    root = synth.ensure_corpus("smoke", seed=0, jobs=1, progress=False)
    table = corpora.scan("annotated", root, progress=False)
    signals = [read_audio(f, sr=SAMPLE_RATE) for f in table["file"]]
    seconds = sum(x.size for x in signals) / SAMPLE_RATE
    load_before = os.getloadavg()
    rows = [compare(signals, seconds, spec, args.repeats) for spec in SPECS]
    result = {
        "benchmark": "bench_opensmile",
        "audio": {"files": len(signals), "seconds": round(seconds, 2),
                  "source": "built-in corpus, smoke preset (eSpeak NG), 16 kHz"},
        "machine": {"cores": available_cores(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_before": [round(x, 2) for x in load_before]},
        "versions": {"opensmile": opensmile.__version__},
        "repeats": args.repeats,
        "tolerance": TOLERANCE,
        "routes": rows,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    windowed = [r["cpu"]["public_over_private"] for r in rows if "windowed" in r["spec"]]
    result["windowed_public_over_private_cpu"] = round(float(np.mean(windowed)), 3)
    result["same_numbers"] = all(r["within_tolerance"] for r in rows)
    write_text(RESULTS, json.dumps(result, indent=2) + "\n")

    print(f"\n{seconds / 60:.1f} min of speech in {len(signals)} files, {available_cores()} cores\n")
    print("| spec | private s CPU | public s CPU | public / private, CPU | public / private, wall | max abs diff |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        c, w = r["cpu"], r["wall"]
        print(f"| {r['spec']} | {c['private_s']} | {c['public_s']} | {c['public_over_private']:.3f} | "
              f"{w['public_over_private']:.3f} | {r['max_abs_difference']:.2g} |")
    print(f"\nload average (1, 5, 15 min) before {result['machine']['load_average_before']}, "
          f"after {result['load_average_after']}\nwrote {RESULTS}")
    return 0 if result["same_numbers"] else 1


if __name__ == "__main__":
    sys.exit(main())
