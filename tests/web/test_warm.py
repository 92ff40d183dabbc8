"""The dashboard keeps today's portfolio figures computed (`cobro.web.warm`): after one pass
the KPIs, the exposures and the limit review of today are kept; after a data change the
next pass computes them again, under the new state. SQLite: nothing is kept."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import Engine, update

from cobro import portfolio_cache
from cobro.db import transaction
from cobro.models import Customer, Invoice
from cobro.web.warm import keep_figures_warm


def seed(engine: Engine) -> None:
    today = date.today()
    with transaction(engine) as s:
        c = Customer(account="W1", name="Warm SA", country="ES", language="es",
                     timezone="Europe/Madrid")  # fmt: skip
        s.add(c)
        s.flush()
        s.add(Invoice(number="W-1", customer_id=c.id, issue_date=today - timedelta(days=40),
                      due_date=today - timedelta(days=10), currency="EUR",
                      amount=Decimal(500), open_amount=Decimal(500)))  # fmt: skip


async def one_pass(engine: Engine) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(keep_figures_warm(engine, stop, every_s=60))
    for _ in range(200):  # until the pass is done and the warmer waits
        await asyncio.sleep(0.05)
        if len(portfolio_cache.kept()) >= 3:
            break
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_todays_figures_are_kept_and_follow_a_change(
    engine: Engine, use_database: str
) -> None:
    seed(engine)
    portfolio_cache.clear()
    await one_pass(engine)
    names = sorted(str(key[0]) for key in portfolio_cache.kept())
    if engine.dialect.name != "postgresql":
        assert names == []
        return
    assert names == ["exposures", "kpis", "limit_review"]
    assert all(date.today() in key for key in portfolio_cache.kept())
    with engine.begin() as conn:
        conn.execute(update(Invoice).values(open_amount=Decimal(100)))
    await one_pass(engine)
    assert len(portfolio_cache.kept()) == 6, "computed again under the new state"
    portfolio_cache.clear()
