"""Claim → send → confirm for one reminder: the exactly-once protocol of DESIGN.md.

The communication row's unique idempotency key is the claim. It is inserted together with
the invoices' dunning levels in one transaction, after the facts were re-read; the provider
call happens outside any transaction; the confirmation records the provider id.

A message the provider accepted is never sent again:

- a claim is held by one attempt (`attempts`, fenced by compare-and-set) under a lease:
  that attempt sends before `lease_until - LEASE_MARGIN` or not at all, so a later attempt
  that finds the claim unconfirmed after the lease knows no send of the earlier one is
  still on its way;
- such a claimed-but-unconfirmed message is resolved by asking the provider (`resolve`):
  the relay by our Message-ID (`cobro.channels.relay`), Twilio by its message list. Found:
  confirmed without a send. Certainly not there: sent (after the facts are read again).
  The relay cannot tell: held as `uncertain` with a task for a collector, never resent
  unless `email_resend_uncertain` allows it;
- the confirmation after acceptance is retried in place while the database is away
  (`deliver(..., heartbeat=...)`), never by re-running the send;
- a temporary refusal (nothing accepted) is recorded on the row: `delayed: SMTP refused
  (451), attempt 4`, so the next attempt sends without asking anyone.

`deliver` runs the whole protocol for one action; the `dunning_execute` activity and the
bench both call it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from cobro.channels.email import EmailError, SmtpConfig, message_id_for, pool_for, send_email
from cobro.channels.relay import RelayAnswer, RelayLookupError, relay_lookup_from_settings
from cobro.channels.sms import SmsError, TwilioConfig, make_client, send_message_async
from cobro.channels.whatsapp import address as whatsapp_address
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
from cobro.queues.tasks import new_task
from cobro.settings import get_settings

if TYPE_CHECKING:
    from cobro.dunning.messages import Message, RulesInForce

log = logging.getLogger("cobro.dunning")

SEND_BUDGET = timedelta(seconds=15)  # the provider call, from claim to answer
LEASE_MARGIN = timedelta(seconds=5)  # a send cut off at its deadline lands within this
LEASE = SEND_BUDGET + LEASE_MARGIN


class PermanentSendError(Exception):
    """The provider refused for good (bad address, opted out upstream...): never retried."""


class TemporarySendError(Exception):
    """Worth retrying (connection refused, 4xx, 5xx from the SMS API, claim in flight).

    `maybe_accepted`: the provider may have taken the message all the same (connection
    lost after the data went out): the next attempt asks before any resend."""

    def __init__(self, message: str, *, reason: str = "", maybe_accepted: bool = False):
        super().__init__(message)
        self.reason = reason or message
        self.maybe_accepted = maybe_accepted


class ClaimInFlight(TemporarySendError):
    """Another attempt holds the claim under a live lease: try again after it."""

    def __init__(self, message: str, *, lease_until: datetime | None = None):
        super().__init__(message, reason="in flight")
        self.lease_until = lease_until

    @property
    def retry_in(self) -> timedelta:
        """When to look again: just after the lease, at least a second from now."""
        if self.lease_until is None:
            return timedelta(seconds=2)
        return max(self.lease_until - _utcnow(), timedelta(0)) + timedelta(seconds=1)


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
    attempt: int = 1  # which attempt holds the claim (the row's `attempts`)
    lease_until: datetime | None = None
    provider_template: dict[str, Any] | None = None  # WhatsApp: {sid, variables}

    @property
    def message_id(self) -> str:
        return message_id_for(self.idempotency_key)


@dataclass
class Delivered:
    status: str  # sent, skipped, stale, failed, uncertain, cancelled...
    summary: str


def _nothing(outcome: str, summary: str, channel: str = "", key: str = "") -> Claim:
    return Claim(None, channel, "", None, "", None, key, False, outcome, summary)


def _utcnow() -> datetime:
    return datetime.now(UTC)


# Core statements on the tables (no ORM objects, no ORM statement overhead), built once
_COMMUNICATIONS = Communication.__table__
_EVENTS = Event.__table__
_c = _COMMUNICATIONS.c
# what a claim reads of an earlier attempt's row
_CLAIM_ROW = select(
    _c.id,
    _c.status,
    _c.attempts,
    _c.lease_until,
    _c.recipient,
    _c.subject,
    _c.body,
    _c.body_html,
    _c.provider_template,
).where(_c.idempotency_key == bindparam("key"))
_NEW_CLAIM = insert(_COMMUNICATIONS).returning(_c.id)


def claim(session: Session, action: ActionSpec, now: datetime, trace: Trace) -> Claim:
    """Re-read the facts, then claim the send (or say why there is nothing to send).

    Raises `ClaimInFlight` while another attempt holds the claim's lease. A claim whose
    holder is gone without confirming comes back with `resend=True`: resolve it first.
    """
    from cobro.dunning.messages import rules_in_force

    try:
        with session.begin():
            # read once for the whole claim, in its transaction (the message's languages
            # and labels, the levels' labels, the stored hash)
            rules = rules_in_force(session.connection())
            return _claim(session, action, now, trace, rules)
    except IntegrityError:  # a concurrent attempt claimed it first: it holds the lease
        raise ClaimInFlight(
            f"{action.idempotency_key}: claimed by a concurrent attempt",
            lease_until=_utcnow() + LEASE,
        ) from None


def _claim(
    session: Session, action: ActionSpec, now: datetime, trace: Trace, rules: RulesInForce
) -> Claim:
    """The claim's transaction: the row's insert and the invoices' levels commit together;
    a unique-key conflict (a concurrent claim) raises IntegrityError and rolls back both."""
    from cobro.dunning.messages import render_reminder
    from cobro.portal.links import link_for_message

    existing = session.execute(_CLAIM_ROW, {"key": action.idempotency_key}).first()
    if existing is not None and existing.status not in ("claimed", "delayed"):
        return _nothing(existing.status, f"already {existing.status}", action.kind)
    wall = _utcnow()
    if existing is not None and existing.status == "claimed":
        if existing.lease_until is not None and existing.lease_until > wall:
            raise ClaimInFlight(
                f"{action.idempotency_key}: attempt {existing.attempts} holds the claim "
                f"until {existing.lease_until:%H:%M:%S}",
                lease_until=existing.lease_until,
            )
        # its holder is gone without confirming: it may have reached the provider, so
        # take it over without looking at the facts; `resolve` says what happened
        return _take_over(session, existing, action, wall, resend=True)
    facts = load_customer_facts(session, action.account)
    if facts is None:
        return _nothing("skipped", "customer no longer exists", action.kind)
    numbers = facts.open_numbers(action.invoices, instalment=action.is_instalment)
    if sorted(numbers) != sorted(action.invoices):
        if existing is not None:  # the facts moved after an earlier attempt claimed it
            session.execute(
                update(Communication)
                .where(Communication.id == existing.id)
                .values(
                    status="cancelled",
                    lease_until=None,
                    error="invoices paid, disputed or paused before the send",
                )
                .execution_options(synchronize_session=False)
            )
        summary = "cancelled: " + _why_not(facts, action.invoices)
        _event(session, facts, "dunning.skipped", summary, trace, action)
        return _nothing("stale", summary, action.kind, action.idempotency_key)
    recipient = _recipient(facts, action.kind)
    if recipient is None:
        return _nothing(
            "skipped", f"no {action.kind} recipient (opted out or undeliverable)", action.kind
        )
    if action.kind == "whatsapp" and facts.customer.whatsapp_opt_in_at is None:
        return _no_opt_in(session, facts, action, recipient, numbers, now, trace, rules, existing)
    if existing is not None:  # delayed: the last attempt was refused, nothing went out
        return _take_over(session, existing, action, wall, resend=False)
    # the customer's self-service link, created (or reused) in the claim's transaction:
    # it commits with the message that carries it, or not at all
    portal_url = link_for_message(session, facts.customer.id)
    message = render_reminder(action, facts, now, rules.languages, rules.dunning, portal_url)
    lease_until = wall + LEASE
    # one INSERT ... RETURNING id; the unique idempotency key is the claim
    communication_id = session.execute(
        _NEW_CLAIM,
        {
            "customer_id": facts.customer.id,
            "channel": action.kind,
            "template": action.template or "",
            "language": message.language,
            "recipient": recipient,
            "idempotency_key": action.idempotency_key,
            "status": "claimed",
            "attempts": 1,
            "lease_until": lease_until,
            "subject": message.subject,
            "body": message.text,
            "body_html": message.html,
            "provider_template": message.provider_template,
            "invoice_numbers": {"invoices": numbers},
            "workflow_id": trace.workflow_id,
            "run_id": trace.run_id,
            "ruleset_hash": rules.hash,
        },
    ).scalar_one()
    record_levels(session, facts, action, numbers, "sent", trace, now, rules.dunning)
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
            communication_id=communication_id,
        )
    return Claim(
        communication_id,
        action.kind,
        recipient,
        message.subject,
        message.text,
        message.html,
        action.idempotency_key,
        resend=False,
        attempt=1,
        lease_until=lease_until,
        provider_template=message.provider_template,
    )


def _no_opt_in(
    session: Session,
    facts: CustomerFacts,
    action: ActionSpec,
    recipient: str,
    numbers: list[str],
    now: datetime,
    trace: Trace,
    rules: RulesInForce,
    existing: Row[Any] | None,
) -> Claim:
    """WhatsApp needs the customer's opt-in: without one the contact is recorded as
    `skipped` under its key (once), the invoices pass the step on this channel, and the
    timeline says why. Nothing is sent instead (a policy that wants an SMS says so)."""
    reason = f"no WhatsApp opt-in recorded for {recipient}; nothing sent on WhatsApp"
    if existing is not None:  # delayed before the opt-in was withdrawn
        session.execute(
            update(Communication)
            .where(Communication.id == existing.id)
            .values(status="skipped", lease_until=None, error=reason)
            .execution_options(synchronize_session=False)
        )
    else:
        session.execute(
            _NEW_CLAIM,
            {
                "customer_id": facts.customer.id,
                "channel": action.kind,
                "template": action.template or "",
                "recipient": recipient,
                "idempotency_key": action.idempotency_key,
                "status": "skipped",
                "attempts": 1,
                "error": reason,
                "invoice_numbers": {"invoices": numbers},
                "workflow_id": trace.workflow_id,
                "run_id": trace.run_id,
                "ruleset_hash": rules.hash,
            },
        )
        record_levels(session, facts, action, numbers, "skipped", trace, now, rules.dunning)
    _event(session, facts, "dunning.whatsapp_skipped", f"skipped: {reason}", trace, action)
    return _nothing("skipped", reason, action.kind, action.idempotency_key)


def _take_over(
    session: Session, row: Row[Any], action: ActionSpec, wall: datetime, *, resend: bool
) -> Claim:
    """Compare-and-set: this attempt holds the claim unless another one took it first."""
    seen = row.attempts
    lease_until = wall + LEASE
    taken = session.execute(
        update(Communication)
        .where(Communication.id == row.id, Communication.attempts == seen)
        .values(attempts=seen + 1, status="claimed", lease_until=lease_until)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:
        raise ClaimInFlight(
            f"{action.idempotency_key}: taken over by a concurrent attempt",
            lease_until=lease_until,
        )
    return Claim(
        row.id,
        action.kind,
        row.recipient,
        row.subject,
        row.body or "",
        row.body_html,
        action.idempotency_key,
        resend=resend,
        attempt=seen + 1,
        lease_until=lease_until,
        provider_template=row.provider_template,
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
    if channel == "email" and not c.opt_out_email:
        return facts.deliverable_email  # without the addresses that bounced for good
    if channel == "sms" and c.phone and not c.opt_out_sms:
        return c.phone
    if channel == "whatsapp" and c.phone:  # the opt-in is checked by the claim
        return whatsapp_address(c.phone)
    return None


async def send(claim: Claim) -> str:
    """Hand the message to the provider; returns the provider id (Message-ID or Twilio's
    message sid: SMS and WhatsApp go through the same Messages API).

    Never sends after the claim's send deadline (`lease_until - LEASE_MARGIN`); emails go
    over this event loop's pooled connections to the relay."""
    timeout = SEND_BUDGET.total_seconds()
    if claim.lease_until is not None:
        timeout = (claim.lease_until - LEASE_MARGIN - _utcnow()).total_seconds()
        if timeout < 1:
            raise TemporarySendError(
                f"{claim.idempotency_key}: no time left to send under the claim's lease",
                reason="claim expired before the send",
            )
    try:
        async with asyncio.timeout(timeout):
            if claim.channel == "email":
                reply_to, return_path = reply_addresses(claim.communication_id)
                return await send_email(
                    to=[a.strip() for a in claim.recipient.split(";") if a.strip()],
                    subject=claim.subject or "",
                    text=claim.text,
                    html=claim.html,
                    idempotency_key=claim.idempotency_key,
                    pool=pool_for(SmtpConfig.from_settings()),
                    reply_to=reply_to,
                    return_path=return_path,
                )
            callback = get_settings().public_base_url.rstrip("/") + "/webhooks/twilio/status"
            # the blocking client runs on in its thread after a cancel: its own timeout
            # keeps its request inside the lease too
            config = TwilioConfig.from_settings()
            config = replace(config, timeout=min(config.timeout, timeout))
            content = claim.provider_template or {}
            return await send_message_async(
                channel=claim.channel,
                to=claim.recipient,
                body=claim.text,
                config=config,
                idempotency_key=claim.idempotency_key,
                status_callback=callback,
                content_sid=content.get("sid"),
                content_variables=content.get("variables"),
            )
    except TimeoutError as exc:
        raise TemporarySendError(
            f"{claim.channel} {claim.idempotency_key}: no answer within {timeout:.0f} s",
            reason=f"{_provider(claim)} timed out",
            maybe_accepted=True,
        ) from exc
    except (EmailError, SmsError) as exc:
        if exc.permanent:
            raise PermanentSendError(str(exc)) from exc
        raise TemporarySendError(
            str(exc),
            reason=_short_reason(claim, exc),
            maybe_accepted=getattr(exc, "maybe_accepted", False),
        ) from exc


def reply_addresses(communication_id: int | None) -> tuple[str | None, str | None]:
    """(Reply-To, envelope sender) of a reminder email: `reply+<token>@` and
    `bounce+<token>@` the reply domain, the same on every attempt of the send (its
    Message-ID and idempotency key are untouched); none without a reply domain."""
    from cobro.portal.links import portal_key
    from cobro.replies.tokens import address_for

    settings = get_settings()
    if not settings.reply_domain or communication_id is None:
        return None, None
    key = portal_key(settings)
    domain = settings.reply_domain
    return (
        address_for(key, communication_id, domain, "reply"),
        address_for(key, communication_id, domain, "bounce"),
    )


def _provider(claim: Claim) -> str:
    return {"email": "SMTP", "whatsapp": "WhatsApp provider"}.get(claim.channel, "SMS provider")


def _short_reason(claim: Claim, exc: EmailError | SmsError) -> str:
    """`SMTP refused (451)`, `SMTP unreachable`, `SMTP connection lost`..."""
    provider = _provider(claim)
    if getattr(exc, "maybe_accepted", False):
        return f"{provider} connection lost after the message was handed over"
    code = getattr(exc, "status", None) or exc.code
    if code:
        return f"{provider} refused ({code})"
    return f"{provider} unreachable"


async def resolve(claim: Claim) -> RelayAnswer:
    """Did an earlier attempt's send reach the provider? Asks the relay by Message-ID (or
    Twilio by its message list). Raises TemporarySendError when it cannot be asked now."""
    if claim.channel == "email":
        lookup = relay_lookup_from_settings(get_settings())
        if lookup is None:
            return RelayAnswer(None, detail="the SMTP relay cannot be asked (no lookup set)")
        try:
            return await lookup.find_message(claim.message_id)
        except RelayLookupError as exc:
            raise TemporarySendError(
                f"cannot ask the relay about {claim.message_id}: {exc}",
                reason="relay lookup unavailable",
                maybe_accepted=True,
            ) from exc
    sid = await _find_sms(TwilioConfig.from_settings(), claim)
    return RelayAnswer(sid is not None, sid, "found in the provider's list" if sid else "")


async def _find_sms(config: TwilioConfig, claim: Claim) -> str | None:
    """Did an earlier attempt reach the provider? Look it up in the provider's list."""

    def lookup() -> str | None:
        client = make_client(config)
        for message in client.messages.list(to=claim.recipient, limit=50):
            if message.body == claim.text:
                return message.sid
        return None

    try:
        return await asyncio.to_thread(lookup)
    except Exception as exc:  # the lookup itself failed: retry the whole activity later
        raise TemporarySendError(
            f"cannot list messages sent to {claim.recipient}: {exc}",
            reason=f"{_provider(claim)} lookup unavailable",
            maybe_accepted=True,
        ) from exc


# the confirmation, built once: `sent` unless it is already
_CONFIRM = (
    update(_COMMUNICATIONS)
    .where(_c.id == bindparam("communication"), _c.status != "sent")
    .values(
        status="sent",
        provider_id=bindparam("provider"),
        sent_at=bindparam("at"),
        lease_until=None,
        error=None,
    )
    .returning(_c.customer_id, _c.template)
)
_NEW_EVENT = insert(_EVENTS)


def confirm(session: Session, claim: Claim, provider_id: str, trace: Trace) -> None:
    """The provider accepted it: `sent`, whoever holds the claim now (idempotent).

    One UPDATE ... RETURNING and one INSERT (the timeline event), committed together."""
    with session.begin():
        row = session.execute(
            _CONFIRM,
            {"communication": claim.communication_id, "provider": provider_id, "at": _utcnow()},
        ).first()
        if row is None:  # confirmed already (by this attempt's retry or another one)
            status = session.scalar(
                select(Communication.status).where(Communication.id == claim.communication_id)
            )
            assert status is not None, f"communication {claim.communication_id} is gone"
            return
        crash_point("before_confirm")  # the update is written but not committed
        session.execute(
            _NEW_EVENT,
            {
                "customer_id": row.customer_id,
                "kind": f"dunning.{claim.channel}_sent",
                "summary": f"{row.template} {claim.channel} sent to {claim.recipient}",
                "data": trace.data(
                    idempotency_key=claim.idempotency_key,
                    provider_id=provider_id,
                    communication_id=claim.communication_id,
                ),
            },
        )


def _held(session: Session, claim: Claim) -> Communication | None:
    """The row if this attempt still holds the claim (else another attempt took it over)."""
    communication = session.get(Communication, claim.communication_id, with_for_update=True)
    if communication is None or communication.attempts != claim.attempt:
        return None
    if communication.status != "claimed":
        return None
    return communication


def record_failure(session: Session, claim: Claim, error: str, trace: Trace) -> None:
    with session.begin():
        communication = _held(session, claim)
        if communication is None:
            return
        communication.status = "failed"
        communication.error = error
        communication.lease_until = None
        session.add(
            Event(
                customer_id=communication.customer_id,
                kind=f"dunning.{claim.channel}_failed",
                summary=f"{communication.template} {claim.channel} to {claim.recipient} failed: "
                f"{error}",
                data=trace.data(idempotency_key=claim.idempotency_key),
            )
        )


def record_delay(
    session: Session, claim: Claim, exc: TemporarySendError, trace: Trace
) -> str | None:
    """A temporary failure, in Cobro's own data: `delayed: SMTP refused (451), attempt 4`.

    Refused (nothing accepted): `delayed`, the next attempt sends. Maybe accepted: the row
    stays `claimed` with its lease released, so the next attempt asks the provider at once.
    """
    with session.begin():
        communication = _held(session, claim)
        if communication is None:
            return None
        note = f"delayed: {exc.reason}, attempt {claim.attempt}"
        if exc.maybe_accepted:
            note += " (the provider is asked before any resend)"
        else:
            communication.status = "delayed"
        communication.error = note
        communication.lease_until = _utcnow()
        if claim.attempt == 1:  # the first delay on the timeline; the row keeps the latest
            session.add(
                Event(
                    customer_id=communication.customer_id,
                    kind=f"dunning.{claim.channel}_delayed",
                    summary=f"{communication.template} {claim.channel} to {claim.recipient} {note}",
                    data=trace.data(idempotency_key=claim.idempotency_key, error=str(exc)),
                )
            )
        return note


def record_not_sent(session: Session, claim: Claim, detail: str) -> bool:
    """The provider certainly has no trace of it: `delayed`, so a fresh claim sends it
    after the facts were read again. False if another attempt holds the claim now."""
    with session.begin():
        communication = _held(session, claim)
        if communication is None:
            return False
        communication.status = "delayed"
        communication.lease_until = None
        communication.error = f"not accepted by attempt {claim.attempt - 1}: {detail}"
        return True


def hold_uncertain(session: Session, claim: Claim, detail: str, trace: Trace) -> bool:
    """Nobody can tell whether it went out: `uncertain` and a task for a collector."""
    with session.begin():
        communication = _held(session, claim)
        if communication is None:
            return False
        communication.status = "uncertain"
        communication.lease_until = None
        communication.error = f"uncertain: {detail}"
        what = f"{communication.template} {claim.channel} to {claim.recipient}"
        session.add(
            new_task(
                session,
                communication.customer_id,
                kind=f"{claim.channel}_uncertain",
                note=f"{what} (Message-ID {claim.message_id}) may or may not have been "
                f"accepted ({detail}): check with the relay, then mark it sent or resend it",
                role="collector",
                due_date=_utcnow().date(),
                source_key=f"uncertain:{claim.idempotency_key}",
            )
        )
        session.add(
            Event(
                customer_id=communication.customer_id,
                kind=f"dunning.{claim.channel}_uncertain",
                summary=f"{what} uncertain: {detail}; not resent, a collector decides",
                data=trace.data(idempotency_key=claim.idempotency_key),
            )
        )
        return True


# --------------------------------------------------------------------- the whole protocol

Heartbeat = Callable[[str], None]
Run = Callable[..., Awaitable[Any]]  # run(function, *args): function(session, *args)


async def deliver(
    action: ActionSpec,
    now: datetime,
    trace: Trace,
    run: Run,
    heartbeat: Heartbeat = lambda _: None,
) -> Delivered:
    """Claim, resolve an earlier unconfirmed attempt, send, confirm: one email or SMS.

    `run(function, *args)` calls `function(session, *args)` with a fresh session (in a
    thread: the caller's). Raises TemporarySendError to be retried later (nothing was
    accepted by this attempt, or it is recorded as possibly accepted); a permanent refusal
    is recorded as `failed`.
    """
    settings = get_settings()
    crash_point("before_claim")
    claimed: Claim = await run(claim, action, now, trace)
    if claimed.outcome is not None:
        return Delivered(claimed.outcome, claimed.summary)
    crash_point("after_claim")
    heartbeat("claimed")
    what = f"{action.template} {action.kind} to {claimed.recipient}"
    if claimed.resend:
        answer = await resolve(claimed)
        heartbeat(f"resolved: found={answer.found}")
        if answer.found:
            log.info("%s already accepted (%s): confirmed, not resent", what, answer.detail)
            await _confirm(run, claimed, answer.provider_id or claimed.message_id, trace, heartbeat)
            return Delivered("sent", f"{what} (accepted by an earlier attempt)")
        if answer.found is None and not settings.email_resend_uncertain:
            if await run(hold_uncertain, claimed, answer.detail, trace):
                return Delivered("uncertain", f"{what} uncertain: {answer.detail}")
            raise ClaimInFlight(f"{action.idempotency_key}: taken over meanwhile")
        detail = answer.detail or "the provider has no trace of it"
        if not await run(record_not_sent, claimed, detail):
            raise ClaimInFlight(f"{action.idempotency_key}: taken over meanwhile")
        claimed = await run(claim, action, now, trace)
        if claimed.outcome is not None:
            return Delivered(claimed.outcome, claimed.summary)
    try:
        provider_id = await send(claimed)
    except PermanentSendError as exc:
        await run(record_failure, claimed, str(exc), trace)
        return Delivered("failed", f"{action.template} {action.kind} failed: {exc}")
    except TemporarySendError as exc:
        try:
            note = await run(record_delay, claimed, exc, trace)
        except SQLAlchemyError:  # the claim stays held: the next attempt resolves it
            note = None
        raise TemporarySendError(
            f"{note or 'delayed'}: {exc}", reason=exc.reason, maybe_accepted=exc.maybe_accepted
        ) from exc
    crash_point("after_send")
    heartbeat("sent")
    await _confirm(run, claimed, provider_id, trace, heartbeat)
    return Delivered("sent", what)


async def _confirm(
    run: Run,
    claimed: Claim,
    provider_id: str,
    trace: Trace,
    heartbeat: Heartbeat,
) -> None:
    """Accepted: confirm, retried in place (with heartbeats) while the database is away."""
    delay = 0.25
    failures = 0
    while True:
        try:
            await run(confirm, claimed, provider_id, trace)
            if failures:
                log.info("%s confirmed after %d failed tries", claimed.message_id, failures)
            return
        except SQLAlchemyError as exc:
            failures += 1
            if failures == 1 or failures % 20 == 0:
                log.warning(
                    "%s accepted as %s, confirm failed (%d): %s; retrying in place",
                    claimed.idempotency_key,
                    provider_id,
                    failures,
                    str(exc).splitlines()[0],
                )
            heartbeat(f"accepted as {provider_id}; confirming (database unavailable)")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


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
