"""Payment allocation, pure: no database, no clock.

A payment pays, in this order: the invoice it names (if any, and if still open), then the
customer's other open invoices of the same currency, oldest first (due date, then issue
date, then number), skipping disputed ones. What is left is unallocated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class OpenInvoice:
    id: int
    number: str
    due_date: date
    issue_date: date
    currency: str
    open_amount: Decimal
    disputed: bool = False


@dataclass(frozen=True, slots=True)
class Allocation:
    invoice: OpenInvoice
    amount: Decimal


@dataclass(frozen=True, slots=True)
class AllocationResult:
    allocations: tuple[Allocation, ...]
    unallocated: Decimal


def age_key(invoice: OpenInvoice) -> tuple[date, date, str]:
    return (invoice.due_date, invoice.issue_date, invoice.number)


def allocate(
    amount: Decimal,
    currency: str,
    open_invoices: list[OpenInvoice],
    invoice_number: str | None = None,
) -> AllocationResult:
    """Split `amount` over `open_invoices`; never allocates more than an invoice's open amount.

    The named invoice is paid first even when disputed (the customer chose it); the others
    only if not disputed. Invoices in another currency and those with nothing open are
    ignored.
    """
    if amount <= 0:
        return AllocationResult((), amount)
    remaining = amount
    allocations: list[Allocation] = []
    candidates = [
        inv for inv in open_invoices if inv.currency == currency and inv.open_amount > ZERO
    ]
    named = [inv for inv in candidates if inv.number == invoice_number] if invoice_number else []
    others = sorted(
        (inv for inv in candidates if not inv.disputed and inv.number != invoice_number),
        key=age_key,
    )
    for inv in [*named, *others]:
        if remaining <= ZERO:
            break
        paid = min(remaining, inv.open_amount)
        allocations.append(Allocation(inv, paid))
        remaining -= paid
    return AllocationResult(tuple(allocations), remaining)
