"""Exposure of every customer from the database, in batches of set-based queries.

    for batch in iter_exposures(conn, as_of, rules):     # all customers, by id pages
        for e in batch: ...
    exposures_for(conn, as_of, rules, ids=[3, 7])        # a few customers

A batch costs a fixed number of queries whatever its size: customers, open invoices grouped
by customer and currency (CASE sums per bucket), covers in force grouped by customer /
currency / named / policy, plus the rule facts (`cobro.rules.facts_sql`) only when an
unnamed-buyer policy has a condition (and the caller did not pass them). The same SQL runs
on SQLite and PostgreSQL. `fill_limit_facts` gives the rule facts their limit figures from
here; `cobro.exposure.book` is the whole portfolio's exposure, read once per request.

Currency: amounts of different currencies are never added. Each customer's exposure is in
one currency (`exposure_currency`: the one of most of its open invoices, else of its covers
in force, else its own limit's); its invoices and covers in other currencies are left out
(and said so in the explanation), its own limit counts when given in that currency or
without a currency.

In force (as in `facts_sql`): status granted / partially granted / active / reduced,
`valid_from` null or ≤ as_of, `valid_until` null or ≥ as_of. A cover with `nominative`
false is the insurer's unnamed-buyer cover: it never counts as a named cover; it tells that
its policy covers the customer (see `rules/exposure.yaml`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, case, func, literal, select, type_coerce, union_all
from sqlalchemy.orm import aliased

from cobro.exposure.compute import (
    ZERO,
    CustomerAmounts,
    Exposure,
    ExposureRules,
    compute_exposure,
    limit_facts,
)
from cobro.models import Customer, InsurerCover, Invoice, PaymentAllocation
from cobro.rules.facts_sql import (
    BATCH_SIZE,
    cover_in_force,
    customer_id_pages,
    facts_for_range,
    iter_facts,
)
from cobro.types import Money


def _in_batch(column: Any, ids: Sequence[int] | None, lo: int, hi: int) -> Any:
    if ids is not None:
        return column.in_(ids)
    return and_(column >= lo, column <= hi)


def _sum_if(amount: Any, condition: Any) -> Any:
    zero = literal(ZERO, Money())
    return type_coerce(
        func.coalesce(func.sum(case((condition, amount), else_=zero)), zero), Money()
    )


def amounts_batch(
    conn: Connection,
    as_of: date,
    rules: ExposureRules,
    ids: Sequence[int] | None = None,
    lo: int = 0,
    hi: int = 0,
    facts: Mapping[int, Mapping[str, Any]] | None = None,
) -> list[CustomerAmounts]:
    """The `CustomerAmounts` of the customers `ids` (or with id in [lo, hi]), by id.

    `facts`: the rule facts of these customers when the caller has them already (the
    classification does): the unnamed-buyer conditions read them instead of a new query."""
    rows: dict[int, dict[str, Any]] = {}
    own_currency: dict[int, str | None] = {}
    for cid, account, name, segment, own_limit, limit_currency in conn.execute(
        select(
            Customer.id,
            Customer.account,
            Customer.name,
            Customer.segment,
            Customer.discretionary_limit,
            Customer.discretionary_limit_currency,
        )
        .where(_in_batch(Customer.id, ids, lo, hi))
        .order_by(Customer.id)
    ).all():
        rows[cid] = {
            "customer_id": cid,
            "account": account,
            "name": name,
            "segment": segment,
            "own_limit": own_limit,
        }
        own_currency[cid] = limit_currency
    if not rows:
        return []

    # what was open at as_of (as `cobro.kpis` rebuilds it): the invoices issued by then and
    # open now, plus the allocations of payments dated after as_of (with copies of their
    # invoice's customer, currency and dates; the dispute flag is the invoice's)
    alloc = PaymentAllocation
    paid_to = aliased(Invoice, name="paid_to")
    rows_at = union_all(
        select(
            Invoice.customer_id.label("cid"),
            Invoice.currency.label("currency"),
            Invoice.due_date.label("due"),
            Invoice.disputed.label("disputed"),
            Invoice.open_amount.label("amount"),
        ).where(
            _in_batch(Invoice.customer_id, ids, lo, hi),
            Invoice.open_amount != 0,
            Invoice.issue_date <= as_of,
        ),
        select(alloc.customer_id, alloc.currency, alloc.due_date, paid_to.disputed, alloc.amount)
        .join(paid_to, paid_to.id == alloc.invoice_id)
        .where(
            _in_batch(alloc.customer_id, ids, lo, hi),
            alloc.payment_date > as_of,
            alloc.issue_date <= as_of,
        ),
    ).subquery("open_at")
    o = rows_at.c
    due = o.due < as_of
    not_due = o.due >= as_of
    disputed = o.disputed.is_(True)
    undisputed = o.disputed.is_(False)
    positive = o.amount > 0
    open_by: dict[int, dict[str, dict[str, Decimal]]] = {}
    for cid, currency, overdue, current, d_overdue, d_current, credits in conn.execute(
        select(
            o.cid,
            o.currency,
            _sum_if(o.amount, and_(positive, due, undisputed)),
            _sum_if(o.amount, and_(positive, not_due, undisputed)),
            _sum_if(o.amount, and_(positive, due, disputed)),
            _sum_if(o.amount, and_(positive, not_due, disputed)),
            _sum_if(o.amount, o.amount < 0),
        ).group_by(o.cid, o.currency)
    ).all():
        open_by.setdefault(cid, {})[currency] = {
            "overdue": overdue,
            "not_due": current,
            "disputed_overdue": d_overdue,
            "disputed_not_due": d_current,
            "credit_notes": credits,
        }

    in_force = cover_in_force(InsurerCover, as_of)
    granted = type_coerce(
        func.coalesce(func.sum(InsurerCover.granted_amount), literal(ZERO, Money())), Money()
    )
    covers_by: dict[int, list[tuple[str, bool, str, Decimal]]] = {}
    for cid, currency, nominative, policy, amount in conn.execute(
        select(
            InsurerCover.customer_id,
            InsurerCover.currency,
            InsurerCover.nominative,
            InsurerCover.policy_id,
            granted,
        )
        .where(_in_batch(InsurerCover.customer_id, ids, lo, hi), in_force)
        .group_by(
            InsurerCover.customer_id,
            InsurerCover.currency,
            InsurerCover.nominative,
            InsurerCover.policy_id,
        )
        .order_by(InsurerCover.customer_id, InsurerCover.policy_id)
    ).all():
        covers_by.setdefault(cid, []).append((currency, bool(nominative), policy, amount))

    for cid, r in rows.items():  # the exposure currency's amounts only
        opened = open_by.get(cid, {})
        covers = covers_by.get(cid, [])
        currency = exposure_currency(opened, covers, own_currency[cid])
        r["currency"] = currency
        r["other_currencies"] = tuple(
            sorted(({*opened} | {c for c, *_ in covers}) - {currency})  # type: ignore[arg-type]
        )
        if own_currency[cid] not in (None, currency) and currency is not None:
            r["own_limit"] = None  # a limit in another currency does not apply
        r.update(opened.get(currency, {}))  # type: ignore[arg-type]
        for cur, nominative, policy, amount in covers:
            if cur != currency:
                continue
            if nominative:
                r["named_cover"] = r.get("named_cover", ZERO) + amount
                r["named_policies"] = (*r.get("named_policies", ()), policy)
            else:
                r["unnamed_policies"] = r.get("unnamed_policies", frozenset()) | {policy}

    if rules.needs_facts and any("named_cover" not in r for r in rows.values()):
        wanted = sorted(cid for cid, r in rows.items() if "named_cover" not in r)
        if facts is not None and all(cid in facts for cid in wanted):
            for cid in wanted:
                rows[cid]["facts"] = facts[cid]
        elif ids is None and 4 * len(wanted) > len(rows):
            # most of the id range needs them: one range-bounded batch, not an IN list of
            # thousands of ids (bound, split and planned at every query: 3× the cost)
            for cid, f in facts_for_range(conn, as_of, lo, hi):
                if cid in rows and "named_cover" not in rows[cid]:
                    rows[cid]["facts"] = f
        else:
            for batch in iter_facts(conn, as_of, ids=wanted, batch_size=max(len(wanted), 1)):
                for cid, f in batch:
                    rows[cid]["facts"] = f
    return [CustomerAmounts(**r) for r in rows.values()]


def exposure_currency(
    opened: Mapping[str, Mapping[str, Decimal]],
    covers: Sequence[tuple[str, bool, str, Decimal]],
    own_currency: str | None,
) -> str | None:
    """The customer's exposure currency: the one of most of its open invoices, else of most
    of its covers in force, else its own limit's, else the one of its open credit notes
    (ties: alphabetical); None when it has none of these."""

    def largest(weights: dict[str, Decimal]) -> str | None:
        best = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))
        return best[0][0] if best else None

    owed = {
        cur: sum((v for k, v in parts.items() if k != "credit_notes"), ZERO)
        for cur, parts in opened.items()
    }
    found = largest({c: v for c, v in owed.items() if v > 0})
    if found is None:
        cover: dict[str, Decimal] = {}
        for cur, _, _, amount in covers:
            cover[cur] = cover.get(cur, ZERO) + amount
        found = largest(cover)
    if found is None:
        found = own_currency or (min(opened) if opened else None)
    return found


def iter_exposures(
    conn: Connection,
    as_of: date,
    rules: ExposureRules,
    ids: Sequence[int] | None = None,
    batch_size: int = BATCH_SIZE,
    explain: bool = False,
) -> Iterator[list[Exposure]]:
    """Batches of exposures ordered by customer id: every customer, or only `ids`."""
    if ids is not None:
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), batch_size):
            chunk = wanted[start : start + batch_size]
            yield [
                compute_exposure(a, rules, explain)
                for a in amounts_batch(conn, as_of, rules, ids=chunk)
            ]
        return
    for lo, hi in customer_id_pages(conn, batch_size):
        yield [
            compute_exposure(a, rules, explain)
            for a in amounts_batch(conn, as_of, rules, lo=lo, hi=hi)
        ]


def exposures_for(
    conn: Connection,
    as_of: date,
    rules: ExposureRules,
    ids: Sequence[int] | None = None,
    explain: bool = False,
) -> list[Exposure]:
    """Every customer's exposure (or that of `ids`), ordered by customer id."""
    out: list[Exposure] = []
    for batch in iter_exposures(conn, as_of, rules, ids, explain=explain):
        out.extend(batch)
    return out


def fill_limit_facts(
    conn: Connection,
    as_of: date,
    rules: ExposureRules,
    batch: Sequence[tuple[int, dict[str, Any]]],
    id_range: tuple[int, int] | None = None,
) -> None:
    """Set the limit facts (`total_limit`, `over_limit`, `limit_usage`) of a batch of rule
    facts from the customers' exposures: the rules read the exposure engine's figures.
    `id_range`: the batch is every customer with an id in that range (a page): read by
    that range rather than by a list of thousands of ids."""
    if not batch:
        return
    known = dict(batch)
    if id_range is not None:
        amounts = amounts_batch(conn, as_of, rules, lo=id_range[0], hi=id_range[1], facts=known)
    else:
        amounts = amounts_batch(conn, as_of, rules, ids=sorted(known), facts=known)
    found = {e.customer_id: e for e in (compute_exposure(a, rules) for a in amounts)}
    for cid, facts in batch:
        facts.update(limit_facts(found.get(cid)))


def customer_ids_by_account(conn: Connection, accounts: Sequence[str]) -> dict[str, int]:
    rows = conn.execute(select(Customer.account, Customer.id).where(Customer.account.in_(accounts)))
    return {account: cid for account, cid in rows}


__all__ = [
    "amounts_batch",
    "customer_ids_by_account",
    "exposure_currency",
    "exposures_for",
    "fill_limit_facts",
    "iter_exposures",
]
