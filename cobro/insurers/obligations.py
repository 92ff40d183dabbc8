"""What the insurance policy obliges the company to do for each insured open invoice, pure
(no database, no clock): the dates of `cobro.insurers.terms` plus eligibility and indemnity.

    obligations = compute_obligations(invoices, terms, as_of)   # invoices grouped by customer

Definitions (amounts in the invoice's currency, dates in calendar days):

* an invoice is insured when a named cover is in force at its due date or an unnamed-buyer
  ceiling of `rules/exposure.yaml` applies to its customer that day (the decision the
  dunning claim step uses, `cobro.exposure.insured`; in bulk the ceiling's conditions read
  the customer's facts of the day the obligations are computed for, not of each due date);
  its policy is the first of the
  insuring covers' policies that has terms in `rules/insurance.yaml` (none: status
  `no_terms`, no dates);
* eligible = the part of the open amount within the cover: the customer's insured open
  invoices, oldest due first, use up the cover amount in force at each one's due date;
* the declaration is required when the customer's open insured amount under that policy
  reaches the policy's `min_declarable` (below it: status `below_minimum`, nothing to
  declare, no indemnity expected);
* expected indemnity = eligible × insured_percent / 100, rounded half-up to the cent;
* status as of `as_of`: `missed` (a required declaration not recorded and its declare-by
  date passed), `at_risk` (declare-by within `at_risk_within_days`), `ok`, `below_minimum`
  or `no_terms`; `stop_supply` once `stop_supplies_from` is on or before `as_of`.

An invoice is `declared` once its overdue declaration (OVD) was filed with the insurer
(`cobro.insurers.declarations`): its status is then `ok`, whatever its declare-by date.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from operator import itemgetter
from typing import Any, NamedTuple

from cobro.collector import collector_paused
from cobro.insurers.terms import InsuranceTerms, PolicyTerms, add_days, deadlines

ZERO = Decimal("0.0000")
_CENT = Decimal("0.01")
_HUNDRED = Decimal(100)

STATUSES = ("missed", "at_risk", "ok", "below_minimum", "no_terms")


class InsuredInvoice(NamedTuple):
    """An open invoice insured at its due date, as `cobro.insurers.obligations_sql` reads it."""

    customer_id: int
    account: str
    number: str
    due_date: date
    currency: str
    open_amount: Decimal
    policies: tuple[str, ...]  # the policies of the cover(s) insuring it at its due date
    cover_amount: Decimal  # the insured amount in force at its due date (named or unnamed)
    basis: str  # named | unnamed
    oldest_due: date  # the due date of the customer's oldest open invoice
    disputed: bool = False
    declared: bool = False


class Obligation(NamedTuple):
    """One insured open invoice's obligations (a named tuple: a million of them are cheap)."""

    customer_id: int
    account: str
    number: str
    due_date: date
    currency: str
    open_amount: Decimal
    basis: str
    policy: str | None
    declarations: str | None  # automatic | approval
    may_extend_until: date | None
    declare_by: date | None
    claim_by: date | None
    stop_supplies_from: date | None
    expected_indemnity_on: date | None
    eligible: Decimal
    expected_indemnity: Decimal
    declaration_required: bool
    status: str
    disputed: bool

    def days_to(self, day: date | None, as_of: date) -> int | None:
        return None if day is None else (day - as_of).days

    def deadlines_between(self, start: date, end: date) -> bool:
        """A deadline (extension end, declare-by, claim-by, stop-supply) in [start, end]."""
        return any(
            d is not None and start <= d <= end
            for d in (
                self.may_extend_until,
                self.declare_by if self.declaration_required else None,
                self.claim_by if self.declaration_required else None,
                self.stop_supplies_from,
            )
        )

    def as_json(self, as_of: date) -> dict[str, Any]:
        def iso(d: date | None) -> str | None:
            return None if d is None else d.isoformat()

        return {
            "account": self.account,
            "invoice": self.number,
            "due_date": self.due_date.isoformat(),
            "currency": self.currency,
            "open_amount": str(self.open_amount),
            "insured_basis": self.basis,
            "policy": self.policy,
            "declarations": self.declarations,
            "may_extend_until": iso(self.may_extend_until),
            "declare_by": iso(self.declare_by),
            "days_to_declaration_deadline": self.days_to(self.declare_by, as_of),
            "claim_by": iso(self.claim_by),
            "stop_supplies_from": iso(self.stop_supplies_from),
            "expected_indemnity_on": iso(self.expected_indemnity_on),
            "eligible": str(self.eligible),
            "expected_indemnity": str(self.expected_indemnity),
            "declaration_required": self.declaration_required,
            "status": self.status,
            "stop_supply": self.stop_supplies_from is not None and self.stop_supplies_from <= as_of,
            "disputed": self.disputed,
        }


def indemnity_amount(terms: PolicyTerms, eligible: Decimal, customer_total: Decimal) -> Decimal:
    """What the insurer pays for `eligible` (0 when the customer's open insured amount under
    the policy, `customer_total`, is below the minimum declarable amount)."""
    if customer_total < terms.min_declarable:
        return _NOTHING
    return (eligible * terms.insured_percent / _HUNDRED).quantize(_CENT, rounding=ROUND_HALF_UP)


_NOTHING = Decimal("0.00")


class _Run:
    """What one computation shares between invoices: per list of policies, the chosen
    policy's figures; per (policy, due date), its dates (a portfolio has a few hundred
    distinct due dates); per (oldest due date, days), a stop-supply date."""

    def __init__(self, terms: InsuranceTerms, as_of: date) -> None:
        self.terms = terms
        self.as_of = as_of
        self.within = terms.at_risk_within_days
        # policies -> (terms, policy id, declarations, min declarable, indemnity factor,
        #              stop-supply days after the oldest due date or None) | None
        self.chosen: dict[tuple[str, ...], tuple[Any, ...] | None] = {}
        # (policy id, due) -> (may extend until, declare by, claim by, stop supplies from,
        #                      expected indemnity on, days from as_of to declare by)
        self.dates: dict[tuple[str, date], tuple[Any, ...]] = {}
        self.stops: dict[tuple[date, int], date] = {}

    def policy(self, policies: tuple[str, ...]) -> tuple[Any, ...] | None:
        try:
            return self.chosen[policies]
        except KeyError:
            pass
        t = self.terms.for_policies(policies)
        plan = None
        if t is not None:
            s = t.stop_supply
            plan = (
                t,
                t.policy,
                t.declarations,
                t.min_declarable,
                t.insured_percent / _HUNDRED,
                s.days if s is not None and s.after == "oldest_due_date" else None,
            )
        self.chosen[policies] = plan
        return plan

    def deadlines(self, t: PolicyTerms, due: date) -> tuple[Any, ...]:
        key = (t.policy, due)
        found = self.dates.get(key)
        if found is None:
            d = deadlines(t, due)
            found = self.dates[key] = (
                d.may_extend_until,
                d.declare_by,
                d.claim_by,
                d.stop_supplies_from,
                d.expected_indemnity_on,
                (d.declare_by - self.as_of).days,
            )
        return found

    def stop(self, oldest_due: date, days: int) -> date:
        key = (oldest_due, days)
        found = self.stops.get(key)
        if found is None:
            found = self.stops[key] = add_days(oldest_due, days)
        return found


_BY_DUE = itemgetter(3, 2)  # InsuredInvoice: due_date, number
_new = tuple.__new__  # a named tuple without its Python-level __new__ (a million a second)


def _customer_obligations(invoices: list[InsuredInvoice], run: _Run, out: list[Obligation]) -> None:
    """Append the obligations of one customer's insured open invoices to `out`."""
    if len(invoices) > 1:
        invoices.sort(key=_BY_DUE)
    chosen_get, dates_get, policy = run.chosen.get, run.dates.get, run.policy
    plans = []
    totals: dict[str, Decimal] = {}
    for inv in invoices:
        policies = inv[6]
        plan = chosen_get(policies, _UNKNOWN)
        if plan is _UNKNOWN:
            plan = policy(policies)
        plans.append(plan)
        if plan is not None:
            pid = plan[1]
            totals[pid] = totals.get(pid, ZERO) + inv[5]
    used = ZERO
    within = run.within
    append = out.append
    for inv, plan in zip(invoices, plans, strict=True):
        (
            cid, account, number, due, currency, open_amount, policies, cover, basis,
            oldest_due, disputed, declared,
        ) = inv  # fmt: skip
        room = cover - used
        eligible = open_amount if room >= open_amount else (room if room > 0 else ZERO)
        used += open_amount
        if plan is None:
            append(
                _new(Obligation, (
                    cid, account, number, due, currency, open_amount, basis,
                    policies[0] if policies else None, None, None, None, None, None, None,
                    eligible, _NOTHING, False, "no_terms", disputed,
                ))
            )  # fmt: skip
            continue
        t, pid, declarations, minimum, factor, stop_days = plan
        d = dates_get((pid, due))
        if d is None:
            d = run.deadlines(t, due)
        extend, declare_by, claim_by, stop, indemnity_on, days = d
        if stop_days is not None:
            stop = run.stops.get((oldest_due, stop_days)) or run.stop(oldest_due, stop_days)
        if totals[pid] < minimum:
            required, status, indemnity = False, "below_minimum", _NOTHING
        else:
            required = True
            indemnity = (eligible * factor).quantize(_CENT, ROUND_HALF_UP)
            if declared:
                status = "ok"
            elif days < 0:
                status = "missed"
            elif days <= within:
                status = "at_risk"
            else:
                status = "ok"
        append(
            _new(Obligation, (
                cid, account, number, due, currency, open_amount, basis, pid, declarations,
                extend, declare_by, claim_by, stop, indemnity_on,
                eligible, indemnity, required, status, disputed,
            ))
        )  # fmt: skip


_UNKNOWN: Any = object()


def _grouped(invoices: Iterable[InsuredInvoice]) -> Iterator[list[InsuredInvoice]]:
    group: list[InsuredInvoice] = []
    current: int | None = None
    for inv in invoices:
        if inv[0] != current and group:
            yield group
            group = []
        current = inv[0]
        group.append(inv)
    if group:
        yield group


def iter_obligations(
    invoices: Iterable[InsuredInvoice], terms: InsuranceTerms, as_of: date
) -> Iterator[Obligation]:
    """The obligations of `invoices`, which must come grouped by customer (any order
    inside a customer), customer by customer in the order given."""
    run = _Run(terms, as_of)
    out: list[Obligation] = []
    for group in _grouped(invoices):
        _customer_obligations(group, run, out)
        yield from out
        out.clear()


def compute_obligations(
    invoices: Iterable[InsuredInvoice], terms: InsuranceTerms, as_of: date
) -> list[Obligation]:
    """`iter_obligations` as one list (the bulk path: no generator per obligation, the
    cyclic collector paused meanwhile)."""
    run = _Run(terms, as_of)
    out: list[Obligation] = []
    with collector_paused():
        for group in _grouped(invoices):
            _customer_obligations(group, run, out)
    return out


# ---------------------------------------------------------------------------- summaries


@dataclass
class ObligationTotals:
    """Portfolio figures over obligations, per currency (KPIs, the obligations page)."""

    invoices: int = 0
    deadlines_missed: int = 0
    missed_amount: Decimal = ZERO  # eligible amount whose declaration deadline has passed
    at_risk: int = 0
    at_risk_amount: Decimal = ZERO  # eligible amount whose declare-by is within the window
    expected_indemnity: Decimal = ZERO
    stop_supply_customers: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "invoices": self.invoices,
            "deadlines_missed": self.deadlines_missed,
            "missed_amount": str(self.missed_amount),
            "at_risk": self.at_risk,
            "amount_at_risk_of_losing_cover": str(self.at_risk_amount),
            "expected_indemnity": str(self.expected_indemnity),
            "stop_supply_customers": self.stop_supply_customers,
        }


def totals_by_currency(
    obligations: Iterable[Obligation], as_of: date
) -> dict[str, ObligationTotals]:
    out: dict[str, ObligationTotals] = {}
    stopped: dict[str, set[int]] = {}
    for o in obligations:
        currency = o.currency
        t = out.get(currency)
        if t is None:
            t = out[currency] = ObligationTotals()
        t.invoices += 1
        status = o.status
        if status == "missed":
            t.deadlines_missed += 1
            t.missed_amount += o.eligible
        elif status == "at_risk":
            t.at_risk += 1
            t.at_risk_amount += o.eligible
        if status != "below_minimum" and status != "no_terms":
            t.expected_indemnity += o.expected_indemnity
        stop = o.stop_supplies_from
        if stop is not None and stop <= as_of:
            stopped.setdefault(currency, set()).add(o.customer_id)
    for currency, ids in stopped.items():
        out[currency].stop_supply_customers = len(ids)
    return out


@dataclass
class CustomerObligationFacts:
    """The rule facts of one customer's obligations (`cobro.rules.facts`)."""

    days_to_declaration_deadline: int | None = None
    days_to_claim_deadline: int | None = None
    days_to_stop_supply: int | None = None
    stop_supply: bool = False
    declarations_missed: int = 0
    amount_at_risk: Decimal = ZERO

    def as_facts(self) -> dict[str, Any]:
        return {
            "days_to_declaration_deadline": self.days_to_declaration_deadline,
            "days_to_claim_deadline": self.days_to_claim_deadline,
            "days_to_stop_supply": self.days_to_stop_supply,
            "stop_supply": self.stop_supply,
            "declarations_missed": self.declarations_missed,
            "amount_at_risk": self.amount_at_risk,
        }


def facts_by_customer(
    obligations: Iterable[Obligation], as_of: date
) -> dict[int, CustomerObligationFacts]:
    """Per customer: days to its next declaration / claim deadline (none passed yet), days to
    its stop-supply date (negative once passed), declarations missed, amount at risk."""
    out: dict[int, CustomerObligationFacts] = {}
    with collector_paused():
        _add_facts(obligations, as_of, out)
    return out


def _add_facts(
    obligations: Iterable[Obligation], as_of: date, out: dict[int, CustomerObligationFacts]
) -> None:
    f: CustomerObligationFacts | None = None
    current = -1
    for o in obligations:
        cid = o.customer_id
        if cid != current or f is None:  # obligations mostly come customer by customer
            current = cid
            f = out.get(cid)
            if f is None:
                f = out[cid] = CustomerObligationFacts()
        if o.declaration_required:
            status = o.status
            if status == "missed":
                f.declarations_missed += 1
            else:
                days = (o.declare_by - as_of).days  # type: ignore[operator]
                now = f.days_to_declaration_deadline
                if days >= 0 and (now is None or days < now):
                    f.days_to_declaration_deadline = days
                if status == "at_risk":
                    f.amount_at_risk += o.eligible
            days = (o.claim_by - as_of).days  # type: ignore[operator]
            now = f.days_to_claim_deadline
            if days >= 0 and (now is None or days < now):
                f.days_to_claim_deadline = days
        stop = o.stop_supplies_from
        if stop is not None:
            days = (stop - as_of).days
            if f.days_to_stop_supply is None or days < f.days_to_stop_supply:
                f.days_to_stop_supply = days
            if days <= 0:
                f.stop_supply = True
