"""Pause Python's cyclic garbage collector around bulk work that piles up acyclic objects.

    with collector_paused():
        rows = [...]          # a page of facts, obligations, rows to write

Rows of scalars, dicts of facts and named tuples make no reference cycle (reference counting
frees them), but every allocation counts towards a collection and every collection walks
the objects alive: a third of a classification page's CPU (`cobro.rules.classify`). The
collector is paused while at least one such block runs, in any thread (pages classified side
by side, a worker's activity threads), and resumed when the last one ends if it was running
when the first one began; whatever cycles were made meanwhile are collected then.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_paused = 0  # blocks running
_resume = False  # the collector was enabled when the first of them began


@contextmanager
def collector_paused() -> Iterator[None]:
    global _paused, _resume
    with _lock:
        if _paused == 0:
            _resume = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _lock:
            _paused -= 1
            if _paused == 0 and _resume:
                gc.enable()
