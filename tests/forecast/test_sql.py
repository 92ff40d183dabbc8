"""The forecast against a real database (SQLite and PostgreSQL): the data as it was on the
day (invoices issued by then, payments dated by then), the cache and when it is recomputed,
and the backtest on a generated history with known payment behaviour."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import Engine, func, insert, select
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import make_engine, transaction
from cobro.dunning.store import open_dispute
from cobro.forecast import sql
from cobro.forecast.backtest import DUE_DATES, MODEL, OVERDUE_NEXT
from cobro.forecast.run import collection_forecast, run_backtest
from cobro.models import (
    Customer,
    ForecastModel,
    ForecastProfile,
    Invoice,
    Payment,
    PaymentAllocation,
    allocation_values,
)
from tests.helpers.payment_history import END, generate

T = date(2026, 6, 1)


def _customer(engine: Engine, account: str) -> int:
    with transaction(engine) as s:
        c = Customer(account=account, name=account, country="FR", language="fr", timezone="UTC")
        s.add(c)
        s.flush()
        return c.id


def _invoice(engine: Engine, cid: int, number: str, issued: date, due: date, amount: str) -> int:
    with transaction(engine) as s:
        inv = Invoice(
            number=number,
            customer_id=cid,
            issue_date=issued,
            due_date=due,
            currency="EUR",
            amount=D(amount),
            open_amount=D(amount),
        )
        s.add(inv)
        s.flush()
        return inv.id


def _pay(engine: Engine, cid: int, iid: int, on: date, amount: str) -> None:
    with engine.begin() as conn:
        inv = conn.execute(select(Invoice).where(Invoice.id == iid)).one()
        pid = conn.execute(
            insert(Payment)
            .values(
                reference=f"P{iid}-{on}",
                customer_id=cid,
                date=on,
                currency="EUR",
                amount=D(amount),
                unallocated_amount=D(0),
            )
            .returning(Payment.id)
        ).scalar_one()
        conn.execute(
            insert(PaymentAllocation).values(
                allocation_values(
                    pid,
                    on,
                    D(amount),
                    invoice_id=iid,
                    customer_id=cid,
                    currency="EUR",
                    issue_date=inv.issue_date,
                    due_date=inv.due_date,
                )
            )
        )
        conn.execute(
            Invoice.__table__.update()
            .where(Invoice.id == iid)
            .values(open_amount=Invoice.open_amount - D(amount))
        )


def _expected(f) -> D:  # type: ignore[no-untyped-def]
    return (
        sum(f.by_currency.get("EUR", []), D(0))
        + f.later.get("EUR", D(0))
        + f.not_expected.get("EUR", D(0))
    )


def test_the_data_as_it_was_on_the_day(engine: Engine) -> None:
    a = _customer(engine, "A")
    # history: paid 20 days late, within the 12 months before T
    for k in range(4):
        due = T - timedelta(days=100 + 7 * k)
        iid = _invoice(engine, a, f"H{k}", due - timedelta(days=30), due, "10.00")
        _pay(engine, a, iid, due + timedelta(days=20), "10.00")
    open_ = _invoice(engine, a, "O1", T - timedelta(days=20), T + timedelta(days=10), "300.00")
    paid_later = _invoice(engine, a, "O2", T - timedelta(days=40), T - timedelta(days=10), "50.00")
    _pay(engine, a, paid_later, T + timedelta(days=3), "50.00")  # after T: open at T
    _invoice(
        engine, a, "N1", T + timedelta(days=1), T + timedelta(days=31), "999.00"
    )  # issued after
    f = collection_forecast(engine, T)
    assert abs(_expected(f) - D("350.00")) <= D("0.05")
    with engine.connect() as conn:
        sums = sql.lateness_sums(conn, T)
        assert sums[a].n == 4 and sums[a].mean == 20
        assert sql.cash_in(conn, T, 56) == {"EUR": {T + timedelta(days=3): D("50.0000")}}
    # O1 (due in 10 days, a customer 20 days late): expected around week 4, not at its due date
    weeks = f.by_currency["EUR"]
    assert weeks[0] < D("50") and max(range(8), key=lambda w: weeks[w]) >= 3
    del open_


def test_the_cache_follows_the_data(engine: Engine) -> None:
    a = _customer(engine, "A")
    iid = _invoice(engine, a, "O1", T - timedelta(days=60), T - timedelta(days=30), "100.00")
    first = collection_forecast(engine, T)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(ForecastModel)) == 1
    assert collection_forecast(engine, T) == first  # read from the cache
    with transaction(engine) as s:  # a collector's dispute: a timeline event
        open_dispute(s, s.get(Invoice, iid), "wrong price", "maria")
    disputed = collection_forecast(engine, T)
    assert disputed.disputed == {"EUR": D("100.00")} and not disputed.by_currency
    b = _customer(engine, "B")
    _invoice(engine, b, "O2", T - timedelta(days=10), T + timedelta(days=20), "70.00")
    assert "EUR" in collection_forecast(engine, T).by_currency  # a new invoice
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(ForecastProfile)) == 0  # no history


def test_backtest_of_a_known_history_beats_both_baselines(
    use_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich's table width outside a terminal
    engine = make_engine(use_database)
    generate(engine)
    engine.dispose()
    result = CliRunner().invoke(app, ["forecast", "backtest", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["weeks"] == 8 and len(data["origins"]) == 12
    assert data["origins"][-1] == (END - timedelta(days=56)).isoformat()
    assert set(data["currencies"]) == {"EUR", "USD"}
    for currency, figures in data["currencies"].items():
        model = figures[MODEL]["mape"]
        assert model < figures[DUE_DATES]["mape"], (currency, figures)
        assert model < figures[OVERDUE_NEXT]["mape"], (currency, figures)
        assert len(figures[MODEL]["mape_by_week"]) == 8
        assert abs(figures[MODEL]["bias"]) < 25, (currency, figures[MODEL])
    table = CliRunner().invoke(app, ["forecast", "backtest", "--weeks", "4"], terminal_width=200)
    assert table.exit_code == 0, table.output
    assert "EUR: error per horizon week" in table.output and "overdue next week" in table.output


def test_backtest_without_payments_is_one_line(use_database: str) -> None:
    result = CliRunner().invoke(app, ["forecast", "backtest"])
    assert result.exit_code == 1
    assert "no payment recorded" in result.output and "Traceback" not in result.output
    bad = CliRunner().invoke(app, ["forecast", "backtest", "--weeks", "0"])
    assert bad.exit_code == 1 and "--weeks" in bad.output


def test_run_backtest_scores_every_origin(engine: Engine) -> None:
    generate(engine, customers=12)
    result = run_backtest(engine, weeks=2, today=END, origins=3)
    with engine.connect() as conn:
        last = sql.last_payment_date(conn)
    assert last is not None
    assert result.origins == [last - timedelta(days=14 + 7 * k) for k in (2, 1, 0)]
    assert result.errors["EUR"][MODEL].mape_all is not None
