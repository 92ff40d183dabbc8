"""Invoices: upsert on `number`.

`open_amount` in the file is the ERP's open amount *before* the payments imported into
Cobro: the stored open amount is `open_amount - (sum of allocations of imported payments)`,
floored at 0. Re-importing the same invoices file after its payments therefore changes
nothing, and a later ERP value replaces the base without forgetting Cobro's allocations.
Credit notes (negative `amount`, `open_amount` between `amount` and 0) never receive
allocations.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, func, select, update

from cobro.formatting import jsonable
from cobro.importing.reader import Row
from cobro.importing.schemas import InvoiceRow
from cobro.importing.upsert import (
    Context,
    Counts,
    add_events,
    changes,
    chunks,
    customers_t,
    event,
    fetch_by_keys,
    update_by_id,
)
from cobro.models import INVOICE_COPIES, Invoice, InvoiceDispute, PaymentAllocation

invoices_t: Table = Invoice.__table__  # type: ignore[assignment]
allocations_t: Table = PaymentAllocation.__table__  # type: ignore[assignment]
FIELDS = ("customer_id", "issue_date", "due_date", "currency", "amount", "open_amount", "disputed")
INSERT_COLUMNS = ("number", *FIELDS)
ZERO = Decimal(0)


def allocated_sums(conn: Connection, invoice_ids: list[int]) -> dict[int, Decimal]:
    if not invoice_ids:
        return {}
    a = allocations_t.c
    stmt = (select(a.invoice_id, func.sum(a.amount)).where(a.invoice_id.in_(invoice_ids))).group_by(
        a.invoice_id
    )
    return {invoice_id: total for invoice_id, total in conn.execute(stmt)}


def copy_invoice_fields(conn: Connection, invoice_ids: list[int]) -> None:
    """Bring the copies of the invoices' customer, currency and dates on their allocations
    in step (see `PaymentAllocation`)."""
    if not invoice_ids:
        return
    a, i = allocations_t.c, invoices_t.c
    conn.execute(
        update(allocations_t)
        .where(a.invoice_id.in_(invoice_ids))
        .values(
            {
                name: select(i[name]).where(i.id == a.invoice_id).scalar_subquery()
                for name in INVOICE_COPIES
            }
        )
    )


def held_by_dispute(conn: Connection, invoice_ids: list[int]) -> set[int]:
    """Invoices with a dispute a collector opened in Cobro and did not resolve: the ERP's
    `disputed=false` does not clear it (`cobro dunning resolve` does)."""
    if not invoice_ids:
        return set()
    d = InvoiceDispute.__table__.c
    return set(
        conn.scalars(
            select(d.invoice_id).where(d.invoice_id.in_(invoice_ids), d.resolved_at.is_(None))
        )
    )


def target_open(model: InvoiceRow, allocated: Decimal) -> Decimal:
    base = model.effective_open_amount
    if model.amount <= ZERO or not allocated:
        return base
    return max(ZERO, base - allocated)


def write(ctx: Context, rows: list[tuple[Row, InvoiceRow]], accounts: dict[str, int]) -> Counts:
    counts = Counts()
    i = invoices_t.c
    select_cols = [i.id, i.number, *(i[name] for name in FIELDS)]
    insert = ctx.inserter(invoices_t, INSERT_COLUMNS, created_at=ctx.now, updated_at=ctx.now)
    for batch in chunks(rows, ctx.batch_size):
        existing = fetch_by_keys(ctx.conn, i.number, (m.number for _, m in batch), select_cols)
        allocated = allocated_sums(ctx.conn, [row.id for row in existing.values()])
        held = held_by_dispute(ctx.conn, [row.id for row in existing.values()])
        inserts: list[tuple[Any, ...]] = []  # INSERT_COLUMNS
        updates: list[dict[str, Any]] = []
        events: list[tuple[Any, ...]] = []
        moved: list[tuple[dict[str, Any], str]] = []
        recopy: list[int] = []
        for _row, model in batch:
            found = existing.get(model.number)
            if found is None:
                inserts.append(
                    (
                        model.number,
                        accounts[model.account],
                        model.issue_date,
                        model.due_date,
                        model.currency,
                        model.amount,
                        target_open(model, ZERO),
                        model.disputed,
                    )
                )
                continue
            values = {
                "customer_id": accounts[model.account],
                "issue_date": model.issue_date,
                "due_date": model.due_date,
                "currency": model.currency,
                "amount": model.amount,
                "open_amount": target_open(model, allocated.get(found.id, ZERO)),
                "disputed": model.disputed or found.id in held,  # a collector's dispute stays
            }
            old = {name: found._mapping[i[name]] for name in FIELDS}
            diff = changes(old, values)
            if not diff:
                counts.unchanged += 1
                continue
            counts.updated += 1
            updates.append({"id": found.id, **values, "updated_at": ctx.now})
            if "customer_id" in diff:
                moved.append((diff, model.account))
            if found.id in allocated and any(name in diff for name in INVOICE_COPIES):
                recopy.append(found.id)
            events.append(
                event(
                    ctx,
                    values["customer_id"],
                    "invoice.updated",
                    f"Invoice {model.number} updated: {_fields(diff)}",
                    {"invoice": model.number, "changes": diff},
                )
            )
        _name_accounts(ctx.conn, moved)
        update_by_id(ctx.conn, invoices_t, [*FIELDS, "updated_at"], updates)
        copy_invoice_fields(ctx.conn, recopy)
        insert.run(inserts)
        counts.created += len(inserts)
        for number, customer_id, issued, due, currency, amount, open_amount, disputed in inserts:
            amount_text, due_text = jsonable(amount), due.isoformat()
            events.append(
                event(
                    ctx,
                    customer_id,
                    "invoice.created",
                    f"Invoice {number} created: {amount_text} {currency} due {due_text}",
                    {
                        "invoice": number,
                        "amount": amount_text,
                        "open_amount": jsonable(open_amount),
                        "currency": currency,
                        "issue_date": issued.isoformat(),
                        "due_date": due_text,
                        "disputed": disputed,
                    },
                )
            )
        add_events(ctx, events)
    return counts


def _name_accounts(conn: Connection, moved: list[tuple[dict[str, Any], str]]) -> None:
    """An invoice that changed customer shows accounts, not ids, in its timeline data."""
    if not moved:
        return
    c = customers_t.c
    old_ids = {diff["customer_id"]["old"] for diff, _ in moved}
    names = dict(conn.execute(select(c.id, c.account).where(c.id.in_(old_ids))).all())
    for diff, new_account in moved:
        change = diff.pop("customer_id")
        diff["account"] = {"old": names.get(change["old"]), "new": new_account}


def _fields(diff: dict[str, Any]) -> str:
    return ", ".join("account" if name == "customer_id" else name for name in diff)
