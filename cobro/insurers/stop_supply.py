"""The stop-supply list for the sales and order desk, pure: which customers must not be
delivered any more, and why.

A customer is on the list (`cobro.rules.facts.on_stop_supply_list`, the `stop_supply_list`
rule fact) when its cover was withdrawn, refused or suspended (`cover_status` cancelled or
refused, with no cover in force), or when its insurance policy's stop-supply date has come
for one of its insured open invoices (`rules/insurance.yaml`, `stop_supply`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from cobro.rules.facts import on_stop_supply_list

COVER_REASONS = {"cancelled": "cover withdrawn", "refused": "cover refused"}


@dataclass(frozen=True)
class StopSupply:
    customer_id: int
    account: str
    name: str
    reasons: tuple[str, ...]
    since: date | None  # the stop-supply date, when the policy's rule put it there
    cover_status: str | None
    outstanding: Decimal
    overdue_amount: Decimal

    def as_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "name": self.name,
            "reasons": list(self.reasons),
            "since": None if self.since is None else self.since.isoformat(),
            "cover_status": self.cover_status,
            "outstanding": str(self.outstanding),
            "overdue_amount": str(self.overdue_amount),
        }


def stop_supply_entry(customer_id: int, facts: dict[str, Any], as_of: date) -> StopSupply | None:
    """The customer's entry on the list (None: not on it), from its rule facts."""
    if not on_stop_supply_list(facts):
        return None
    reasons: list[str] = []
    status = facts.get("cover_status")
    if status in COVER_REASONS:
        reasons.append(COVER_REASONS[status])
    since = None
    days = facts.get("days_to_stop_supply")
    if facts.get("stop_supply") and days is not None:
        since = as_of + timedelta(days=int(days))
        reasons.append(f"policy stop-supply date {since.isoformat()} passed")
    return StopSupply(
        customer_id,
        facts.get("account", ""),
        facts.get("name", ""),
        tuple(reasons),
        since,
        status,
        facts.get("outstanding") or Decimal(0),
        facts.get("overdue_amount") or Decimal(0),
    )
