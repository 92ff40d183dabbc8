"""An insurance policy's terms (`rules/insurance.yaml`), pure: the deadlines an insured
company must keep for each unpaid invoice, and what the insurer pays.

Every deadline is a number of CALENDAR days (weekends and public holidays count, as credit
insurers count them) after an anchor date:

    due_date        the invoice's due date
    max_extension   the end of the maximum extension period (MEP): due date + MEP days,
                    the latest date the due date may be extended to without the insurer
    declaration     the overdue-declaration deadline (declare-by date)
    claim           the claim / hand-over deadline (claim-by date)
    oldest_due_date the due date of the customer's oldest open invoice (stop-supply only)

    may_extend_until    = due_date + max_extension_days
    declare_by          = <declare_overdue.after> + declare_overdue.days
    claim_by            = <claim.after> + claim.days
    expected_indemnity  = <waiting_period.after> + waiting_period.days
    stop_supplies_from  = <stop_supply.after> + stop_supply.days

An anchor may only name a deadline computed before it (declaration after due_date or
max_extension; claim after those or declaration; waiting period after any of them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Literal

Anchor = Literal["due_date", "max_extension", "declaration", "claim", "oldest_due_date"]
Approval = Literal["automatic", "approval"]

#: the anchors each deadline may count from, in the order the deadlines are computed
ANCHORS: dict[str, tuple[str, ...]] = {
    "declare_overdue": ("due_date", "max_extension"),
    "claim": ("due_date", "max_extension", "declaration"),
    "waiting_period": ("due_date", "max_extension", "declaration", "claim"),
    "stop_supply": ("due_date", "oldest_due_date", "max_extension"),
}

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Deadline:
    """`days` calendar days after `after`."""

    days: int
    after: str

    def describe(self) -> str:
        return f"{self.days} calendar days after the {self.after.replace('_', ' ')}"


@dataclass(frozen=True)
class PolicyTerms:
    """One insurance policy's terms, matched by the policy id its covers carry."""

    policy: str
    name: str = ""
    insured_percent: Decimal = Decimal(90)
    max_extension_days: int = 0
    declare_overdue: Deadline = Deadline(30, "due_date")
    claim: Deadline = Deadline(60, "declaration")
    waiting_period: Deadline = Deadline(150, "declaration")
    min_declarable: Decimal = Decimal(0)
    stop_supply: Deadline | None = None
    declarations: Approval = "automatic"


@dataclass(frozen=True)
class InvoiceDeadlines:
    """The dates `PolicyTerms` give one invoice (see the module docstring)."""

    may_extend_until: date
    declare_by: date
    claim_by: date
    expected_indemnity_on: date
    stop_supplies_from: date | None


def add_days(day: date, days: int) -> date:
    """`days` calendar days after `day` (leap years and month ends as the calendar has them)."""
    return day + timedelta(days=days)


def deadlines(terms: PolicyTerms, due: date, oldest_due: date | None = None) -> InvoiceDeadlines:
    """The deadlines of an invoice due on `due` (the customer's oldest open invoice due on
    `oldest_due`, default `due`)."""
    anchors: dict[str, date] = {"due_date": due, "oldest_due_date": oldest_due or due}
    anchors["max_extension"] = add_days(due, terms.max_extension_days)
    d = terms.declare_overdue
    anchors["declaration"] = add_days(anchors[d.after], d.days)
    c = terms.claim
    anchors["claim"] = add_days(anchors[c.after], c.days)
    w = terms.waiting_period
    indemnity = add_days(anchors[w.after], w.days)
    s = terms.stop_supply
    stop = add_days(anchors[s.after], s.days) if s is not None else None
    return InvoiceDeadlines(
        may_extend_until=anchors["max_extension"],
        declare_by=anchors["declaration"],
        claim_by=anchors["claim"],
        expected_indemnity_on=indemnity,
        stop_supplies_from=stop,
    )


@dataclass(frozen=True)
class InsuranceTerms:
    """Every policy's terms (the built `insurance.yaml`) and the portfolio settings."""

    policies: Mapping[str, PolicyTerms] = field(default_factory=dict)
    at_risk_within_days: int = 14  # "at risk of losing cover": declare-by within this many days

    def for_policies(self, policy_ids: tuple[str, ...]) -> PolicyTerms | None:
        """The terms of the first of `policy_ids` that has terms (None: none has)."""
        for pid in policy_ids:
            terms = self.policies.get(pid)
            if terms is not None:
                return terms
        return None


NO_TERMS = InsuranceTerms()
