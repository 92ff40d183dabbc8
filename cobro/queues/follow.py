"""When a customer changes owner, its open work follows (set-based, for one customer from
the customer file or for thousands from an import)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, false, or_, select, true, update

from cobro.models import Alert, Task, User
from cobro.queues.lists import takeable_queues

CHUNK = 5000


@dataclass
class Moved:
    tasks: int = 0
    alerts: int = 0


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i : i + CHUNK]


def follow_owner(conn: Connection, changes: Iterable[tuple[int, str | None, str | None]]) -> Moved:
    """`changes`: (customer id, previous owner, new owner). The customers' open tasks that
    waited in a queue or were the previous owner's go to the new owner when the new owner
    may do them, else back to their queue; their open alerts that were the previous
    owner's or nobody's go to the new owner (or to nobody)."""
    groups: dict[tuple[str | None, str | None], list[int]] = {}
    for customer_id, before, new in changes:
        if before != new:
            groups.setdefault((before, new), []).append(customer_id)
    moved = Moved()
    tasks, alerts = Task.__table__.c, Alert.__table__.c
    for (before, new), ids in groups.items():
        role = conn.scalar(select(User.role).where(User.username == new)) if new else None
        if role == "admin":
            doable = true()
        else:
            queues = takeable_queues(role) if role else []
            doable = tasks.assignee_role.in_(queues) if queues else false()
        for chunk in _chunks(ids):
            open_tasks = and_(tasks.customer_id.in_(chunk), tasks.status == "open")
            if new:  # what waited in a queue, or was the previous owner's, and new may do
                held = tasks.assignee.is_(None)
                if before:
                    held = or_(held, tasks.assignee == before)
                moved.tasks += conn.execute(
                    update(Task.__table__).where(open_tasks, held, doable).values(assignee=new)
                ).rowcount
            if before:  # what is left of the previous owner's goes back to its queue
                moved.tasks += conn.execute(
                    update(Task.__table__)
                    .where(open_tasks, tasks.assignee == before)
                    .values(assignee=None)
                ).rowcount
            held = alerts.assigned_to.is_(None) if new else false()
            if before:
                held = or_(held, alerts.assigned_to == before)
            moved.alerts += conn.execute(
                update(Alert.__table__)
                .where(alerts.customer_id.in_(chunk), alerts.state == "open", held)
                .values(assigned_to=new)
            ).rowcount
    return moved
