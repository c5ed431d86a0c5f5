"""Corpus extraction into a feature store: cached, resumable, on local processes or Dask.

One task per recording: decode, run openSMILE, write the recording's parquet
file atomically. Workers write their own files (on Dask the store folder must
be on a file system every worker sees) and return a small entry, so nothing
big travels back to the client.

Before submitting, the parent computes each recording's cache key from the
audio's content digest (kept in the store while the file is unchanged) and
reuses a stored file whose key matches and whose bytes are intact (checked
against the checksum in the previous index, or decoded completely when an
interrupted run never wrote the index). Failures are never cached: a rerun
tries them again.

One extraction at a time per store: a second ``extract`` into the same folder
waits for the first (an advisory lock on the folder) and then reuses its work.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
import logging
import multiprocessing
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from .. import parallel
from ..audio import AudioError, SilentAudioWarning
from ..progress import tqdm
from .smile import OPENSMILE_VERSION, FeatureError, FeatureSpec, extract_file
from .store import (
    ENTRY_COLUMNS,
    FAILURE_COLUMNS,
    FAILURES,
    INDEX,
    STORE_VERSION,
    SUMMARY,
    AudioDigests,
    FeatureStore,
    cache_key,
    entry_name,
    intact,
    process_alive,
    remove_stale_partials,
    verified_entry,
    write_entry,
    write_json,
    write_table,
)

try:
    import fcntl
except ImportError:  # not on POSIX: no lock
    fcntl = None

__all__ = ["extract", "available_cores"]

log = logging.getLogger(__name__)


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class _Task:
    utterance: str
    file: str
    root: str
    spec: FeatureSpec
    key: str | None  # from the parent's content digest; None if the file could not be read then


@dataclass(frozen=True)
class _Outcome:
    utterance: str
    file: str
    entry: dict[str, Any] | None = None
    reason: str | None = None
    cpu_s: float = 0.0  # CPU seconds the task took in its worker (not stored with the features)


def _extract_task(task: _Task) -> _Outcome:
    """Worker side: decode, extract and store one recording; bad input becomes a reason."""
    started = time.thread_time()
    outcome = _extract_one(task)
    return replace(outcome, cpu_s=time.thread_time() - started)


def _extract_one(task: _Task) -> _Outcome:
    try:
        # The key comes from the digest taken before decoding: a file replaced
        # meanwhile digests differently next run, so it is redone, never stale.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SilentAudioWarning)  # a pause is data
            frame = extract_file(task.file, task.spec)  # names a missing or unreadable file
        entry = {
            "utterance": task.utterance,
            "file": task.file,
            "key": task.key or cache_key(task.file, task.spec),
            "spec": task.spec.to_dict(),
            "rate_hz": task.spec.rate_hz,
            "frames": len(frame),
            "seconds": float(frame.attrs.get("seconds", 0.0)),
        }
        return _Outcome(task.utterance, task.file, entry=write_entry(Path(task.root), entry, frame))
    except (AudioError, FeatureError) as error:
        return _Outcome(task.utterance, task.file, reason=error.reason)
    except Exception as error:  # an unforeseen failure must not end a corpus-wide batch
        return _Outcome(task.utterance, task.file, reason=f"{type(error).__name__}: {error}")


# --------------------------------------------------------------------------- executors


def _drain(submit: Callable[[_Task], cf.Future], tasks: Iterable[_Task], in_flight: int) -> Iterator[_Outcome]:
    """Keep ``in_flight`` tasks submitted; yield outcomes as they complete."""
    queue = iter(tasks)
    pending = {submit(task): task for task in itertools.islice(queue, in_flight)}
    while pending:
        done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        for future in done:
            task = pending.pop(future)
            try:
                outcome = future.result()
            except Exception as error:  # the worker itself died (segfault, lost node, ...)
                outcome = _Outcome(task.utterance, task.file, reason=f"worker failed: {type(error).__name__}: {error}")
            yield outcome
            for following in itertools.islice(queue, 1):
                pending[submit(following)] = following


def _follow(parent: int) -> None:
    """Worker initializer: exit as soon as the extracting process is gone.

    Workers are children of the fork server, not of the run, and would
    otherwise outlive a killed run; the task in hand is simply dropped (its
    file is written atomically, so nothing partial becomes visible).
    """

    def watch() -> None:
        while process_alive(parent):
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="emotools-follow-parent", daemon=True).start()


def _start_pool(workers: int) -> parallel.RestartingPool:
    """Local worker processes from a fork server that preloads this module (Linux, macOS; elsewhere ``spawn``).

    Forking the caller itself could inherit a lock held by one of its threads
    (Jupyter, a Dask client, a progress monitor, Arrow's pools); a fork server
    is a clean single-threaded process started once per session (about a
    second), after which each worker starts in milliseconds with openSMILE
    already loaded. A new pool replaces one whose worker died.
    """
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return parallel.RestartingPool(workers, start_method=method, preload=[__name__], initializer=_follow,
                                   initargs=(os.getpid(),))


@contextlib.contextmanager
def _executor(
    n_tasks: int, *, jobs: int | None, scheduler: str | None, dask_workers: int | None,
    security: str | os.PathLike | Any | None = None,
) -> Iterator[tuple[Callable[[_Task], cf.Future] | None, int, str]]:
    """(submit or None for in-process, worker count, backend name)."""
    if scheduler is not None or dask_workers is not None:
        with parallel.dask_client(scheduler=scheduler, dask_workers=dask_workers, security=security,
                                  what="extract") as (client, backend):
            workers = max(1, sum(client.nthreads().values()))
            executor = client.get_executor(pure=False)
            yield (lambda task: executor.submit(_extract_task, task)), workers, backend
        return
    workers = max(1, min(jobs or available_cores(), n_tasks))
    if workers == 1:
        yield None, 1, "in-process"
        return
    parallel.refuse_unguarded_main(f"extract with jobs={workers}")
    pool = _start_pool(workers)
    try:
        yield (lambda task: pool.submit(_extract_task, task)), workers, f"processes({workers})"
    finally:
        pool.close()


# --------------------------------------------------------------------------- extraction


@contextlib.contextmanager
def _store_lock(root: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on the store folder (waiting for another extraction to finish).

    ``flock`` on the folder itself: nothing is written (read-only media work),
    and the kernel releases it when the holder dies. Where the file system
    refuses locks (some network mounts), the run goes on unlocked.
    """
    if fcntl is None:
        yield
        return
    try:
        descriptor = os.open(root, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("%s: another extraction into this store is running; waiting for it", root)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except OSError as error:
            log.warning("%s: cannot lock the store (%s); going on unlocked", root, error)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _reusable(target: Path, key: str, known: dict[str, Any] | None) -> dict[str, Any] | None:
    """The stored entry of ``target`` if it holds intact features for ``key``, else None.

    A file with the checksum the previous index recorded is what that index
    says it is. Any other file (damaged, or written by a later, interrupted
    run) must decode completely, with parquet's page CRCs, and match the
    content digest stored inside it.
    """
    if not target.is_file():
        return None
    if known is not None and intact(target, known.get("checksum")):
        return {name: known[name] for name in ENTRY_COLUMNS} if known.get("key") == key else None
    stored = verified_entry(target)
    if stored is None:
        log.warning("%s: damaged or unreadable; extracting it again", target)
        return None
    return stored if stored.get("key") == key else None


def _previous_index(root: Path) -> dict[str, dict[str, Any]]:
    """The last index as utterance -> row; empty when missing or unreadable (which only costs re-checks)."""
    if not (root / INDEX).is_file():
        return {}
    try:
        return {row["utterance"]: row for row in pd.read_parquet(root / INDEX).to_dict("records")}
    except Exception:
        return {}


def _plan(
    table: pd.DataFrame, spec: FeatureSpec, root: Path, digests: AudioDigests
) -> tuple[list[_Task], dict[str, dict[str, Any]], list[dict[str, str]]]:
    """Split the table into tasks, reusable entries and failures known up front."""
    failures = [
        {"file": str(problem.get("file", "")), "utterance": "", "reason": f"scan: {problem.get('reason', '')}"}
        for problem in table.attrs.get("problems", [])
    ]
    previous = _previous_index(root)
    tasks: list[_Task] = []
    reused: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for file, utterance in zip(table["file"].astype(str), table["utterance"].astype(str)):
        if utterance in seen:
            failures.append({"file": file, "utterance": utterance, "reason": "duplicate utterance id in the table"})
            continue
        seen.add(utterance)
        try:
            key = cache_key(file, spec, digest=digests.digest(file))
        except OSError:
            key = None  # the worker's extract_file names the problem (AudioMissingError, ...)
        stored = None if key is None else _reusable(root / "features" / entry_name(utterance), key,
                                                    previous.get(utterance))
        if stored is not None:
            reused[utterance] = stored
        else:
            tasks.append(_Task(utterance=utterance, file=file, root=str(root), spec=spec, key=key))
    return tasks, reused, failures


def _validate(table: pd.DataFrame, jobs: int | None, scheduler: str | None, dask_workers: int | None,
              security: str | os.PathLike | Any | None) -> None:
    missing = {"file", "utterance"} - set(table.columns)
    if missing:
        raise ValueError(f"the corpus table lacks column(s) {sorted(missing)}; it has {list(table.columns)}")
    parallel.check_backend(scheduler=scheduler, dask_workers=dask_workers, security=security)
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")


def extract(
    table: pd.DataFrame,
    spec: FeatureSpec = FeatureSpec(),
    *,
    out: str | os.PathLike,
    jobs: int | None = None,
    scheduler: str | None = None,
    dask_workers: int | None = None,
    security: str | os.PathLike | Any | None = None,
    progress: bool = True,
) -> FeatureStore:
    """Extract the features of every recording in a corpus table into a feature store.

    Recordings whose audio content, spec and versions are unchanged and whose
    stored file is intact are reused; damaged files are extracted again. A run
    with nothing to change writes nothing (read-only media work). A second
    extraction into the same folder waits for the first.

    Args:
        table: a corpus table (``emotools.corpora.scan``) with at least ``file``
            and ``utterance``; ``df.attrs["problems"]`` from the scan are
            recorded as failures too.
        spec: feature set, level, window and hop.
        out: the store folder (created).
        jobs: local worker processes; default all cores, 1 runs in this process.
        scheduler: address of a running Dask scheduler (``tcp://HOST:PORT`` on a
            private network only, or ``tls://HOST:PORT``; docs/cluster.md).
        dask_workers: start a local Dask cluster with this many single-threaded workers.
        security: for a ``tls://`` scheduler (or a TLS local cluster): a folder with
            ``ca.pem``, ``cert.pem``, ``key.pem`` or a ``distributed.Security``
            (:func:`emotools.parallel.dask_security`); default Dask's configuration.
        progress: show a tqdm bar over recordings with seconds of audio per second.

    Returns:
        The :class:`FeatureStore` of ``out``; its ``summary`` is this run's.

    Raises:
        ValueError: ``file`` or ``utterance`` columns missing, both Dask options
            given, or ``security`` without a ``tls://`` scheduler or ``dask_workers``.
        RuntimeError: worker processes would re-run the calling script's
            unguarded top-level code (no ``if __name__ == "__main__":``).
    """
    started = time.perf_counter()
    _validate(table, jobs, scheduler, dask_workers, security)
    root = Path(out)
    (root / "features").mkdir(parents=True, exist_ok=True)
    with _store_lock(root):
        remove_stale_partials(root)
        digests = AudioDigests(root)
        tasks, entries, failures = _plan(table, spec, root, digests)
        reused, known_failures = len(entries), len(failures)
        run = _run(tasks, entries, failures, spec, jobs=jobs, scheduler=scheduler, dask_workers=dask_workers,
                   security=security, progress=progress)
        order = {utterance: k for k, utterance in enumerate(table["utterance"].astype(str))}
        failures[known_failures:] = sorted(failures[known_failures:], key=lambda f: order[f["utterance"]])
        rows = table.drop_duplicates("utterance").astype({"utterance": str})
        rows = rows[rows["utterance"].isin(list(entries))].reset_index(drop=True)
        stored = pd.DataFrame([entries[u] for u in rows["utterance"]], columns=ENTRY_COLUMNS)
        index = pd.concat([rows.drop(columns=[c for c in ENTRY_COLUMNS if c in rows]), stored], axis=1)
        changed = [write_table(root / INDEX, index),
                   write_table(root / FAILURES, pd.DataFrame(failures, columns=FAILURE_COLUMNS)),
                   digests.save()]
        wall = time.perf_counter() - started
        summary = {
            "processed": run["processed"],
            "reused": reused,
            "failed": len(failures),
            "audio_seconds": round(run["audio_seconds"], 3),
            "reused_audio_seconds": round(sum(entries[u]["seconds"] for u in rows["utterance"])
                                          - run["audio_seconds"], 3),
            "wall_time_s": round(wall, 3),
            "realtime_factor": round(run["audio_seconds"] / wall, 2) if wall > 0 else None,
            "task_cpu_s": round(run["task_cpu"], 3),  # CPU time inside the tasks; / wall_time_s = cores kept busy
            "audio_hashed": digests.hashed,  # audio files read to digest them (the rest: cached digests)
            "backend": run["backend"],
            "workers": run["workers"],
            "spec": spec.to_dict(),
            "opensmile": OPENSMILE_VERSION,
            "store_version": STORE_VERSION,
        }
        if run["processed"] or any(changed) or not (root / SUMMARY).is_file():
            write_json(root / SUMMARY, summary)
    log.info("extracted %d, reused %d, failed %d -> %s", run["processed"], reused, len(failures), root)
    return FeatureStore(root, run=summary)


def _run(
    tasks: list[_Task], entries: dict[str, dict[str, Any]], failures: list[dict[str, str]], spec: FeatureSpec, *,
    jobs: int | None, scheduler: str | None, dask_workers: int | None, security: str | os.PathLike | Any | None,
    progress: bool,
) -> dict[str, Any]:
    """Run the tasks, adding to ``entries`` and ``failures``; returns counts, seconds and the backend."""
    started = time.perf_counter()
    run: dict[str, Any] = {"processed": 0, "audio_seconds": 0.0, "task_cpu": 0.0}
    with _executor(len(tasks), jobs=jobs, scheduler=scheduler, dask_workers=dask_workers,
                   security=security) as (submit, workers, backend):
        run.update(backend=backend, workers=workers)
        outcomes = map(_extract_task, tasks) if submit is None else _drain(submit, tasks, 4 * workers)
        with tqdm(total=len(tasks), unit="rec", desc=f"extract {spec.slug}", disable=not progress) as bar:
            for outcome in outcomes:
                run["task_cpu"] += outcome.cpu_s
                if outcome.entry is not None:
                    entries[outcome.utterance] = outcome.entry
                    run["audio_seconds"] += outcome.entry["seconds"]
                    run["processed"] += 1
                else:
                    failures.append({"file": outcome.file, "utterance": outcome.utterance, "reason": outcome.reason})
                    log.info("%s: %s", outcome.file, outcome.reason)
                elapsed = time.perf_counter() - started
                rate = f"{run['audio_seconds'] / max(elapsed, 1e-9):.1f} s audio/s"
                bar.set_postfix_str(rate + (f", {len(failures)} failed" if failures else ""), refresh=False)
                bar.update(1)
    return run
