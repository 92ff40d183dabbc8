"""Planner statistics refreshed after bulk writes (PostgreSQL; nothing on SQLite)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from cobro.db import make_engine
from cobro.db_statistics import AT_LEAST, refresh_statistics, stale_tables

TABLE = "statistics_probe"  # tables of this test's own: no other test's rows counted
QUIET = "statistics_probe_quiet"  # never written


@pytest.fixture
def probe(pg_engine: Engine) -> Iterator[Engine]:
    with pg_engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {TABLE} (n int)"))
        conn.execute(text(f"CREATE TABLE {QUIET} (n int)"))
    yield pg_engine
    with pg_engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {TABLE}, {QUIET}"))


def fill(engine: Engine, rows: int) -> None:
    with engine.connect() as conn:
        conn.execute(text(f"INSERT INTO {TABLE} SELECT generate_series(1, :n)"), {"n": rows})
        conn.commit()
        conn.execute(text("SELECT pg_stat_force_next_flush()"))  # this backend's counters
        conn.commit()


def analyzed(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(
            text("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = :t"), {"t": TABLE}
        )


def test_a_table_that_grew_is_analyzed_once_then_left(probe: Engine) -> None:
    pg_engine = probe
    before = analyzed(pg_engine)
    fill(pg_engine, AT_LEAST // 2)
    assert refresh_statistics(pg_engine, [TABLE]) == []  # too few changes to matter
    fill(pg_engine, AT_LEAST * 3)
    with pg_engine.connect() as conn:
        assert stale_tables(conn, [TABLE, QUIET]) == [TABLE]
    assert refresh_statistics(pg_engine, [TABLE]) == [TABLE]
    assert analyzed(pg_engine) == before + 1
    assert refresh_statistics(pg_engine, [TABLE]) == []  # fresh now
    assert analyzed(pg_engine) == before + 1


def test_nothing_is_done_on_sqlite(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    assert refresh_statistics(engine, [TABLE]) == []
    engine.dispose()
