"""Map a function over items in forked worker processes, the results in the items' order.

    for result in forked_map(work, shared, items, workers=2, after_fork=reset):
        ...                     # work(shared, item) ran in a child process

For CPU-bound pages of bulk work (the classification of a portfolio): threads share one
interpreter lock, processes use every core. `shared` (a compiled ruleset, an engine: things
that do not pickle) reaches the children by `fork`, not by pickling; only the items and the
results are pickled. `after_fork(shared)` runs first in each child (an engine's connection
pool must not be shared with the parent: `Engine.dispose(close=False)`). Without `fork` (not
POSIX), with one worker or one item, or while another map of this process has its pool
running (another thread's), the work runs here, in order. A child that dies (killed, out of
memory) fails the map with `BrokenProcessPool` instead of leaving it waiting for ever.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")

_work: tuple[Any, Any] | None = None  # (work, shared) of the pool being forked
_busy = threading.Lock()  # held by the map whose pool is running


def _start(after_fork: Callable[[Any], None] | None) -> None:
    if after_fork is not None and _work is not None:
        after_fork(_work[1])


def _run(item: Any) -> Any:
    assert _work is not None
    work, shared = _work
    return work(shared, item)


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def forked_map(
    work: Callable[[S, T], R],
    shared: S,
    items: Sequence[T],
    workers: int,
    after_fork: Callable[[S], None] | None = None,
) -> Iterator[R]:
    """`work(shared, item)` for each item, in `workers` forked processes; results in order.
    An exception of a child is raised here (the pool is then terminated)."""
    if workers <= 1 or len(items) <= 1 or not can_fork() or not _busy.acquire(blocking=False):
        for item in items:  # here: one map of this process forks at a time
            yield work(shared, item)
        return
    global _work
    _work = (work, shared)
    pool = ProcessPoolExecutor(
        min(workers, len(items)),
        mp_context=multiprocessing.get_context("fork"),
        initializer=_start,
        initargs=(after_fork,),
    )
    try:
        yield from pool.map(_run, items)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _work = None
        _busy.release()
