"""An email that came back to us, recorded once per Message-ID (`inbound_emails`):

* the contact it is about: the signed token of its recipient (`reply+<token>@`,
  `bounce+<token>@` the reply domain, `cobro.replies.tokens`), else the reminder whose
  Message-ID it answers (In-Reply-To/References; a DSN's returned headers), else the
  customers whose address wrote it (a bounce: whose address failed);
* a person's reply (`human`): `email.reply` on the timeline with the reminder it answers,
  reminders paused `reply_pause_days` business days of the customer's country (the
  collector's pause, `cobro.dunning.store.pause_customer`), a `reply` task for its owner
  (else the collectors' queue); `receive_email` then signals the Dunning workflow;
* an automatic reply (`auto_reply`, out of office) or a delayed delivery: on the timeline
  only, nothing paused;
* a hard bounce: the address is undeliverable (`undeliverable_addresses`: no email goes to
  it, including one already planned, the send reads it when claimed), the reminder is
  `bounced`, `email.bounced` on the timeline and a `fix_address` task; a customer imported
  with another address is written to again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cobro.db import transaction
from cobro.dunning.calendar import add_days, get_calendar
from cobro.dunning.collector import local_today
from cobro.dunning.store import addresses_of, pause_customer
from cobro.models import Communication, Customer, InboundEmail, Task, TimelineEvent
from cobro.models import UndeliverableAddress as Undeliverable
from cobro.queues.tasks import new_task
from cobro.replies.email_kinds import Inbound, classify
from cobro.replies.tokens import communication_of
from cobro.settings import Settings, get_settings

log = logging.getLogger("cobro.replies")

SHOWN = 500  # characters of a reply kept on the timeline and the task
EVENTS = {
    "human": "email.reply",
    "auto_reply": "email.auto_reply",
    "delayed": "email.delayed",
    "bounce": "email.bounced",
}
OUTCOMES = {"human": "reply", "auto_reply": "auto_reply", "delayed": "delayed", "bounce": "bounced"}


@dataclass(frozen=True)
class Recorded:
    """What was done: `reply`, `auto_reply`, `delayed`, `bounced`, `unknown` (recorded,
    no customer found) or `duplicate`; the accounts concerned; the pause's last day."""

    outcome: str
    message_id: str
    kind: str = ""
    accounts: tuple[str, ...] = ()
    paused_until: date | None = None
    bounced: tuple[str, ...] = ()
    unsignalled: dict[str, str] = field(default_factory=dict)  # account -> why not


def message_key(found: Inbound, raw: bytes) -> str:
    """The Message-ID, or one made of the bytes for a message without any (dedup)."""
    if found.message_id:
        return found.message_id[:998]
    return f"<{hashlib.sha256(raw).hexdigest()[:32]}@inbound.cobro>"


def _short(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def _communication(
    s: Session, settings: Settings, found: Inbound, envelope_to: Iterable[str]
) -> Communication | None:
    if settings.reply_domain:
        from cobro.portal.links import portal_key

        key = portal_key(settings)
        for address in (*envelope_to, *found.recipients):
            cid = communication_of(key, address, settings.reply_domain)
            if cid is not None:
                found_row = s.get(Communication, cid)
                if found_row is not None:
                    return found_row
    for mid in found.refers_to:
        row = s.scalars(
            select(Communication)
            .where(Communication.provider_id == mid, Communication.channel == "email")
            .limit(1)
        ).first()
        if row is not None:
            return row
    return None


def _customers_with(s: Session, addresses: Iterable[str]) -> list[Customer]:
    """Customers with one of these addresses in their `email` field (exactly, any case)."""
    wanted = {a.lower() for a in addresses if a}
    out = []
    for address in sorted(wanted):
        like = s.scalars(select(Customer).where(Customer.email.ilike(f"%{address}%")))
        for customer in like:
            mine = {a.lower() for a in addresses_of(customer.email)}
            if address in mine and customer not in out:
                out.append(customer)
    return out


def record_inbound_email(
    engine: Engine | None,
    raw: bytes,
    envelope_from: str | None = None,
    envelope_to: Iterable[str] = (),
    settings: Settings | None = None,
) -> Recorded:
    """Record one inbound message (the module's docstring); never raises on bad mail."""
    settings = settings or get_settings()
    found = classify(raw, envelope_from)
    key = message_key(found, raw)
    envelope_to = list(envelope_to)
    try:
        with transaction(engine) as s:
            if s.scalar(select(InboundEmail.id).where(InboundEmail.message_id == key)):
                return Recorded("duplicate", key, found.kind)
            return _record(s, settings, found, key, envelope_to)
    except IntegrityError:  # the same message recorded concurrently (a relay retried)
        return Recorded("duplicate", key, found.kind)


def _record(
    s: Session, settings: Settings, found: Inbound, key: str, envelope_to: list[str]
) -> Recorded:
    communication = _communication(s, settings, found, envelope_to)
    if communication is not None:
        customers = [s.get(Customer, communication.customer_id)]
    elif found.kind == "bounce":
        customers = _customers_with(s, found.bounced_addresses)
    else:
        customers = _customers_with(s, [found.sender])
    customers = [c for c in customers if c is not None]
    text = found.text[:SHOWN] if found.kind == "human" else " ".join(found.text.split())[:SHOWN]
    row = InboundEmail(
        message_id=key,
        customer_id=customers[0].id if customers else None,
        communication_id=communication.id if communication else None,
        kind=found.kind,
        why=found.why[:1000],
        sender=found.sender[:998],
        subject=found.subject[:2000],
        text=found.text,
    )
    s.add(row)
    s.flush()
    if not customers:
        log.info("inbound %s %s from %s: no customer found", found.kind, key, found.sender)
        return Recorded("unknown", key, found.kind)
    data = {
        "message_id": key,
        "inbound_email_id": row.id,
        "from": found.sender,
        "subject": found.subject[:300],
        "text": text,
        "why": found.why,
    }
    if communication is not None:
        data |= {
            "communication_id": communication.id,
            "template": communication.template,
            "answers": f"{communication.template} email of {communication.created_at:%Y-%m-%d}",
        }
    accounts = tuple(c.account for c in customers)
    if found.kind == "bounce":
        bounced = _bounce(s, found, row, communication, customers, data)
        return Recorded("bounced", key, found.kind, accounts, bounced=bounced)
    paused_until = None
    for customer in customers:
        _event(s, customer, found, data, text)
        if found.kind != "human":
            continue
        until = None
        if settings.reply_pause_days > 0:
            calendar = get_calendar(customer.country)
            until = add_days(local_today(customer), settings.reply_pause_days, calendar, True)
            reason = f"the customer replied by email: {found.subject or text[:80]}"
            pause_customer(s, customer, "pause", reason[:1000], actor_of(customer), until)
            paused_until = until
        wait = f" (reminders wait until {until})" if until else ""
        s.add(
            new_task(
                s,
                customer.id,
                "reply",
                f"Answer the customer's email from {found.sender}{wait}: {text}",
                due_date=local_today(customer),
                source_key=f"email-reply:{_short(key)}:{customer.id}",
            )
        )
    return Recorded(OUTCOMES[found.kind], key, found.kind, accounts, paused_until)


def actor_of(customer: Customer) -> str:
    return f"customer:{customer.account}"[:128]


def _event(
    s: Session, customer: Customer, found: Inbound, data: dict[str, object], text: str
) -> None:
    answers = f" (answers the {data['answers']})" if "answers" in data else ""
    summary = {
        "human": f"Email from {found.sender}{answers}: {text}",
        "auto_reply": f"Automatic reply from {found.sender}{answers} ({found.why}): {text}",
        "delayed": f"Delivery delayed{answers}: {found.why}",
    }[found.kind]
    s.add(
        TimelineEvent(
            customer_id=customer.id,
            kind=EVENTS[found.kind],
            actor="customer" if found.kind != "delayed" else "system",
            summary=summary[:4000],
            data=data,
        )
    )


def _bounce(
    s: Session,
    found: Inbound,
    row: InboundEmail,
    communication: Communication | None,
    customers: list[Customer],
    data: dict[str, object],
) -> tuple[str, ...]:
    hard = [r for r in found.failed if r.action == "failed" and r.status.startswith("5")]
    for r in hard:
        known = s.scalar(select(Undeliverable).where(Undeliverable.address == r.address))
        if known is None:
            s.add(
                Undeliverable(
                    address=r.address[:998],
                    status=r.status,
                    reason=(r.diagnostic or found.why)[:2000],
                    inbound_email_id=row.id,
                )
            )
    if communication is not None and communication.status == "sent":
        recipients = {a.lower() for a in addresses_of(communication.recipient)}
        if recipients and recipients <= {r.address for r in hard}:
            communication.status = "bounced"
            communication.error = f"bounced: {found.why}"[:2000]
    bounced = tuple(r.address for r in hard)
    for customer in customers:
        mine = [a for a in bounced if a in {x.lower() for x in addresses_of(customer.email)}]
        if not mine and communication is None:
            continue
        what = ", ".join(mine or bounced)
        answers = f" ({data['answers']})" if "answers" in data else ""
        s.add(
            TimelineEvent(
                customer_id=customer.id,
                kind="email.bounced",
                actor="system",
                summary=f"Email to {what} bounced{answers}: {found.why}; no more email to "
                f"{'it' if len(mine or bounced) == 1 else 'them'}"[:4000],
                data=data | {"addresses": list(mine or bounced)},
            )
        )
        for address in mine or bounced:
            source = f"fix-address:{customer.id}:{_short(address)}"
            if s.scalar(select(Task.id).where(Task.source_key == source)) is None:
                s.add(
                    new_task(
                        s,
                        customer.id,
                        "fix_address",
                        f"Email to {address} bounced ({found.why}): find the customer's "
                        "right address and import it",
                        due_date=local_today(customer),
                        source_key=source,
                    )
                )
    return bounced


async def receive_email(
    engine: Engine,
    settings: Settings,
    raw: bytes,
    envelope_from: str | None = None,
    envelope_to: Iterable[str] = (),
) -> Recorded:
    """Record the message (in a thread), then tell the Dunning workflows of the customers
    it paused or whose address bounced (the database holds the fact either way: the send
    reads it when it is claimed)."""
    import asyncio

    from cobro.dunning.collector import signal

    done = await asyncio.to_thread(
        record_inbound_email, engine, raw, envelope_from, list(envelope_to), settings
    )
    kind = {"reply": "paused", "bounced": "email_bounced"}.get(done.outcome)
    if kind is None:
        return done
    why: dict[str, str] = {}
    for account in done.accounts:
        detail = "email reply" if kind == "paused" else f"bounced: {', '.join(done.bounced)}"
        failed = await signal(engine, settings, account, kind, detail, f"customer:{account}")
        if failed is not None:
            why[account] = failed
    return Recorded(**{**done.__dict__, "unsignalled": why})
