"""Claim → send → confirm for one reminder: the exactly-once protocol of DESIGN.md.

The communication row's unique idempotency key is the claim. It is inserted together with
the invoices' dunning levels in one transaction, after the facts were re-read; the provider
call happens outside any transaction; the confirmation records the provider id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cobro.channels.email import EmailError, SmtpConfig, send_email
from cobro.channels.sms import SmsError, TwilioConfig, make_client, send_sms_async
from cobro.dunning.languages import display_name
from cobro.dunning.store import (
    ActionSpec,
    CustomerFacts,
    Trace,
    load_customer_facts,
    record_levels,
)
from cobro.faults import crash_point
from cobro.models import Communication
from cobro.models import TimelineEvent as Event
from cobro.settings import get_settings

if TYPE_CHECKING:
    from cobro.dunning.messages import Message

log = logging.getLogger("cobro.dunning")


class PermanentSendError(Exception):
    """The provider refused for good (bad address, opted out upstream...): never retried."""


class TemporarySendError(Exception):
    """Worth retrying (connection refused, 4xx, 5xx from the SMS API)."""


@dataclass
class Claim:
    communication_id: int | None
    channel: str
    recipient: str
    subject: str | None
    text: str
    html: str | None
    idempotency_key: str
    resend: bool  # a previous attempt claimed it: it may have reached the provider
    outcome: str | None = None  # set when there is nothing to send
    summary: str = ""


def _nothing(outcome: str, summary: str, channel: str = "", key: str = "") -> Claim:
    return Claim(None, channel, "", None, "", None, key, False, outcome, summary)


def claim(session: Session, action: ActionSpec, now: datetime, trace: Trace) -> Claim:
    """Re-read the facts, then claim the send (or say why there is nothing to send)."""
    from cobro.dunning.messages import language_rules, render_reminder

    languages = language_rules()  # before the claim's transaction: one connection at a time
    with session.begin():
        existing = session.scalar(
            select(Communication).where(Communication.idempotency_key == action.idempotency_key)
        )
        if existing is not None and existing.status not in ("claimed",):
            return _nothing(existing.status, f"already {existing.status}", action.kind)
        facts = load_customer_facts(session, action.account)
        if facts is None:
            return _nothing("skipped", "customer no longer exists", action.kind)
        numbers = facts.open_numbers(action.invoices)
        if sorted(numbers) != sorted(action.invoices):
            if existing is not None:  # the facts moved after an earlier attempt claimed it
                existing.status = "cancelled"
                existing.error = "invoices paid, disputed or paused before the send"
            summary = "cancelled: " + _why_not(facts, action.invoices)
            _event(session, facts, "dunning.skipped", summary, trace, action)
            return _nothing("stale", summary, action.kind, action.idempotency_key)
        recipient = _recipient(facts, action.kind)
        if recipient is None:
            return _nothing("skipped", f"no {action.kind} recipient (or opted out)", action.kind)
        if existing is not None:
            return Claim(
                existing.id,
                action.kind,
                existing.recipient,
                existing.subject,
                existing.body or "",
                existing.body_html,
                action.idempotency_key,
                resend=True,
            )
        message = render_reminder(action, facts, now, languages)
        communication = Communication(
            customer_id=facts.customer.id,
            channel=action.kind,
            template=action.template or "",
            language=message.language,
            recipient=recipient,
            idempotency_key=action.idempotency_key,
            status="claimed",
            subject=message.subject,
            body=message.text,
            body_html=message.html,
            invoice_numbers={"invoices": numbers},
            workflow_id=trace.workflow_id,
            run_id=trace.run_id,
        )
        try:
            with session.begin_nested():
                session.add(communication)
                record_levels(session, facts, action, numbers, "sent", trace, now)
        except IntegrityError:  # a concurrent attempt claimed it first
            return _nothing("skipped", "claimed by a concurrent attempt", action.kind)
        if message.fell_back:
            _event(
                session,
                facts,
                "dunning.language_fallback",
                _fallback_summary(message),
                trace,
                action,
                language=message.language,
                customer_language=message.requested,
                communication_id=communication.id,
            )
        return Claim(
            communication.id,
            action.kind,
            recipient,
            message.subject,
            message.text,
            message.html,
            action.idempotency_key,
            resend=False,
        )


def _why_not(facts: CustomerFacts, numbers: list[str]) -> str:
    by_number = {inv.number: inv for inv in facts.invoices}
    paused = facts.paused_invoices()
    reasons = []
    for n in numbers:
        inv = by_number.get(n)
        if inv is None or inv.open_amount <= 0:
            reasons.append(f"{n} paid")
        elif inv.disputed:
            reasons.append(f"{n} disputed")
        elif n in paused:
            reasons.append(f"{n} paused")
    return ", ".join(reasons) or "the group of invoices changed"


def _fallback_summary(message: Message) -> str:
    """`written in English: no templates in Polish (pl), the customer's language`."""
    wanted = message.requested
    return (
        f"written in {display_name(message.language)}: no templates in "
        f"{display_name(wanted)} ({wanted}), the customer's language"
    )


def _recipient(facts: CustomerFacts, channel: str) -> str | None:
    c = facts.customer
    if channel == "email" and c.email and not c.opt_out_email:
        return c.email
    if channel == "sms" and c.phone and not c.opt_out_sms:
        return c.phone
    return None


async def send(claim: Claim) -> str:
    """Hand the message to the provider; returns the provider id (Message-ID or SMS sid)."""
    try:
        if claim.channel == "email":
            return await send_email(
                to=[a.strip() for a in claim.recipient.split(";") if a.strip()],
                subject=claim.subject or "",
                text=claim.text,
                html=claim.html,
                idempotency_key=claim.idempotency_key,
                config=SmtpConfig.from_settings(),
            )
        config = TwilioConfig.from_settings()
        if claim.resend:
            sid = await _find_sms(config, claim)
            if sid is not None:
                log.info("SMS %s already accepted by the provider: %s", claim.idempotency_key, sid)
                return sid
        callback = get_settings().public_base_url.rstrip("/") + "/webhooks/twilio/status"
        return await send_sms_async(
            to=claim.recipient,
            body=claim.text,
            config=config,
            idempotency_key=claim.idempotency_key,
            status_callback=callback,
        )
    except (EmailError, SmsError) as exc:
        if exc.permanent:
            raise PermanentSendError(str(exc)) from exc
        raise TemporarySendError(str(exc)) from exc


async def _find_sms(config: TwilioConfig, claim: Claim) -> str | None:
    """Did an earlier attempt reach the provider? Look it up in the provider's list."""
    import asyncio

    def lookup() -> str | None:
        client = make_client(config)
        for message in client.messages.list(to=claim.recipient, limit=50):
            if message.body == claim.text:
                return message.sid
        return None

    try:
        return await asyncio.to_thread(lookup)
    except Exception as exc:  # the lookup itself failed: retry the whole activity later
        raise TemporarySendError(f"cannot list SMS sent to {claim.recipient}: {exc}") from exc


def confirm(session: Session, claim: Claim, provider_id: str, trace: Trace) -> None:
    with session.begin():
        communication = session.get(Communication, claim.communication_id)
        assert communication is not None
        if communication.status == "sent":
            return
        communication.status = "sent"
        communication.provider_id = provider_id
        communication.sent_at = datetime.now(UTC)
        session.flush()
        crash_point("before_confirm")  # the update is written but not committed
        session.add(
            Event(
                customer_id=communication.customer_id,
                kind=f"dunning.{claim.channel}_sent",
                summary=f"{communication.template} {claim.channel} sent to {claim.recipient}",
                data=trace.data(
                    idempotency_key=claim.idempotency_key,
                    provider_id=provider_id,
                    communication_id=communication.id,
                ),
            )
        )


def record_failure(session: Session, claim: Claim, error: str, trace: Trace) -> None:
    with session.begin():
        communication = session.get(Communication, claim.communication_id)
        assert communication is not None
        communication.status = "failed"
        communication.error = error
        session.add(
            Event(
                customer_id=communication.customer_id,
                kind=f"dunning.{claim.channel}_failed",
                summary=f"{communication.template} {claim.channel} to {claim.recipient} failed: "
                f"{error}",
                data=trace.data(idempotency_key=claim.idempotency_key),
            )
        )


def _event(
    session: Session,
    facts: CustomerFacts,
    kind: str,
    summary: str,
    trace: Trace,
    action: ActionSpec,
    **data: object,
) -> None:
    session.add(
        Event(
            customer_id=facts.customer.id,
            kind=kind,
            summary=f"{action.template or action.kind} {action.kind}: {summary}",
            data=trace.data(idempotency_key=action.idempotency_key, **data),
        )
    )
