"""Bulk INSERT of many rows in one session: PostgreSQL `COPY ... FROM STDIN` (one stream, no
statement per row), elsewhere one Core executemany (SQLite's is a C loop).

Values go through each column's SQLAlchemy bind processing first (Money, UTCDateTime, JSON),
so what lands in the table is exactly what an ORM insert would write; Python-side column
defaults (`created_at = utcnow`, ...) are filled for columns the rows leave out."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session


def bulk_insert(session: Session, model: type, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table: Table = model.__table__  # type: ignore[attr-defined]
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        session.execute(insert(table), rows)
        return
    keys = list(rows[0])
    columns = [table.c[k] for k in keys]
    defaults = [
        c
        for c in table.c
        if c.key not in rows[0] and c.default is not None and c.default.is_callable
    ]
    dialect = connection.dialect
    processors = [c.type._cached_bind_processor(dialect) for c in [*columns, *defaults]]
    names = ", ".join(dialect.identifier_preparer.quote(c.name) for c in [*columns, *defaults])
    sql = f"COPY {dialect.identifier_preparer.format_table(table)} ({names}) FROM STDIN"
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(sql) as copy:
        for row in rows:
            values = [row[k] for k in keys]
            values += [c.default.arg(None) for c in defaults]  # type: ignore[union-attr]
            copy.write_row(
                [
                    v if p is None or v is None else p(v)
                    for p, v in zip(processors, values, strict=True)
                ]
            )
