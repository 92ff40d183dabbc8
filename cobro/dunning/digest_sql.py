"""The dunning facts of many customers in five queries per chunk of accounts, and the
digests stored with the last signal (`dunning_fact_digests`). See `cobro.dunning.digest`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Column, Connection, func, select
from sqlalchemy.dialects import postgresql, sqlite

from cobro.dunning.digest import DunningFacts
from cobro.models import (
    Customer,
    DunningFactDigest,
    DunningPause,
    InsurerCover,
    Invoice,
    RiskAssessment,
)

CHUNK = 500
T = TypeVar("T")

customers = Customer.__table__
invoices = Invoice.__table__
pauses = DunningPause.__table__
covers = InsurerCover.__table__
assessments = RiskAssessment.__table__
digests = DunningFactDigest.__table__

# every column but ids and timestamps, so a column added later is in the digest too
CUSTOMER_FACTS = [c for c in customers.c if c.name not in {"id", "created_at", "updated_at"}]
INVOICE_FACTS = [
    c for c in invoices.c if c.name not in {"id", "customer_id", "created_at", "updated_at"}
]
PAUSE_FACTS = [c for c in pauses.c if c.name != "customer_id"]
PAUSE_STATUSES = ("active", "broken")  # what `cobro.dunning.store.load_customer_facts` reads
# a cover's terms, not what every sync rewrites (raw payload, sync run, grade, timestamps)
COVER_FACTS = [
    covers.c[name]
    for name in (
        "insurer",
        "cover_id",
        "cover_type",
        "nominative",
        "granted_amount",
        "currency",
        "status",
        "valid_from",
        "valid_until",
    )
]


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _row(columns: list[Column[Any]], row: Any) -> dict[str, Any]:
    return {c.name: row._mapping[c] for c in columns}


def read_facts(conn: Connection, accounts: Sequence[str]) -> list[DunningFacts]:
    """The facts of these accounts (unknown ones are left out), chunk by chunk."""
    found: list[DunningFacts] = []
    for part in chunks(sorted(set(accounts))):
        by_id: dict[int, DunningFacts] = {}
        for row in conn.execute(
            select(customers.c.id, *CUSTOMER_FACTS).where(customers.c.account.in_(part))
        ):
            by_id[row.id] = DunningFacts(
                account=row.account, customer_id=row.id, customer=_row(CUSTOMER_FACTS, row)
            )
        ids = list(by_id)
        if not ids:
            continue
        for row in conn.execute(
            select(invoices.c.customer_id, *INVOICE_FACTS).where(
                invoices.c.customer_id.in_(ids), invoices.c.open_amount > 0
            )
        ):
            by_id[row.customer_id].invoices.append(_row(INVOICE_FACTS, row))
        for row in conn.execute(
            select(pauses.c.customer_id, *PAUSE_FACTS).where(
                pauses.c.customer_id.in_(ids), pauses.c.status.in_(PAUSE_STATUSES)
            )
        ):
            by_id[row.customer_id].pauses.append(_row(PAUSE_FACTS, row))
        for row in conn.execute(
            select(covers.c.customer_id, *COVER_FACTS).where(covers.c.customer_id.in_(ids))
        ):
            by_id[row.customer_id].covers.append(_row(COVER_FACTS, row))
        latest = (
            select(assessments.c.customer_id, func.max(assessments.c.id).label("id"))
            .where(assessments.c.customer_id.in_(ids))
            .group_by(assessments.c.customer_id)
            .subquery()
        )
        for customer_id, risk_class in conn.execute(
            select(assessments.c.customer_id, assessments.c.risk_class).join(
                latest, latest.c.id == assessments.c.id
            )
        ):
            by_id[customer_id].risk_class = risk_class
        found.extend(by_id.values())
    return found


def stored_digests(conn: Connection, customer_ids: Sequence[int]) -> dict[int, str]:
    stored: dict[int, str] = {}
    for part in chunks(sorted(customer_ids)):
        for customer_id, digest in conn.execute(
            select(digests.c.customer_id, digests.c.digest).where(digests.c.customer_id.in_(part))
        ):
            stored[customer_id] = digest
    return stored


def store_digests(
    conn: Connection, signalled: Mapping[int, str], signal: str, at: datetime
) -> None:
    """Upsert the digest each customer's workflow was just signalled with."""
    if not signalled:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(digests)
    upsert = insert.on_conflict_do_update(
        index_elements=[digests.c.customer_id],
        set_={
            "digest": insert.excluded.digest,
            "signal": insert.excluded.signal,
            "signalled_at": insert.excluded.signalled_at,
        },
    )
    rows = [
        {"customer_id": i, "digest": d, "signal": signal[:64], "signalled_at": at}
        for i, d in sorted(signalled.items())
    ]
    for part in chunks(rows):
        conn.execute(upsert, list(part))


def accounts_with_open_invoices(conn: Connection) -> list[str]:
    return list(
        conn.scalars(
            select(customers.c.account)
            .join(invoices, invoices.c.customer_id == customers.c.id)
            .where(invoices.c.open_amount > 0)
            .distinct()
            .order_by(customers.c.account)
        )
    )
