"""Corpus extraction into a feature store: cached, resumable, on local processes or Dask.

One task per recording: decode, run openSMILE, write the recording's parquet
file atomically. Workers write their own files (on Dask the store folder must
be on a file system every worker sees) and return a small entry, so nothing
big travels back to the client.

Before submitting, the parent computes each recording's cache key and
reuses a stored file whose key matches (from the previous index, or from the
key inside the file when an interrupted run never wrote the index). Failures
are never cached: a rerun tries them again.
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
from tqdm.auto import tqdm

from emotools.audio import AudioError, SilentAudioWarning

from .smile import OPENSMILE_VERSION, FeatureError, FeatureSpec, extract_file
from .store import (
    ENTRY_COLUMNS,
    FAILURE_COLUMNS,
    FAILURES,
    INDEX,
    STORE_VERSION,
    SUMMARY,
    FeatureStore,
    cache_key,
    entry_name,
    read_entry,
    remove_partials,
    write_entry,
    write_json,
    write_table,
)

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
        # The identity is taken before decoding: a file replaced meanwhile gets
        # a key that no longer matches, so it is redone next run, never stale.
        try:
            key = cache_key(task.file, task.spec)
        except OSError:
            key = None  # extract_file names the problem (AudioMissingError, ...)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SilentAudioWarning)  # a pause is data
            frame = extract_file(task.file, task.spec)
        if key is None:
            key = cache_key(task.file, task.spec)
        entry = {
            "utterance": task.utterance,
            "file": task.file,
            "key": key,
            "spec": task.spec.as_dict(),
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


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, killed but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _follow(parent: int) -> None:
    """Worker initializer: exit as soon as the extracting process is gone.

    Workers are children of the fork server, not of the run, and would
    otherwise outlive a killed run; the task in hand is simply dropped (its
    file is written atomically, so nothing partial becomes visible).
    """

    def watch() -> None:
        while _alive(parent):
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="emotools-follow-parent", daemon=True).start()


def _process_context() -> multiprocessing.context.BaseContext:
    """Workers come from a fork server that preloads this module (Linux, macOS).

    Forking the caller itself could inherit a lock held by one of its threads
    (Jupyter, a Dask client, a progress monitor, Arrow's pools); a fork server
    is a clean single-threaded process started once per session (about a
    second), after which each worker starts in milliseconds with openSMILE
    already loaded.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


class _ProcessPool:
    """Local worker processes; a new pool replaces one whose worker died."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = self._start()

    def _start(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=_process_context(),
                                      initializer=_follow, initargs=(os.getpid(),))

    def submit(self, task: _Task) -> cf.Future:
        try:
            return self.pool.submit(_extract_task, task)
        except cf.process.BrokenProcessPool:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._start()
            return self.pool.submit(_extract_task, task)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _executor(
    n_tasks: int, *, jobs: int | None, scheduler: str | None, dask_workers: int | None
) -> Iterator[tuple[Callable[[_Task], cf.Future] | None, int, str]]:
    """(submit or None for in-process, worker count, backend name)."""
    if scheduler is not None or dask_workers is not None:
        from distributed import Client, LocalCluster

        with contextlib.ExitStack() as stack:
            if scheduler is not None:
                client = stack.enter_context(Client(scheduler))
                backend = f"dask {scheduler}"
            else:
                cluster = stack.enter_context(
                    LocalCluster(n_workers=dask_workers, threads_per_worker=1, processes=True,
                                 dashboard_address=None, silence_logs=logging.ERROR)
                )
                client = stack.enter_context(Client(cluster))
                backend = f"dask LocalCluster({dask_workers})"
            workers = max(1, sum(client.nthreads().values()))
            executor = client.get_executor(pure=False)
            yield (lambda task: executor.submit(_extract_task, task)), workers, backend
        return
    workers = max(1, min(jobs or available_cores(), n_tasks))
    if workers == 1:
        yield None, 1, "in-process"
        return
    pool = _ProcessPool(workers)
    try:
        yield pool.submit, workers, f"processes({workers})"
    finally:
        pool.close()


# --------------------------------------------------------------------------- extraction


def _plan(
    table: pd.DataFrame, spec: FeatureSpec, root: Path
) -> tuple[list[_Task], dict[str, dict[str, Any]], list[dict[str, str]]]:
    """Split the table into tasks, reusable entries and failures known up front."""
    failures = [
        {"file": str(problem.get("file", "")), "utterance": "", "reason": f"scan: {problem.get('reason', '')}"}
        for problem in table.attrs.get("problems", [])
    ]
    previous: dict[str, dict[str, Any]] = {}
    if (root / INDEX).is_file():
        with contextlib.suppress(Exception):  # an unreadable index only costs re-checks
            previous = {row["utterance"]: row for row in pd.read_parquet(root / INDEX).to_dict("records")}
    tasks: list[_Task] = []
    reused: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for file, utterance in zip(table["file"].astype(str), table["utterance"].astype(str)):
        if utterance in seen:
            failures.append({"file": file, "utterance": utterance, "reason": "duplicate utterance id in the table"})
            continue
        seen.add(utterance)
        try:
            key = cache_key(file, spec)
        except OSError:
            key = None
        target = root / "features" / entry_name(utterance)
        known = previous.get(utterance)
        if key is not None and known is not None and known.get("key") == key and target.is_file():
            reused[utterance] = {name: known[name] for name in ("key", "frames", "seconds", "rate_hz", "path")}
            continue
        stored = read_entry(target) if key is not None and target.is_file() else None
        if stored is not None and stored.get("key") == key:
            reused[utterance] = stored
            continue
        tasks.append(_Task(utterance=utterance, file=file, root=str(root), spec=spec))
    return tasks, reused, failures


def extract(
    table: pd.DataFrame,
    spec: FeatureSpec = FeatureSpec(),
    *,
    out: str | os.PathLike,
    jobs: int | None = None,
    scheduler: str | None = None,
    dask_workers: int | None = None,
    progress: bool = True,
) -> FeatureStore:
    """Extract the features of every recording in a corpus table into a feature store.

    Args:
        table: a corpus table (``emotools.corpora.scan``) with at least ``file``
            and ``utterance``; ``df.attrs["problems"]`` from the scan are
            recorded as failures too.
        spec: feature set, level, window and hop.
        out: the store folder (created).
        jobs: local worker processes; default all cores, 1 runs in this process.
        scheduler: address of a running Dask scheduler (``tcp://HOST:PORT``).
        dask_workers: start a local Dask cluster with this many single-threaded workers.
        progress: show a tqdm bar over recordings with seconds of audio per second.

    Returns:
        The :class:`FeatureStore` of ``out``.

    Raises:
        ValueError: ``file`` or ``utterance`` columns missing, or both Dask options given.
    """
    started = time.perf_counter()
    missing = {"file", "utterance"} - set(table.columns)
    if missing:
        raise ValueError(f"the corpus table lacks column(s) {sorted(missing)}; it has {list(table.columns)}")
    if scheduler is not None and dask_workers is not None:
        raise ValueError("give either scheduler (a running cluster) or dask_workers (a local one), not both")
    for name, value in (("jobs", jobs), ("dask_workers", dask_workers)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    root = Path(out)
    (root / "features").mkdir(parents=True, exist_ok=True)
    remove_partials(root)
    tasks, entries, failures = _plan(table, spec, root)
    reused = len(entries)

    audio_seconds = 0.0
    task_cpu = 0.0
    processed = 0
    with _executor(len(tasks), jobs=jobs, scheduler=scheduler, dask_workers=dask_workers) as (submit, workers, backend):
        outcomes = map(_extract_task, tasks) if submit is None else _drain(submit, tasks, 4 * workers)
        with tqdm(total=len(tasks), unit="rec", desc=f"extract {spec.slug}", disable=not progress) as bar:
            for outcome in outcomes:
                task_cpu += outcome.cpu_s
                if outcome.entry is not None:
                    entries[outcome.utterance] = outcome.entry
                    audio_seconds += outcome.entry["seconds"]
                    processed += 1
                else:
                    failures.append({"file": outcome.file, "utterance": outcome.utterance, "reason": outcome.reason})
                    log.info("%s: %s", outcome.file, outcome.reason)
                elapsed = time.perf_counter() - started
                rate = f"{audio_seconds / max(elapsed, 1e-9):.1f} s audio/s"
                bar.set_postfix_str(rate + (f", {len(failures)} failed" if failures else ""), refresh=False)
                bar.update(1)

    rows = table.drop_duplicates("utterance").astype({"utterance": str})
    rows = rows[rows["utterance"].isin(list(entries))].reset_index(drop=True)
    stored = pd.DataFrame([entries[u] for u in rows["utterance"]], columns=ENTRY_COLUMNS)
    index = pd.concat([rows.drop(columns=[c for c in ENTRY_COLUMNS if c in rows]), stored], axis=1)
    write_table(root / INDEX, index)
    write_table(root / FAILURES, pd.DataFrame(failures, columns=FAILURE_COLUMNS))
    wall = time.perf_counter() - started
    summary = {
        "processed": processed,
        "reused": reused,
        "failed": len(failures),
        "audio_seconds": round(audio_seconds, 3),
        "reused_audio_seconds": round(sum(entries[u]["seconds"] for u in rows["utterance"]) - audio_seconds, 3),
        "wall_time_s": round(wall, 3),
        "realtime_factor": round(audio_seconds / wall, 2) if wall > 0 else None,
        "task_cpu_s": round(task_cpu, 3),  # CPU time inside the tasks; / wall_time_s = cores kept busy
        "backend": backend,
        "workers": workers,
        "spec": spec.as_dict(),
        "opensmile": OPENSMILE_VERSION,
        "store_version": STORE_VERSION,
    }
    write_json(root / SUMMARY, summary)
    log.info("extracted %d, reused %d, failed %d -> %s", processed, reused, len(failures), root)
    return FeatureStore(root)
