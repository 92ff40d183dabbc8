"""Bulk building blocks shared by the writers: one statement per batch, never per row.

- `fetch_by_keys`: one SELECT ... WHERE key IN (...) per batch of natural keys;
- `insert_returning_ids`: one multi-row INSERT ... RETURNING id (SQLAlchemy
  "insertmanyvalues"), ids in the order of the rows given;
- `update_by_id`: one executemany UPDATE ... WHERE id = ? for the changed rows;
- `add_events`: one bulk INSERT of timeline events.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Column, Connection, Table, bindparam, insert, select, update
from sqlalchemy.engine import Row as DbRow

from cobro.importing.reader import Row as FileRow
from cobro.importing.reader import error_line
from cobro.models import Customer, TimelineEvent

BATCH_SIZE = 5_000
T = TypeVar("T")
CENTS = Decimal("0.01")

customers_t: Table = Customer.__table__  # type: ignore[assignment]
events_t: Table = TimelineEvent.__table__  # type: ignore[assignment]


@dataclass
class Context:
    """What every writer needs: the open transaction, the source and one timestamp."""

    conn: Connection
    source: str  # the file name shown on timeline events
    now: datetime
    batch_size: int = BATCH_SIZE


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def fetch_by_keys(
    conn: Connection,
    key: Column[Any],
    keys: Iterable[Any],
    columns: Sequence[Column[Any]],
    *,
    batch_size: int = BATCH_SIZE,
) -> dict[Any, DbRow[Any]]:
    """Existing rows by natural key (keys are de-duplicated, queried in batches)."""
    wanted = list(dict.fromkeys(keys))
    found: dict[Any, DbRow[Any]] = {}
    for part in chunks(wanted, batch_size):
        for row in conn.execute(select(*columns).where(key.in_(part))):
            found[row._mapping[key]] = row
    return found


def account_ids(
    conn: Connection, accounts: Iterable[str], *, batch_size: int = BATCH_SIZE
) -> dict[str, int]:
    c = customers_t.c
    rows = fetch_by_keys(conn, c.account, accounts, [c.account, c.id], batch_size=batch_size)
    return {account: row.id for account, row in rows.items()}


def check_accounts(
    conn: Connection, file: str, rows: Sequence[FileRow], errors: list[tuple[int, str]]
) -> dict[str, int]:
    """Every account named in the file must exist; returns account -> customer id."""
    ids = account_ids(conn, (row.values["account"] for row in rows if "account" in row.values))
    for row in rows:
        account = row.values.get("account")
        if account is not None and account not in ids:
            errors.append(
                (row.line, error_line(file, row.line, "account", f"unknown account {account!r}"))
            )
    return ids


def insert_returning_ids(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    if not rows:
        return []
    stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return list(conn.execute(stmt, rows).scalars())


def update_by_id(
    conn: Connection, table: Table, columns: Sequence[str], rows: list[dict[str, Any]]
) -> None:
    """`rows` are dicts with `id` and every name of `columns` (executemany needs one shape)."""
    if not rows:
        return
    stmt = (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values({name: bindparam(f"b_{name}") for name in columns})
    )
    params = [{f"b_{name}": value for name, value in row.items()} for row in rows]
    conn.execute(stmt, params)


def event(
    ctx: Context, customer_id: int, kind: str, summary: str, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "at": ctx.now,
        "kind": kind,
        "actor": "import",
        "summary": summary,
        "data": {"source": ctx.source, **data},
    }


def add_events(conn: Connection, events: list[dict[str, Any]]) -> None:
    if events:
        conn.execute(insert(events_t), events)


def jsonable(value: Any) -> Any:
    """Timeline data is JSON: dates as ISO text, money as exact decimal text."""
    if isinstance(value, Decimal):
        short = value.normalize()
        if short.as_tuple().exponent > -2:  # type: ignore[operator]
            short = value.quantize(CENTS)
        return format(short, "f")
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{field: {"old": ..., "new": ...}} for every field whose value differs."""
    return {
        name: {"old": jsonable(old[name]), "new": jsonable(value)}
        for name, value in new.items()
        if old[name] != value
    }
