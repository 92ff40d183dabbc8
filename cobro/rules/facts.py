"""The documented facts schema: every name a rule expression or an alert message may read.

A *facts dict* is a flat ``dict[str, object]`` keyed by fact name; the facts about the previous
classification use the dotted names ``previous.grade``, ``previous.risk_class`` and so on
(``{"previous.grade": 6}``). A missing key is the same as ``None``, i.e. *null*.

Types and the Python values they accept:

=========  ==========================================================================
number     ``int`` or ``Decimal`` (a ``float`` is accepted and converted to Decimal)
money      ``Decimal`` (or ``int``), never float; in the currency of the account
date       ``datetime.date``
string     ``str``
bool       ``bool``
=========  ==========================================================================

A fact that is not *nullable* is always known for a customer (for example ``outstanding`` is 0
when nothing is owed). The compiled evaluator has a fast path for that contract and falls back
to fully null-safe code when a non-nullable fact is missing anyway (rule examples often give
only a few facts), so results are always the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Literal

FactType = Literal["number", "money", "date", "string", "bool"]
FACT_TYPES: tuple[FactType, ...] = ("number", "money", "date", "string", "bool")


@dataclass(frozen=True)
class Fact:
    name: str
    type: FactType
    nullable: bool
    doc: str
    sample: Any
    values: tuple[str, ...] = ()  # the closed set of values of a string fact, if any


# `previous.risk_class` of a customer's first classification: the first assessment is a
# change from "unclassified", so `previous.risk_class != "critical"` holds and alerts such as
# `became_critical` fire on it. No risk class may take this name.
UNCLASSIFIED = "unclassified"

COVER_STATUSES = ("none", "requested", "active", "reduced", "cancelled", "refused", "expired")

_FACTS: tuple[Fact, ...] = (
    Fact("name", "string", False, "customer's legal name", "Ateliers Durand SARL"),
    Fact("account", "string", False, "customer account number in the ERP", "C-00042"),
    Fact("country", "string", False, "ISO 3166-1 alpha-2 country code", "FR"),
    Fact(
        "segment", "string", True, "commercial segment (e.g. sme, corporate, public_sector)", "sme"
    ),
    Fact("grade", "number", True, "insurer grade, 1 (best) to 10 (worst); null if not graded", 4),
    Fact(
        "previous.grade",
        "number",
        True,
        "the insurer grade before the latest one (grade history); null if graded at most once",
        4,
    ),
    Fact(
        "cover_status",
        "string",
        True,
        "state of the credit-insurance cover",
        "active",
        COVER_STATUSES,
    ),
    Fact(
        "cover_amount",
        "money",
        True,
        "amount covered by the insurer; null without cover",
        Decimal("50000"),
    ),
    Fact(
        "previous.cover_amount",
        "money",
        True,
        "cover amount at the previous classification",
        Decimal("50000"),
    ),
    Fact(
        "cover_expires_in_days",
        "number",
        True,
        "days until the cover expires; null if open-ended",
        120,
    ),
    Fact(
        "total_limit",
        "money",
        True,
        "credit limit granted to the customer (cover + own risk)",
        Decimal("60000"),
    ),
    Fact("outstanding", "money", False, "total open receivables (not yet paid)", Decimal("42000")),
    Fact("overdue_amount", "money", False, "open receivables past their due date", Decimal("8000")),
    Fact(
        "previous.overdue_amount",
        "money",
        True,
        "overdue amount at the previous classification",
        Decimal("5000"),
    ),
    Fact("disputed_amount", "money", False, "open receivables under dispute", Decimal("0")),
    Fact(
        "max_days_overdue",
        "number",
        False,
        "days overdue of the oldest unpaid invoice (0 if none)",
        35,
    ),
    Fact(
        "previous.max_days_overdue",
        "number",
        True,
        "max days overdue at the previous classification",
        20,
    ),
    Fact("over_limit", "bool", False, "outstanding exceeds total_limit", False),
    Fact(
        "currency",
        "string",
        True,
        "ISO 4217 code of the customer's exposure currency, that of total_limit and the "
        "amounts (`money` writes it); null without open invoices, cover or own limit",
        "EUR",
    ),
    Fact(
        "limit_usage",
        "number",
        True,
        "outstanding / total_limit (0.9 = 90 %); null without limit",
        Decimal("0.70"),
    ),
    Fact(
        "avg_days_late",
        "number",
        True,
        "average days late of invoices paid in the last 12 months",
        Decimal("6.5"),
    ),
    Fact("broken_promises", "number", False, "promises to pay not kept in the last 90 days", 0),
    Fact("open_invoices", "number", False, "number of open invoices", 7),
    Fact(
        "last_payment_date", "date", True, "date of the last payment received", date(2026, 10, 30)
    ),
    Fact("today", "date", False, "the date of the evaluation", date(2026, 11, 23)),
    Fact(
        "risk_class",
        "string",
        True,
        "risk class computed by rules/risk_classes.yaml (alerts only)",
        "medium",
    ),
    Fact(
        "previous.risk_class",
        "string",
        True,
        f"risk class at the previous classification; '{UNCLASSIFIED}' at the customer's first",
        "low",
    ),
    # insurer obligations (rules/insurance.yaml; `cobro insurer obligations`), calendar days
    Fact(
        "days_to_declaration_deadline",
        "number",
        True,
        "calendar days to the nearest overdue-declaration deadline (declare-by) not passed yet"
        " of an insured open invoice; null if none",
        12,
    ),
    Fact(
        "days_to_claim_deadline",
        "number",
        True,
        "calendar days to the nearest claim / hand-over deadline not passed yet; null if none",
        40,
    ),
    Fact(
        "days_to_stop_supply",
        "number",
        True,
        "calendar days to the stop-supply date of the policy (negative once passed); null if"
        " the policy has no stop-supply rule or nothing is insured",
        20,
    ),
    Fact(
        "stop_supply",
        "bool",
        False,
        "the policy's stop-supply date has come for an insured open invoice",
        False,
    ),
    Fact(
        "declarations_missed",
        "number",
        False,
        "insured open invoices whose declaration deadline passed without a declaration",
        0,
    ),
    Fact(
        "stop_supply_list",
        "bool",
        False,
        "on the stop-supply list of the sales and order desk: cover withdrawn (cancelled),"
        " refused or suspended, or the policy's stop-supply date has come",
        False,
    ),
    Fact(
        "amount_at_risk",
        "money",
        False,
        "insured amount whose declaration deadline falls within insurance.yaml's"
        " at_risk_within_days",
        Decimal("0"),
    ),
)

#: the facts computed from the insurer obligations, with their value for a customer without
#: an insured open invoice (null in exposure.yaml conditions: insurance depends on them)
OBLIGATION_DEFAULTS: dict[str, Any] = {
    "days_to_declaration_deadline": None,
    "days_to_claim_deadline": None,
    "days_to_stop_supply": None,
    "stop_supply": False,
    "declarations_missed": 0,
    "amount_at_risk": Decimal("0.0000"),
}

#: `cover_status` values that put a customer on the stop-supply list
STOP_SUPPLY_COVER_STATUSES = ("cancelled", "refused")


def on_stop_supply_list(facts: dict[str, Any]) -> bool:
    """The one definition of the stop-supply list (the `stop_supply_list` fact, the list's
    page, API and CSV): cover withdrawn / refused / suspended, or stop-supply date come."""
    return bool(facts.get("stop_supply")) or facts.get("cover_status") in (
        STOP_SUPPLY_COVER_STATUSES
    )


FACTS: dict[str, Fact] = {f.name: f for f in _FACTS}


def sample_facts() -> dict[str, Any]:
    """One realistic value for every fact (used by `cobro rules check` to render messages)."""
    return {f.name: f.sample for f in _FACTS}


def facts_markdown() -> str:
    """Generated documentation of the facts schema."""
    lines = [
        "# Facts available to rules",
        "",
        "| fact | type | nullable | description |",
        "|---|---|---|---|",
    ]
    for f in _FACTS:
        doc = f.doc + (f" (one of: {', '.join(f.values)})" if f.values else "")
        lines.append(f"| `{f.name}` | {f.type} | {'yes' if f.nullable else 'no'} | {doc} |")
    return "\n".join(lines)


def facts_json() -> str:
    return json.dumps(
        [
            {
                "name": f.name,
                "type": f.type,
                "nullable": f.nullable,
                "doc": f.doc,
                "values": list(f.values) or None,
            }
            for f in _FACTS
        ],
        indent=2,
    )
