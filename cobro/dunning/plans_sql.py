"""Payment plans in the database (`payment_plans`, `payment_plan_instalments`): the facts
the planner reads, the writes of each decision, and the follow-up the dunning workflow runs
at every plan (`follow`): payments allocated to the instalments, the plan completed when
all are paid, broken when one is missed.

A customer has at most one open plan (`requested` or `approved`). Every change lands on
the customer timeline with who did it; a request waiting for a collector, and a broken
plan, are tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cobro import formatting
from cobro.dunning.plans import (
    OPEN_STATUSES,
    Instalment,
    add_duration,
    allocate,
    missed,
    paid_so_far,
    per_invoice,
)
from cobro.dunning.policy import Duration
from cobro.models import Communication, Customer, Invoice, PaymentPlan, PaymentPlanInstalment, Task
from cobro.models import TimelineEvent as Event
from cobro.queues.tasks import new_task


@dataclass
class PlanFacts:
    """The customer's open plan as the planner reads it."""

    row: PaymentPlan
    instalments: tuple[Instalment, ...]
    invoices: tuple[str, ...]
    still_open: Decimal  # the open amount of its invoices now
    done_keys: frozenset[str] = frozenset()  # its reminders' keys already claimed

    @property
    def id(self) -> int:
        return self.row.id

    @property
    def status(self) -> str:
        return self.row.status

    @property
    def active(self) -> bool:
        return self.row.status == "approved"

    @property
    def paid(self) -> Decimal:
        return paid_so_far(self.row.total_amount, self.still_open)

    @property
    def paid_parts(self) -> tuple[Decimal, ...]:
        return allocate(self.instalments, self.paid)

    def summary(self) -> str:
        """`3 instalments of 333.34 EUR (1,000.00 EUR) from 2027-01-31 to 2027-03-31`."""
        row, first, last = self.row, self.instalments[0], self.instalments[-1]
        return (
            f"{len(self.instalments)} instalments of {formatting.amount(first.amount)} "
            f"{row.currency} ({formatting.amount(row.total_amount)} {row.currency}) from "
            f"{first.due_date} to {last.due_date}"
        )


def open_plan(session: Session, customer_id: int) -> PaymentPlan | None:
    return session.scalar(
        select(PaymentPlan)
        .where(PaymentPlan.customer_id == customer_id, PaymentPlan.status.in_(OPEN_STATUSES))
        .order_by(PaymentPlan.id.desc())
        .limit(1)
    )


def instalments_of(session: Session, plan_id: int) -> list[PaymentPlanInstalment]:
    return list(
        session.scalars(
            select(PaymentPlanInstalment)
            .where(PaymentPlanInstalment.plan_id == plan_id)
            .order_by(PaymentPlanInstalment.seq)
        )
    )


def plan_facts(
    session: Session, customer_id: int, open_invoices: list[Invoice]
) -> PlanFacts | None:
    """The customer's open plan, with what its invoices still owe (None: no open plan)."""
    row = open_plan(session, customer_id)
    if row is None:
        return None
    numbers = tuple((row.invoice_numbers or {}).get("invoices", []))
    still = sum(
        (i.open_amount for i in open_invoices if i.number in numbers and i.open_amount > 0),
        Decimal(0),
    )
    rows = instalments_of(session, row.id)
    keys = frozenset(
        session.scalars(
            select(Communication.idempotency_key).where(
                Communication.customer_id == customer_id,
                Communication.idempotency_key.like(f"plan:%:p{row.id}:%"),
            )
        )
    )
    return PlanFacts(
        row,
        tuple(Instalment(r.seq, r.due_date, r.amount) for r in rows),
        numbers,
        still,
        keys,
    )


def last_broken_at(session: Session, customer_id: int) -> datetime | None:
    """When the customer's latest plan broke (its dunning escalates once after it)."""
    return session.scalar(
        select(PaymentPlan.ended_at)
        .where(PaymentPlan.customer_id == customer_id, PaymentPlan.status == "broken")
        .order_by(PaymentPlan.ended_at.desc())
        .limit(1)
    )


def _event(
    session: Session,
    plan: PaymentPlan,
    kind: str,
    summary: str,
    actor: str,
    at: datetime | None = None,
    **data: Any,
) -> None:
    event = Event(
        customer_id=plan.customer_id,
        kind=kind,
        actor=actor,
        summary=summary,
        data={"plan_id": plan.id, **data},
    )
    if at is not None:
        event.at = at
    session.add(event)


def _describe(instalments: list[Instalment] | tuple[Instalment, ...], currency: str) -> str:
    return ", ".join(f"{i.due_date} {formatting.amount(i.amount)} {currency}" for i in instalments)


def record_request(
    session: Session,
    customer: Customer,
    invoices: list[Invoice],
    currency: str,
    instalments: tuple[Instalment, ...],
    actor: str,
    note: str,
    policy: str,
    problems: list[str],
    ruleset_hash: str | None,
) -> PaymentPlan:
    """The request, its instalments and its timeline event; approved by rule when
    `problems` is empty, else a task for a collector."""
    total = sum((i.amount for i in instalments), Decimal(0))
    plan = PaymentPlan(
        customer_id=customer.id,
        status="requested",
        currency=currency,
        total_amount=total,
        invoice_numbers={"invoices": [i.number for i in invoices]},
        policy=policy,
        requested_by=actor,
        note=note,
        problems={"problems": problems},
        ruleset_hash=ruleset_hash,
    )
    session.add(plan)
    session.flush()
    for inst in instalments:
        session.add(
            PaymentPlanInstalment(
                plan_id=plan.id, seq=inst.seq, due_date=inst.due_date, amount=inst.amount
            )
        )
    what = (
        f"payment plan requested: {len(instalments)} instalments "
        f"({_describe(instalments, currency)}) for {', '.join(i.number for i in invoices)}"
    )
    _event(session, plan, "plan.requested", f"{what}: {note}".rstrip(": "), actor)
    if problems:
        session.add(
            new_task(
                session,
                customer.id,
                "payment_plan",
                f"decide on the payment plan asked by {actor}: {'; '.join(problems)}",
                role="collector",
                source_key=f"plan-request:{plan.id}",
            )
        )
    return plan


def _close_request_task(session: Session, plan: PaymentPlan, actor: str, note: str) -> None:
    task = session.scalar(select(Task).where(Task.source_key == f"plan-request:{plan.id}"))
    if task is not None and task.status == "open":
        task.status = "done"
        task.done_at = datetime.now(UTC)
        task.note = f"{task.note}\n{note} ({actor})".strip()


def approve(
    session: Session, plan: PaymentPlan, actor: str, note: str, by_rule: bool = False
) -> None:
    plan.status = "approved"
    plan.decided_by = actor
    plan.decided_at = datetime.now(UTC)
    plan.decision_note = note
    problems = (plan.problems or {}).get("problems") or []
    if by_rule:
        summary = "payment plan approved by rule (within the policy's limits)"
    else:
        summary = f"payment plan approved by {actor}"
        if problems:
            summary += f" (outside the rules: {'; '.join(problems)})"
    _event(session, plan, "plan.approved", f"{summary}: {note}".rstrip(": "), actor)
    _close_request_task(session, plan, actor, "approved")


def end(session: Session, plan: PaymentPlan, status: str, actor: str, note: str) -> None:
    """Rejected (a request) or cancelled (an approved plan)."""
    plan.status = status
    plan.decided_by = plan.decided_by or actor
    plan.decided_at = plan.decided_at or datetime.now(UTC)
    plan.ended_at = datetime.now(UTC)
    plan.decision_note = note or plan.decision_note
    word = "rejected" if status == "rejected" else "cancelled"
    summary = f"payment plan {word} by {actor}: {note}".rstrip(": ")
    _event(session, plan, f"plan.{word}", summary, actor)
    _close_request_task(session, plan, actor, word)


def declare_to_insurer(
    session: Session, plan: PlanFacts, customer: Customer, actor: str
) -> list[str]:
    """The rescheduling (RES) of each insured invoice of an approved plan, queued for the
    insurer's connector (`cobro.insurers.declarations_sql.queue_rescheduling`): each
    invoice's share of each instalment, oldest invoice first. The invoices it declares."""
    from cobro.insurers.declarations_sql import (
        DeclarationError,
        obligations_of,
        queue_rescheduling,
    )

    today = datetime.now(UTC).date()
    obligations = obligations_of(session, customer.id, today)
    insured = [n for n in plan.invoices if (o := obligations.get(n)) and o.policy is not None]
    if not insured:
        return []
    rows = session.execute(
        select(Invoice.number, Invoice.open_amount)
        .where(Invoice.customer_id == customer.id, Invoice.number.in_(plan.invoices))
        .order_by(Invoice.due_date, Invoice.number)
    ).all()
    shares = per_invoice([(n, a) for n, a in rows], plan.instalments)
    declared = []
    for number in insured:
        text = ",".join(f"{d}:{a.normalize():f}" for d, a in shares.get(number, []))
        if not text:
            continue
        try:
            with session.begin_nested():
                queue_rescheduling(session, number, text, actor, today)
        except DeclarationError:
            continue  # already declared, or the terms changed: the timeline of RES says
        declared.append(number)
    return declared


# ------------------------------------------------------------------------ following it


def follow(
    session: Session,
    plan: PlanFacts,
    local_today: date,
    now: datetime,
    grace: Duration,
    trace: dict[str, Any],
) -> str | None:
    """Allocate what was paid to the instalments; complete or break the plan. Returns
    what happened (None: nothing), recorded once on the timeline."""
    if not plan.active:
        return None
    row = plan.row
    parts = plan.paid_parts
    rows = instalments_of(session, row.id)
    news = []
    for r, part in zip(rows, parts, strict=True):
        if part != r.paid_amount:
            r.paid_amount = part
        if part >= r.amount and r.status != "paid":
            r.status, r.paid_at = "paid", now
            news.append(r)
    for r in news:
        _event(
            session,
            row,
            "plan.instalment_paid",
            f"instalment {r.seq} of the payment plan paid ({formatting.amount(r.amount)} "
            f"{row.currency}, due {r.due_date})",
            "system",
            now,
            seq=r.seq,
            **trace,
        )
    if plan.still_open <= 0 or all(r.status == "paid" for r in rows):
        row.status, row.ended_at = "completed", now
        _event(
            session,
            row,
            "plan.completed",
            "payment plan completed: every instalment paid",
            "system",
            now,
            **trace,
        )
        return "plan completed"
    late = missed(plan.instalments, parts, local_today, grace)
    if late is None:
        return "instalment paid" if news else None
    row.status, row.ended_at = "broken", now
    for r in rows:
        if r.seq == late.seq:
            r.status = "missed"
    paid = parts[late.seq - 1]
    summary = (
        f"payment plan broken: instalment {late.seq} of {formatting.amount(late.amount)} "
        f"{row.currency} due {late.due_date} not paid by {add_duration(late.due_date, grace)}"
        f" ({formatting.amount(paid)} paid); dunning resumes one level up"
    )
    _event(session, row, "plan.broken", summary, "system", now, seq=late.seq, **trace)
    session.add(
        new_task(
            session,
            row.customer_id,
            kind="call",
            note=f"{summary}: call the customer",
            role="collector",
            due_date=now.date(),
            source_key=f"plan-broken:{row.id}",
        )
    )
    return "plan broken: escalation and task"
