"""What a collector does from the dashboard or the API to alerts and tasks, recorded with
who did it: acknowledge or assign an alert, close a task. Each action is one transaction that
also writes the customer timeline event. The dunning actions (pause, resume, promise to pay)
are `cobro.dunning.collector`'s, shared with the CLI."""

from __future__ import annotations

from sqlalchemy import Engine

from cobro.db import transaction
from cobro.dunning.collector import ActionError
from cobro.models import Alert, Task, TimelineEvent
from cobro.types import utcnow

__all__ = ["ActionError", "acknowledge_alert", "assign_alert", "complete_task"]


def _alert(s, alert_id: int) -> Alert:  # type: ignore[no-untyped-def]
    alert = s.get(Alert, alert_id)
    if alert is None:
        raise ActionError(f"no alert {alert_id}", 404)
    return alert


def acknowledge_alert(engine: Engine, alert_id: int, actor: str) -> str:
    with transaction(engine) as s:
        alert = _alert(s, alert_id)
        if alert.state != "open":
            raise ActionError(f"alert {alert_id} is already {alert.state}", 409)
        alert.state = "acknowledged"
        alert.acknowledged_by = actor
        alert.acknowledged_at = utcnow()
        s.add(
            TimelineEvent(
                customer_id=alert.customer_id,
                kind="alert.acknowledged",
                actor=actor,
                summary=f"alert {alert.name} acknowledged: {alert.message}",
                data={"alert_id": alert.id},
            )
        )
    return f"alert {alert_id} acknowledged"


def assign_alert(engine: Engine, alert_id: int, assignee: str, actor: str) -> str:
    assignee = assignee.strip()
    if not assignee:
        raise ActionError("say who the alert is assigned to")
    with transaction(engine) as s:
        alert = _alert(s, alert_id)
        alert.assigned_to = assignee
        s.add(
            TimelineEvent(
                customer_id=alert.customer_id,
                kind="alert.assigned",
                actor=actor,
                summary=f"alert {alert.name} assigned to {assignee}",
                data={"alert_id": alert.id, "assignee": assignee},
            )
        )
    return f"alert {alert_id} assigned to {assignee}"


def complete_task(engine: Engine, task_id: int, actor: str, note: str = "") -> str:
    with transaction(engine) as s:
        task = s.get(Task, task_id)
        if task is None:
            raise ActionError(f"no task {task_id}", 404)
        if task.status != "open":
            raise ActionError(f"task {task_id} is already {task.status}", 409)
        task.status = "done"
        task.done_at = utcnow()
        s.add(
            TimelineEvent(
                customer_id=task.customer_id,
                kind="task.done",
                actor=actor,
                summary=f"task {task.kind} done" + (f": {note.strip()}" if note.strip() else ""),
                data={"task_id": task.id},
            )
        )
    return f"task {task_id} done"
