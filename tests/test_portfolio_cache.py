"""Portfolio figures computed once per state of the data (`cobro.portfolio_cache`): reused
while nothing changed, computed again as soon as a change commits — even one that was still
uncommitted while the figure was being computed — after a TRUNCATE, and across the folding
of old change rows. On SQLite (no triggers) every read computes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text, update

from cobro import portfolio_cache
from cobro.db import transaction
from cobro.exposure import DEFAULT_RULES
from cobro.exposure.book import portfolio_exposures
from cobro.kpis import compute_kpis
from cobro.models import Customer, Invoice

AS_OF = date(2026, 12, 31)


def seed(engine: Engine) -> None:
    with transaction(engine) as s:
        c = Customer(account="K1", name="Kowalski", country="PL", language="pl",
                     timezone="Europe/Warsaw", discretionary_limit=Decimal(1000),
                     discretionary_limit_currency="EUR")  # fmt: skip
        s.add(c)
        s.flush()
        s.add(Invoice(number="F1", customer_id=c.id, issue_date=date(2026, 11, 1),
                      due_date=date(2026, 12, 1), currency="EUR", amount=Decimal(800),
                      open_amount=Decimal(800)))  # fmt: skip


def receivables(engine: Engine) -> Decimal:
    return compute_kpis(engine, AS_OF, exposure_rules=DEFAULT_RULES).currencies["EUR"].receivables


def counting(calls: list[int], value: object):  # type: ignore[no-untyped-def]
    def compute() -> object:
        calls.append(1)
        return value

    return compute


def test_figures_follow_every_committed_change(engine: Engine) -> None:
    seed(engine)
    assert receivables(engine) == Decimal(800)
    with engine.begin() as conn:
        conn.execute(update(Invoice).values(open_amount=Decimal(300)))
    assert receivables(engine) == Decimal(300), "a committed change is seen at the next read"
    book = portfolio_exposures(engine, AS_OF, DEFAULT_RULES)
    assert not book.over_limit_ids()
    with engine.begin() as conn:
        conn.execute(update(Customer).values(discretionary_limit=Decimal(100)))
    assert portfolio_exposures(engine, AS_OF, DEFAULT_RULES).over_limit_ids()


def test_a_change_committed_during_a_computation_is_seen_next(engine: Engine, db_url: str) -> None:
    seed(engine)
    writer = engine.connect()
    writer.begin()
    writer.execute(update(Invoice).values(open_amount=Decimal(100)))  # not committed yet
    assert receivables(engine) == Decimal(800), "the uncommitted change is not read"
    writer.commit()
    writer.close()
    assert receivables(engine) == Decimal(100), "it is, once committed"


def test_reused_while_nothing_changed_on_postgresql_only(engine: Engine, db_url: str) -> None:
    seed(engine)
    calls: list[int] = []
    key = ("test", "reuse")
    with engine.connect() as conn:
        first = portfolio_cache.cached(conn, key, counting(calls, ["figure"]))
        again = portfolio_cache.cached(conn, key, counting(calls, ["figure"]))
    tracked = engine.dialect.name == "postgresql"
    assert (len(calls), first is again) == ((1, True) if tracked else (2, False))
    with engine.begin() as conn:
        conn.execute(text("UPDATE customers SET name = 'Kowalski SA'"))
    with engine.connect() as conn:
        portfolio_cache.cached(conn, key, counting(calls, ["figure"]))
    assert len(calls) == (2 if tracked else 3), "a change computes it again"


@pytest.fixture
def pg(pg_engine: Engine) -> Engine:
    from tests.conftest import _truncate_all

    _truncate_all(pg_engine)
    return pg_engine


def test_truncated_change_rows_never_meet_an_old_figure(pg: Engine) -> None:
    with pg.connect() as conn:
        before = portfolio_cache.data_state(conn)
    with pg.begin() as conn:
        conn.execute(text("TRUNCATE data_changes"))
    with pg.connect() as conn:
        after = portfolio_cache.data_state(conn)
    assert before is not None and after is not None
    assert before != after, "a sum starting again from zero is another state"


def test_folding_old_rows_keeps_the_state(pg: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(pg)
    for i in range(12):
        with pg.begin() as conn:
            conn.execute(text("UPDATE customers SET name = :n"), {"n": f"Kowalski {i}"})
    with pg.connect() as conn:
        rows = conn.scalar(text("SELECT count(*) FROM data_changes"))
        state = portfolio_cache.data_state(conn)
    assert rows is not None and rows >= 13
    monkeypatch.setattr(portfolio_cache, "FOLD_ABOVE", 5)
    with pg.connect() as conn:
        assert portfolio_cache.data_state(conn) == state  # folded now
        assert portfolio_cache.data_state(conn) == state
        assert conn.scalar(text("SELECT count(*) FROM data_changes")) == 1
    with pg.begin() as conn:
        conn.execute(update(Invoice).values(open_amount=Decimal(1)))
    with pg.connect() as conn:
        assert portfolio_cache.data_state(conn) != state
