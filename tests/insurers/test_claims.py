"""The pure claim rules: client reference, who may claim, indemnity and recovery arithmetic,
the connector's request."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from cobro.insurers import claims

D = Decimal


def test_client_reference_is_deterministic_and_fits() -> None:
    assert claims.client_reference("F2026-001") == "cobro-clm-F2026-001"
    long = claims.client_reference("X" * 80)
    assert len(long) == 64 and long == claims.client_reference("X" * 80)
    assert long != claims.client_reference("X" * 79 + "Y")


def test_only_an_insured_invoice_whose_ovd_is_registered_is_claimable() -> None:
    ok = dict(open_amount=D(10), insured_policy="5012001", ovd_status="registered")
    assert claims.why_not_claimable(**ok) is None
    assert "not insured" in claims.why_not_claimable(**{**ok, "insured_policy": None})
    assert "never declared" in claims.why_not_claimable(**{**ok, "ovd_status": None})
    assert "awaiting approval, not registered" in claims.why_not_claimable(
        **{**ok, "ovd_status": "awaiting_approval"}
    )
    assert "nothing is unpaid" in claims.why_not_claimable(**{**ok, "open_amount": D(0)})


def test_indemnity_and_recoveries() -> None:
    assert claims.expected_indemnity(D("1000.00"), D(85)) == D("850.00")
    assert claims.expected_indemnity(D("0.05"), D(90)) == D("0.05")  # half up
    split = claims.recovery_split(D(300), D(85), D(850))
    assert (split.to_insurer, split.kept) == (D("255.00"), D("45.00"))
    # never more than the insurer paid
    capped = claims.recovery_split(D(1000), D(90), D(100))
    assert (capped.to_insurer, capped.kept) == (D(100), D(900))


def test_the_request_names_the_registered_overdue() -> None:
    row = claims.StoredClaim(
        client_reference="cobro-clm-I1",
        policy_id="5012002",
        company_id="30000001",
        currency="USD",
        invoice_number="I1",
        due_date=date(2026, 1, 31),
        claimed_amount=D("1000.0000"),
        overdue_id="O00000001",
    )
    req = claims.request(row)
    assert req.claim_amount == D("1000.00") and req.invoice.amount == D("1000.00")
    assert (req.loss_date, req.overdue_id) == (date(2026, 1, 31), "O00000001")
