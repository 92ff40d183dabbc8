"""Duplicate natural keys in a streamed file, remembered by the database, not in memory.

The keys of the rows already read (with the line of their first appearance) go to a
temporary table of the import's own transaction: memory stays flat at any file size, and
each batch costs one indexed SELECT and one bulk INSERT. The table disappears with the
transaction (PostgreSQL: `ON COMMIT DROP`, rolled back with it; SQLite: dropped here, and
dropped first should an earlier failed import have left it on a pooled connection).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, text

from cobro.importing.reader import Errors, Row

TABLE = "cobro_import_seen"


class SeenKeys:
    def __init__(self, conn: Connection, key: str) -> None:
        self.conn = conn
        self.key = key
        self.postgres = conn.dialect.name == "postgresql"
        if self.postgres:
            conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE {TABLE} (key text PRIMARY KEY, line integer NOT NULL)"
                " ON COMMIT DROP"
            )
        else:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{TABLE}")
            conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE {TABLE} (key TEXT PRIMARY KEY, line INTEGER NOT NULL)"
            )
        if self.postgres:  # one array parameter, not thousands
            self._select = text(
                f"SELECT key, line FROM {TABLE} WHERE key = ANY(CAST(:keys AS text[]))"
            )
        else:
            self._select = text(f"SELECT key, line FROM {TABLE} WHERE key IN :keys").bindparams(
                bindparam("keys", expanding=True)
            )

    def duplicates(self, rows: Sequence[Row], errors: Errors) -> set[int]:
        """Lines of `rows` whose key appeared before (in the file, earlier or in this batch);
        each adds an error naming the first line. The other keys are remembered."""
        key = self.key
        first: dict[str, int] = {}
        repeated: list[tuple[Row, str]] = []
        for row in rows:
            value = row.values.get(key)
            if value is None:
                continue
            if value in first:
                repeated.append((row, value))
            else:
                first[value] = row.line
        earlier: dict[str, int] = {}
        if first:
            earlier = dict(self.conn.execute(self._select, {"keys": list(first)}).all())
        lines: set[int] = set()
        for value in earlier:
            row_line = first.pop(value)
            repeated.append((Row(row_line, {}), value))
        for row, value in repeated:
            origin = earlier.get(value, first.get(value))
            lines.add(row.line)
            errors.add(row.line, key, f"duplicate {key} {value!r} (first on line {origin})")
        self._remember(first)
        return lines

    def _remember(self, keys: dict[str, int]) -> None:
        if not keys:
            return
        if self.postgres:
            self.conn.execute(
                text(
                    f"INSERT INTO {TABLE} (key, line)"
                    " SELECT * FROM unnest(CAST(:keys AS text[]), CAST(:lines AS integer[]))"
                ),
                {"keys": list(keys), "lines": list(keys.values())},
            )
        else:
            self.conn.exec_driver_sql(
                f"INSERT INTO {TABLE} (key, line) VALUES (?, ?)", list(keys.items())
            )

    def drop(self) -> None:
        if not self.postgres:
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{TABLE}")
