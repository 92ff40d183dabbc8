"""Per-customer exposure, pure (no database, no clock): what a customer may use and uses.

    authorised = insured + discretionary
    insured    = Σ granted amounts of the customer's named covers in force (every policy),
                 or, without any named cover in force, the unnamed-buyer ceiling of the first
                 policy of `rules/exposure.yaml` that applies to it and whose conditions hold
                 (else 0)
    discretionary = the customer's own limit (`customers.discretionary_limit`) when set and
                 `customer_override` is on, else its segment's amount, else the default
    used       = overdue open invoices (due_date < as_of; open as it was at as_of: the
                 invoices issued by then, with the payments dated after it added back)
                 + not-yet-due open invoices      (if `used.not_yet_due`)
                 (disputed ones only if `used.disputed`)
                 + open credit notes (negative)   (if `used.credit_notes`)
                 + unbilled orders                (if `used.unbilled_orders`; 0 until imported)
                 never below 0
    available  = authorised − used (negative: over limit)
    usage %    = used ÷ authorised × 100, 2 places half-up; None when authorised is not > 0
    over limit = used > authorised; excess = used − authorised when over limit, else 0
    currency   = the customer's exposure currency (see `cobro.exposure.sql`): only the
                 invoices, covers and own limit in that currency count; a customer without
                 any cover and with nothing authorised is over limit as soon as it owes
                 anything

The rule facts `total_limit` (= authorised), `over_limit` and `limit_usage` (= used ÷
authorised, 4 places, None when authorised is not > 0) are `limit_facts(exposure)`: the
same figures, never computed anywhere else.

A condition (`applies_to` / `when`) is three-valued like every rule: null counts as not met.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from cobro.rules.expr import show_value

ZERO = Decimal("0.0000")
HUNDRED = Decimal(100)
_PCT = Decimal("0.01")
_RATIO = Decimal("0.0001")

Predicate = Callable[[Mapping[str, Any]], bool | None]


# ---------------------------------------------------------------------------- the rules


@dataclass(frozen=True)
class UsedRules:
    """Which open amounts count as used (overdue invoices always do)."""

    not_yet_due: bool = True
    disputed: bool = True
    credit_notes: bool = True
    unbilled_orders: bool = False


@dataclass(frozen=True)
class DiscretionaryRules:
    """The company's own limit ("crédit de direction"), on top of the insurer's cover."""

    default: Decimal = ZERO
    segments: Mapping[str, Decimal] = field(default_factory=dict)
    customer_override: bool = True


@dataclass(frozen=True)
class Condition:
    """A compiled rule expression with its text and the facts it reads (for explanations)."""

    text: str
    fn: Predicate
    names: tuple[str, ...] = ()

    def __call__(self, facts: Mapping[str, Any]) -> bool | None:
        return self.fn(facts)

    def describe(self, facts: Mapping[str, Any]) -> str:
        read = ", ".join(f"{n}={show_value(facts.get(n))}" for n in self.names)
        return f"`{self.text}` is {show_value(self.fn(facts))}" + (f" ({read})" if read else "")


@dataclass(frozen=True)
class UnnamedPolicy:
    """A policy's unnamed-buyer (non-nominative) ceiling and when it applies."""

    policy: str
    ceiling: Decimal
    applies_to: Condition | None = None  # None: every customer
    when: Condition | None = None  # None: no further condition


@dataclass(frozen=True)
class ExposureRules:
    used: UsedRules = UsedRules()
    discretionary: DiscretionaryRules = DiscretionaryRules()
    unnamed_buyers: tuple[UnnamedPolicy, ...] = ()

    @property
    def needs_facts(self) -> bool:
        """True when a condition reads customer facts (the SQL side then computes them)."""
        return any(p.applies_to or p.when for p in self.unnamed_buyers)


DEFAULT_RULES = ExposureRules()


# ---------------------------------------------------------------------------- inputs / result


@dataclass(frozen=True)
class CustomerAmounts:
    """What the database knows about one customer, as of a day."""

    customer_id: int
    account: str
    name: str = ""
    segment: str | None = None
    currency: str | None = None  # the exposure currency: the amounts below are in it
    other_currencies: tuple[str, ...] = ()  # open invoices / covers in others: not counted
    own_limit: Decimal | None = None  # customers.discretionary_limit (in `currency`, or None)
    overdue: Decimal = ZERO  # open > 0, due_date < as_of, not disputed
    not_due: Decimal = ZERO  # open > 0, due_date ≥ as_of, not disputed
    disputed_overdue: Decimal = ZERO
    disputed_not_due: Decimal = ZERO
    credit_notes: Decimal = ZERO  # Σ open amounts < 0 (≤ 0)
    unbilled_orders: Decimal = ZERO
    named_cover: Decimal | None = None  # Σ named covers in force; None: no named cover in force
    named_policies: tuple[str, ...] = ()
    unnamed_policies: frozenset[str] = frozenset()  # in-force non-nominative covers' policies
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Exposure:
    customer_id: int
    account: str
    name: str
    segment: str | None
    currency: str | None
    insured: Decimal
    insured_basis: str  # named | unnamed | none
    insured_policies: tuple[str, ...]
    discretionary: Decimal
    discretionary_basis: str  # customer | segment | default
    authorised: Decimal
    used: Decimal
    available: Decimal
    usage_pct: Decimal | None
    over_limit: bool
    used_parts: dict[str, Decimal]  # the counted parts of `used`, before the floor at 0
    notes: tuple[str, ...] = ()  # how the insured part was decided

    @property
    def excess(self) -> Decimal:
        """How much over its limit (used − authorised), 0 when within it."""
        return self.used - self.authorised if self.over_limit else ZERO

    @property
    def usage(self) -> Decimal | None:
        """used ÷ authorised, 4 places half-up (0.9 = 90 %); None when authorised is not > 0."""
        if self.authorised <= 0:
            return None
        return (self.used / self.authorised).quantize(_RATIO, rounding=ROUND_HALF_UP)

    def as_json(self) -> dict[str, Any]:
        def money(v: Decimal | None) -> str | None:
            return None if v is None else str(v)

        return {
            "customer_id": self.customer_id,
            "account": self.account,
            "name": self.name,
            "segment": self.segment,
            "currency": self.currency,
            "insured": money(self.insured),
            "insured_basis": self.insured_basis,
            "insured_policies": list(self.insured_policies),
            "discretionary": money(self.discretionary),
            "discretionary_basis": self.discretionary_basis,
            "authorised": money(self.authorised),
            "used": money(self.used),
            "available": money(self.available),
            "usage_pct": money(self.usage_pct),
            "over_limit": self.over_limit,
            "excess": money(self.excess),
            "used_parts": {k: money(v) for k, v in self.used_parts.items()},
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------- computation


def used_parts(a: CustomerAmounts, rules: UsedRules) -> dict[str, Decimal]:
    """The parts of `used` the rules count (overdue always; the others when switched on)."""
    parts = {"overdue": a.overdue}
    if rules.disputed:
        parts["disputed_overdue"] = a.disputed_overdue
    if rules.not_yet_due:
        parts["not_due"] = a.not_due
        if rules.disputed:
            parts["disputed_not_due"] = a.disputed_not_due
    if rules.credit_notes:
        parts["credit_notes"] = a.credit_notes
    if rules.unbilled_orders:
        parts["unbilled_orders"] = a.unbilled_orders
    return parts


def discretionary_limit(a: CustomerAmounts, rules: DiscretionaryRules) -> tuple[Decimal, str]:
    """(amount, basis): the customer's own limit, its segment's, or the default."""
    if rules.customer_override and a.own_limit is not None:
        return a.own_limit, "customer"
    if a.segment is not None and a.segment in rules.segments:
        return rules.segments[a.segment], "segment"
    return rules.default, "default"


def insured_part(
    a: CustomerAmounts, policies: tuple[UnnamedPolicy, ...], explain: bool = False
) -> tuple[Decimal, str, tuple[str, ...], tuple[str, ...]]:
    """(amount, basis, policies, notes). Named covers in force win; otherwise the first
    unnamed-buyer policy that applies to the customer and whose `when` holds."""
    if a.named_cover is not None:
        notes = ("named cover(s) in force: unnamed-buyer ceilings do not apply",) if explain else ()
        return a.named_cover, "named", a.named_policies, notes
    notes: list[str] = []
    for p in policies:
        declared = p.policy in a.unnamed_policies
        if not declared and p.applies_to is not None and p.applies_to(a.facts) is not True:
            if explain:
                notes.append(f"policy {p.policy}: applies_to {p.applies_to.describe(a.facts)}")
            continue
        if p.when is not None and p.when(a.facts) is not True:
            if explain:
                notes.append(f"policy {p.policy}: when {p.when.describe(a.facts)}")
            continue
        if explain:
            why = (
                "the insurer lists the customer as an unnamed buyer"
                if declared
                else (
                    f"applies_to {p.applies_to.describe(a.facts)}"
                    if p.applies_to
                    else "applies to every customer"
                )
            )
            cond = f"; when {p.when.describe(a.facts)}" if p.when else ""
            notes.append(f"policy {p.policy}: unnamed-buyer ceiling {p.ceiling} ({why}{cond})")
        return p.ceiling, "unnamed", (p.policy,), tuple(notes)
    if explain and not policies:
        notes.append("no named cover in force and no unnamed-buyer policy in exposure.yaml")
    return ZERO, "none", (), tuple(notes)


LIMIT_FACTS = ("total_limit", "over_limit", "limit_usage", "currency")


def limit_facts(e: Exposure | None) -> dict[str, Any]:
    """The rule facts that describe the limit, from the customer's exposure: `currency` is
    the exposure currency, the one `total_limit` and the amounts are in."""
    if e is None:
        return {"total_limit": None, "over_limit": False, "limit_usage": None, "currency": None}
    return {
        "total_limit": e.authorised,
        "over_limit": e.over_limit,
        "limit_usage": e.usage,
        "currency": e.currency,
    }


def usage_pct(used: Decimal, authorised: Decimal) -> Decimal | None:
    if authorised <= 0:
        return None
    return (used * HUNDRED / authorised).quantize(_PCT, rounding=ROUND_HALF_UP)


def compute_exposure(
    a: CustomerAmounts, rules: ExposureRules = DEFAULT_RULES, explain: bool = False
) -> Exposure:
    parts = used_parts(a, rules.used)
    used = max(sum(parts.values(), ZERO), ZERO)
    insured, basis, policies, notes = insured_part(a, rules.unnamed_buyers, explain)
    if explain and a.other_currencies:
        notes = (
            *notes,
            f"amounts in {', '.join(a.other_currencies)} are not counted: the exposure is "
            f"in {a.currency}",
        )
    own, own_basis = discretionary_limit(a, rules.discretionary)
    authorised = insured + own
    return Exposure(
        customer_id=a.customer_id,
        account=a.account,
        name=a.name,
        segment=a.segment,
        currency=a.currency,
        insured=insured,
        insured_basis=basis,
        insured_policies=policies,
        discretionary=own,
        discretionary_basis=own_basis,
        authorised=authorised,
        used=used,
        available=authorised - used,
        usage_pct=usage_pct(used, authorised),
        over_limit=used > authorised,
        used_parts=parts,
        notes=notes,
    )
