"""Payments: immutable, keyed by `reference`, allocated in file order.

A reference already imported with identical data is left alone; with different data it is
an error (a payment cannot be edited by re-import). A new payment is allocated with
`allocation.allocate` against the customer's open invoices as they stand at that point of
the file; allocations lower the invoices' `open_amount`, and the rest is kept as the
payment's `unallocated_amount`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, insert, select

from cobro.formatting import jsonable
from cobro.importing.allocation import OpenInvoice, allocate
from cobro.importing.reader import Row, error_line
from cobro.importing.schemas import PaymentRow
from cobro.importing.upsert import (
    Context,
    Counts,
    add_events,
    check_accounts,
    chunks,
    customers_t,
    event,
    fetch_by_keys,
    insert_returning_ids,
    update_by_id,
)
from cobro.models import Invoice, Payment, PaymentAllocation, allocation_values

payments_t: Table = Payment.__table__  # type: ignore[assignment]
invoices_t: Table = Invoice.__table__  # type: ignore[assignment]
allocations_t: Table = PaymentAllocation.__table__  # type: ignore[assignment]
ZERO = Decimal(0)


@dataclass
class Plan:
    new: list[tuple[Row, PaymentRow, int]] = field(default_factory=list)
    unchanged: int = 0


def check(
    conn: Connection,
    file: str,
    rows: list[Row],
    good: list[tuple[Row, PaymentRow]],
    errors: list[tuple[int, str]],
) -> Plan:
    accounts = check_accounts(conn, file, rows, errors)
    p, i = payments_t.c, invoices_t.c
    existing = fetch_by_keys(
        conn,
        p.reference,
        (m.reference for _, m in good),
        [p.reference, p.customer_id, p.date, p.currency, p.amount, p.invoice_number],
    )
    named = fetch_by_keys(
        conn,
        i.number,
        (m.invoice for _, m in good if m.invoice),
        [i.number, i.id, i.customer_id, i.currency],
    )
    owners = _accounts_of(conn, {inv.customer_id for inv in named.values()})
    plan = Plan()

    def bad(row: Row, column: str, message: str) -> None:
        errors.append((row.line, error_line(file, row.line, column, message)))

    for row, m in good:
        customer_id = accounts.get(m.account)
        if customer_id is None:
            continue  # reported by check_accounts
        old = existing.get(m.reference)
        if old is not None:
            diff = _differences(old, m, customer_id)
            if diff:
                bad(
                    row,
                    "reference",
                    f"payment {m.reference} was already imported with different data"
                    f" ({diff}); payments cannot be changed",
                )
            else:
                plan.unchanged += 1
            continue
        if m.invoice:
            inv = named.get(m.invoice)
            if inv is None:
                bad(row, "invoice", f"unknown invoice {m.invoice!r}")
                continue
            if inv.customer_id != customer_id:
                owner = owners.get(inv.customer_id)
                bad(row, "invoice", f"invoice {m.invoice} belongs to account {owner}")
                continue
            if inv.currency != m.currency:
                bad(row, "invoice", f"invoice {m.invoice} is in {inv.currency}, not {m.currency}")
                continue
        plan.new.append((row, m, customer_id))
    return plan


def _accounts_of(conn: Connection, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    c = customers_t.c
    return dict(conn.execute(select(c.id, c.account).where(c.id.in_(ids))).all())


def _differences(old: Any, m: PaymentRow, customer_id: int) -> str:
    pairs = [
        ("account", old.customer_id, customer_id),
        ("date", old.date, m.date),
        ("currency", old.currency, m.currency),
        ("amount", old.amount, m.amount),
        ("invoice", old.invoice_number, m.invoice),
    ]
    out = []
    for name, before, after in pairs:
        if before != after:
            if name == "account":
                out.append(f"account changed to {m.account}")
            else:
                out.append(f"{name} {jsonable(before)} -> {jsonable(after)}")
    return ", ".join(out)


def _load_open(
    conn: Connection, customer_ids: set[int], cache: dict[int, dict[int, OpenInvoice]]
) -> None:
    i = invoices_t.c
    for cid in customer_ids:
        cache[cid] = {}
    stmt = select(
        i.id,
        i.number,
        i.customer_id,
        i.due_date,
        i.issue_date,
        i.currency,
        i.open_amount,
        i.disputed,
    ).where(i.customer_id.in_(customer_ids), i.open_amount > ZERO, i.amount > ZERO)
    for r in conn.execute(stmt):
        cache[r.customer_id][r.id] = OpenInvoice(
            r.id, r.number, r.due_date, r.issue_date, r.currency, r.open_amount, r.disputed
        )


def write(ctx: Context, plan: Plan) -> Counts:
    counts = Counts(unchanged=plan.unchanged)
    cache: dict[int, dict[int, OpenInvoice]] = {}  # customer id -> its open invoices, live
    unallocated_payments = 0
    for batch in chunks(plan.new, ctx.batch_size):
        missing = {cid for _, _, cid in batch if cid not in cache}
        for part in chunks(sorted(missing), ctx.batch_size):
            _load_open(ctx.conn, set(part), cache)
        inserts: list[dict[str, Any]] = []
        results = []
        touched: dict[int, Decimal] = {}
        for _row, m, cid in batch:
            opens = cache[cid]
            result = allocate(m.amount, m.currency, list(opens.values()), m.invoice)
            for alloc in result.allocations:
                left = alloc.invoice.open_amount - alloc.amount
                touched[alloc.invoice.id] = left
                if left > ZERO:
                    opens[alloc.invoice.id] = replace(alloc.invoice, open_amount=left)
                else:
                    del opens[alloc.invoice.id]
            if result.unallocated > ZERO:
                unallocated_payments += 1
            results.append(result)
            inserts.append(
                {
                    "reference": m.reference,
                    "customer_id": cid,
                    "date": m.date,
                    "currency": m.currency,
                    "amount": m.amount,
                    "invoice_number": m.invoice,
                    "unallocated_amount": result.unallocated,
                    "created_at": ctx.now,
                    "updated_at": ctx.now,
                }
            )
        ids = insert_returning_ids(ctx.conn, payments_t, inserts)
        counts.created += len(ids)
        allocation_rows = [
            {
                **allocation_values(
                    pid,
                    m.date,
                    a.amount,
                    invoice_id=a.invoice.id,
                    customer_id=cid,
                    currency=a.invoice.currency,
                    issue_date=a.invoice.issue_date,
                    due_date=a.invoice.due_date,
                ),
                "created_at": ctx.now,
            }
            for pid, result, (_row, m, cid) in zip(ids, results, batch, strict=True)
            for a in result.allocations
        ]
        if allocation_rows:
            ctx.conn.execute(insert(allocations_t), allocation_rows)
        update_by_id(
            ctx.conn,
            invoices_t,
            ["open_amount", "updated_at"],
            [{"id": k, "open_amount": v, "updated_at": ctx.now} for k, v in touched.items()],
        )
        add_events(
            ctx,
            [
                _received(ctx, values, result)
                for values, result in zip(inserts, results, strict=True)
            ],
        )
    counts.extra["unallocated_payments"] = unallocated_payments
    return counts


def _received(ctx: Context, values: dict[str, Any], result: Any) -> tuple[Any, ...]:
    amount, currency = jsonable(values["amount"]), values["currency"]
    paid = ", ".join(f"{a.invoice.number} ({jsonable(a.amount)})" for a in result.allocations)
    summary = f"Payment {values['reference']} of {amount} {currency} received"
    summary += f": allocated to {paid}" if paid else ""
    if result.unallocated > ZERO:
        summary += f"; {jsonable(result.unallocated)} {currency} unallocated"
    return event(
        ctx,
        values["customer_id"],
        "payment.received",
        summary,
        {
            "payment": values["reference"],
            "date": values["date"].isoformat(),
            "amount": amount,
            "currency": currency,
            "invoice": values["invoice_number"],
            "allocations": [
                {"invoice": a.invoice.number, "amount": jsonable(a.amount)}
                for a in result.allocations
            ],
            "unallocated": jsonable(result.unallocated),
        },
    )
