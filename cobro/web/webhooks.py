"""Provider callbacks: Twilio message status (a failed or undelivered SMS or WhatsApp
message is recorded on
the communication and on the customer timeline, never left as merely "sent") and incoming
messages (`cobro.replies.incoming_sms`: STOP and its kin opt the number out). Both are
refused without Twilio's signature over our public URL."""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from twilio.request_validator import RequestValidator

from cobro.models import Communication, TimelineEvent
from cobro.settings import Settings

FINAL_FAILURES = {"failed", "undelivered"}
STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "failed": 3, "undelivered": 3}


def twilio_status_endpoint(settings: Settings, engine: Engine):  # type: ignore[no-untyped-def]
    validator = RequestValidator(settings.twilio_auth_token.get_secret_value())

    async def endpoint(request: Request) -> Response:
        form = dict((await request.form()).items())
        signature = request.headers.get("X-Twilio-Signature", "")
        url = settings.public_base_url.rstrip("/") + request.url.path
        if not validator.validate(url, form, signature):
            return PlainTextResponse("invalid signature", status_code=403)
        sid = str(form.get("MessageSid") or form.get("SmsSid") or "")
        status = str(form.get("MessageStatus") or form.get("SmsStatus") or "")
        error = str(form.get("ErrorCode") or "") or None
        found = await asyncio.to_thread(record_sms_status, engine, sid, status, error)
        return PlainTextResponse("ok" if found else "unknown message", status_code=200)

    return endpoint


def twilio_incoming_endpoint(settings: Settings, engine: Engine):  # type: ignore[no-untyped-def]
    """The number's "a message comes in" webhook: answered with empty TwiML (Twilio itself
    confirms STOP and START to the sender)."""
    from cobro.replies.incoming_sms import IncomingSms, record_incoming_sms

    validator = RequestValidator(settings.twilio_auth_token.get_secret_value())

    async def endpoint(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        signature = request.headers.get("X-Twilio-Signature", "")
        url = settings.public_base_url.rstrip("/") + request.url.path
        if not validator.validate(url, form, signature):
            return PlainTextResponse("invalid signature", status_code=403)
        sms = IncomingSms(
            sid=form.get("MessageSid") or form.get("SmsSid") or "",
            sender=form.get("From", "").strip(),
            body=form.get("Body", ""),
        )
        if not sms.sid or not sms.sender:
            return PlainTextResponse("MessageSid and From are required", status_code=400)
        await asyncio.to_thread(record_incoming_sms, engine, sms)
        return Response("<Response/>", media_type="text/xml")

    return endpoint


def record_sms_status(engine: Engine, sid: str, status: str, error_code: str | None) -> bool:
    with Session(engine) as session, session.begin():
        communication = session.scalar(
            select(Communication).where(
                Communication.channel.in_(("sms", "whatsapp")),
                Communication.provider_id == sid,
            )
        )
        if communication is None:
            return False
        if status in FINAL_FAILURES:
            if communication.status != "failed":
                communication.status = "failed"
                communication.error = f"{status} (Twilio error {error_code or 'unknown'})"
                session.add(
                    TimelineEvent(
                        customer_id=communication.customer_id,
                        kind=f"dunning.{communication.channel}_failed",
                        summary=f"{communication.template} {_label(communication.channel)} to "
                        f"{communication.recipient} "
                        f"{status}: Twilio error {error_code or 'unknown'}",
                        data={"provider_id": sid, "idempotency_key": communication.idempotency_key},
                    )
                )
        elif status == "delivered" and communication.status == "sent":
            communication.status = "delivered"
        return True


def _label(channel: str) -> str:
    return "WhatsApp message" if channel == "whatsapp" else "SMS"
