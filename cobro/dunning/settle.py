"""A collector settles an `uncertain` contact: one that a worker claimed and may have handed
to the relay, which the relay could not confirm or deny (`delivery.hold_uncertain`).

Two decisions, each recorded on the row, the customer's timeline and its task:

- `sent`: the collector checked (relay logs, the customer) that it went out: `sent`, never
  resent;
- `resend`: it did not go out: sent now by the same claim → send → confirm protocol as the
  workflow's (`delivery.send`, `delivery.confirm`), with the same Message-ID (a mail client
  that got the first one shows one message), after the facts are read again — an invoice
  paid or disputed since is not chased.

The CLI (`cobro dunning settle`), the customer file and the API call these functions.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from cobro.channels.email import message_id_for
from cobro.db import session_factory, transaction
from cobro.dunning.collector import ActionError, Outcome, check_actor, check_text
from cobro.dunning.delivery import (
    LEASE,
    Claim,
    PermanentSendError,
    TemporarySendError,
    confirm,
    record_failure,
    send,
)
from cobro.dunning.store import Trace, load_customer_facts
from cobro.models import Communication, Customer, Task
from cobro.models import TimelineEvent as Event
from cobro.notices import notice

DECISIONS = ("sent", "resend")


def _now() -> datetime:
    return datetime.now(UTC)


def find_uncertain(s: Session, ref: str, account: str | None = None) -> Communication:
    """The uncertain contact named by its idempotency key or its Message-ID (`<...@cobro>`,
    as the task and the relay show it); with `account`, only that customer's."""
    ref = ref.strip()
    if not ref:
        raise ActionError("give the contact's key or Message-ID")
    query = select(Communication).where(Communication.status == "uncertain")
    if account is not None:
        query = query.join(Customer, Customer.id == Communication.customer_id).where(
            Customer.account == account
        )
    wanted = ref if ref.startswith("<") else None
    for row in s.scalars(query):
        if row.idempotency_key == ref or (wanted and message_id_for(row.idempotency_key) == ref):
            return row
    known = s.scalar(select(Communication.status).where(Communication.idempotency_key == ref))
    if known is not None and known != "uncertain":
        raise ActionError(f"contact {ref} is {known}, not uncertain: nothing to settle", 409)
    raise ActionError(f"no uncertain contact {ref!r}", 404)


def _close_task(s: Session, key: str, actor: str, note: str) -> None:
    task = s.scalar(select(Task).where(Task.source_key == f"uncertain:{key}"))
    if task is not None and task.status == "open":
        task.status = "done"
        task.done_at = _now()
        task.note = f"{task.note}\n{note} ({actor})".strip()


def _event(s: Session, row: Communication, kind: str, summary: str, actor: str) -> None:
    s.add(
        Event(
            customer_id=row.customer_id,
            kind=kind,
            summary=summary,
            actor=actor,
            data={"idempotency_key": row.idempotency_key, "communication_id": row.id},
        )
    )


def mark_sent(
    engine: Engine, ref: str, actor: str, reason: str | None = "", account: str | None = None
) -> str:
    """The collector says it went out: `sent`, closed, never resent."""
    who, note = check_actor(actor), check_text(reason)
    with transaction(engine) as s:
        row = find_uncertain(s, ref, account)
        what = f"{row.template} {row.channel} to {row.recipient}"
        row.status = "sent"
        row.sent_at = row.sent_at or _now()
        row.error = f"marked sent by {who}" + (f": {note}" if note else "")
        row.lease_until = None
        _event(s, row, f"dunning.{row.channel}_settled", f"{what} marked as sent by {who}", who)
        _close_task(s, row.idempotency_key, who, "marked as sent")
    return notice(
        "marked_sent", template=row.template, channel=row.channel, recipient=row.recipient
    )


def _claim_for_resend(s: Session, ref: str, account: str | None, who: str) -> Claim | str:
    """Compare-and-set `uncertain` → `claimed` under a fresh lease, facts read again first;
    a string says why nothing is sent (the invoices were paid or disputed meanwhile)."""
    with s.begin():
        row = find_uncertain(s, ref, account)
        what = f"{row.template} {row.channel} to {row.recipient}"
        account_of = s.scalar(select(Customer.account).where(Customer.id == row.customer_id))
        facts = load_customer_facts(s, account_of or "")
        numbers = list((row.invoice_numbers or {}).get("invoices", []))
        instalment = row.idempotency_key.startswith("plan:")  # a payment plan's reminder
        still_open = facts.open_numbers(numbers, instalment) if facts is not None else []
        if sorted(still_open) != sorted(numbers):
            row.status = "cancelled"
            row.error = f"not resent: invoices paid or disputed since (decided by {who})"
            _event(s, row, f"dunning.{row.channel}_settled", f"{what} not resent: paid since", who)
            _close_task(s, row.idempotency_key, who, "not resent: the invoices were paid since")
            return notice(
                "not_resent", template=row.template, channel=row.channel, recipient=row.recipient
            )
        lease_until = _now() + LEASE
        taken = s.execute(
            update(Communication)
            .where(
                Communication.id == row.id,
                Communication.attempts == row.attempts,
                Communication.status == "uncertain",
            )
            .values(attempts=row.attempts + 1, status="claimed", lease_until=lease_until)
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken != 1:
            raise ActionError(f"contact {ref} is being settled by someone else", 409)
        return Claim(
            row.id,
            row.channel,
            row.recipient,
            row.subject,
            row.body or "",
            row.body_html,
            row.idempotency_key,
            resend=False,
            attempt=row.attempts + 1,
            lease_until=lease_until,
        )


def _back_to_uncertain(s: Session, claim: Claim, why: str) -> None:
    """This resend was refused for now (nothing accepted): the first attempt is still
    unknown, so the contact stays uncertain for the collector to try again."""
    with s.begin():
        s.execute(
            update(Communication)
            .where(
                Communication.id == claim.communication_id,
                Communication.attempts == claim.attempt,
                Communication.status == "claimed",
            )
            .values(status="uncertain", lease_until=None, error=f"uncertain; resend refused: {why}")
        )


async def resend(
    engine: Engine, ref: str, actor: str, reason: str | None = "", account: str | None = None
) -> str:
    """The collector says it did not go out: send it now, exactly once."""
    import asyncio

    who, note = check_actor(actor), check_text(reason)
    factory = session_factory(engine)

    def run(function, *args):  # type: ignore[no-untyped-def]
        def call():  # type: ignore[no-untyped-def]
            with factory() as s:
                return function(s, *args)

        return asyncio.to_thread(call)

    claim = await run(_claim_for_resend, ref, account, who)
    if isinstance(claim, str):
        return claim
    what = f"{claim.channel} to {claim.recipient}"
    trace = Trace("collector", who)
    try:
        provider_id = await send(claim)
    except PermanentSendError as exc:
        await run(record_failure, claim, str(exc), trace)
        raise ActionError(f"{what} refused for good: {exc}", 409) from exc
    except TemporarySendError as exc:
        await run(_back_to_uncertain, claim, exc.reason)
        raise ActionError(f"{what} not accepted for now ({exc.reason}): try again", 503) from exc
    await run(confirm, claim, provider_id, trace)
    with transaction(engine) as s:
        row = s.get(Communication, claim.communication_id)
        assert row is not None
        detail = f"{row.template} {what} resent by {who}" + (f": {note}" if note else "")
        _event(s, row, f"dunning.{claim.channel}_settled", detail, who)
        _close_task(s, claim.idempotency_key, who, "resent")
    return notice(
        "resent",
        channel=claim.channel,
        recipient=claim.recipient,
        message_id=message_id_for(claim.idempotency_key),
    )


async def settle_contact(
    engine: Engine,
    ref: str,
    decision: str,
    actor: str,
    reason: str | None = "",
    account: str | None = None,
) -> Outcome:
    """One entry for the CLI, the customer file and the API: `decision` is `sent` or
    `resend`. Nothing to signal: the workflow already moved on from this contact."""
    import asyncio

    if decision not in DECISIONS:
        raise ActionError(f"decision must be 'sent' or 'resend', not {decision!r}")
    if decision == "sent":
        return Outcome(await asyncio.to_thread(mark_sent, engine, ref, actor, reason, account))
    return Outcome(await resend(engine, ref, actor, reason, account))
