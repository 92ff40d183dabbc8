"""Exposure of every customer from the database, in batches of set-based queries.

    for batch in iter_exposures(conn, as_of, rules):     # all customers, by id pages
        for e in batch: ...
    exposures_for(conn, as_of, rules, ids=[3, 7])        # a few customers

A batch costs a fixed number of queries whatever its size: customers, open invoices grouped
by customer (CASE sums per bucket), covers in force grouped by customer / named / policy,
plus the rule facts (`cobro.rules.facts_sql`) only when an unnamed-buyer policy has a
condition. The same SQL runs on SQLite and PostgreSQL.

In force (as in `facts_sql`): status granted / partially granted / active / reduced,
`valid_from` null or ≤ as_of, `valid_until` null or ≥ as_of. A cover with `nominative`
false is the insurer's unnamed-buyer cover: it never counts as a named cover; it tells that
its policy covers the customer (see `rules/exposure.yaml`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Connection, and_, case, func, literal, select, type_coerce

from cobro.exposure.compute import (
    ZERO,
    CustomerAmounts,
    Exposure,
    ExposureRules,
    compute_exposure,
)
from cobro.models import Customer, InsurerCover, Invoice
from cobro.rules.facts_sql import BATCH_SIZE, cover_in_force, customer_id_pages, iter_facts
from cobro.types import Money


def _in_batch(column: Any, ids: Sequence[int] | None, lo: int, hi: int) -> Any:
    if ids is not None:
        return column.in_(ids)
    return and_(column >= lo, column <= hi)


def _sum_if(condition: Any) -> Any:
    zero = literal(ZERO, Money())
    return type_coerce(
        func.coalesce(func.sum(case((condition, Invoice.open_amount), else_=zero)), zero), Money()
    )


def amounts_batch(
    conn: Connection,
    as_of: date,
    rules: ExposureRules,
    ids: Sequence[int] | None = None,
    lo: int = 0,
    hi: int = 0,
) -> list[CustomerAmounts]:
    """The `CustomerAmounts` of the customers `ids` (or with id in [lo, hi]), by id."""
    rows: dict[int, dict[str, Any]] = {}
    for cid, account, name, segment, own_limit in conn.execute(
        select(
            Customer.id,
            Customer.account,
            Customer.name,
            Customer.segment,
            Customer.discretionary_limit,
        )
        .where(_in_batch(Customer.id, ids, lo, hi))
        .order_by(Customer.id)
    ):
        rows[cid] = {
            "customer_id": cid,
            "account": account,
            "name": name,
            "segment": segment,
            "own_limit": own_limit,
        }
    if not rows:
        return []

    due = Invoice.due_date < as_of
    not_due = Invoice.due_date >= as_of
    disputed = Invoice.disputed.is_(True)
    undisputed = Invoice.disputed.is_(False)
    positive = Invoice.open_amount > 0
    for cid, overdue, current, d_overdue, d_current, credits in conn.execute(
        select(
            Invoice.customer_id,
            _sum_if(and_(positive, due, undisputed)),
            _sum_if(and_(positive, not_due, undisputed)),
            _sum_if(and_(positive, due, disputed)),
            _sum_if(and_(positive, not_due, disputed)),
            _sum_if(Invoice.open_amount < 0),
        )
        .where(_in_batch(Invoice.customer_id, ids, lo, hi), Invoice.open_amount != 0)
        .group_by(Invoice.customer_id)
    ):
        r = rows.get(cid)
        if r is not None:
            r.update(
                overdue=overdue,
                not_due=current,
                disputed_overdue=d_overdue,
                disputed_not_due=d_current,
                credit_notes=credits,
            )

    in_force = cover_in_force(InsurerCover, as_of)
    granted = type_coerce(
        func.coalesce(func.sum(InsurerCover.granted_amount), literal(ZERO, Money())), Money()
    )
    for cid, nominative, policy, amount in conn.execute(
        select(InsurerCover.customer_id, InsurerCover.nominative, InsurerCover.policy_id, granted)
        .where(_in_batch(InsurerCover.customer_id, ids, lo, hi), in_force)
        .group_by(InsurerCover.customer_id, InsurerCover.nominative, InsurerCover.policy_id)
        .order_by(InsurerCover.customer_id, InsurerCover.policy_id)
    ):
        r = rows.get(cid)
        if r is None:
            continue
        if nominative:
            r["named_cover"] = r.get("named_cover", ZERO) + amount
            r["named_policies"] = (*r.get("named_policies", ()), policy)
        else:
            r["unnamed_policies"] = r.get("unnamed_policies", frozenset()) | {policy}

    if rules.needs_facts and any("named_cover" not in r for r in rows.values()):
        wanted = sorted(cid for cid, r in rows.items() if "named_cover" not in r)
        for batch in iter_facts(conn, as_of, ids=wanted, batch_size=max(len(wanted), 1)):
            for cid, facts in batch:
                rows[cid]["facts"] = facts
    return [CustomerAmounts(**r) for r in rows.values()]


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


def customer_ids_by_account(conn: Connection, accounts: Sequence[str]) -> dict[str, int]:
    rows = conn.execute(select(Customer.account, Customer.id).where(Customer.account.in_(accounts)))
    return {account: cid for account, cid in rows}


__all__ = [
    "amounts_batch",
    "customer_ids_by_account",
    "exposures_for",
    "iter_exposures",
]
