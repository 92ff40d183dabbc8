"""The insurer obligations of every insured open invoice, from the database, in batches.

    rules = ObligationRules.of(ruleset)                       # insurance.yaml + exposure.yaml
    for batch in iter_obligations(conn, as_of, rules): ...    # every customer, by id pages
    obligations_for(conn, as_of, rules, ids=[3])              # a few customers
    obligation_facts(conn, as_of, rules, lo=1, hi=5000)       # the rule facts of a page

A batch of customers costs a fixed number of queries: the open invoices (`open_amount > 0`)
with their customer's account, then `cobro.exposure.insured.insured_on` for the distinct
(customer, due date) pairs (the covers once; the rule facts per distinct due date only when
an unnamed-buyer policy of exposure.yaml has a condition). The dates and amounts are computed
by the pure `cobro.insurers.obligations`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, and_, select

from cobro.exposure.compute import ExposureRules
from cobro.exposure.insured import insured_on
from cobro.exposure.rulefile import rules_of
from cobro.insurers import obligations as pure
from cobro.insurers.obligations import InsuredInvoice, Obligation
from cobro.insurers.terms import InsuranceTerms
from cobro.insurers.terms_rulefile import terms_of
from cobro.models import Customer, InsurerDeclaration, Invoice
from cobro.rules.facts_sql import BATCH_SIZE, customer_id_pages


@dataclass(frozen=True)
class ObligationRules:
    """What the obligations read of a ruleset: the policy terms and the exposure rules."""

    terms: InsuranceTerms
    exposure: ExposureRules

    @classmethod
    def of(cls, ruleset: Any) -> ObligationRules:
        return cls(terms_of(ruleset), rules_of(ruleset))

    @property
    def any_terms(self) -> bool:
        return bool(self.terms.policies)


_new = tuple.__new__  # a named tuple without its Python-level __new__ (one per open invoice)


def _where(ids: Sequence[int] | None, lo: int, hi: int) -> Any:
    if ids is not None:
        return Invoice.customer_id.in_(ids)
    # the customers' range too: without it PostgreSQL hashes every customer for each page
    return and_(
        Invoice.customer_id >= lo,
        Invoice.customer_id <= hi,
        Customer.id >= lo,
        Customer.id <= hi,
    )


def insured_invoices(
    conn: Connection,
    as_of: date,
    rules: ObligationRules,
    ids: Sequence[int] | None = None,
    lo: int = 0,
    hi: int = 0,
    exact: bool = False,
    facts: Mapping[int, Mapping[str, Any]] | None = None,
) -> list[InsuredInvoice]:
    """The open invoices of the customers `ids` (or with id in [lo, hi]) insured at their due
    date (the covers in force that day; an unnamed-buyer policy's conditions read the facts
    of `as_of`, or with `exact` those of each due date, as the dunning step decides it for
    one customer), grouped by customer, oldest due first. `facts`: the rule facts of these
    customers as of `as_of` (`cobro.rules.facts_sql`) when the caller has them already."""
    rows = conn.execute(
        select(
            Invoice.customer_id,
            Customer.account,
            Invoice.number,
            Invoice.due_date,
            Invoice.currency,
            Invoice.open_amount,
            Invoice.disputed,
            Invoice.id,
        )
        .join(Customer, Customer.id == Invoice.customer_id)
        .where(_where(ids, lo, hi), Invoice.open_amount > 0)
        .order_by(Invoice.customer_id, Invoice.due_date, Invoice.number)
    ).all()
    if not rows:
        return []
    oldest: dict[int, date] = {}
    for row in rows:
        cid, due = row[0], row[3]
        if cid not in oldest or due < oldest[cid]:
            oldest[cid] = due
    decisions = insured_on(
        conn,
        rules.exposure,
        {(r[0], r[3]) for r in rows},
        facts_on=None if exact else as_of,
        id_range=(lo, hi) if ids is None else None,
        facts=None if exact else facts,
    )
    declared = _declared(conn, ids, lo, hi)
    out: list[InsuredInvoice] = []
    for cid, account, number, due, currency, open_amount, disputed, invoice_id in rows:
        d = decisions[(cid, due)]
        if d.insured:
            out.append(
                _new(
                    InsuredInvoice,
                    (
                        cid,
                        account,
                        number,
                        due,
                        currency,
                        open_amount,
                        d.policies,
                        d.amount,
                        d.basis,
                        oldest[cid],
                        bool(disputed),
                        invoice_id in declared,
                    ),
                )
            )
    return out


def _declared(conn: Connection, ids: Sequence[int] | None, lo: int, hi: int) -> set[int]:
    """The invoices of these customers whose overdue declaration (OVD) reached the insurer."""
    d = InsurerDeclaration
    where = d.customer_id.in_(ids) if ids is not None else d.customer_id.between(lo, hi)
    return set(
        conn.scalars(
            select(d.invoice_id).where(
                where, d.category == "OVD", d.status.in_(("filed", "registered"))
            )
        )
    )


def iter_obligations(
    conn: Connection,
    as_of: date,
    rules: ObligationRules,
    ids: Sequence[int] | None = None,
    batch_size: int = BATCH_SIZE,
    exact: bool = False,
) -> Iterator[list[Obligation]]:
    """Batches of obligations, customer by customer in id order (every customer, or `ids`)."""
    if ids is not None:
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), batch_size):
            chunk = wanted[start : start + batch_size]
            invoices = insured_invoices(conn, as_of, rules, ids=chunk, exact=exact)
            yield pure.compute_obligations(invoices, rules.terms, as_of)
        return
    for lo, hi in customer_id_pages(conn, batch_size):
        invoices = insured_invoices(conn, as_of, rules, lo=lo, hi=hi)
        yield pure.compute_obligations(invoices, rules.terms, as_of)


def obligations_for(
    conn: Connection,
    as_of: date,
    rules: ObligationRules,
    ids: Sequence[int] | None = None,
    exact: bool = False,
) -> list[Obligation]:
    out: list[Obligation] = []
    for batch in iter_obligations(conn, as_of, rules, ids, exact=exact):
        out.extend(batch)
    return out


def obligation_facts(
    conn: Connection,
    as_of: date,
    rules: ObligationRules,
    ids: Sequence[int] | None = None,
    lo: int = 0,
    hi: int = 0,
    facts: Mapping[int, Mapping[str, Any]] | None = None,
) -> dict[int, dict[str, Any]]:
    """Customer id -> its obligation rule facts (`cobro.rules.facts`), for the customers
    `ids` (or with id in [lo, hi]) that have insured open invoices; nothing without terms.
    `facts`: their rule facts as of `as_of` when the caller has them (`insured_invoices`)."""
    if not rules.any_terms:
        return {}
    invoices = insured_invoices(conn, as_of, rules, ids=ids, lo=lo, hi=hi, facts=facts)
    facts = pure.facts_by_customer(pure.iter_obligations(invoices, rules.terms, as_of), as_of)
    return {cid: f.as_facts() for cid, f in facts.items()}


def portfolio_totals(
    conn: Connection, as_of: date, rules: ObligationRules
) -> dict[str, pure.ObligationTotals]:
    """Per currency: deadlines missed, amount at risk of losing cover, expected indemnity."""
    out: dict[str, pure.ObligationTotals] = {}
    for batch in iter_obligations(conn, as_of, rules):
        for currency, t in pure.totals_by_currency(batch, as_of).items():
            acc = out.setdefault(currency, pure.ObligationTotals())
            acc.invoices += t.invoices
            acc.deadlines_missed += t.deadlines_missed
            acc.missed_amount += t.missed_amount
            acc.at_risk += t.at_risk
            acc.at_risk_amount += t.at_risk_amount
            acc.expected_indemnity += t.expected_indemnity
            acc.stop_supply_customers += t.stop_supply_customers
    return out


def select_obligations(
    conn: Connection,
    as_of: date,
    rules: ObligationRules,
    within_days: int | None = None,
    ids: Sequence[int] | None = None,
) -> Iterator[Obligation]:
    """The obligations the CLI, the page and the API list: every one, or (`within_days`)
    those with a deadline (extension end, declare-by, claim-by, stop-supply) from `as_of` to
    `as_of` + N days, plus the missed declarations (they need acting on now)."""
    end = as_of + timedelta(days=within_days) if within_days is not None else None
    for batch in iter_obligations(conn, as_of, rules, ids):
        for o in batch:
            if end is None or o.status == "missed" or o.deadlines_between(as_of, end):
                yield o
