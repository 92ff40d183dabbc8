"""Dunning activities: `dunning_next` reads the facts and plans; `dunning_execute` runs one
action exactly once (claim → send → confirm, see `cobro.dunning.delivery`; a `declare`
action queues the insurer declarations and files them, `cobro.insurers.declaring`, and
files and follows the customer's claims, `cobro.insurers.claiming`)."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.sync import connector
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
from cobro.insurers import claims_sql, declarations_sql
from cobro.insurers.claiming import ClaimPending, follow_claims
from cobro.insurers.declaring import DeclarationPending, file_pending
from cobro.models import Customer, InvoiceStepReached
from cobro.models import TimelineEvent as Event
from cobro.observability import metrics
from cobro.queues.tasks import new_task

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
    status: str  # sent, skipped, stale, failed, task, claim, declare
    summary: str


@activity.defn
async def dunning_next(inp: NextInput) -> DunningDecision:
    """Heartbeats while it reads: a SIGKILLed worker's attempt is retried after the short
    heartbeat timeout, not after the whole start-to-close timeout."""
    alive = asyncio.create_task(_heartbeat_while_running())
    try:
        return await asyncio.to_thread(_next, inp)
    except SQLAlchemyError as exc:
        raise _database_unavailable(exc) from exc
    finally:
        alive.cancel()


def _next(inp: NextInput) -> DunningDecision:
    trace = Trace(inp.workflow_id, inp.run_id)
    with transaction() as session:
        facts = load_customer_facts(session, inp.account)
        if facts is None:
            return DunningDecision(account=inp.account, open=False, stage="unknown_customer")
        for note in housekeeping(session, facts, inp.now, trace):
            activity.logger.info("%s: %s", inp.account, note)
        customer_id = facts.customer.id
        for note in claims_sql.note_recoveries(session, customer_id, inp.now):
            activity.logger.info("%s: %s", inp.account, note)
        planned = current_plan(facts, inp.now)
        due = planned.due
        if not any(a.kind == "declare" for a in due):
            # declarations queued meanwhile (approved, a promise's EXP, a RES) or whose
            # job is not answered yet, claims to file, follow or ask a decision for: now
            pending = declarations_sql.pending_invoices(session, customer_id)
            if pending or claims_sql.pending_references(session, customer_id, inp.now):
                due = [*due, _pending_declarations(inp, pending, planned.policy or "")]
        next_at = planned.next_at
        check = claims_sql.next_check_at(session, customer_id)  # a decision awaited
        if check is not None and (next_at is None or check < next_at):
            next_at = check
        return DunningDecision(
            account=inp.account,
            open=facts.has_open_invoices,
            due=due,
            next_at=next_at,
            stage=dunning_stage(facts, inp.now),
            overdue_amount=float(facts.overdue_amount(inp.now)),
            risk_class=facts.risk_class or "",
            policy=planned.policy or "",
        )


@activity.defn
async def dunning_execute(inp: ExecuteInput) -> ExecuteOutcome:
    outcome = await _execute(inp)
    metrics.dunning_action(inp.action.kind, outcome.status)
    return outcome


async def _execute(inp: ExecuteInput) -> ExecuteOutcome:
    action = inp.action
    trace = Trace(inp.workflow_id, inp.run_id)
    if action.kind in ("task", "claim"):
        return _record_task(inp, trace)
    if action.kind == "declare":
        return await _declare(inp, trace)
    alive = asyncio.create_task(_heartbeat_while_running())
    try:
        done = await delivery.deliver(action, inp.now, trace, _run, activity.heartbeat)
    except delivery.ClaimInFlight as exc:  # not a failure: look again once its lease ends
        metrics.dunning_failure(action.kind, "in_flight")
        raise ApplicationError(str(exc), next_retry_delay=exc.retry_in) from exc
    except delivery.TemporarySendError as exc:
        # maybe accepted: the claim was released for the next attempt to ask the provider
        soon = timedelta(seconds=2) if exc.maybe_accepted else None
        metrics.dunning_failure(action.kind, "temporary")
        raise ApplicationError(
            f"temporary {action.kind} failure: {exc}", next_retry_delay=soon
        ) from exc
    except SQLAlchemyError as exc:  # nothing was accepted by this attempt
        metrics.dunning_failure(action.kind, "database")
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
                    new_task(
                        session,
                        facts.customer.id,
                        kind=action.kind if action.kind == "claim" else "call",
                        note=f"{note}: {', '.join(numbers)}",
                        role=action.assignee_role,
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


# ---------------------------------------------------------------- insurer declarations

# a declaration not answered yet (insurer unavailable, job pending) is looked at again
DECLARATION_RETRY = timedelta(seconds=10)


def _pending_declarations(inp: NextInput, numbers: list[str], policy: str) -> ActionSpec:
    """The action that files and follows the customer's pending declarations (no step)."""
    return ActionSpec(
        account=inp.account,
        kind="declare",
        step_index=-1,
        policy=policy,
        invoices=sorted(set(numbers)),
        idempotency_key=f"declarations:{inp.account}",
        at=inp.now,
        reason="pending",
    )


async def _declare(inp: ExecuteInput, trace: Trace) -> ExecuteOutcome:
    """The `declare` step: queue each invoice's overdue declaration (once), then file every
    pending declaration of the customer and follow it to the insurer's answer."""
    alive = asyncio.create_task(_heartbeat_while_running())
    try:
        if inp.action.step_index >= 0:
            recorded = await asyncio.to_thread(_record_declare_step, inp, trace)
            if recorded is None:
                return ExecuteOutcome(
                    "skipped", "invoices paid, disputed or paused before the step"
                )
        references = await _run(_pending_of, inp.account)
        lines = await file_pending(references, connector(), _run, activity.heartbeat)
        claims = await _run(_claims_of, inp.account, inp.now)
        if claims:
            lines += await follow_claims(claims, connector(), _run, inp.now, activity.heartbeat)
    except (DeclarationPending, ClaimPending) as exc:
        raise ApplicationError(
            f"declarations not answered yet: {exc}", next_retry_delay=DECLARATION_RETRY
        ) from exc
    except SQLAlchemyError as exc:
        raise _database_unavailable(exc) from exc
    finally:
        alive.cancel()
    return ExecuteOutcome("declare", "; ".join(lines) or "nothing to declare")


def _pending_of(session: Any, account: str) -> list[str]:
    customer_id = session.scalar(select(Customer.id).where(Customer.account == account))
    if customer_id is None:
        return []
    return declarations_sql.pending_references(session, customer_id)


def _claims_of(session: Any, account: str, now: datetime) -> list[str]:
    customer_id = session.scalar(select(Customer.id).where(Customer.account == account))
    if customer_id is None:
        return []
    return claims_sql.pending_references(session, customer_id, now)


def _record_declare_step(inp: ExecuteInput, trace: Trace) -> str | None:
    """The step, once: the invoices reach it and their OVDs are queued (or await approval)
    in one transaction; a re-run of the same action finds its levels and changes nothing."""
    action = inp.action
    with transaction() as session:
        facts = load_customer_facts(session, inp.account)
        numbers = facts.open_numbers(action.invoices) if facts else []
        if facts is None or not numbers:
            return None
        done = session.scalar(
            select(InvoiceStepReached.id)
            .where(InvoiceStepReached.idempotency_key == action.idempotency_key)
            .limit(1)
        )
        if done is not None:
            return "already recorded"
        rows = declarations_sql.queue_overdues(
            session,
            facts.customer,
            numbers,
            inp.now.date(),
            at=inp.now,
            **trace.data(idempotency_key=action.idempotency_key),
        )
        record_levels(session, facts, action, numbers, "declare", trace, inp.now)
        states = ", ".join(f"{r.invoice_number} {r.status.replace('_', ' ')}" for r in rows)
        session.add(
            Event(
                customer_id=facts.customer.id,
                at=inp.now,
                kind="dunning.declare",
                summary=f"declaration step: {states or 'nothing to declare'}",
                data=trace.data(idempotency_key=action.idempotency_key),
            )
        )
        return states
