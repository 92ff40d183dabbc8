"""`new_task`: the one way a task is created, routed to the customer's owner or its queue."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from cobro.models import Task
from cobro.queues.people import active_owners
from cobro.queues.routing import route


def new_task(
    session: Session,
    customer_id: int,
    kind: str,
    note: str,
    role: str | None = None,
    due_date: date | None = None,
    source_key: str | None = None,
) -> Task:
    """A task (not yet added to the session) for the customer's owner when the owner may do
    tasks of `role`, else waiting in the `role` queue (default: collector)."""
    owner = active_owners(session, [customer_id]).get(customer_id)
    assignee, queue = route(owner.username if owner else None, owner.role if owner else None, role)
    return Task(
        customer_id=customer_id,
        kind=kind,
        note=note,
        assignee_role=queue,
        assignee=assignee,
        due_date=due_date,
        source_key=source_key,
    )


def route_alert_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """New alerts (rows for a bulk INSERT) go to their customer's owner."""
    owners = active_owners(session, (row["customer_id"] for row in rows))
    for row in rows:
        owner = owners.get(row["customer_id"])
        row["assigned_to"] = owner.username if owner else None
