"""Customers: upsert on `account`.

A column absent from the file leaves that field of existing customers untouched (new
customers get NULL); a column present with an empty cell clears the field. `owner` names a
user (collector or above, checked by `upsert.check_owners`); a customer changing owner has
its open tasks and alerts follow (`cobro.queues.follow`), as from the customer file. `language` and
`timezone` default from the country (babel) when empty, or, for a new customer, absent.
Every row written carries its `search_text` (`cobro.search`).
"""

from __future__ import annotations

from typing import Any

from cobro.importing import normalise
from cobro.importing.reader import Row
from cobro.importing.schemas import CustomerRow
from cobro.importing.upsert import (
    Context,
    Counts,
    account_ids,
    add_events,
    changes,
    chunks,
    customers_t,
    event,
    fetch_by_keys,
    update_by_id,
)
from cobro.queues.follow import follow_owner
from cobro.search import search_text_of

# row field -> table column (the `group` column is `group_name` in SQL)
COLUMNS = {name: name for name in CustomerRow.model_fields if name != "account"}
COLUMNS["group"] = "group_name"


def _values(model: CustomerRow, header: set[str], old: dict[str, Any] | None) -> dict[str, Any]:
    """The stored values (by field name) the row asks for."""
    values: dict[str, Any] = {}
    for name in COLUMNS:
        if name in header or old is None:
            values[name] = getattr(model, name)
        else:
            values[name] = old[name]
    if values["language"] is None:
        values["language"] = normalise.default_language(model.country)
    if values["timezone"] is None:
        values["timezone"] = normalise.default_timezone(model.country)
    return values


def write(ctx: Context, rows: list[tuple[Row, CustomerRow]], header: set[str]) -> Counts:
    counts = Counts()
    c = customers_t.c
    select_cols = [c.id, c.account, *(c[col] for col in COLUMNS.values())]
    insert_columns = ["account", *COLUMNS.values(), "search_text"]
    insert = ctx.inserter(customers_t, insert_columns, created_at=ctx.now, updated_at=ctx.now)
    for batch in chunks(rows, ctx.batch_size):
        existing = fetch_by_keys(ctx.conn, c.account, (m.account for _, m in batch), select_cols)
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        owners: list[tuple[int, str | None, str | None]] = []
        for _row, model in batch:
            found = existing.get(model.account)
            if found is None:
                values = _values(model, header, None)
                row = {"account": model.account, **{COLUMNS[k]: v for k, v in values.items()}}
                inserts.append({**row, "search_text": search_text_of(row)})
                continue
            old = {name: found._mapping[c[col]] for name, col in COLUMNS.items()}
            values = _values(model, header, old)
            diff = changes(old, values)
            if not diff:
                counts.unchanged += 1
                continue
            counts.updated += 1
            if "owner" in diff:
                owners.append((found.id, old["owner"], values["owner"]))
            row = {"account": model.account, **{COLUMNS[k]: v for k, v in values.items()}}
            updates.append(
                {
                    "id": found.id,
                    **{COLUMNS[k]: v for k, v in values.items()},
                    "search_text": search_text_of(row),
                    "updated_at": ctx.now,
                }
            )
            events.append(
                event(
                    ctx,
                    found.id,
                    "customer.updated",
                    f"Customer {model.account} updated: {', '.join(diff)}",
                    {"account": model.account, "changes": diff},
                )
            )
        columns = [*COLUMNS.values(), "search_text", "updated_at"]
        update_by_id(ctx.conn, customers_t, columns, updates)
        follow_owner(ctx.conn, owners)  # their open tasks and alerts follow the new owner
        insert.run([tuple(values[name] for name in insert_columns) for values in inserts])
        new_ids = account_ids(ctx.conn, (values["account"] for values in inserts))
        ids = [new_ids[values["account"]] for values in inserts]
        counts.created += len(ids)
        for new_id, values in zip(ids, inserts, strict=True):
            events.append(
                event(
                    ctx,
                    new_id,
                    "customer.created",
                    f"Customer {values['account']} ({values['name']}) created",
                    {"account": values["account"], "name": values["name"]},
                )
            )
        add_events(ctx, events)
    return counts
