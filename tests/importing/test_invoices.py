"""Invoice import on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cobro.importing import ImportFailed, import_csv
from cobro.models import Invoice
from tests.helpers.importing import CUSTOMERS, dump, events, write

INVOICES = """\
number,account,issue_date,due_date,currency,amount,open_amount,disputed
I1,C1,2026-01-01,2026-01-31,EUR,1200.00,1200.00,false
I2,C1,2026-01-15,2026-02-14,EUR,300.50,100.25,yes
I3,C2,2026-02-01,2026-03-03,USD,99.99,,
CN1,C1,2026-02-01,2026-02-01,EUR,-50.00,-50.00,0
"""


@pytest.fixture
def with_customers(engine: Engine, tmp_path: Path) -> Engine:
    import_csv("customers", write(tmp_path / "customers.csv", CUSTOMERS), engine)
    return engine


def invoices(engine: Engine) -> dict[str, Invoice]:
    with Session(engine) as session:
        return {i.number: i for i in session.scalars(select(Invoice))}


def test_import_invoices(with_customers: Engine, tmp_path: Path) -> None:
    engine = with_customers
    report = import_csv("invoices", write(tmp_path / "i.csv", INVOICES), engine)
    assert (report.created, report.updated, report.unchanged) == (4, 0, 0)
    got = invoices(engine)
    assert (got["I1"].amount, got["I1"].open_amount, got["I1"].disputed) == (
        D("1200"),
        D("1200"),
        False,
    )
    assert (got["I2"].open_amount, got["I2"].disputed, got["I2"].issue_date) == (
        D("100.25"),
        True,
        date(2026, 1, 15),
    )
    assert (got["I3"].open_amount, got["I3"].currency, got["I3"].disputed) == (
        D("99.99"),
        "USD",
        False,
    )
    assert (got["CN1"].amount, got["CN1"].open_amount) == (D("-50"), D("-50"))
    assert all(isinstance(i.amount, D) for i in got.values())
    created = events(engine, "invoice.created")
    assert len(created) == 4
    first = next(e for e in created if e.data["invoice"] == "I2")
    assert first.customer_id == got["I2"].customer_id
    assert first.data | {"source": "i.csv"} == first.data
    assert (first.data["amount"], first.data["open_amount"], first.data["disputed"]) == (
        "300.50",
        "100.25",
        True,
    )


def test_optional_columns_absent_and_any_order(with_customers: Engine, tmp_path: Path) -> None:
    path = write(
        tmp_path / "i.csv",
        "amount,currency,due_date,issue_date,account,number\n10.5,eur,2026-03-01,2026-02-01,C3,X1\n",
    )
    import_csv("invoices", path, with_customers)
    x1 = invoices(with_customers)["X1"]
    assert (x1.amount, x1.open_amount, x1.disputed, x1.currency) == (
        D("10.5"),
        D("10.5"),
        False,
        "EUR",
    )


def test_reimport_twice_changes_nothing(with_customers: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "i.csv", INVOICES)
    import_csv("invoices", path, with_customers)
    before = dump(with_customers)
    for _ in range(2):
        report = import_csv("invoices", path, with_customers)
        assert (report.created, report.updated, report.unchanged) == (0, 0, 4)
        assert dump(with_customers) == before


def test_update_is_on_the_timeline(with_customers: Engine, tmp_path: Path) -> None:
    import_csv("invoices", write(tmp_path / "i.csv", INVOICES), with_customers)
    old = invoices(with_customers)
    changed = INVOICES.replace("I1,C1,2026-01-01,2026-01-31,EUR,1200.00,1200.00,false", "")
    changed += "I1,C2,2026-01-01,2026-02-28,EUR,1200.00,700,true\n"
    report = import_csv("invoices", write(tmp_path / "i2.csv", changed), with_customers)
    assert (report.created, report.updated, report.unchanged) == (0, 1, 3)
    new = invoices(with_customers)
    assert (new["I1"].open_amount, new["I1"].disputed) == (D("700"), True)
    assert new["I1"].customer_id != old["I1"].customer_id
    assert new["I1"].updated_at > old["I1"].updated_at
    assert new["I2"].updated_at == old["I2"].updated_at
    (updated,) = events(with_customers, "invoice.updated")
    assert updated.customer_id == new["I1"].customer_id
    assert updated.data["changes"] == {
        "account": {"old": "C1", "new": "C2"},
        "due_date": {"old": "2026-01-31", "new": "2026-02-28"},
        "open_amount": {"old": "1200.00", "new": "700.00"},
        "disputed": {"old": False, "new": True},
    }


def test_every_error_reported_nothing_written(with_customers: Engine, tmp_path: Path) -> None:
    before = dump(with_customers)
    path = write(
        tmp_path / "i.csv",
        INVOICES
        + "I4,NOPE,2026-01-01,2026-01-31,EUR,10,,\n"
        + "I5,C1,2026-01-01,2025-12-31,EUR,10,,\n"
        + "I6,C1,2026-01-01,2026-01-31,EUR,10,11,\n"
        + "I7,C1,2026-01-01,2026-01-31,XYZ,10,,\n"
        + "CN2,C1,2026-01-01,2026-01-31,EUR,-10,5,\n",
    )
    with pytest.raises(ImportFailed) as failed:
        import_csv("invoices", path, with_customers)
    assert failed.value.errors == [
        f"{path}:6: account: unknown account 'NOPE'",
        f"{path}:7: due_date: due date 2025-12-31 is before the issue date 2026-01-01",
        f"{path}:8: open_amount: open amount 11 must lie between 0 and 10",
        f"{path}:9: currency: unknown currency 'XYZ': expected an ISO 4217 code like EUR",
        f"{path}:10: open_amount: open amount 5 must lie between -10 and 0",
    ]
    assert dump(with_customers) == before


def test_error_in_last_row_writes_nothing(with_customers: Engine, tmp_path: Path) -> None:
    before = dump(with_customers)
    path = write(tmp_path / "i.csv", INVOICES + "I9,C1,2026-01-01,2026-01-31,EUR,ten,,\n")
    with pytest.raises(ImportFailed) as failed:
        import_csv("invoices", path, with_customers)
    assert len(failed.value.errors) == 1
    assert failed.value.errors[0].startswith(f"{path}:6: amount: invalid amount 'ten'")
    assert dump(with_customers) == before
