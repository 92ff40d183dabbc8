"""Payment-overdue declarations to the credit insurer, pure: which one is due, its idempotent
client reference, and the connector's request built from what is stored.

Three categories (Allianz Trade's Payment Overdues API, `CONTRACT.md`):

* **OVD** (overdue): an insured invoice still unpaid is declared before the policy's
  declare-by date (`rules/insurance.yaml`), by the dunning policy's `declare` step
  (`at: deadline - 5d`); filed automatically, or once a collector approves it when the
  policy says `declarations: approval`.
* **EXP** (extension): a promise to pay (or a payment plan) moves an insured invoice's
  payment beyond its due date: within the maximum extension period (`may_extend_until`) an
  EXP is declared with the new date; beyond it, no EXP (the insurer would refuse it) and a
  warning on the timeline (an OVD will be due by the declare-by date).
* **RES** (rescheduling): a repayment plan agreed with the customer (`cobro insurer
  reschedule`), its installments adding up to the invoice's open amount.

One declaration per invoice and category, named by its client reference
`cobro-<ovd|exp|res>-<invoice number>` (invoice numbers are unique): the same reference is one
declaration at the insurer however often it is sent, so a retried or killed attempt files
it once. A reference longer than the API's 64 characters ends with a digest instead.

Lifecycle (`InsurerDeclaration.status`): `awaiting_approval` -> `queued` -> `filed` (the
insurer's job id) -> `registered` (the insurer's answer) or `rejected` (refused, with the
reason); `cancelled` when the invoice was paid before anything was sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from cobro.insurers.base import (
    Declaration,
    DeclaredInvoice,
    ExtensionRequest,
    Installment,
    OverdueReport,
    ReschedulingRequest,
)

CATEGORIES = ("OVD", "EXP", "RES")
PENDING = ("queued", "filed")  # the connector still has work to do
OPEN = ("awaiting_approval", *PENDING)
DONE = ("registered", "rejected", "cancelled")
MAX_REFERENCE = 64


def client_reference(category: str, invoice_number: str) -> str:
    """`cobro-ovd-F2026-001`: deterministic from the invoice and the category."""
    if category not in CATEGORIES:
        raise ValueError(f"declaration category {category!r}: one of {', '.join(CATEGORIES)}")
    reference = f"cobro-{category.lower()}-{invoice_number}"
    if len(reference) <= MAX_REFERENCE:
        return reference
    digest = hashlib.sha256(invoice_number.encode()).hexdigest()[:24]
    return f"cobro-{category.lower()}-{invoice_number[: MAX_REFERENCE - 35]}-{digest}"


ExtensionDecision = Literal["not_moved", "extension", "beyond_mep"]


def extension_decision(due_date: date, may_extend_until: date, pay_by: date) -> ExtensionDecision:
    """What a promise (or plan) to pay by `pay_by` means for an insured invoice due on
    `due_date`: nothing (paid by its due date), an EXP (within the MEP), or a warning."""
    if pay_by <= due_date:
        return "not_moved"
    if pay_by <= may_extend_until:
        return "extension"
    return "beyond_mep"


@dataclass(frozen=True)
class StoredDeclaration:
    """What a stored declaration row holds (`cobro.insurers.declarations_sql.stored`)."""

    category: str
    client_reference: str
    policy_id: str
    company_id: str
    currency: str
    invoice_number: str
    due_date: date
    amount: Decimal
    new_due_date: date | None = None
    installments: tuple[tuple[date, Decimal], ...] = ()
    comment: str | None = None


def request(row: StoredDeclaration) -> Declaration:
    """The connector's request (`AllianzTradeConnector.declare`) for a stored declaration."""
    common: dict[str, Any] = {
        "client_reference": row.client_reference,
        "policy_id": row.policy_id,
        "company_id": row.company_id,
        "currency": row.currency,
        "invoices": (
            DeclaredInvoice(
                number=row.invoice_number,
                due_date=row.due_date,
                amount=row.amount.quantize(Decimal("0.01")),
            ),
        ),
        "comment": row.comment,
    }
    if row.category == "OVD":
        return OverdueReport(default_date=row.due_date, **common)
    if row.category == "EXP":
        assert row.new_due_date is not None
        return ExtensionRequest(new_due_date=row.new_due_date, **common)
    return ReschedulingRequest(
        installments=tuple(
            Installment(due_date=d, amount=a.quantize(Decimal("0.01"))) for d, a in row.installments
        ),
        **common,
    )


def parse_plan(text: str, total: Decimal, today: date) -> tuple[tuple[date, Decimal], ...]:
    """`2027-01-31:500,2027-02-28:500.50` -> installments (date order, adding up to `total`,
    none before `today`). A clear `ValueError` naming the bad entry otherwise."""
    parts: list[tuple[date, Decimal]] = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        day_text, sep, amount_text = entry.partition(":")
        try:
            if not sep:
                raise ValueError
            day = date.fromisoformat(day_text.strip())
            amount = Decimal(amount_text.strip())
        except (ValueError, InvalidOperation):
            raise ValueError(
                f"installment {entry!r}: write YYYY-MM-DD:AMOUNT, e.g. 2027-01-31:500"
            ) from None
        if not amount.is_finite() or amount <= 0:
            raise ValueError(f"installment {entry!r}: the amount must be positive")
        if day < today:
            raise ValueError(f"installment {entry!r}: the date is in the past")
        parts.append((day, amount))
    if not parts:
        raise ValueError("give the repayment plan: YYYY-MM-DD:AMOUNT,...")
    dates = [d for d, _ in parts]
    if dates != sorted(dates) or len(set(dates)) != len(dates):
        raise ValueError("installments must be in strictly increasing date order")
    planned = sum((a for _, a in parts), Decimal(0))
    if planned != total:
        raise ValueError(
            f"the installments add up to {planned}, the invoice's open amount is {total}"
        )
    return tuple(parts)


def installments_json(parts: Sequence[tuple[date, Decimal]]) -> dict[str, Any]:
    return {"installments": [{"due_date": d.isoformat(), "amount": str(a)} for d, a in parts]}


def installments_of(data: dict[str, Any] | None) -> tuple[tuple[date, Decimal], ...]:
    items = (data or {}).get("installments") or []
    return tuple((date.fromisoformat(i["due_date"]), Decimal(i["amount"])) for i in items)
