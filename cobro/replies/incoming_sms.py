"""An SMS a customer sent to our number, recorded: an opt-out keyword stops every further
SMS to that number (the sends read `opt_out_sms` at the moment they are claimed), START
allows them again, and any other text goes to the customer's timeline with a task for its
owner (else the collectors' queue) to answer it. Each is recorded once per provider message
id, however often the provider repeats its webhook.

A message from a `whatsapp:` address is the same webhook: STOP withdraws the customer's
WhatsApp opt-in (`whatsapp_opt_in_at` cleared), START records one (source `whatsapp:START`),
and neither touches the SMS opt-out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cobro.channels.whatsapp import bare_number, is_whatsapp
from cobro.db import transaction
from cobro.models import Customer, TimelineEvent
from cobro.queues.tasks import new_task
from cobro.replies.sms_keywords import intent_of
from cobro.types import utcnow

KINDS = {"opt_out": "sms.opted_out", "opt_in": "sms.opted_in", "reply": "sms.reply"}
WHATSAPP_KINDS = {k: v.replace("sms.", "whatsapp.") for k, v in KINDS.items()}
SHOWN = 500  # characters of a reply kept on the timeline and the task


@dataclass(frozen=True)
class IncomingSms:
    sid: str
    sender: str  # E.164, as the provider gives it (`whatsapp:+...` for WhatsApp)
    body: str

    @property
    def whatsapp(self) -> bool:
        return is_whatsapp(self.sender)


def record_incoming_sms(engine: Engine | None, sms: IncomingSms) -> str:
    """What was done: `opted_out`, `opted_in`, `reply`, `unknown_number` or `duplicate`."""
    intent = intent_of(sms.body)
    number = bare_number(sms.sender)
    with transaction(engine) as s:
        customers = s.scalars(select(Customer).where(Customer.phone == number)).all()
        if not customers:
            return "unknown_number"
        if _seen(s, [c.id for c in customers], sms.sid):
            return "duplicate"
        text = " ".join(sms.body.split())[:SHOWN]
        if sms.whatsapp:
            _record_whatsapp(s, customers, sms, intent, text)
            return {"opt_out": "opted_out", "opt_in": "opted_in", "reply": "reply"}[intent]
        for customer in customers:
            if intent != "reply":
                customer.opt_out_sms = intent == "opt_out"
            summary = {
                "opt_out": f"SMS opt-out: {sms.sender} replied {text!r}; no more SMS to it",
                "opt_in": f"SMS opt-in: {sms.sender} replied {text!r}; SMS allowed again",
                "reply": f"SMS from {sms.sender}: {text}",
            }[intent]
            s.add(
                TimelineEvent(
                    customer_id=customer.id,
                    kind=KINDS[intent],
                    actor="customer",
                    summary=summary,
                    data={"sid": sms.sid, "from": sms.sender, "text": text},
                )
            )
            if intent == "reply":
                s.add(
                    new_task(
                        s,
                        customer.id,
                        "reply",
                        f"Answer the customer's SMS: {text}",
                        source_key=f"sms-reply:{sms.sid}:{customer.id}",
                    )
                )
    return {"opt_out": "opted_out", "opt_in": "opted_in", "reply": "reply"}[intent]


def _record_whatsapp(
    s: Session, customers: list[Customer], message: IncomingSms, intent: str, text: str
) -> None:
    """STOP withdraws the WhatsApp opt-in, START gives it, anything else is a reply."""
    now = utcnow()
    summary = {
        "opt_out": f"WhatsApp opt-in withdrawn: {message.sender} replied {text!r}; "
        "no more WhatsApp messages to it",
        "opt_in": f"WhatsApp opt-in: {message.sender} replied {text!r}; WhatsApp allowed",
        "reply": f"WhatsApp message from {message.sender}: {text}",
    }[intent]
    for customer in customers:
        if intent != "reply":
            customer.whatsapp_opt_in_at = now if intent == "opt_in" else None
            customer.whatsapp_opt_in_source = f"whatsapp:{text.split()[0].upper()}"[:128]
        s.add(
            TimelineEvent(
                customer_id=customer.id,
                kind=WHATSAPP_KINDS[intent],
                actor="customer",
                summary=summary,
                data={"sid": message.sid, "from": message.sender, "text": text},
            )
        )
        if intent == "reply":
            s.add(
                new_task(
                    s,
                    customer.id,
                    "reply",
                    f"Answer the customer's WhatsApp message: {text}",
                    source_key=f"whatsapp-reply:{message.sid}:{customer.id}",
                )
            )


def _seen(s: Session, customer_ids: list[int], sid: str) -> bool:
    """A provider repeats a webhook within minutes: look at the last day's SMS events."""
    recent = s.scalars(
        select(TimelineEvent.data).where(
            TimelineEvent.customer_id.in_(customer_ids),
            TimelineEvent.kind.in_((*KINDS.values(), *WHATSAPP_KINDS.values())),
            TimelineEvent.at >= utcnow() - timedelta(days=1),
        )
    )
    return any((data or {}).get("sid") == sid for data in recent)
