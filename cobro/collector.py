"""Pause Python's cyclic garbage collector around bulk work that piles up acyclic objects.

    with collector_paused():
        rows = [...]          # a page of facts, obligations, rows to write

Rows of scalars, dicts of facts and named tuples make no reference cycle (reference counting
frees them), but every allocation counts towards a collection and every collection walks
the objects alive: a third of a classification page's CPU (`cobro.rules.classify`). The
collector is resumed at the end as it was found (a nested or concurrent pause that found it
paused leaves it to the outer one); whatever cycles were made meanwhile are collected then.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
