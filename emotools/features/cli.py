"""``python -m emotools extract``: a corpus into a feature store."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from emotools import paths
from emotools.errors import EmotoolsError

from .batch import extract
from .smile import FeatureSet, FeatureSpec, Level


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m emotools extract",
        description="Extract openSMILE features of a corpus into a feature store "
        "(one parquet file per recording, index.parquet, failures.csv, summary.json). "
        "Finished recordings are reused on a rerun; an interrupted run resumes. "
        "Exit status 1 when every recording failed.",
    )
    parser.add_argument("root", type=Path, help="corpus folder")
    parser.add_argument("--corpus", required=True, metavar="KEY", help="corpus layout known to emotools.corpora")
    parser.add_argument("--feature-set", default=FeatureSet.eGeMAPSv02.value,
                        choices=[s.value for s in FeatureSet], help="openSMILE feature set (default: %(default)s)")
    parser.add_argument("--level", default=Level.windowed.value, choices=[v.value for v in Level],
                        help="lld (100 Hz), functionals (per utterance) or windowed (default: %(default)s)")
    parser.add_argument("--window", type=float, default=1.0, help="window in seconds, windowed level (default: 1.0)")
    parser.add_argument("--hop", type=float, default=0.1, help="hop in seconds, windowed level (default: 0.1)")
    parser.add_argument("--out", type=Path, default=None,
                        help="store folder (default: <data dir>/features/<corpus>-<feature set>-<level>[-w..-h..])")
    workers = parser.add_mutually_exclusive_group()
    workers.add_argument("--jobs", type=int, default=None, help="local worker processes (default: all cores)")
    workers.add_argument("--scheduler", metavar="tls://HOST:PORT", default=None,
                         help="run the tasks on this Dask scheduler (the store must be on a shared file system; "
                              "tcp:// on a private network only, see docs/cluster.md)")
    workers.add_argument("--dask-workers", type=int, default=None, metavar="N",
                         help="start a local Dask cluster with N workers")
    parser.add_argument("--security", type=Path, default=None, metavar="FOLDER",
                        help="TLS certificates of a tls:// scheduler (or of --dask-workers): a folder with ca.pem, "
                             "cert.pem, key.pem (default: Dask's configuration)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def cli(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m emotools extract``; returns the exit status (1 when no recording could be stored)."""
    parser = _parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    for name in ("jobs", "dask_workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    try:
        spec = FeatureSpec(args.feature_set, args.level, args.window, args.hop)
    except ValueError as error:
        parser.error(str(error))
    from emotools import corpora

    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger(extract.__module__).setLevel(logging.WARNING)  # waiting for a lock, damaged files redone
    out = args.out or paths.data_dir() / "features" / f"{args.corpus}-{spec.slug}"
    try:
        table = corpora.scan(args.corpus, args.root, progress=not args.no_progress)
        store = extract(table, spec, out=out, jobs=args.jobs, scheduler=args.scheduler,
                        dask_workers=args.dask_workers, security=args.security, progress=not args.no_progress)
    except (EmotoolsError, ValueError, OSError) as error:  # one line; per-file problems are in failures.csv
        print(f"error: {error}", file=sys.stderr)
        return 1
    s = store.summary
    failures = store.root / "failures.csv"
    print(
        f"{s['processed']} extracted, {s['reused']} reused from cache, {s['failed']} failed"
        f"{f' (see {failures})' if s['failed'] else ''}; "
        f"{s['audio_seconds']:.1f} s of audio in {s['wall_time_s']:.1f} s on {s['backend']} -> {store.root}"
    )
    if s["failed"] and not len(store):
        print(f"error: every recording failed; the reasons are in {failures}", file=sys.stderr)
        return 1
    return 0
