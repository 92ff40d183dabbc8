"""Bulk building blocks shared by the writers: one statement per batch, never per row.

- `fetch_by_keys`: one SELECT ... WHERE key IN (...) per batch of natural keys;
- `insert_returning_ids`: one multi-row INSERT ... RETURNING id (SQLAlchemy
  "insertmanyvalues"), ids in the order of the rows given;
- `update_by_id`: one executemany UPDATE ... WHERE id = ? for the changed rows;
- `add_events`: one bulk INSERT of timeline events.

The big INSERTs go through `BulkInsert`: the statement is compiled once per import and the
rows are sent with the DBAPI's `executemany`, each value converted by its column type's own
bind processor (exactly what SQLAlchemy would send), values shared by every row (the import
timestamp) converted once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import partial
from operator import itemgetter
from typing import Any, TypeVar

from sqlalchemy import Column, Connection, Table, bindparam, insert, select, update
from sqlalchemy.engine import Row as DbRow
from sqlalchemy.engine.interfaces import Dialect

from cobro.formatting import jsonable
from cobro.importing.reader import Row as FileRow
from cobro.importing.reader import error_line
from cobro.models import Customer, TimelineEvent
from cobro.queues.people import assignable, unknown_assignee

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
    inserts: dict[tuple[str, tuple[str, ...]], BulkInsert] = field(default_factory=dict)

    def inserter(self, table: Table, names: Sequence[str], **constants: Any) -> BulkInsert:
        """The `BulkInsert` of these columns, compiled once per import."""
        key = (table.name, tuple(names))
        if key not in self.inserts:
            self.inserts[key] = BulkInsert(self.conn, table, names, constants)
        return self.inserts[key]


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, other: Counts) -> None:
        """Sum another batch's counts in (extra counts are numbers, summed too)."""
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        for name, value in other.extra.items():
            self.extra[name] = self.extra.get(name, 0) + value


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


def check_owners(
    conn: Connection,
    file: str,
    rows: Sequence[tuple[FileRow, Any]],
    errors: list[tuple[int, str]],
) -> None:
    """Every `owner` named must be a user who may own customers (collector or above)."""
    named = {model.owner for _, model in rows if getattr(model, "owner", None)}
    if not named:
        return
    ok = {p.username for p in assignable(conn) if p.username in named}
    why = {name: unknown_assignee(conn, name) for name in sorted(named - ok)}
    for row, model in rows:
        if model.owner in why:
            errors.append((row.line, error_line(file, row.line, "owner", str(why[model.owner]))))


class BulkInsert:
    """`INSERT INTO table (names..., constants...)` for many rows given as tuples.

    `names` are the columns of each row tuple, in order; `constants` are values shared by
    every row. Other columns get their scalar Python default (like `insert()` would) or are
    left to the database; a column with a callable default must be given explicitly.
    """

    def __init__(
        self,
        conn: Connection,
        table: Table,
        names: Sequence[str],
        constants: dict[str, Any] | None = None,
    ) -> None:
        self.conn = conn
        dialect = conn.dialect
        constants = dict(constants or {})
        given = [*names, *constants]
        compiled = insert(table).compile(dialect=dialect, column_keys=given, for_executemany=True)
        binds = list(compiled.positiontup or compiled.binds)
        for name in binds:
            if name in given:
                continue
            default = table.c[name].default
            if default is None or not default.is_scalar:  # type: ignore[attr-defined]
                raise ValueError(f"BulkInsert into {table.name}: give a value for {name}")
            constants[name] = default.arg  # type: ignore[attr-defined]
        self.sql = compiled.string
        const_names = [name for name in binds if name not in names]
        self.names = [*names, *const_names]  # the layout of (*row, *constants)
        self.constants = tuple(
            _process(table.c[name], dialect, constants[name]) for name in const_names
        )
        self.processors = [
            (index, proc)
            for index, name in enumerate(names)
            if (proc := _bind(table.c[name], dialect)) is not None
        ]
        # positional drivers take the values in the statement's order, others a dict
        self.arrange: Callable[[tuple[Any, ...]], Any] | None = None
        if not dialect.positional:
            self.arrange = partial(_as_dict, self.names)
        elif binds != self.names:
            getter = itemgetter(*(self.names.index(name) for name in binds))
            self.arrange = getter if len(binds) > 1 else lambda values: (getter(values),)

    def params(self, rows: Iterable[Sequence[Any]]) -> list[Any]:
        processors, constants, arrange = self.processors, self.constants, self.arrange
        out: list[Any] = []
        append = out.append
        for row in rows:
            if processors:
                row = list(row)
                for index, proc in processors:
                    row[index] = proc(row[index])
            values = (*row, *constants)
            append(values if arrange is None else arrange(values))
        return out

    def run(self, rows: Iterable[Sequence[Any]]) -> None:
        params = self.params(rows)
        if params:
            self.conn.exec_driver_sql(self.sql, params)


def _bind(column: Column[Any], dialect: Dialect) -> Any:
    return column.type.dialect_impl(dialect).bind_processor(dialect)


def _as_dict(names: list[str], values: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(names, values, strict=True))


def _process(column: Column[Any], dialect: Dialect, value: Any) -> Any:
    proc = _bind(column, dialect)
    return value if proc is None else proc(value)


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


EVENT_COLUMNS = ("customer_id", "kind", "summary", "data")


def event(
    ctx: Context, customer_id: int, kind: str, summary: str, data: dict[str, Any]
) -> tuple[int, str, str, dict[str, Any]]:
    """A timeline event row (`EVENT_COLUMNS`), at the import's time, by "import"."""
    return (customer_id, kind, summary, {"source": ctx.source, **data})


def add_events(ctx: Context, events: list[tuple[int, str, str, dict[str, Any]]]) -> None:
    if events:
        ctx.inserter(events_t, EVENT_COLUMNS, at=ctx.now, actor="import").run(events)


def changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{field: {"old": ..., "new": ...}} for every field whose value differs."""
    return {
        name: {"old": jsonable(old[name]), "new": jsonable(value)}
        for name, value in new.items()
        if old[name] != value
    }
