"""Payment import on SQLite and PostgreSQL: allocation, immutability, timeline."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cobro.importing import ImportFailed, import_csv
from cobro.models import Invoice, Payment, PaymentAllocation
from tests.helpers.importing import CUSTOMERS, dump, events, write

INVOICES = """\
number,account,issue_date,due_date,currency,amount,open_amount,disputed
I3,C1,2026-02-01,2026-03-03,EUR,300.00,,
I1,C1,2026-01-01,2026-01-31,EUR,100.00,,
I2,C1,2026-01-05,2026-01-31,EUR,200.00,,
ID,C1,2025-12-01,2025-12-31,EUR,500.00,,true
IU,C1,2025-12-01,2025-12-31,USD,400.00,,
J1,C2,2026-01-01,2026-01-31,USD,50.00,,
"""
HEADER = "reference,account,date,currency,amount,invoice\n"


@pytest.fixture
def ready(engine: Engine, tmp_path: Path) -> Engine:
    import_csv("customers", write(tmp_path / "customers.csv", CUSTOMERS), engine)
    import_csv("invoices", write(tmp_path / "invoices.csv", INVOICES), engine)
    return engine


def state(engine: Engine) -> tuple[dict[str, D], dict[str, Payment], list[tuple[str, str, D]]]:
    with Session(engine) as session:
        opens = {i.number: i.open_amount for i in session.scalars(select(Invoice))}
        pays = {p.reference: p for p in session.scalars(select(Payment))}
        allocs = session.execute(
            select(Payment.reference, Invoice.number, PaymentAllocation.amount)
            .join(Payment, Payment.id == PaymentAllocation.payment_id)
            .join(Invoice, Invoice.id == PaymentAllocation.invoice_id)
            .order_by(PaymentAllocation.id)
        ).all()
        return opens, pays, [tuple(a) for a in allocs]


def test_oldest_first_partial_and_overpayment_in_file_order(ready: Engine, tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.csv",
        HEADER
        + "P1,C1,2026-02-10,EUR,150.00,\n"  # I1 (due 01-31, issued 01-01) then I2
        + "P2,C1,2026-02-11,EUR,100,\n"  # rest of I2 (150 left) partially
        + "P3,C1,2026-02-12,EUR,500,\n"  # I2 50, I3 300, 150 unallocated
        + "P4,C2,2026-02-12,USD,20,\n",
    )
    report = import_csv("payments", path, ready)
    assert (report.created, report.updated, report.unchanged) == (4, 0, 0)
    assert report.extra == {"unallocated_payments": 1}
    opens, pays, allocs = state(ready)
    assert allocs == [
        ("P1", "I1", D("100")),
        ("P1", "I2", D("50")),
        ("P2", "I2", D("100")),
        ("P3", "I2", D("50")),
        ("P3", "I3", D("300")),
        ("P4", "J1", D("20")),
    ]
    assert opens == {
        "I1": D("0"),
        "I2": D("0"),
        "I3": D("0"),
        "ID": D("500"),  # disputed: never chosen oldest-first
        "IU": D("400"),  # another currency
        "J1": D("30"),
    }
    assert [pays[r].unallocated_amount for r in ("P1", "P2", "P3", "P4")] == [0, 0, 150, 0]
    received = events(ready, "payment.received")
    assert [e.data["payment"] for e in received] == ["P1", "P2", "P3", "P4"]
    assert received[2].data["allocations"] == [
        {"invoice": "I2", "amount": "50.00"},
        {"invoice": "I3", "amount": "300.00"},
    ]
    assert received[2].data["unallocated"] == "150.00"
    assert received[2].summary == (
        "Payment P3 of 500.00 EUR received: allocated to I2 (50.00), I3 (300.00);"
        " 150.00 EUR unallocated"
    )


def test_named_invoice_first_then_oldest(ready: Engine, tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.csv",
        HEADER + "P1,C1,2026-02-10,EUR,350,I3\nP2,C1,2026-02-10,EUR,600,ID\n",
    )
    import_csv("payments", path, ready)
    opens, pays, allocs = state(ready)
    assert allocs == [
        ("P1", "I3", D("300")),
        ("P1", "I1", D("50")),
        ("P2", "ID", D("500")),  # named: paid although disputed
        ("P2", "I1", D("50")),
        ("P2", "I2", D("50")),
    ]
    assert (opens["I1"], opens["I2"], opens["I3"], opens["ID"]) == (0, D("150"), 0, 0)
    assert pays["P1"].invoice_number == "I3"


def test_reimport_is_a_no_op_and_invoices_reimport_keeps_allocations(
    ready: Engine, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "p.csv", HEADER + "P1,C1,2026-02-10,EUR,150.00,\nP2,C2,2026-02-10,USD,5,\n"
    )
    import_csv("payments", path, ready)
    before = dump(ready)
    for _ in range(2):
        report = import_csv("payments", path, ready)
        assert (report.created, report.updated, report.unchanged) == (0, 0, 2)
        assert dump(ready) == before
    # the invoices file states open amounts before Cobro's payments: still a no-op
    again = import_csv("invoices", tmp_path / "invoices.csv", ready)
    assert (again.updated, again.unchanged) == (0, 6)
    assert dump(ready) == before
    # a new ERP open amount is taken as the base, the allocations still deducted
    changed = INVOICES.replace(
        "I1,C1,2026-01-01,2026-01-31,EUR,100.00,,", "I1,C1,2026-01-01,2026-01-31,EUR,100.00,80,"
    )
    changed = changed.replace(
        "I2,C1,2026-01-05,2026-01-31,EUR,200.00,,", "I2,C1,2026-01-05,2026-01-31,EUR,200.00,180,"
    )
    import_csv("invoices", write(tmp_path / "invoices2.csv", changed), ready)
    opens, _, _ = state(ready)
    assert (opens["I1"], opens["I2"]) == (D("0"), D("130"))  # max(0, 80-100), 180-50


def test_payments_are_immutable(ready: Engine, tmp_path: Path) -> None:
    import_csv("payments", write(tmp_path / "p.csv", HEADER + "P1,C1,2026-02-10,EUR,150,\n"), ready)
    before = dump(ready)
    path = write(
        tmp_path / "p2.csv",
        HEADER + "P2,C1,2026-02-10,EUR,10,\nP1,C1,2026-02-10,EUR,160,I2\n",
    )
    with pytest.raises(ImportFailed) as failed:
        import_csv("payments", path, ready)
    assert failed.value.errors == [
        f"{path}:3: reference: payment P1 was already imported with different data"
        " (amount 150.00 -> 160.00, invoice None -> I2); payments cannot be changed"
    ]
    assert dump(ready) == before


def test_invoice_and_account_errors(ready: Engine, tmp_path: Path) -> None:
    before = dump(ready)
    path = write(
        tmp_path / "p.csv",
        HEADER
        + "P1,C1,2026-02-10,EUR,10,NOPE\n"
        + "P2,C1,2026-02-10,USD,10,J1\n"
        + "P3,C1,2026-02-10,EUR,10,IU\n"
        + "P4,C9,2026-02-10,EUR,10,\n"
        + "P5,C1,2026-02-10,EUR,-10,\n"
        + "P6,C1,2026-02-10,EUR,10,\n",
    )
    with pytest.raises(ImportFailed) as failed:
        import_csv("payments", path, ready)
    assert failed.value.errors == [
        f"{path}:2: invoice: unknown invoice 'NOPE'",
        f"{path}:3: invoice: invoice J1 belongs to account C2",
        f"{path}:4: invoice: invoice IU is in USD, not EUR",
        f"{path}:5: account: unknown account 'C9'",
        f"{path}:6: amount: payment amount -10 must be positive",
    ]
    assert dump(ready) == before
