"""What a collector does from the dashboard or the API, recorded with who did it: pause or
resume dunning, record a promise to pay, acknowledge or assign an alert, close a task.
Each action is one transaction that also writes the customer timeline event; dunning
changes then wake the customer's workflow (`signal_dunning`)."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

from sqlalchemy import Engine, select

from cobro.db import transaction
from cobro.dunning.store import pause_customer, resume_customer
from cobro.models import Alert, Customer, Task, TimelineEvent
from cobro.settings import Settings
from cobro.types import utcnow


class ActionError(ValueError):
    """A request that cannot be done as asked (404/409/422 for the web)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def _customer(s, account: str) -> Customer:  # type: ignore[no-untyped-def]
    customer = s.scalar(select(Customer).where(Customer.account == account))
    if customer is None:
        raise ActionError(f"no customer {account!r}", 404)
    return customer


def pause(engine: Engine, account: str, actor: str, reason: str, until: date | None = None) -> str:
    if not reason.strip():
        raise ActionError("a reason is required (it goes on the customer timeline)")
    with transaction(engine) as s:
        pause_customer(s, _customer(s, account), "pause", reason.strip(), actor, until)
    return "dunning paused" + (f" until {until}" if until else "")


def promise(
    engine: Engine,
    account: str,
    actor: str,
    until: date,
    amount: Decimal | None,
    currency: str | None,
    reason: str = "",
) -> str:
    if until < date.today():
        raise ActionError("the promised date is in the past")
    if amount is not None and amount <= 0:
        raise ActionError("the promised amount must be positive")
    with transaction(engine) as s:
        customer = _customer(s, account)
        pause_customer(
            s, customer, "promise", reason.strip(), actor, until, amount, currency or None
        )
    return f"promise to pay recorded until {until}"


def resume(engine: Engine, account: str, actor: str, reason: str = "") -> str:
    with transaction(engine) as s:
        lifted = resume_customer(s, _customer(s, account), reason.strip(), actor)
    return f"{lifted} pause(s) lifted"


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


async def signal_dunning(
    settings: Settings, account: str, kind: str, detail: str, actor: str
) -> str:
    """Wake the customer's dunning workflow; the action is recorded even if Temporal is down."""
    from cobro.dunning.notify import notify
    from cobro.dunning.signals import FactsChanged
    from cobro.temporal_client import connect

    try:
        client = await asyncio.wait_for(connect(settings), 5)
        change = FactsChanged(kind, detail, actor)
        await asyncio.wait_for(notify(client, [account], change, settings), 10)
    except Exception as exc:  # the DB holds the fact; the workflow re-reads it before sending
        return f" (recorded; the workflow will see it at its next step: {type(exc).__name__})"
    return ""


async def pause_dunning(
    engine: Engine, settings: Settings, account: str, actor: str, reason: str, until: date | None
) -> str:
    """`pause`, then the customer's workflow is told."""
    message = await asyncio.to_thread(pause, engine, account, actor, reason, until)
    return message + await signal_dunning(settings, account, "paused", reason, actor)


async def resume_dunning(
    engine: Engine, settings: Settings, account: str, actor: str, reason: str
) -> str:
    message = await asyncio.to_thread(resume, engine, account, actor, reason)
    return message + await signal_dunning(settings, account, "resumed", reason, actor)


async def promise_dunning(
    engine: Engine,
    settings: Settings,
    account: str,
    actor: str,
    until: date,
    amount: Decimal | None,
    currency: str | None,
    reason: str,
) -> str:
    message = await asyncio.to_thread(
        promise, engine, account, actor, until, amount, currency, reason
    )
    return message + await signal_dunning(settings, account, "promise_to_pay", reason, actor)
