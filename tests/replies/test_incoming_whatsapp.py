"""A customer's WhatsApp message to our number (the same webhook, `From: whatsapp:+...`), on
both databases: STOP withdraws the WhatsApp opt-in and leaves SMS alone, START records one,
a repeat of the webhook is recorded once, any other text is a reply with a task."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from cobro.consent import record_whatsapp_opt_in
from cobro.db import transaction
from cobro.models import Customer, Task, TimelineEvent
from cobro.replies.incoming_sms import IncomingSms, record_incoming_sms
from tests.helpers.dunning import import_rows

PHONE = "+34612345678"


def _customer() -> tuple[object, str | None, bool]:
    with transaction() as s:
        c = s.scalar(select(Customer).where(Customer.account == "WA"))
        assert c is not None
        return c.whatsapp_opt_in_at, c.whatsapp_opt_in_source, c.opt_out_sms


def test_stop_and_start_on_whatsapp(use_database: str, tmp_path: Path) -> None:
    customer = {"account": "WA", "name": "Ferretería WA", "country": "ES", "phone": PHONE}
    import_rows(tmp_path, "customers", [customer])
    record_whatsapp_opt_in(None, "WA", "signed form")
    assert _customer()[0] is not None

    stop = IncomingSms("SM" + "1" * 32, f"whatsapp:{PHONE}", "STOP")
    assert record_incoming_sms(None, stop) == "opted_out"
    assert record_incoming_sms(None, stop) == "duplicate"
    assert _customer() == (None, "whatsapp:STOP", False)  # SMS still allowed

    start = IncomingSms("SM" + "2" * 32, f"whatsapp:{PHONE}", "start")
    assert record_incoming_sms(None, start) == "opted_in"
    at, source, sms_out = _customer()
    assert at is not None and source == "whatsapp:START" and not sms_out

    reply = IncomingSms("SM" + "3" * 32, f"whatsapp:{PHONE}", "¿Puedo pagar el viernes?")
    assert record_incoming_sms(None, reply) == "reply"
    with transaction() as s:
        kinds = s.scalars(
            select(TimelineEvent.kind)
            .where(TimelineEvent.kind.like("whatsapp.%"))
            .order_by(TimelineEvent.id)
        ).all()
        notes = s.scalars(select(Task.note)).all()
    assert kinds == [
        "whatsapp.opted_in",
        "whatsapp.opted_out",
        "whatsapp.opted_in",
        "whatsapp.reply",
    ]
    assert notes == ["Answer the customer's WhatsApp message: ¿Puedo pagar el viernes?"]
