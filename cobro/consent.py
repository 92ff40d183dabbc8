"""The customer's WhatsApp opt-in, recorded by a person (`cobro customers whatsapp-opt-in`)
or by the customer (START/STOP on WhatsApp, `cobro.replies.incoming_sms`). A WhatsApp
dunning step is only sent to a customer whose `whatsapp_opt_in_at` is set; each change is
on the customer's timeline with its source."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select

from cobro.db import transaction
from cobro.models import Customer, TimelineEvent
from cobro.types import utcnow


def record_whatsapp_opt_in(
    engine: Engine | None,
    account: str,
    source: str,
    *,
    withdraw: bool = False,
    at: datetime | None = None,
    actor: str = "cli",
) -> datetime | None:
    """Set (or with `withdraw` clear) the customer's WhatsApp opt-in; returns the opt-in
    instant now in force. LookupError names an unknown account."""
    when = at or utcnow()
    with transaction(engine) as s:
        customer = s.scalar(select(Customer).where(Customer.account == account))
        if customer is None:
            raise LookupError(f"no customer with account {account!r}")
        customer.whatsapp_opt_in_at = None if withdraw else when
        customer.whatsapp_opt_in_source = source[:128]
        summary = (
            f"WhatsApp opt-in withdrawn ({source})"
            if withdraw
            else f"WhatsApp opt-in recorded ({source}): WhatsApp reminders allowed"
        )
        s.add(
            TimelineEvent(
                customer_id=customer.id,
                kind="whatsapp.opted_out" if withdraw else "whatsapp.opted_in",
                actor=actor,
                summary=summary,
                data={"source": source, "phone": customer.phone},
            )
        )
        return customer.whatsapp_opt_in_at
