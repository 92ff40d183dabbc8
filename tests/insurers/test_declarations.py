"""Declarations, pure: deterministic client references, when a promise is an extension, the
repayment plan's checks, and the connector's request built from a stored row."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from cobro.insurers.base import ExtensionRequest, OverdueReport, ReschedulingRequest
from cobro.insurers.declarations import (
    StoredDeclaration,
    client_reference,
    extension_decision,
    parse_plan,
    request,
)

D = Decimal


def test_client_reference_is_deterministic_from_invoice_and_category() -> None:
    assert client_reference("OVD", "F2026-001") == "cobro-ovd-F2026-001"
    assert client_reference("EXP", "F2026-001") == "cobro-exp-F2026-001"
    long = "X" * 64
    ref = client_reference("RES", long)
    assert len(ref) <= 64 and ref == client_reference("RES", long)
    assert ref != client_reference("RES", long[:-1] + "Y")
    with pytest.raises(ValueError, match="one of OVD, EXP, RES"):
        client_reference("CLM", "F1")


def test_extension_decision_against_the_mep() -> None:
    due, mep = date(2026, 1, 31), date(2026, 4, 1)
    assert extension_decision(due, mep, date(2026, 1, 31)) == "not_moved"
    assert extension_decision(due, mep, date(2026, 2, 1)) == "extension"
    assert extension_decision(due, mep, date(2026, 4, 1)) == "extension"  # the MEP's last day
    assert extension_decision(due, mep, date(2026, 4, 2)) == "beyond_mep"


def test_repayment_plan() -> None:
    today = date(2026, 3, 1)
    assert parse_plan("2026-03-31:500, 2026-04-30:500.50", D("1000.50"), today) == (
        (date(2026, 3, 31), D("500")),
        (date(2026, 4, 30), D("500.50")),
    )
    for text, message in [
        ("2026-03-31:500", "add up to 500, the invoice's open amount is 1000.50"),
        ("2026-04-30:500,2026-03-31:500.50", "increasing date order"),
        ("2026-02-01:1000.50", "in the past"),
        ("31/03/2026:1000.50", "write YYYY-MM-DD:AMOUNT"),
        ("2026-03-31:-5", "positive"),
        ("", "give the repayment plan"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_plan(text, D("1000.50"), today)


def _row(category: str, **kw) -> StoredDeclaration:  # type: ignore[no-untyped-def]
    return StoredDeclaration(
        category=category,
        client_reference=client_reference(category, "F1"),
        policy_id="5012001",
        company_id="30000007",
        currency="EUR",
        invoice_number="F1",
        due_date=date(2026, 1, 31),
        amount=D("1500.0000"),
        **kw,
    )


def test_requests_from_stored_rows() -> None:
    ovd = request(_row("OVD"))
    assert isinstance(ovd, OverdueReport) and ovd.default_date == date(2026, 1, 31)
    assert ovd.amount == D("1500.00") and ovd.client_reference == "cobro-ovd-F1"
    exp = request(_row("EXP", new_due_date=date(2026, 3, 1)))
    assert isinstance(exp, ExtensionRequest) and exp.new_due_date == date(2026, 3, 1)
    res = request(
        _row("RES", installments=((date(2026, 3, 1), D("1000")), (date(2026, 4, 1), D("500"))))
    )
    assert isinstance(res, ReschedulingRequest) and len(res.installments) == 2
