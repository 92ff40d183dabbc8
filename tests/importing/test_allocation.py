"""Payment allocation, pure: no database."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from cobro.importing.allocation import OpenInvoice, allocate


def inv(
    number: str,
    due: str,
    open_amount: str,
    *,
    issued: str = "2026-01-01",
    currency: str = "EUR",
    disputed: bool = False,
    id_: int | None = None,
) -> OpenInvoice:
    return OpenInvoice(
        id=id_ if id_ is not None else int(number.strip("I")),
        number=number,
        due_date=date.fromisoformat(due),
        issue_date=date.fromisoformat(issued),
        currency=currency,
        open_amount=D(open_amount),
        disputed=disputed,
    )


def paid(result) -> list[tuple[str, D]]:  # type: ignore[no-untyped-def]
    return [(a.invoice.number, a.amount) for a in result.allocations]


def test_oldest_due_date_first() -> None:
    invoices = [inv("I3", "2026-03-01", "100"), inv("I1", "2026-01-31", "50")]
    result = allocate(D("120"), "EUR", invoices)
    assert paid(result) == [("I1", D("50")), ("I3", D("70"))]
    assert result.unallocated == 0


def test_ties_broken_by_issue_date_then_number() -> None:
    invoices = [
        inv("I9", "2026-02-01", "10", issued="2026-01-01"),
        inv("I2", "2026-02-01", "10", issued="2026-01-05"),
        inv("I5", "2026-02-01", "10", issued="2026-01-01"),
    ]
    assert [n for n, _ in paid(allocate(D("30"), "EUR", invoices))] == ["I5", "I9", "I2"]


def test_partial_payment_leaves_invoice_open() -> None:
    result = allocate(D("30.25"), "EUR", [inv("I1", "2026-01-31", "100")])
    assert paid(result) == [("I1", D("30.25"))]
    assert result.unallocated == 0


def test_overpayment_is_unallocated() -> None:
    result = allocate(D("150"), "EUR", [inv("I1", "2026-01-31", "100")])
    assert paid(result) == [("I1", D("100"))]
    assert result.unallocated == D("50")


def test_no_open_invoice_everything_unallocated() -> None:
    result = allocate(D("10"), "EUR", [])
    assert result.allocations == ()
    assert result.unallocated == D("10")


def test_named_invoice_first_then_oldest() -> None:
    invoices = [inv("I1", "2026-01-31", "100"), inv("I2", "2026-02-28", "40")]
    result = allocate(D("60"), "EUR", invoices, "I2")
    assert paid(result) == [("I2", D("40")), ("I1", D("20"))]


def test_skips_disputed_other_currencies_and_closed() -> None:
    invoices = [
        inv("I1", "2026-01-01", "100", disputed=True),
        inv("I2", "2026-01-02", "100", currency="USD"),
        inv("I3", "2026-01-03", "0"),
        inv("I4", "2026-01-04", "100"),
    ]
    assert paid(allocate(D("50"), "EUR", invoices)) == [("I4", D("50"))]


def test_named_disputed_invoice_is_paid() -> None:
    invoices = [inv("I1", "2026-01-01", "100", disputed=True), inv("I2", "2026-02-01", "10")]
    assert paid(allocate(D("105"), "EUR", invoices, "I1")) == [
        ("I1", D("100")),
        ("I2", D("5")),
    ]


def test_named_invoice_in_other_currency_is_not_paid() -> None:
    invoices = [inv("I1", "2026-01-01", "100", currency="USD"), inv("I2", "2026-02-01", "10")]
    result = allocate(D("20"), "EUR", invoices, "I1")
    assert paid(result) == [("I2", D("10"))]
    assert result.unallocated == D("10")


def test_input_is_not_modified() -> None:
    invoices = [inv("I1", "2026-01-01", "100")]
    allocate(D("100"), "EUR", invoices)
    assert invoices[0].open_amount == D("100")


amounts = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)


@given(
    payment=amounts,
    opens=st.lists(st.tuples(amounts, st.booleans(), st.integers(0, 60)), max_size=8),
)
def test_conservation_and_bounds(payment: D, opens: list[tuple[D, bool, int]]) -> None:
    invoices = [
        inv(f"I{i}", f"2026-01-{day % 28 + 1:02d}", str(a), disputed=d)
        for i, (a, d, day) in enumerate(opens)
    ]
    result = allocate(payment, "EUR", invoices)
    total = sum((a.amount for a in result.allocations), D(0))
    assert total + result.unallocated == payment
    assert result.unallocated >= 0
    for a in result.allocations:
        assert 0 < a.amount <= a.invoice.open_amount
        assert not a.invoice.disputed
    payable = sum((i.open_amount for i in invoices if not i.disputed), D(0))
    assert total == min(payment, payable)
