"""Allocations carry copies of their payment's date and of their invoice's customer,
currency and dates (the KPIs read them from one index): the import writes them, a
re-imported invoice brings them in step, and migration 0005 fills them for existing rows.
On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, insert, select
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table

from cobro.db import make_engine, upgrade
from cobro.importing import import_csv
from cobro.kpis import compute_kpis
from cobro.models import Customer, Invoice, Payment, PaymentAllocation
from tests.conftest import PG_ADMIN_DSN
from tests.helpers.importing import CUSTOMERS, write

INVOICES = """\
number,account,issue_date,due_date,currency,amount,open_amount,disputed
I1,C1,2026-01-01,2026-01-31,EUR,100.00,,
I2,C1,2026-01-05,2026-02-04,EUR,200.00,,
J1,C2,2026-01-01,2026-01-31,USD,50.00,,
"""
PAYMENTS = """\
reference,account,date,currency,amount,invoice
P1,C1,2026-02-10,EUR,250.00,
P2,C2,2026-03-01,USD,50.00,J1
"""


def _by_allocation(engine: Engine, *columns: Any) -> dict[tuple[str, str], tuple[object, ...]]:
    """(payment reference, invoice number) -> `columns` and the amount, per allocation."""
    a = PaymentAllocation
    with engine.connect() as conn:
        rows = conn.execute(
            select(Payment.reference, Invoice.number, *columns, a.amount)
            .join(Payment, Payment.id == a.payment_id)
            .join(Invoice, Invoice.id == a.invoice_id)
        )
        return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def copies(engine: Engine) -> dict[tuple[str, str], tuple[object, ...]]:
    a = PaymentAllocation
    return _by_allocation(
        engine, a.payment_date, a.customer_id, a.currency, a.issue_date, a.due_date
    )


def truth(engine: Engine) -> dict[tuple[str, str], tuple[object, ...]]:
    """The same columns read from the payments and invoices themselves."""
    i = Invoice
    return _by_allocation(engine, Payment.date, i.customer_id, i.currency, i.issue_date, i.due_date)


def account_id(engine: Engine, account: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(Customer.id).where(Customer.account == account)).scalar_one()


def test_import_writes_the_copies_and_reimport_keeps_them_in_step(
    engine: Engine, tmp_path: Path
) -> None:
    import_csv("customers", write(tmp_path / "customers.csv", CUSTOMERS), engine)
    import_csv("invoices", write(tmp_path / "invoices.csv", INVOICES), engine)
    import_csv("payments", write(tmp_path / "payments.csv", PAYMENTS), engine)
    got = copies(engine)
    c1, c2, c3 = (account_id(engine, a) for a in ("C1", "C2", "C3"))
    assert got == {
        ("P1", "I1"): (date(2026, 2, 10), c1, "EUR", date(2026, 1, 1), date(2026, 1, 31), D(100)),
        ("P1", "I2"): (date(2026, 2, 10), c1, "EUR", date(2026, 1, 5), date(2026, 2, 4), D(150)),
        ("P2", "J1"): (date(2026, 3, 1), c2, "USD", date(2026, 1, 1), date(2026, 1, 31), D(50)),
    }
    # as of 2026-02-05, before both payments: I1 6 days late, I2 1 day late
    before = compute_kpis(engine, date(2026, 2, 5)).currencies["EUR"]
    assert before.receivables == D(300) and before.open_invoices == 2
    assert before.aging["1-30"] == D(300)

    # the ERP moves I2's dates and I1 to another customer: the copies follow
    moved = INVOICES.replace("I2,C1,2026-01-05,2026-02-04", "I2,C1,2025-10-01,2025-10-31").replace(
        "I1,C1,", "I1,C3,"
    )
    report = import_csv("invoices", write(tmp_path / "invoices2.csv", moved), engine)
    assert report.updated == 2
    assert copies(engine) == truth(engine)
    assert copies(engine)[("P1", "I1")][1] == c3
    assert copies(engine)[("P1", "I2")][3:5] == (date(2025, 10, 1), date(2025, 10, 31))
    after = compute_kpis(engine, date(2026, 2, 5))
    eur = after.currencies["EUR"]
    # I2 is now 97 days late at 2026-02-05: its 200 (50 open + 150 paid later) moved bucket
    assert eur.aging["1-30"] == D(100) and eur.aging["91-120"] == D(200)
    assert {d.account for d in eur.top_debtors} == {"C1", "C3"}
    # re-importing the same file again changes nothing
    again = import_csv("invoices", write(tmp_path / "invoices3.csv", moved), engine)
    assert (again.updated, again.unchanged) == (0, 3)


# ------------------------------------------------------------------ migration 0005
@pytest.fixture(params=["sqlite", "postgres"])
def at_0004(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database migrated to 0004 only."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        upgrade(url, "0004")
        yield url
        return
    name = f"cobro_test_mig_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url, "0004")
        yield url
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


customers_at_0004 = sa_table(
    "customers",
    *(
        sa_column(name)
        for name in (
            "id", "account", "name", "country", "language", "timezone", "opt_out_email",
            "opt_out_sms", "created_at", "updated_at",
        )
    ),
)  # fmt: skip


def test_migration_0005_fills_the_copies_of_existing_allocations(at_0004: str) -> None:
    engine = make_engine(at_0004)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            for cid, account in ((1, "A"), (2, "B")):
                # the customers table as it was at 0004 (the model has columns added later,
                # with defaults that a Core insert of the model's table would send)
                conn.execute(
                    insert(customers_at_0004).values(
                        id=cid, account=account, name=account, country="FR", language="fr",
                        timezone="Europe/Paris", opt_out_email=False, opt_out_sms=False,
                        created_at=now, updated_at=now,
                    )
                )  # fmt: skip
            for iid, cid, cur, issued, due in (
                (1, 1, "EUR", date(2026, 1, 1), date(2026, 1, 31)),
                (2, 2, "USD", date(2026, 2, 1), date(2026, 3, 3)),
            ):
                conn.execute(
                    insert(Invoice.__table__).values(
                        id=iid, number=f"I{iid}", customer_id=cid, issue_date=issued,
                        due_date=due, currency=cur, amount=D(100), open_amount=D(0),
                        disputed=False, created_at=now, updated_at=now,
                    )
                )  # fmt: skip
                conn.execute(
                    insert(Payment.__table__).values(
                        id=iid, reference=f"P{iid}", customer_id=cid,
                        date=date(2026, 4, iid), currency=cur, amount=D(100),
                        unallocated_amount=D(0), created_at=now, updated_at=now,
                    )
                )  # fmt: skip
                t = PaymentAllocation.__table__
                conn.execute(
                    insert(t).values(
                        {t.c.payment_id: iid, t.c.invoice_id: iid, t.c.amount: D(100),
                         t.c.created_at: now}
                    )
                )  # fmt: skip
        engine.dispose()
        upgrade(at_0004)
        assert (
            copies(engine)
            == truth(engine)
            == {
                ("P1", "I1"): (
                    date(2026, 4, 1),
                    1,
                    "EUR",
                    date(2026, 1, 1),
                    date(2026, 1, 31),
                    D(100),
                ),
                ("P2", "I2"): (
                    date(2026, 4, 2),
                    2,
                    "USD",
                    date(2026, 2, 1),
                    date(2026, 3, 3),
                    D(100),
                ),
            }
        )
        # the KPIs see the payments dated after as_of through the copies
        k = compute_kpis(engine, date(2026, 3, 31))
        assert k.currencies["EUR"].receivables == D(100)
        assert k.currencies["USD"].open_invoices == 1
    finally:
        engine.dispose()


def test_orm_writes_keep_the_copies_right(engine: Engine, tmp_path: Path) -> None:
    """Code writing through the ORM (scripts, tests) need not know about the copies."""
    from cobro.db import transaction

    import_csv("customers", write(tmp_path / "customers.csv", CUSTOMERS), engine)
    import_csv("invoices", write(tmp_path / "invoices.csv", INVOICES), engine)
    with transaction(engine) as s:
        i1 = s.scalars(select(Invoice).where(Invoice.number == "I1")).one()
        pay = Payment(
            reference="P9", customer_id=i1.customer_id, date=date(2026, 2, 1), currency="EUR",
            amount=D(30), unallocated_amount=D(0),
        )  # fmt: skip
        s.add(pay)
        s.flush()
        s.add(PaymentAllocation(payment_id=pay.id, invoice_id=i1.id, amount=D(30)))
    assert copies(engine) == truth(engine)
    assert copies(engine)[("P9", "I1")][0] == date(2026, 2, 1)
    with transaction(engine) as s:
        i1 = s.scalars(select(Invoice).where(Invoice.number == "I1")).one()
        i1.due_date = date(2026, 3, 15)
        i1.customer_id = account_id(engine, "C3")
    assert copies(engine) == truth(engine)
    assert copies(engine)[("P9", "I1")][4] == date(2026, 3, 15)
