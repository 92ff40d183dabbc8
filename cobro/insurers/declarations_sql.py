"""Declarations as the database holds them (`InsurerDeclaration`), and every change of one,
each with its customer-timeline event. The pure rules are `cobro.insurers.declarations`; the
connector calls are `cobro.insurers.declaring`.

    queue_overdues(session, customer, numbers, today, actor)   # the dunning `declare` step
    extensions_for_promise(session, customer, pay_by, actor)   # a promise to pay
    queue_rescheduling(session, invoice, plan, actor)          # a repayment plan agreed
    approve(session, invoice_number, actor)                    # a collector approves an OVD
    begin_filing / mark_filed / mark_registered / mark_rejected  # the connector's progress
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from cobro import formatting
from cobro.insurers import declarations as pure
from cobro.insurers.obligations import Obligation
from cobro.models import Customer, InsurerCover, InsurerDeclaration, Invoice
from cobro.models import TimelineEvent as Event
from cobro.queues.tasks import new_task

NAMES = {"OVD": "overdue declaration (OVD)", "EXP": "extension (EXP)", "RES": "rescheduling (RES)"}


class DeclarationError(ValueError):
    """A declaration that cannot be made (clear message, HTTP-like status for the API)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def _now() -> datetime:
    return datetime.now(UTC)


def obligations_of(session: Session, customer_id: int, today: date) -> dict[str, Obligation]:
    """Invoice number -> the obligation of each insured open invoice of the customer, under
    the active rules (`cobro insurer obligations`; the unnamed-buyer conditions read the
    facts of each due date, as the dunning step's insurance decision does)."""
    from cobro.insurers.obligations_sql import ObligationRules, obligations_for
    from cobro.rules.classify import load_active_ruleset

    rules = ObligationRules.of(load_active_ruleset(connection=session.connection()))
    found = obligations_for(session.connection(), today, rules, ids=[customer_id], exact=True)
    return {o.number: o for o in found}


def company_id_of(session: Session, customer: Customer, policy_id: str) -> str | None:
    """The insurer's id of the buyer: the customer's own, else its matched cover's."""
    if customer.insurer_buyer_id:
        return customer.insurer_buyer_id
    return session.scalar(
        select(InsurerCover.insurer_buyer_id)
        .where(
            InsurerCover.customer_id == customer.id,
            InsurerCover.policy_id == policy_id,
            InsurerCover.insurer_buyer_id.is_not(None),
        )
        .order_by(InsurerCover.id.desc())
        .limit(1)
    )


def event(
    session: Session,
    row: InsurerDeclaration,
    kind: str,
    summary: str,
    actor: str = "system",
    at: datetime | None = None,
    **data: Any,
) -> None:
    session.add(
        Event(
            customer_id=row.customer_id,
            at=at or _now(),
            kind=f"declaration.{kind}",
            actor=actor,
            summary=summary,
            data={
                "client_reference": row.client_reference,
                "category": row.category,
                "invoice": row.invoice_number,
                **data,
            },
        )
    )


def _existing(session: Session, reference: str) -> InsurerDeclaration | None:
    return session.scalar(
        select(InsurerDeclaration).where(InsurerDeclaration.client_reference == reference)
    )


def _new(
    session: Session,
    customer: Customer,
    invoice_id: int,
    o: Obligation,
    category: str,
    actor: str,
    *,
    status: str,
    deadline: date | None,
    **fields: Any,
) -> InsurerDeclaration:
    assert o.policy is not None
    company = company_id_of(session, customer, o.policy)
    row = InsurerDeclaration(
        customer_id=customer.id,
        invoice_id=invoice_id,
        invoice_number=o.number,
        category=category,
        client_reference=pure.client_reference(category, o.number),
        status=status if company else "rejected",
        policy_id=o.policy,
        company_id=company,
        currency=o.currency,
        amount=o.open_amount,
        due_date=o.due_date,
        deadline=deadline,
        attempts=0,
        requested_by=actor,
        error=None if company else "no insurer company id for this customer",
        **fields,
    )
    session.add(row)
    session.flush()
    if not company:
        _problem_task(session, row, "the customer has no insurer company id (buyer id)")
    return row


def _problem_task(session: Session, row: InsurerDeclaration, why: str) -> None:
    session.add(
        new_task(
            session,
            row.customer_id,
            kind="declaration",
            note=f"{NAMES[row.category]} of {row.invoice_number} not filed: {why}; "
            "declare it to the insurer by hand",
            role="credit_manager",
            due_date=row.deadline or _now().date(),
            source_key=f"declaration-problem:{row.client_reference}",
        )
    )


# ------------------------------------------------------------------------------ OVD


def queue_overdues(
    session: Session,
    customer: Customer,
    numbers: Sequence[str],
    today: date,
    actor: str = "system",
    at: datetime | None = None,
    **trace: Any,
) -> list[InsurerDeclaration]:
    """The OVD of each of `numbers` that the policy requires (insured, terms, at least the
    minimum declarable), once: `queued` (automatic) or `awaiting_approval` with a task for a
    collector. Invoices already declared keep their row. Returns the rows now pending."""
    obligations = obligations_of(session, customer.id, today)
    ids = dict(
        session.execute(
            select(Invoice.number, Invoice.id).where(
                Invoice.customer_id == customer.id, Invoice.number.in_(list(numbers))
            )
        ).all()
    )
    out = []
    for number in numbers:
        o = obligations.get(number)
        if o is None or not o.declaration_required or number not in ids:
            continue  # not insured, no terms or below the minimum: nothing to declare
        reference = pure.client_reference("OVD", number)
        row = _existing(session, reference)
        if row is None:
            approval = o.declarations == "approval"
            row = _new(
                session,
                customer,
                ids[number],
                o,
                "OVD",
                actor,
                status="awaiting_approval" if approval else "queued",
                deadline=o.declare_by,
            )
            money = f"{formatting.amount(o.open_amount)} {o.currency}"
            if row.status == "awaiting_approval":
                event(
                    session,
                    row,
                    "awaiting_approval",
                    f"overdue declaration (OVD) of {number} ({money}) to approve before "
                    f"{o.declare_by} (policy {o.policy})",
                    at=at,
                    deadline=str(o.declare_by),
                    **trace,
                )
                session.add(
                    new_task(
                        session,
                        customer.id,
                        kind="declaration",
                        note=f"approve the overdue declaration (OVD) of {number} ({money}), "
                        f"due to the insurer by {o.declare_by}: "
                        f"cobro insurer declarations approve --invoice {number}",
                        role="collector",
                        due_date=o.declare_by,
                        source_key=f"approve:{reference}",
                    )
                )
            elif row.status == "queued":
                event(
                    session,
                    row,
                    "queued",
                    f"overdue declaration (OVD) of {number} ({money}) to file before "
                    f"{o.declare_by} (policy {o.policy})",
                    at=at,
                    deadline=str(o.declare_by),
                    **trace,
                )
        out.append(row)
    return out


def approve(
    session: Session, invoice_number: str | None, actor: str, declaration_id: int | None = None
) -> InsurerDeclaration:
    """A collector approves an OVD awaiting approval (named by its invoice or its id): it is
    queued for the connector."""
    if declaration_id is not None:
        row = session.get(InsurerDeclaration, declaration_id)
        if row is None:
            raise DeclarationError(f"no declaration {declaration_id}", 404)
        invoice_number = row.invoice_number
    elif invoice_number is not None:
        row = _existing(session, pure.client_reference("OVD", invoice_number))
        if row is None:
            raise DeclarationError(f"no overdue declaration for invoice {invoice_number!r}", 404)
    else:
        raise DeclarationError("name the declaration (its id) or its invoice")
    if row.status != "awaiting_approval":
        raise DeclarationError(
            f"the overdue declaration of {invoice_number} is {row.status}, not awaiting approval",
            409,
        )
    row.status = "queued"
    row.approved_by = actor
    event(session, row, "approved", f"overdue declaration (OVD) of {invoice_number} approved",
          actor=actor)  # fmt: skip
    return row


# ------------------------------------------------------------------------------ EXP


def extensions_for_promise(
    session: Session,
    customer: Customer,
    pay_by: date,
    actor: str,
    today: date | None = None,
) -> list[str]:
    """A promise (or plan) to pay by `pay_by`: an EXP for each insured invoice it moves
    beyond its due date within the MEP, a warning for each beyond it. Returns sentences."""
    today = today or _now().date()
    notes = []
    obligations = obligations_of(session, customer.id, today)
    ids = dict(
        session.execute(
            select(Invoice.number, Invoice.id).where(
                Invoice.customer_id == customer.id, Invoice.number.in_(list(obligations))
            )
        ).all()
    )
    for number, o in obligations.items():
        if o.policy is None or o.may_extend_until is None or not o.declaration_required:
            continue
        decision = pure.extension_decision(o.due_date, o.may_extend_until, pay_by)
        if decision == "not_moved":
            continue
        if decision == "beyond_mep":
            session.add(
                Event(
                    customer_id=customer.id,
                    kind="declaration.beyond_mep",
                    actor=actor,
                    summary=f"payment of {number} promised for {pay_by}, beyond the maximum "
                    f"extension period (until {o.may_extend_until}): no extension can be "
                    f"declared; the overdue declaration is due by {o.declare_by}",
                    data={"invoice": number, "pay_by": str(pay_by),
                          "may_extend_until": str(o.may_extend_until)},
                )
            )  # fmt: skip
            notes.append(f"{number}: beyond the maximum extension period ({o.may_extend_until})")
            continue
        reference = pure.client_reference("EXP", number)
        row = _existing(session, reference)
        if row is not None:
            if row.new_due_date != pay_by:
                notes.append(f"{number}: an extension to {row.new_due_date} was already declared")
            continue
        row = _new(
            session,
            customer,
            ids[number],
            o,
            "EXP",
            actor,
            status="queued",
            deadline=o.may_extend_until,
            new_due_date=pay_by,
        )
        if row.status == "queued":
            event(
                session,
                row,
                "queued",
                f"extension (EXP) of {number} to {pay_by} to file (within the maximum "
                f"extension period, until {o.may_extend_until})",
                actor=actor,
                new_due_date=str(pay_by),
            )
            notes.append(f"{number}: extension to {pay_by} declared to the insurer")
    return notes


# ------------------------------------------------------------------------------ RES


def queue_rescheduling(
    session: Session, invoice_number: str, plan_text: str, actor: str, today: date | None = None
) -> InsurerDeclaration:
    """A repayment plan agreed for an insured invoice: its RES, queued for the connector."""
    today = today or _now().date()
    found = session.execute(
        select(Invoice, Customer)
        .join(Customer, Customer.id == Invoice.customer_id)
        .where(Invoice.number == invoice_number)
    ).first()
    if found is None:
        raise DeclarationError(f"no invoice {invoice_number!r}", 404)
    invoice, customer = found
    o = obligations_of(session, customer.id, today).get(invoice_number)
    if o is None or o.policy is None:
        raise DeclarationError(
            f"invoice {invoice_number} is not insured under a policy of insurance.yaml: "
            "nothing to declare",
            409,
        )
    try:
        plan = pure.parse_plan(plan_text, invoice.open_amount.normalize(), today)
    except ValueError as exc:
        raise DeclarationError(str(exc)) from None
    reference = pure.client_reference("RES", invoice_number)
    if _existing(session, reference) is not None:
        raise DeclarationError(
            f"a rescheduling (RES) of {invoice_number} was already declared", 409
        )
    row = _new(
        session,
        customer,
        invoice.id,
        o,
        "RES",
        actor,
        status="queued",
        deadline=o.declare_by,
        installments=pure.installments_json(plan),
    )
    if row.status == "queued":
        event(
            session,
            row,
            "queued",
            f"rescheduling (RES) of {invoice_number}: {len(plan)} installments, the last on "
            f"{plan[-1][0]}, to file",
            actor=actor,
        )
    return row


# --------------------------------------------------------------------- the connector's side


def pending_references(session: Session, customer_id: int) -> list[str]:
    """The declarations of the customer the connector still has to file or follow."""
    return _pending(session, customer_id, InsurerDeclaration.client_reference)


def pending_invoices(session: Session, customer_id: int) -> list[str]:
    return _pending(session, customer_id, InsurerDeclaration.invoice_number)


def _pending(session: Session, customer_id: int, column: Any) -> list[str]:
    return list(
        session.scalars(
            select(column)
            .where(
                InsurerDeclaration.customer_id == customer_id,
                InsurerDeclaration.status.in_(pure.PENDING),
            )
            .order_by(InsurerDeclaration.id)
        )
    )


@dataclass(frozen=True)
class Filing:
    """What the connector must do next for one declaration."""

    reference: str
    status: str  # queued: POST it; filed: follow its job
    job_id: str | None
    declaration: pure.StoredDeclaration | None  # None when nothing is left to do


def stored(row: InsurerDeclaration) -> pure.StoredDeclaration:
    assert row.company_id is not None
    return pure.StoredDeclaration(
        category=row.category,
        client_reference=row.client_reference,
        policy_id=row.policy_id,
        company_id=row.company_id,
        currency=row.currency,
        invoice_number=row.invoice_number,
        due_date=row.due_date,
        amount=row.amount,
        new_due_date=row.new_due_date,
        installments=pure.installments_of(row.installments),
    )


def begin_filing(session: Session, reference: str) -> Filing:
    """Claim the next step of a declaration. A queued OVD whose invoice was paid before any
    attempt was sent is cancelled; every attempt is counted before the POST (a retried
    attempt after a kill sends the same reference: the insurer keeps one declaration)."""
    with session.begin():
        row = session.scalar(
            select(InsurerDeclaration)
            .where(InsurerDeclaration.client_reference == reference)
            .with_for_update()
        )
        if row is None or row.status not in pure.PENDING:
            return Filing(reference, row.status if row else "missing", None, None)
        if row.status == "filed":
            return Filing(reference, "filed", row.job_id, stored(row))
        invoice = session.get(Invoice, row.invoice_id)
        if row.attempts == 0 and row.category == "OVD" and invoice is not None:
            if invoice.open_amount <= 0:
                row.status = "cancelled"
                row.error = "the invoice was paid before the declaration was sent"
                event(session, row, "cancelled", f"overdue declaration (OVD) of "
                      f"{row.invoice_number} cancelled: paid before it was sent")  # fmt: skip
                return Filing(reference, "cancelled", None, None)
            row.amount = invoice.open_amount  # what is unpaid now
        row.attempts += 1
        return Filing(reference, "queued", None, stored(row))


def mark_filed(session: Session, reference: str, job_id: str) -> None:
    with session.begin():
        row = _existing(session, reference)
        if row is None or row.status != "queued":
            return
        row.status, row.job_id, row.filed_at = "filed", job_id, _now()
        money = f"{formatting.amount(row.amount)} {row.currency}"
        event(session, row, "filed", f"{NAMES[row.category]} of {row.invoice_number} ({money}) "
              f"filed with the insurer (job {job_id})", job_id=job_id)  # fmt: skip


def mark_registered(session: Session, reference: str, overdue_id: str, insurer_status: str) -> None:
    with session.begin():
        row = _existing(session, reference)
        if row is None or row.status != "filed":
            return
        row.status, row.overdue_id = "registered", overdue_id
        row.insurer_status, row.answered_at = insurer_status, _now()
        event(session, row, "registered", f"{NAMES[row.category]} of {row.invoice_number} "
              f"{insurer_status.lower()} by the insurer ({overdue_id})",
              overdue_id=overdue_id)  # fmt: skip


def mark_rejected(session: Session, reference: str, reason: str) -> None:
    with session.begin():
        row = _existing(session, reference)
        if row is None or row.status not in pure.PENDING:
            return
        row.status, row.error, row.answered_at = "rejected", reason[:500], _now()
        event(session, row, "rejected", f"{NAMES[row.category]} of {row.invoice_number} "
              f"refused by the insurer: {reason[:200]}")  # fmt: skip
        _problem_task(session, row, f"the insurer refused it ({reason[:200]})")


# ---------------------------------------------------------------------------- reading


def declared_invoice_ids(conn: Connection, invoice_ids: Iterable[int]) -> set[int]:
    """Of `invoice_ids`, those whose OVD was filed (or registered) with the insurer."""
    wanted = list(invoice_ids)
    out: set[int] = set()
    for start in range(0, len(wanted), 5000):
        out.update(
            conn.scalars(
                select(InsurerDeclaration.invoice_id).where(
                    InsurerDeclaration.invoice_id.in_(wanted[start : start + 5000]),
                    InsurerDeclaration.category == "OVD",
                    InsurerDeclaration.status.in_(("filed", "registered")),
                )
            )
        )
    return out


def declaration_rows(
    conn: Connection, status: str | None = None, customer_id: int | None = None
) -> list[dict[str, Any]]:
    """Every declaration (newest first) as JSON-ready rows for the CLI, page and API."""
    query = (
        select(InsurerDeclaration, Customer.account)
        .join(Customer, Customer.id == InsurerDeclaration.customer_id)
        .order_by(InsurerDeclaration.id.desc())
    )
    if status == "pending":  # waiting for a collector or for the connector
        query = query.where(InsurerDeclaration.status.in_(pure.OPEN))
    elif status:
        query = query.where(InsurerDeclaration.status == status)
    if customer_id is not None:
        query = query.where(InsurerDeclaration.customer_id == customer_id)
    rows = []
    with Session(bind=conn) as s:
        for d, account in s.execute(query).all():
            rows.append(
                {
                    "id": d.id,
                    "account": account,
                    "invoice": d.invoice_number,
                    "category": d.category,
                    "client_reference": d.client_reference,
                    "status": d.status,
                    "policy": d.policy_id,
                    "currency": d.currency,
                    "amount": str(d.amount.quantize(Decimal("0.01"))),
                    "deadline": d.deadline.isoformat() if d.deadline else None,
                    "new_due_date": d.new_due_date.isoformat() if d.new_due_date else None,
                    "job_id": d.job_id,
                    "overdue_id": d.overdue_id,
                    "attempts": d.attempts,
                    "error": d.error,
                    "filed_at": d.filed_at.isoformat() if d.filed_at else None,
                    "requested_by": d.requested_by,
                    "approved_by": d.approved_by,
                }
            )
    return rows
