"""What content-derived cache keys and checksummed feature files cost, on 1,000 recordings.

1. Audio digests (:class:`emotools.features.store.AudioDigests`): hashing every
   file once (a new store) against a rerun that finds every digest cached by
   (inode, size, mtime, ctime), and against the bare ``os.stat`` that the old
   identity-only key cost.
2. Feature files: checking the indexed checksum of every stored file (a
   rerun's reuse check), verifying files without the index (decode and content
   digest: the resume of an interrupted run), and ``FeatureStore.load`` of all.
3. Raw throughput of the candidate hashes on 64 MiB in memory (xxhash only if
   it happens to be installed; it is not a dependency).

Usage::

    python benchmarks/bench_cache.py [--files 1000] [--seconds 8] [--repeats 3]

Writes ``benchmarks/results/bench_cache.json`` (with the load average) and
prints a Markdown table. Files are written into a temporary folder, so the
"cold" digests read from the page cache, not from disk: on a cold disk add
the time to read the bytes once (the extraction reads them anyway).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import soundfile as sf

from emotools.features import FeatureSpec, FeatureStore, available_cores, feature_names
from emotools.features.store import (
    DIGEST,
    INDEX,
    RACY_NS,
    AudioDigests,
    intact,
    verified_entry,
    write_entry,
    write_table,
)

RESULTS = Path(__file__).resolve().parent / "results" / "bench_cache.json"
SR = 16000


def best(repeats: int, run: Callable[[], object]) -> dict[str, float]:
    """Fastest wall and CPU seconds of ``repeats`` runs."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return {"wall_s": round(min(walls), 4), "cpu_s": round(min(cpus), 4)}


def make_audio(folder: Path, files: int, seconds: float) -> list[Path]:
    """``files`` 16-bit WAV files of noise, ``seconds`` each; returns their paths once they may be cached."""
    rng = np.random.default_rng(0)
    paths = []
    for k in range(files):
        path = folder / f"{k:05d}.wav"
        sf.write(path, rng.uniform(-0.5, 0.5, int(seconds * SR)).astype(np.float32), SR, subtype="PCM_16")
        paths.append(path)
    time.sleep(RACY_NS / 1e9 + 0.1)  # digests of files changed just before hashing are not kept
    return paths


def bench_digests(paths: list[Path], store: Path, repeats: int) -> dict[str, object]:
    def cold() -> None:
        (store / "audio_digests.parquet").unlink(missing_ok=True)
        digests = AudioDigests(store)
        for path in paths:
            digests.digest(path)
        digests.save()

    def cached() -> None:
        digests = AudioDigests(store)
        for path in paths:
            digests.digest(path)
        assert digests.hashed == 0 and not digests.save()

    def stat_only() -> None:
        for path in paths:
            os.stat(os.path.abspath(path))

    megabytes = sum(p.stat().st_size for p in paths) / 1e6
    rows = {"cold_hash_and_save": best(repeats, cold), "cached_load_and_stat": best(repeats, cached),
            "stat_only_old_key": best(repeats, stat_only)}
    rows["cold_hash_and_save"]["mb_per_s"] = round(megabytes / rows["cold_hash_and_save"]["wall_s"], 1)
    return {"megabytes": round(megabytes, 1), **rows}


def make_store(store: Path, files: int, seconds: float) -> None:
    """``files`` feature files of windowed eGeMAPS shape (random values) and their index."""
    spec = FeatureSpec(level="windowed", window=1.0, hop=0.1)
    names = feature_names(spec)
    rng = np.random.default_rng(1)
    frames = int((seconds - 1.04) / 0.1) + 1
    entries = []
    for k in range(files):
        frame = pd.DataFrame(rng.standard_normal((frames, len(names))).astype(np.float32), columns=names)
        frame.insert(0, "end", 0.1 * np.arange(frames) + 1.0)
        frame.insert(0, "start", 0.1 * np.arange(frames))
        entry = {"utterance": f"u{k:05d}", "file": f"{k:05d}.wav", "key": f"{k:032x}", "spec": spec.to_dict(),
                 "rate_hz": 10.0, "frames": frames, "seconds": seconds}
        entries.append(write_entry(store, entry, frame))
    index = pd.DataFrame(entries)[["utterance", "path", "key", "checksum", "frames", "seconds", "rate_hz"]]
    write_table(store / INDEX, index)


def bench_features(store: Path, repeats: int) -> dict[str, object]:
    index = pd.read_parquet(store / INDEX)
    paths = [store / p for p in index["path"]]
    loader = FeatureStore(store)

    def checked() -> None:
        assert all(intact(path, checksum) for path, checksum in zip(paths, index["checksum"]))

    def verified() -> None:
        assert all(verified_entry(path) is not None for path in paths)

    def loaded() -> None:
        for utterance in index["utterance"]:
            loader.load(utterance)

    def unverified() -> None:  # what load did before checksums
        for path in paths:
            pq.read_table(path).to_pandas()

    megabytes = sum(p.stat().st_size for p in paths) / 1e6
    return {"megabytes": round(megabytes, 1), "reuse_check_indexed_checksum": best(repeats, checked),
            "reuse_check_without_index_decode_and_digest": best(repeats, verified),
            "load_all_checksum_verified": best(repeats, loaded),
            "load_all_unverified_old": best(repeats, unverified)}


def bench_algorithms(repeats: int) -> dict[str, float]:
    """MB/s of each hash over 64 MiB in memory, 1 MiB at a time."""
    data = memoryview(os.urandom(64 << 20))
    candidates: dict[str, Callable[[], object]] = {
        name: getattr(hashlib, name) for name in ("sha256", "blake2b", "sha1")
    }
    try:
        import xxhash

        candidates["xxh3_128 (xxhash, not installed by emotools)"] = xxhash.xxh3_128
    except ImportError:
        pass
    speeds = {}
    for name, new in candidates.items():
        def run(new=new) -> None:
            digest = new()
            for start in range(0, len(data), 1 << 20):
                digest.update(data[start:start + (1 << 20)])
            digest.digest()
        speeds[name] = round(64 * 1.048576 / best(repeats, run)["wall_s"], 1)
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=8.0, help="audio seconds per file (VoxCeleb: ~8)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "audio").mkdir()
        paths = make_audio(root / "audio", args.files, args.seconds)
        (root / "store").mkdir()
        digests = bench_digests(paths, root / "store", args.repeats)
        make_store(root / "features-store", args.files, args.seconds)
        features = bench_features(root / "features-store", args.repeats)
    result = {
        "benchmark": "bench_cache",
        "files": args.files,
        "audio_seconds_per_file": args.seconds,
        "digest": DIGEST,
        "machine": {"cores": available_cores(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "repeats": args.repeats,
        "audio_digests": digests,
        "feature_files": features,
        "hash_mb_per_s_in_memory": bench_algorithms(args.repeats),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    n = args.files
    print(f"| {n} files | wall s | CPU s | per file |\n|---|---|---|---|")
    for section in (digests, features):
        for name, row in section.items():
            if isinstance(row, dict):
                print(f"| {name} | {row['wall_s']} | {row['cpu_s']} | {1e3 * row['wall_s'] / n:.3f} ms |")
    print(f"\nhash throughput in memory (MB/s): {result['hash_mb_per_s_in_memory']}")
    print(f"load average before / after: {result['machine']['load_average_before']} / "
          f"{result['machine']['load_average_after']}; written {RESULTS}")


if __name__ == "__main__":
    main()
