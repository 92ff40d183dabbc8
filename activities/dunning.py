"""Dunning activities: `dunning_next` reads the facts and plans; `dunning_execute` runs one
action exactly once (claim → send → confirm, see `cobro.dunning.delivery`)."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from cobro.db import session_factory, transaction
from cobro.dunning import delivery
from cobro.dunning.actions import ActionSpec
from cobro.dunning.store import (
    Trace,
    current_plan,
    dunning_stage,
    housekeeping,
    load_customer_facts,
    record_levels,
)
from cobro.models import Task
from cobro.models import TimelineEvent as Event

T = TypeVar("T")
HEARTBEAT_EVERY_S = 2.0


@dataclass
class NextInput:
    account: str
    now: datetime
    workflow_id: str = ""
    run_id: str = ""


@dataclass
class DunningDecision:
    account: str
    open: bool
    due: list[ActionSpec] = field(default_factory=list)
    next_at: datetime | None = None
    stage: str = "not_due"
    overdue_amount: float = 0.0
    risk_class: str = ""
    policy: str = ""


@dataclass
class ExecuteInput:
    account: str
    action: ActionSpec
    now: datetime
    workflow_id: str = ""
    run_id: str = ""


@dataclass
class ExecuteOutcome:
    status: str  # sent, skipped, stale, failed, task, claim
    summary: str


@activity.defn
def dunning_next(inp: NextInput) -> DunningDecision:
    try:
        return _next(inp)
    except SQLAlchemyError as exc:
        raise _database_unavailable(exc) from exc


def _next(inp: NextInput) -> DunningDecision:
    trace = Trace(inp.workflow_id, inp.run_id)
    with transaction() as session:
        facts = load_customer_facts(session, inp.account)
        if facts is None:
            return DunningDecision(account=inp.account, open=False, stage="unknown_customer")
        for note in housekeeping(session, facts, inp.now, trace):
            activity.logger.info("%s: %s", inp.account, note)
        planned = current_plan(facts, inp.now)
        return DunningDecision(
            account=inp.account,
            open=facts.has_open_invoices,
            due=planned.due,
            next_at=planned.next_at,
            stage=dunning_stage(facts, inp.now),
            overdue_amount=float(facts.overdue_amount(inp.now)),
            risk_class=facts.risk_class or "",
            policy=planned.policy or "",
        )


@activity.defn
async def dunning_execute(inp: ExecuteInput) -> ExecuteOutcome:
    action = inp.action
    trace = Trace(inp.workflow_id, inp.run_id)
    if action.kind in ("task", "claim"):
        return _record_task(inp, trace)
    alive = asyncio.create_task(_heartbeat_while_running())
    try:
        done = await delivery.deliver(action, inp.now, trace, _run, activity.heartbeat)
    except delivery.ClaimInFlight as exc:  # not a failure: look again once its lease ends
        raise ApplicationError(str(exc), next_retry_delay=exc.retry_in) from exc
    except delivery.TemporarySendError as exc:
        # maybe accepted: the claim was released for the next attempt to ask the provider
        soon = timedelta(seconds=2) if exc.maybe_accepted else None
        raise ApplicationError(
            f"temporary {action.kind} failure: {exc}", next_retry_delay=soon
        ) from exc
    except SQLAlchemyError as exc:  # nothing was accepted by this attempt
        raise _database_unavailable(exc) from exc
    finally:
        alive.cancel()
    return ExecuteOutcome(done.status, done.summary)


async def _heartbeat_while_running() -> None:
    """This process is alive: a SIGKILLed worker's attempts time out after the activity's
    heartbeat timeout, a slow send or a wait for the database does not."""
    while True:
        await asyncio.sleep(HEARTBEAT_EVERY_S)
        activity.heartbeat("running")


def _database_unavailable(exc: SQLAlchemyError) -> ApplicationError:
    """Retried every few seconds, not on the exponential backoff (an outage of minutes
    must not leave the work waiting for minutes more after it ends)."""
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ApplicationError(
        f"database unavailable: {first_line}", next_retry_delay=timedelta(seconds=3)
    )


async def _run(function: Callable[..., T], *args: Any) -> T:
    # database work runs in threads: it must not block the worker's event loop
    return await asyncio.to_thread(_in_session, function, *args)


def _in_session(function: Callable[..., T], *args: Any) -> T:
    with session_factory()() as session:
        return function(session, *args)


def _record_task(inp: ExecuteInput, trace: Trace) -> ExecuteOutcome:
    action = inp.action
    with transaction() as session:
        facts = load_customer_facts(session, inp.account)
        numbers = facts.open_numbers(action.invoices) if facts else []
        if facts is None or not numbers:
            return ExecuteOutcome("skipped", "invoices paid, disputed or paused before the step")
        note = action.note or (
            "declare the overdue amount to the credit insurer"
            if action.kind == "claim"
            else "follow up with the customer"
        )
        try:
            with session.begin_nested():
                session.add(
                    Task(
                        customer_id=facts.customer.id,
                        kind=action.kind if action.kind == "claim" else "call",
                        note=f"{note}: {', '.join(numbers)}",
                        assignee_role=action.assignee_role,
                        due_date=inp.now.date(),
                        source_key=action.idempotency_key,
                    )
                )
                record_levels(session, facts, action, numbers, action.kind, trace, inp.now)
                session.add(
                    Event(
                        customer_id=facts.customer.id,
                        at=inp.now,
                        kind=f"dunning.{action.kind}",
                        summary=f"{action.kind} created: {note} ({', '.join(numbers)})",
                        data=trace.data(idempotency_key=action.idempotency_key),
                    )
                )
        except IntegrityError:
            return ExecuteOutcome(action.kind, "already recorded")
    return ExecuteOutcome(action.kind, f"{action.kind} for {', '.join(numbers)}")
