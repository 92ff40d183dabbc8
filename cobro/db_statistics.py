"""Planner statistics kept up with bulk writes (PostgreSQL).

A table filled by bulk work and read by it at once — a first full insurer sync filling
`insurer_covers` page after page, each page looking its covers up there — has no statistics
or stale ones until autovacuum's next analyze (never, where autovacuum is off). The planner
then takes the table for a small one and answers `cover_id = ANY(:page)` by reading every row
of the insurer: each page costs more than the one before (44 ms instead of 2.6 ms at 100k
covers). `refresh_statistics` analyzes the tables whose rows changed by more than half since their
last analyze: about twenty times while a table grows to a million rows, a fraction of a
second each. A table the database user does not own is skipped by PostgreSQL with a warning.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, text

from cobro.db import default_engine

# a table is analyzed once its rows changed by more than half since its last analyze
CHANGED_SHARE = 0.5
AT_LEAST = 1_000  # changed rows: below this the planner's guesses cost nothing


def stale_tables(conn: Connection, tables: Sequence[str]) -> list[str]:
    """Of `tables`, those whose statistics lag their rows (PostgreSQL's activity counters)."""
    return list(
        conn.scalars(
            text(
                "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(:tables)"
                " AND n_mod_since_analyze > greatest(:floor, n_live_tup * :share)"
                " ORDER BY relname"
            ),
            {"tables": list(tables), "floor": AT_LEAST, "share": CHANGED_SHARE},
        )
    )


def analyze(conn: Connection, tables: Sequence[str]) -> None:
    """`ANALYZE` each table, every column (an analyze of some columns only leaves the
    activity counters as they were: `stale_tables` would name the table again)."""
    for table in tables:
        conn.execute(text(f'ANALYZE "{table}"'))


def refresh_statistics(engine: Engine | None, tables: Sequence[str]) -> list[str]:
    """Analyze those of `tables` whose statistics are stale; the tables analyzed. Nothing on
    another database than PostgreSQL."""
    engine = engine or default_engine()
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as conn:
        stale = stale_tables(conn, tables)
        analyze(conn, stale)
        conn.commit()
    return stale
