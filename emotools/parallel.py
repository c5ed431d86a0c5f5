"""Independent tasks in worker processes: the package's one process-pool helper.

Workers are fresh interpreters (``spawn`` by default): forking a process that
has used torch's thread pool, or that runs Jupyter's threads, can deadlock.
Tasks must be picklable and their results independent of which worker ran
them (seed every task), so ``jobs`` never changes a result, only the time.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["process_pool", "run_each", "torch_threads"]

T = TypeVar("T")
R = TypeVar("R")


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


def run_each(fn: Callable[[T], R], tasks: Sequence[T], *, jobs: int = 1
             ) -> Iterator[tuple[T, R | None, Exception | None]]:
    """``(task, fn(task), None)`` or ``(task, None, error)`` for every task, as each finishes.

    One failing task never stops the others: its exception is yielded for
    the caller to record or raise. ``jobs <= 1`` (or a single task) runs the
    tasks here, in order; otherwise ``min(jobs, len(tasks))`` fresh worker
    processes run them and results come in completion order.

    >>> [(t, r, e) for t, r, e in run_each(abs, [-2, 3])]
    [(-2, 2, None), (3, 3, None)]
    """
    if int(jobs) <= 1 or len(tasks) <= 1:
        for task in tasks:
            try:
                result = fn(task)
            except Exception as error:  # reported to the caller, the rest go on
                yield task, None, error
            else:
                yield task, result, None
        return
    with process_pool(min(int(jobs), len(tasks))) as pool:
        futures = {pool.submit(fn, task): task for task in tasks}
        for future in cf.as_completed(futures):
            error = future.exception()
            if error is not None and not isinstance(error, Exception):
                raise error
            yield futures[future], (None if error is not None else future.result()), error


@contextmanager
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
