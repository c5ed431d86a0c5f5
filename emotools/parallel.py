"""Independent tasks in workers: the package's one home for process pools and Dask clusters.

Local workers are fresh interpreters (``spawn`` by default): forking a process
that has used torch's thread pool, or that runs Jupyter's threads, can
deadlock. Dask runs the same tasks on a cluster: a running scheduler
(``tcp://`` or ``tls://HOST:PORT``) or a local one started here. Tasks must be
picklable, importable on every worker (the same ``emotools``), and give
results independent of which worker ran them (seed every task), so the
backend never changes a result, only the time.

A ``tcp://`` scheduler runs whatever any client that reaches it submits: keep
it on a private network, or use ``tls://`` with certificates
(:func:`dask_security`).
"""

from __future__ import annotations

import ast
import concurrent.futures as cf
import contextlib
import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from distributed import Client, Security

__all__ = ["process_pool", "RestartingPool", "run_each", "torch_threads", "check_backend", "dask_security",
           "dask_client", "refuse_unguarded_main", "reason", "SECURITY_FILES"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: The files a ``security`` folder holds: the CA that signed the cluster's certificates, this
#: machine's certificate and its private key (PEM).
SECURITY_FILES = ("ca.pem", "cert.pem", "key.pem")


def process_pool(jobs: int, *, start_method: str = "spawn", preload: Sequence[str] = (),
                 initializer: Callable[..., Any] | None = None, initargs: tuple = ()) -> cf.ProcessPoolExecutor:
    """A pool of ``jobs`` worker processes started with ``start_method``.

    ``preload``: modules a ``forkserver`` imports once, so that each worker
    forked from it starts in milliseconds with them loaded.
    """
    if int(jobs) < 1:
        raise ValueError(f"a process pool needs at least 1 worker, got {jobs}")
    context = multiprocessing.get_context(start_method)
    if preload and start_method == "forkserver":
        context.set_forkserver_preload(list(preload))
    return cf.ProcessPoolExecutor(int(jobs), mp_context=context, initializer=initializer, initargs=initargs)


class RestartingPool:
    """A :func:`process_pool` that a new pool replaces when one of its workers died (``BrokenProcessPool``).

    The futures in flight on the broken pool fail with ``BrokenProcessPool``
    (the caller decides whether to submit them again); later submissions go
    to the new pool.
    """

    def __init__(self, jobs: int, **options: Any) -> None:
        self.jobs, self.options = jobs, options
        self.pool = process_pool(jobs, **options)

    def submit(self, fn: Callable[..., R], *args: Any) -> cf.Future:
        """``fn(*args)`` in a worker."""
        try:
            return self.pool.submit(fn, *args)
        except cf.process.BrokenProcessPool:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = process_pool(self.jobs, **self.options)
            return self.pool.submit(fn, *args)

    def close(self) -> None:
        """Wait for the running tasks, cancel the queued ones."""
        self.pool.shutdown(wait=True, cancel_futures=True)


def reason(error: BaseException) -> str:
    """One line: ``"KilledWorker: ..."``, the exception's type and first line."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


# --------------------------------------------------------------------------- Dask


def check_backend(*, scheduler: str | None = None, dask_workers: int | None = None,
                  security: str | os.PathLike | Security | None = None) -> None:
    """Refuse contradictory or malformed Dask options before any work starts.

    Raises:
        ValueError: both ``scheduler`` and ``dask_workers``; ``dask_workers``
            not a positive integer; ``scheduler`` not a ``PROTOCOL://HOST:PORT``
            string; ``security`` without a Dask backend or with a ``tcp://`` scheduler.
    """
    if scheduler is not None and dask_workers is not None:
        raise ValueError("give either scheduler (a running cluster) or dask_workers (a local one), not both")
    if dask_workers is not None and (isinstance(dask_workers, bool) or not isinstance(dask_workers, int)
                                     or dask_workers < 1):
        raise ValueError(f"dask_workers must be a positive integer, got {dask_workers!r}")
    if scheduler is not None and (not isinstance(scheduler, str) or "://" not in scheduler):
        raise ValueError(f"scheduler must be an address like tcp://HOST:PORT or tls://HOST:PORT, got {scheduler!r}")
    if security is not None:
        if scheduler is None and dask_workers is None:
            raise ValueError("security is for a Dask cluster: give scheduler or dask_workers too")
        if scheduler is not None and not scheduler.startswith("tls://"):
            raise ValueError(f"security needs a tls:// scheduler address, got {scheduler!r}")


def dask_security(security: str | os.PathLike | Security | None) -> Security | None:
    """Dask's ``Security`` from a folder holding :data:`SECURITY_FILES`, or ``security`` as given.

    The folder's certificate serves every role (client, scheduler, worker),
    so one folder per machine, all signed by the same CA, secures a whole
    cluster (``dask scheduler --tls-ca-file ca.pem --tls-cert cert.pem
    --tls-key key.pem``, the same for ``dask worker``). ``None``: Dask's own
    configuration (``distributed.comm.tls.*``, e.g. from environment variables).

    Raises:
        FileNotFoundError: the folder or one of its files is missing (named).
    """
    from distributed import Security

    if security is None or isinstance(security, Security):
        return security
    folder = Path(security)
    missing = [name for name in SECURITY_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: the security folder lacks {', '.join(missing)} "
                                f"(it needs {', '.join(SECURITY_FILES)})")
    ca, cert, key = (str(folder / name) for name in SECURITY_FILES)
    return Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, tls_scheduler_cert=cert,
                    tls_scheduler_key=key, tls_worker_cert=cert, tls_worker_key=key, require_encryption=True)


@contextlib.contextmanager
def dask_client(*, scheduler: str | None = None, dask_workers: int | None = None,
                security: str | os.PathLike | Security | None = None, what: str = "this call"
                ) -> Iterator[tuple[Client, str]]:
    """A Dask client of a running scheduler, or of a local cluster started (and closed) here; and its name.

    A local cluster has ``dask_workers`` single-threaded worker processes
    (``tls://`` on the loopback when ``security`` is given) and marks a task
    whose worker died as failed at once (``allowed-failures`` 0), so the
    caller's retry policy is the only one. ``what`` names the caller in the
    error about an unguarded script (:func:`refuse_unguarded_main`).
    """
    import dask
    from distributed import Client, LocalCluster

    check_backend(scheduler=scheduler, dask_workers=dask_workers, security=security)
    secure = dask_security(security)
    with contextlib.ExitStack() as stack:
        if scheduler is not None:
            client = stack.enter_context(Client(scheduler, security=secure))
            yield client, f"dask {scheduler}"
            return
        refuse_unguarded_main(f"{what} with dask_workers={dask_workers}")
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            cluster = stack.enter_context(LocalCluster(
                n_workers=dask_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                silence_logs=logging.ERROR, **({"protocol": "tls", "security": secure, "host": "127.0.0.1"}
                                               if secure is not None else {})))
        client = stack.enter_context(Client(cluster, security=secure))
        yield client, f"dask LocalCluster({dask_workers}{', tls' if secure is not None else ''})"


def _run_on_dask(fn: Callable[[T], R], tasks: Sequence[T], client: Client, retries: int,
                 name: Callable[[T], str]) -> Iterator[tuple[T, R | None, Exception | None]]:
    """One Dask task per item, the first submitted first; a failed one resubmitted up to ``retries`` times."""
    from distributed import as_completed

    def submit(index: int, attempt: int) -> Any:
        future = client.submit(fn, tasks[index], pure=False, priority=len(tasks) - index)
        owners[future.key] = (index, attempt)
        return future

    owners: dict[str, tuple[int, int]] = {}
    pending = as_completed([submit(i, 0) for i in range(len(tasks))])
    for future in pending:
        index, attempt = owners.pop(future.key)
        if future.status == "finished":
            yield tasks[index], future.result(), None
            continue
        error = future.exception()
        if not isinstance(error, Exception):  # cancelled (e.g. the scheduler went away)
            error = RuntimeError(f"Dask task {future.status}")
        if attempt < retries:
            log.warning("%s: %s on a worker; trying it again", name(tasks[index]), reason(error))
            pending.add(submit(index, attempt + 1))
        else:
            yield tasks[index], None, error


# --------------------------------------------------------------------------- local processes


def _is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` (either operand order)."""
    if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1
            and isinstance(node.test.ops[0], ast.Eq)):
        return False
    operands = [node.test.left, *node.test.comparators]
    return any(isinstance(o, ast.Name) and o.id == "__name__" for o in operands) and any(
        isinstance(o, ast.Constant) and o.value == "__main__" for o in operands)


def _unguarded_main_line() -> tuple[str, int] | None:
    """(script, line) when this call comes from a script's top-level code outside ``if __name__ == "__main__":``.

    Worker processes (fork server, spawn, Dask's nannies) import the main
    script again; such a line would run again in each of them and every
    worker would die while starting.
    """
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if script is None:  # interactive, Jupyter, python -c: nothing is re-imported
        return None
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_code.co_name == "<module>" and frame.f_globals is vars(main)):
        frame = frame.f_back
    if frame is None:
        return None
    try:
        tree = ast.parse(Path(script).read_text(), filename=script)
    except (OSError, SyntaxError, ValueError):
        return None
    line = frame.f_lineno
    for node in tree.body:
        if node.lineno <= line <= (node.end_lineno or node.lineno):
            return None if _is_main_guard(node) else (script, line)
    return None


def refuse_unguarded_main(what: str) -> None:
    """Raise a clear error instead of starting workers that would all die re-running the caller's script.

    ``what``: the call, as the message names it (``"extract with jobs=2"``).
    """
    found = _unguarded_main_line()
    if found is not None:
        script, line = found
        raise RuntimeError(
            f"{script}, line {line}: {what} starts worker processes, which import this script "
            f"again and would run this line again; put the script's top-level code under "
            f"`if __name__ == \"__main__\":` (or pass jobs=1)"
        )


def _run_here(fn: Callable[[T], R], tasks: Sequence[T], retries: int, name: Callable[[T], str]
              ) -> Iterator[tuple[T, R | None, Exception | None]]:
    for task in tasks:
        for attempt in range(retries + 1):
            try:
                result = fn(task)
            except Exception as error:  # reported to the caller, the rest go on
                if attempt == retries:
                    yield task, None, error
                else:
                    log.warning("%s: %s; trying it again", name(task), reason(error))
            else:
                yield task, result, None
                break


def _run_in_pool(fn: Callable[[T], R], tasks: Sequence[T], jobs: int, retries: int, name: Callable[[T], str]
                 ) -> Iterator[tuple[T, R | None, Exception | None]]:
    pool = RestartingPool(min(jobs, len(tasks)))
    try:
        pending = {pool.submit(fn, task): (i, 0) for i, task in enumerate(tasks)}
        while pending:
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for future in done:
                index, attempt = pending.pop(future)
                error = future.exception()
                if error is not None and not isinstance(error, Exception):
                    raise error
                if error is None:
                    yield tasks[index], future.result(), None
                elif attempt < retries:  # a dead worker (BrokenProcessPool) fails every task in flight
                    log.warning("%s: %s in a worker process; trying it again", name(tasks[index]), reason(error))
                    pending[pool.submit(fn, tasks[index])] = (index, attempt + 1)
                else:
                    yield tasks[index], None, error
    finally:
        pool.close()


def run_each(fn: Callable[[T], R], tasks: Sequence[T], *, jobs: int = 1, scheduler: str | None = None,
             dask_workers: int | None = None, security: str | os.PathLike | Security | None = None,
             retries: int = 0, name: Callable[[T], str] = str
             ) -> Iterator[tuple[T, R | None, Exception | None]]:
    """``(task, fn(task), None)`` or ``(task, None, error)`` for every task, as each finishes.

    One failing task never stops the others: a task that raised (or whose
    worker died: ``KilledWorker`` on Dask, ``BrokenProcessPool`` locally) is
    run again up to ``retries`` times, with a warning naming it by ``name``;
    then its last exception is yielded for the caller to record.

    Backends: ``scheduler`` (a running Dask cluster, ``tcp://`` or
    ``tls://HOST:PORT``, certificates from ``security``: :func:`dask_security`)
    or ``dask_workers`` (a local Dask cluster) run one Dask task per item, the
    first items first; else ``jobs <= 1`` (or a single task) runs the tasks
    here, in order, and ``jobs > 1`` runs them in ``min(jobs, len(tasks))``
    fresh worker processes. Results come in completion order.

    >>> [(t, r, e) for t, r, e in run_each(abs, [-2, 3])]
    [(-2, 2, None), (3, 3, None)]

    Raises:
        ValueError: contradictory Dask options (:func:`check_backend`).
    """
    check_backend(scheduler=scheduler, dask_workers=dask_workers, security=security)
    if scheduler is not None or dask_workers is not None:
        if tasks:
            with dask_client(scheduler=scheduler, dask_workers=dask_workers, security=security,
                             what="running tasks") as (client, _):
                yield from _run_on_dask(fn, tasks, client, retries, name)
        return
    if int(jobs) <= 1 or len(tasks) <= 1:
        yield from _run_here(fn, tasks, retries, name)
    else:
        yield from _run_in_pool(fn, tasks, int(jobs), retries, name)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` inside the block, restored after.

    Small models in parallel workers, streaming and one-core measurements run
    on one thread: on tiny tensors more threads only add synchronisation.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
