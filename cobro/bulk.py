"""Bulk INSERT of many rows in one session: PostgreSQL `COPY ... FROM STDIN` (one stream, no
statement per row), elsewhere one Core executemany (SQLite's is a C loop).

Values go through each column's SQLAlchemy bind processing first (Money, UTCDateTime, JSON),
so what lands in the table is exactly what an ORM insert would write; Python-side column
defaults (`created_at = utcnow`, ...) are filled for columns the rows leave out. A JSON value
already serialised (`JsonText`) is written as it is."""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session


class JsonText(str):
    """A JSON column's value as JSON text already (pydantic's `model_dump_json`, say): bulk
    inserts write it as it is instead of serialising it again."""


def bulk_insert(
    session: Session, model: type, rows: list[dict[str, Any]], *, evaluate_none: bool = False
) -> None:
    """`rows`: the same keys in every row. `evaluate_none`: a None goes through the bind
    processing of the types that evaluate it (a JSON column stores JSON `null`), as a Core
    INSERT does; without it a None is SQL NULL in every column."""
    if not rows:
        return
    table: Table = model.__table__  # type: ignore[attr-defined]
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name not in ("postgresql", "sqlite"):
        session.execute(insert(table), rows)
        return
    keys = list(rows[0])
    columns = [table.c[k] for k in keys]
    defaults = [
        c
        for c in table.c
        if c.key not in rows[0] and c.default is not None and c.default.is_callable
    ]
    processors = [c.type._cached_bind_processor(dialect) for c in [*columns, *defaults]]
    # the columns whose None is processed (None elsewhere: False, a plain NULL)
    of_none = [
        evaluate_none and c.type.should_evaluate_none and p is not None
        for c, p in zip([*columns, *defaults], processors, strict=True)
    ]
    names = ", ".join(dialect.identifier_preparer.quote(c.name) for c in [*columns, *defaults])
    target = dialect.identifier_preparer.format_table(table)

    # only the columns with a processor are visited (a page of covers: 6 of 24)
    processing = [(i, p, e) for i, (p, e) in enumerate(zip(processors, of_none, strict=True)) if p]
    pick = itemgetter(*keys)

    def processed(row: dict[str, Any]) -> list[Any]:
        values = list(pick(row)) if len(keys) > 1 else [row[keys[0]]]
        values += [c.default.arg(None) for c in defaults]  # type: ignore[union-attr]
        for i, p, e in processing:
            v = values[i]
            if type(v) is JsonText:
                values[i] = str(v)
            elif v is not None or e:
                values[i] = p(v)
        return values

    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    if dialect.name == "sqlite":
        marks = ", ".join("?" * (len(columns) + len(defaults)))
        sql = f"INSERT INTO {target} ({names}) VALUES ({marks})"
        cursor.executemany(sql, [processed(row) for row in rows])
        return
    with cursor.copy(f"COPY {target} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(processed(row))
