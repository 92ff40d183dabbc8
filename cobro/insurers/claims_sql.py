"""Claims as the database holds them (`InsurerClaim`), and every change of one, each with its
customer-timeline event. The pure rules are `cobro.insurers.claims`; the connector calls are
`cobro.insurers.claiming`.

    file_claim(session, invoice_number, actor, today)       # a credit manager hands it over
    pending_references / due_for_check / next_check_at     # what the dunning activity follows
    begin_filing / mark_filed / mark_acknowledged / mark_decided / mark_checked
    note_recoveries(session, customer_id, at)               # payments after the indemnity
    claim_rows(conn, ...)                                   # CLI, API and page
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from cobro import formatting
from cobro.insurers import claims as pure
from cobro.insurers.declarations_sql import company_id_of, obligations_of
from cobro.models import (
    Customer,
    InsurerClaim,
    InsurerDeclaration,
    Invoice,
    PaymentAllocation,
)
from cobro.models import TimelineEvent as Event
from cobro.queues.tasks import new_task

CHECK_EVERY = timedelta(days=1)  # an acknowledged claim's decision is asked for once a day


class ClaimError(ValueError):
    """A claim that cannot be made (clear message, HTTP-like status for the API)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def _now() -> datetime:
    return datetime.now(UTC)


def _money(amount: Decimal, currency: str) -> str:
    return f"{formatting.amount(amount)} {currency}"


def event(
    session: Session,
    row: InsurerClaim,
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
            kind=f"claim.{kind}",
            actor=actor,
            summary=summary,
            data={"client_reference": row.client_reference, "invoice": row.invoice_number,
                  **data},
        )
    )  # fmt: skip


def _existing(session: Session, reference: str) -> InsurerClaim | None:
    return session.scalar(select(InsurerClaim).where(InsurerClaim.client_reference == reference))


def _insured_percent(session: Session, policy: str) -> Decimal:
    from cobro.insurers.obligations_sql import ObligationRules
    from cobro.rules.classify import load_active_ruleset

    ruleset = load_active_ruleset(connection=session.connection())
    terms = ObligationRules.of(ruleset).terms.policies.get(policy)
    return terms.insured_percent if terms is not None else Decimal(0)


def file_claim(
    session: Session,
    invoice_number: str,
    actor: str,
    today: date | None = None,
    at: datetime | None = None,
) -> InsurerClaim:
    """Hand an insured, declared invoice over to the insurer: its claim is queued for the
    connector (the customer's dunning workflow files it). `ClaimError` says why not."""
    today = today or _now().date()
    found = session.execute(
        select(Invoice, Customer)
        .join(Customer, Customer.id == Invoice.customer_id)
        .where(Invoice.number == invoice_number)
    ).first()
    if found is None:
        raise ClaimError(f"no invoice {invoice_number!r}", 404)
    invoice, customer = found
    reference = pure.client_reference(invoice_number)
    if session.scalar(select(InsurerClaim.id).where(InsurerClaim.invoice_id == invoice.id)):
        raise ClaimError(f"invoice {invoice_number} was already claimed", 409)
    o = obligations_of(session, customer.id, today).get(invoice_number)
    ovd = session.execute(
        select(InsurerDeclaration.status, InsurerDeclaration.overdue_id).where(
            InsurerDeclaration.invoice_id == invoice.id, InsurerDeclaration.category == "OVD"
        )
    ).first()
    why = pure.why_not_claimable(
        open_amount=invoice.open_amount,
        insured_policy=o.policy if o is not None else None,
        ovd_status=ovd.status if ovd is not None else None,
    )
    if why is not None:
        raise ClaimError(f"invoice {invoice_number} cannot be claimed: {why}", 409)
    assert o is not None and o.policy is not None
    company = company_id_of(session, customer, o.policy)
    if company is None:
        raise ClaimError(f"{customer.account} has no insurer company id (buyer id)", 409)
    percent = _insured_percent(session, o.policy)
    row = InsurerClaim(
        customer_id=customer.id,
        invoice_id=invoice.id,
        invoice_number=invoice_number,
        client_reference=reference,
        policy_id=o.policy,
        currency=invoice.currency,
        status="queued",
        claimed_amount=invoice.open_amount,
        insured_percent=percent,
        filed_on=today,
        claim_by=o.claim_by,
        filed_by=actor,
        attempts=0,
        recovered_amount=Decimal(0),
    )
    session.add(row)
    session.flush()
    late = f"; after the claim deadline ({o.claim_by}): the insurer may refuse it" if (
        o.claim_by is not None and today > o.claim_by) else ""  # fmt: skip
    expected = pure.expected_indemnity(invoice.open_amount, percent)
    event(session, row, "queued", f"claim for {invoice_number} "
          f"({_money(invoice.open_amount, invoice.currency)}, {percent.normalize()}% insured: "
          f"{_money(expected, invoice.currency)} expected) to file with the insurer{late}",
          actor=actor, at=at, overdue_id=ovd.overdue_id if ovd else None)  # fmt: skip
    return row


# --------------------------------------------------------------------- the connector's side


def pending_references(session: Session, customer_id: int, now: datetime) -> list[str]:
    """The claims of the customer the connector has to file, follow, or ask a decision for
    (an acknowledged claim once every `CHECK_EVERY`)."""
    rows = session.execute(
        select(InsurerClaim.client_reference, InsurerClaim.status, InsurerClaim.checked_at)
        .where(
            InsurerClaim.customer_id == customer_id,
            InsurerClaim.status.in_((*pure.PENDING, *pure.AWAITING)),
        )
        .order_by(InsurerClaim.id)
    ).all()
    return [
        ref
        for ref, status, checked in rows
        if ref and (status in pure.PENDING or checked is None or checked + CHECK_EVERY <= now)
    ]


def next_check_at(session: Session, customer_id: int) -> datetime | None:
    """When an acknowledged claim of the customer is next asked for the insurer's decision."""
    checked = session.scalar(
        select(func.min(InsurerClaim.checked_at)).where(
            InsurerClaim.customer_id == customer_id, InsurerClaim.status.in_(pure.AWAITING)
        )
    )
    return None if checked is None else checked + CHECK_EVERY


@dataclass(frozen=True)
class Filing:
    """What the connector must do next for one claim."""

    reference: str
    status: str  # queued: POST it; filed: follow its job; acknowledged: ask for the decision
    job_id: str | None
    insurer_reference: str | None
    claim: pure.StoredClaim | None  # None when nothing is left to do


def stored(session: Session, row: InsurerClaim) -> pure.StoredClaim:
    customer = session.get(Customer, row.customer_id)
    assert customer is not None and row.client_reference is not None
    company = company_id_of(session, customer, row.policy_id)
    assert company is not None
    invoice = session.get(Invoice, row.invoice_id)
    assert invoice is not None
    overdue_id = session.scalar(
        select(InsurerDeclaration.overdue_id).where(
            InsurerDeclaration.invoice_id == row.invoice_id, InsurerDeclaration.category == "OVD"
        )
    )
    return pure.StoredClaim(
        client_reference=row.client_reference,
        policy_id=row.policy_id,
        company_id=company,
        currency=row.currency,
        invoice_number=row.invoice_number,
        due_date=invoice.due_date,
        claimed_amount=row.claimed_amount,
        overdue_id=overdue_id,
    )


def begin_filing(session: Session, reference: str) -> Filing:
    """Claim the next step of a claim; every attempt to POST is counted before it (a retried
    attempt after a kill sends the same reference: the insurer keeps one claim)."""
    with session.begin():
        row = session.scalar(
            select(InsurerClaim).where(InsurerClaim.client_reference == reference).with_for_update()
        )
        if row is None or row.status not in (*pure.PENDING, *pure.AWAITING):
            return Filing(reference, row.status if row else "missing", None, None, None)
        if row.status == "queued":
            row.attempts += 1
        return Filing(
            reference, row.status, row.job_id, row.insurer_reference, stored(session, row)
        )


def mark_filed(session: Session, reference: str, job_id: str, at: datetime) -> None:
    with session.begin():
        row = _existing(session, reference)
        if row is None or row.status != "queued":
            return
        row.status, row.job_id = "filed", job_id
        event(session, row, "filed", f"claim for {row.invoice_number} "
              f"({_money(row.claimed_amount, row.currency)}) filed with the insurer (job {job_id})",
              at=at, job_id=job_id)  # fmt: skip


def mark_acknowledged(session: Session, reference: str, claim_id: str, at: datetime) -> None:
    with session.begin():
        row = _existing(session, reference)
        if row is None or row.status not in pure.PENDING:
            return
        row.status, row.insurer_reference = "acknowledged", claim_id
        row.acknowledged_on, row.checked_at = at.date(), at
        event(session, row, "acknowledged", f"claim for {row.invoice_number} acknowledged by "
              f"the insurer ({claim_id}); its decision is awaited", at=at,
              claim_id=claim_id)  # fmt: skip


def mark_checked(session: Session, reference: str, at: datetime) -> None:
    """The insurer was asked and has not decided yet."""
    with session.begin():
        row = _existing(session, reference)
        if row is not None and row.status in pure.AWAITING:
            row.checked_at = at


def mark_decided(
    session: Session,
    reference: str,
    indemnified: Decimal | None,
    reason: str | None,
    decided_on: date | None,
    at: datetime,
) -> None:
    """The insurer's decision: indemnified (`indemnified` paid) or refused (`reason`)."""
    with session.begin():
        row = _existing(session, reference)
        if row is None or row.status not in (*pure.PENDING, *pure.AWAITING):
            return
        day = decided_on or at.date()
        row.checked_at = at
        if indemnified is not None:
            row.status, row.indemnified_amount, row.indemnified_on = "indemnified", indemnified, day
            event(session, row, "indemnified", f"claim for {row.invoice_number}: the insurer "
                  f"indemnified {_money(indemnified, row.currency)} on {day}; later payments "
                  "of the invoice are recoveries", at=at,
                  indemnified_amount=str(indemnified))  # fmt: skip
            return
        row.status, row.reason, row.refused_on = "refused", (reason or "refused")[:500], day
        event(session, row, "refused", f"claim for {row.invoice_number} refused by the "
              f"insurer: {row.reason[:200]}", at=at)  # fmt: skip
        session.add(
            new_task(
                session,
                row.customer_id,
                kind="claim",
                note=f"the insurer refused the claim for {row.invoice_number}: "
                f"{row.reason[:200]}; decide on legal action",
                role="credit_manager",
                due_date=day,
                source_key=f"claim-refused:{row.client_reference}",
            )
        )


def mark_failed(session: Session, reference: str, reason: str, at: datetime) -> None:
    """The insurer refused the request itself (4xx): recorded as refused, with a task."""
    mark_decided(session, reference, None, f"request refused: {reason}", None, at)


# ---------------------------------------------------------------------------- recoveries


def note_recoveries(session: Session, customer_id: int, at: datetime | None = None) -> list[str]:
    """Payments allocated to an indemnified invoice after the day of the indemnity are
    recoveries: each new one is recorded on the claim, on the timeline, and as a task to pass
    the insurer's share on (`claims.recovery_split`). Returns one sentence per change."""
    notes = []
    rows = session.scalars(
        select(InsurerClaim).where(
            InsurerClaim.customer_id == customer_id, InsurerClaim.status == "indemnified"
        )
    ).all()
    for row in rows:
        assert row.indemnified_on is not None
        recovered = session.scalar(
            select(func.coalesce(func.sum(PaymentAllocation.amount), 0)).where(
                PaymentAllocation.invoice_id == row.invoice_id,
                PaymentAllocation.payment_date > row.indemnified_on,
            )
        )
        recovered = Decimal(recovered or 0)
        if recovered == row.recovered_amount:
            continue
        new = recovered - row.recovered_amount
        before = pure.recovery_split(
            row.recovered_amount, row.insured_percent, row.indemnified_amount or Decimal(0)
        )
        split = pure.recovery_split(
            recovered, row.insured_percent, row.indemnified_amount or Decimal(0)
        )
        owed = split.to_insurer - before.to_insurer
        row.recovered_amount = recovered
        event(session, row, "recovery", f"recovery on claimed {row.invoice_number}: "
              f"{_money(new, row.currency)} paid after the indemnity "
              f"({_money(recovered, row.currency)} in all); "
              f"{_money(owed, row.currency)} to pass on to the insurer", at=at,
              recovered=str(recovered), to_insurer=str(split.to_insurer))  # fmt: skip
        if owed > 0:
            session.add(
                new_task(
                    session,
                    row.customer_id,
                    kind="claim",
                    note=f"pass on {_money(owed, row.currency)} recovered on {row.invoice_number} "
                    f"to the insurer (claim {row.insurer_reference}, "
                    f"{row.insured_percent.normalize()}% insured)",
                    role="credit_manager",
                    due_date=(at or _now()).date(),
                    source_key=f"recovery:{row.client_reference}:{recovered}",
                )
            )
        notes.append(f"{row.invoice_number}: recovery of {_money(new, row.currency)}")
    return notes


# ---------------------------------------------------------------------------- reading


def claim_rows(conn: Connection, customer_id: int | None = None) -> list[dict[str, Any]]:
    """Every claim (newest first) as JSON-ready rows for the CLI, page and API: claimed,
    indemnified, recovered and the recoveries' share owed to the insurer."""
    query = (
        select(InsurerClaim, Customer.account)
        .join(Customer, Customer.id == InsurerClaim.customer_id)
        .order_by(InsurerClaim.id.desc())
    )
    if customer_id is not None:
        query = query.where(InsurerClaim.customer_id == customer_id)
    rows = []
    with Session(bind=conn) as s:
        for c, account in s.execute(query).all():
            split = pure.recovery_split(
                c.recovered_amount, c.insured_percent, c.indemnified_amount or Decimal(0)
            )
            rows.append(
                {
                    "account": account,
                    "invoice": c.invoice_number,
                    "client_reference": c.client_reference,
                    "status": c.status,
                    "policy": c.policy_id,
                    "currency": c.currency,
                    "claimed": str(c.claimed_amount.quantize(pure.CENT)),
                    "insured_percent": str(c.insured_percent.normalize()),
                    "indemnified": None
                    if c.indemnified_amount is None
                    else str(c.indemnified_amount.quantize(pure.CENT)),
                    "recovered": str(c.recovered_amount.quantize(pure.CENT)),
                    "recovered_to_insurer": str(split.to_insurer.quantize(pure.CENT)),
                    "insurer_reference": c.insurer_reference,
                    "filed_on": c.filed_on.isoformat(),
                    "claim_by": c.claim_by.isoformat() if c.claim_by else None,
                    "acknowledged_on": c.acknowledged_on.isoformat() if c.acknowledged_on else None,
                    "indemnified_on": c.indemnified_on.isoformat() if c.indemnified_on else None,
                    "refused_on": c.refused_on.isoformat() if c.refused_on else None,
                    "reason": c.reason,
                    "filed_by": c.filed_by,
                }
            )
    return rows


AMOUNTS = ("claimed", "indemnified", "recovered", "recovered_to_insurer")


def totals(rows: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Per currency: claimed, indemnified, recovered, owed to the insurer (the report)."""
    out: dict[str, dict[str, Decimal]] = {}
    for r in rows:
        t = out.setdefault(r["currency"], {k: Decimal(0) for k in AMOUNTS})
        for key in t:
            t[key] += Decimal(r[key] or 0)
    return {cur: {k: str(v) for k, v in t.items()} for cur, t in sorted(out.items())}
