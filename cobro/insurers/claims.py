"""Claims to the credit insurer, pure: who may claim, the idempotent client reference, the
connector's request, and the arithmetic of indemnities and recoveries.

A claim (hand-over) asks the insurer to indemnify one insured invoice the buyer did not pay.
It may be filed only for an invoice that is insured under a policy of `rules/insurance.yaml`
and whose overdue declaration (OVD) the insurer registered (the insurer checks the OVD too).

Lifecycle (`InsurerClaim.status`): `queued` (recorded, not sent) -> `filed` (the insurer's
job) -> `acknowledged` (the insurer opened the claim: its claim id) -> `indemnified` (the
amount the insurer paid) or `refused` (with its reason). Each step is a `claim.*` event on
the customer's timeline.

Recoveries: every payment allocated to the invoice after the day of the indemnity is a
recovery. The policy says how it is passed on; Cobro's rule (a usual one, stated here): the
insurer is owed its insured percentage of each recovery, up to what it indemnified, and the
company keeps the rest (`recovery_split`). A task tells the credit manager to pass it on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from cobro.insurers.base import ClaimRequest, DeclaredInvoice

STATUSES = ("queued", "filed", "acknowledged", "indemnified", "refused")
PENDING = ("queued", "filed")  # the connector still has to send it or follow its job
AWAITING = ("acknowledged",)  # the insurer has not decided yet: asked again now and then
DONE = ("indemnified", "refused")
MAX_REFERENCE = 64
CENT = Decimal("0.01")
HUNDRED = Decimal(100)


def client_reference(invoice_number: str) -> str:
    """`cobro-clm-F2026-001`: deterministic from the invoice (one claim per invoice)."""
    reference = f"cobro-clm-{invoice_number}"
    if len(reference) <= MAX_REFERENCE:
        return reference
    digest = hashlib.sha256(invoice_number.encode()).hexdigest()[:24]
    return f"cobro-clm-{invoice_number[: MAX_REFERENCE - 35]}-{digest}"


def why_not_claimable(
    *, open_amount: Decimal, insured_policy: str | None, ovd_status: str | None
) -> str | None:
    """Why an invoice cannot be claimed (one sentence), or None when it can."""
    if open_amount <= 0:
        return "nothing is unpaid on it"
    if insured_policy is None:
        return "it is not insured under a policy of insurance.yaml"
    if ovd_status is None:
        return "its overdue (OVD) was never declared to the insurer"
    if ovd_status != "registered":
        return f"its overdue declaration (OVD) is {ovd_status.replace('_', ' ')}, not registered"
    return None


def expected_indemnity(claimed: Decimal, insured_percent: Decimal) -> Decimal:
    return (claimed * insured_percent / HUNDRED).quantize(CENT, ROUND_HALF_UP)


@dataclass(frozen=True)
class RecoverySplit:
    recovered: Decimal
    to_insurer: Decimal
    kept: Decimal


def recovery_split(
    recovered: Decimal, insured_percent: Decimal, indemnified: Decimal
) -> RecoverySplit:
    """What of `recovered` (paid by the buyer after the indemnity) goes to the insurer: its
    insured percentage, never more than it indemnified."""
    share = min(expected_indemnity(recovered, insured_percent), indemnified)
    share = max(share, Decimal(0))
    return RecoverySplit(recovered, share, recovered - share)


@dataclass(frozen=True)
class StoredClaim:
    """What a stored claim row holds (`cobro.insurers.claims_sql.stored`)."""

    client_reference: str
    policy_id: str
    company_id: str
    currency: str
    invoice_number: str
    due_date: date
    claimed_amount: Decimal
    overdue_id: str | None


def request(row: StoredClaim) -> ClaimRequest:
    """The connector's request (`AllianzTradeConnector.file_claim`) for a stored claim."""
    amount = row.claimed_amount.quantize(CENT)
    return ClaimRequest(
        client_reference=row.client_reference,
        policy_id=row.policy_id,
        company_id=row.company_id,
        currency=row.currency,
        invoice=DeclaredInvoice(number=row.invoice_number, due_date=row.due_date, amount=amount),
        claim_amount=amount,
        loss_date=row.due_date,
        overdue_id=row.overdue_id,
    )
