"""Portfolio-wide figures computed once per state of the data, then reused by every read
until the data changes: the whole portfolio's exposure (over-limit filter, limit review,
KPI tiles) and the KPIs themselves cost seconds on 100k customers and 2M invoices, and the
dashboard, the API and the CLI ask for them at every page.

The state of the data is the sum of `data_changes.weight` (PostgreSQL): a statement trigger
on every table those figures read adds a row, and that row becomes visible only when its
transaction commits. The sum is read before the figure is computed, so a figure kept under
a sum never predates it: a change committed meanwhile raises the sum, and the next read
computes again. Rolled-back or no-op statements only cost one recomputation. On SQLite
(no triggers) every read computes.

Cached values are shared between callers: treat them as read-only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy import Connection, text

T = TypeVar("T")

ENTRIES = 8  # figures kept per process (an exposure book of 100k customers: ~60 MB)
FOLD_ABOVE = 10_000  # rows of data_changes folded into one beyond this many

# the table's file changes when it is truncated (a restore, a test's clean-up): a sum that
# starts again from zero never meets a figure kept under the old one
_STATE = text(
    "SELECT pg_relation_filenode('data_changes'), coalesce(sum(weight), 0), count(*)"
    " FROM data_changes"
)
_lock = threading.Lock()
_values: OrderedDict[Hashable, Any] = OrderedDict()
_computing: dict[Hashable, threading.Lock] = {}


def data_state(conn: Connection) -> tuple[int, int] | None:
    """The state of the data the figures read, or None where it is not tracked (SQLite)."""
    if conn.dialect.name != "postgresql":
        return None
    filenode, total, rows = conn.execute(_STATE).one()
    if rows > FOLD_ABOVE:
        _fold(conn)
    return int(filenode), int(total)


def _fold(conn: Connection) -> None:
    """Replace every row by one carrying their summed weight (the sum, the state, stays);
    in a transaction of its own, skipped when another process folds at the same time."""
    with conn.engine.connect() as own, own.begin():
        if not own.execute(text("SELECT pg_try_advisory_xact_lock(7201)")).scalar():
            return
        own.execute(
            text(
                "WITH gone AS (DELETE FROM data_changes RETURNING weight)"
                " INSERT INTO data_changes (weight) SELECT sum(weight) FROM gone"
            )
        )


class _Same:
    """A key part that is equal only to itself (rules holding unhashable conditions: the
    active rules are one object per stored version, so reads of them still meet)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.value is self.value


def key_part(value: object) -> Hashable:
    """`value` as a key part: itself when hashable, else by identity."""
    try:
        hash(value)
    except TypeError:
        return _Same(value)
    return value  # type: ignore[return-value]


def cached(conn: Connection, key: tuple[object, ...], compute: Callable[[], T]) -> T:
    """`compute()`, or what it returned under the same `key` and the same state of the data
    on this database. Concurrent reads of one key compute it once."""
    key = tuple(key_part(part) for part in key)
    state = data_state(conn)
    if state is None:
        return compute()
    full = (str(conn.engine.url), key, state)
    with _lock:
        if full in _values:
            _values.move_to_end(full)
            return _values[full]
        gate = _computing.setdefault(full, threading.Lock())
    with gate:
        with _lock:
            if full in _values:
                return _values[full]
        value = compute()
        with _lock:
            _values[full] = value
            while len(_values) > ENTRIES:
                _values.popitem(last=False)
            _computing.pop(full, None)
        return value


def clear() -> None:
    """Forget every figure (tests; a process that changed the data without triggers)."""
    with _lock:
        _values.clear()


def kept() -> list[tuple[Hashable, ...]]:
    """The keys of the figures kept now (each without its database and state), oldest first."""
    with _lock:
        return [full[1] for full in _values]
