"""What a change of `dunning.yaml` would send differently: the contacts each customer is
planned over the next days under the active policies and under the proposed ones (the pure
planner, assuming nothing gets paid), counted by channel and template, and the customers
whose planned contacts differ. `cobro rules diff` prints it; nothing is written or sent.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from cobro.db import transaction
from cobro.dunning.schedule import plan
from cobro.dunning.store import (
    CustomerFacts,
    ensure_insurance,
    load_customer_facts,
    policy_for,
)

Contact = tuple[str, str]  # (channel or action, template or note)


@dataclass
class DunningDiff:
    days: int
    evaluated: int = 0
    before: Counter[Contact] = field(default_factory=Counter)
    after: Counter[Contact] = field(default_factory=Counter)
    changed: list[tuple[str, list[Contact], list[Contact]]] = field(default_factory=list)

    def add(self, account: str, before: list[Contact], after: list[Contact]) -> None:
        self.evaluated += 1
        self.before.update(before)
        self.after.update(after)
        if before != after:
            self.changed.append((account, before, after))

    def by_contact(self) -> list[tuple[Contact, int, int]]:
        """(contact, planned now, planned with the proposal), busiest first."""
        keys = set(self.before) | set(self.after)
        rows = [(k, self.before[k], self.after[k]) for k in keys]
        return sorted(rows, key=lambda r: (-max(r[1], r[2]), r[0]))

    def to_json(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "evaluated": self.evaluated,
            "customers_affected": len(self.changed),
            "contacts": [
                {"kind": k[0], "template": k[1], "current": b, "proposed": a}
                for k, b, a in self.by_contact()
            ],
            "customers": [
                {
                    "account": account,
                    "current": [list(c) for c in before],
                    "proposed": [list(c) for c in after],
                }
                for account, before, after in self.changed
            ],
        }


def planned_contacts(
    facts: CustomerFacts, rules: Any, now: datetime, until: datetime
) -> list[Contact]:
    """The contacts `rules` plan for this customer between now and `until`, in order."""
    policy = policy_for(facts, rules)
    if policy is None:
        return []
    ensure_insurance(facts, policy, now)
    customer, invoices, pauses = facts.planner_inputs(policy)
    result = plan(customer, invoices, policy, now, pauses, history=facts.contacts)
    return [(a.kind, a.template or a.note or "") for a in result.actions if a.at < until]


def diff_dunning(
    engine: Engine | None,
    accounts: list[str],
    current: Any,
    proposed: Any,
    now: datetime,
    days: int = 30,
) -> DunningDiff:
    """Compare two compiled `dunning.yaml` over `days` for the given customers."""
    until = now + timedelta(days=days)
    out = DunningDiff(days)
    for account in accounts:
        with transaction(engine) as session:
            facts = load_customer_facts(session, account)
            if facts is None:
                continue
            before = planned_contacts(facts, current, now, until)
            after = planned_contacts(facts, proposed, now, until)
        out.add(account, before, after)
    return out
