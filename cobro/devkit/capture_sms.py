"""Twilio-compatible capture server for development and tests (Starlette + uvicorn).

It implements the part of Twilio's REST API that the real `twilio` client uses to send and
read messages, so `cobro.channels.sms` talks to it unchanged (only the base URL differs):

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json
         create; form fields To, From, Body, StatusCallback, MessagingServiceSid,
         ContentSid, ContentVariables (WhatsApp templates)
    GET  /2010-04-01/Accounts/{AccountSid}/Messages.json
         list, newest first; query To, From, PageSize, Page
    GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json
         fetch one

Requests need HTTP Basic auth `AccountSid:AuthToken` (else 401, error 20003). Errors have
Twilio's JSON shape `{"code", "message", "more_info", "status"}`. Every accepted message is
stored as `<dir>/<sid>.json` (atomic write) and survives restarts.

Failure injection (Twilio's magic test numbers, plus a few of ours):

    To   +15005550001  400, 21211 invalid 'To' number
    To   +15005550002  400, 21612 cannot route to this number
    To   +15005550003  400, 21408 no permission to send to this region
    To   +15005550004  400, 21610 recipient has unsubscribed (STOP)
    To   +15005550009  400, 21614 'To' number is not SMS-capable
    From +15005550001  400, 21212 invalid 'From' number
    From +15005550007  400, 21606 'From' is not a valid sender for this account
    From +15005550008  400, 21611 the 'From' queue is full
    To   +15005550429  429, 20429 too many requests            (Cobro: temporary)
    To   +15005550500  500, 20500 internal server error        (Cobro: temporary)
    To   +15005550010  201 queued, then status `failed`, error 30008       (Cobro)
    To   +15005550011  201 queued, then status `undelivered`, error 30003  (Cobro)

WhatsApp messages (`To`/`From` `whatsapp:+<E.164>`, the prefix kept) are stored like SMS,
the magic numbers apply to the number after the prefix. A message sent as an approved
template (`ContentSid` + `ContentVariables` instead of `Body`) is stored with both, and its
`body` is the template's text with the variables filled when the templates tree knows the
ContentSid (`cobro.channels.whatsapp.content_catalogue`), as Twilio shows it.

Any other valid number: 201 `queued`, then (when `auto_deliver`, the default) `sent` and
`delivered`. Any message's status can also be forced, with the StatusCallback fired:
`POST /_capture/sms/{Sid}/status` (form or JSON `Status`, optional `ErrorCode`) or
`CaptureSmsServer.set_status(sid, status, error_code)`. Status callbacks are POSTed like
Twilio's (form fields, `X-Twilio-Signature` computed with the auth token).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import phonenumbers
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from twilio.request_validator import RequestValidator

from cobro.channels import whatsapp
from cobro.channels.sms import sms_segments
from cobro.devkit.storage import atomic_write_json, read_json

log = logging.getLogger("cobro.devkit.capture_sms")

API = "/2010-04-01"
SID_RE = re.compile(r"^SM[0-9a-f]{32}$")
E164_RE = re.compile(r"^\+[1-9]\d{1,14}$")
MAX_BODY = 1600
STATUSES = frozenset(
    {
        "accepted",
        "scheduled",
        "queued",
        "sending",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "read",
        "canceled",
    }
)
TERMINAL = frozenset({"delivered", "undelivered", "failed", "read", "canceled"})

MAGIC_TO: dict[str, tuple[int, int, str]] = {
    "+15005550001": (400, 21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": (400, 21612, "The 'To' phone number: {to}, is not currently reachable."),
    "+15005550003": (
        400,
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the "
        "'To' number: {to}.",
    ),
    "+15005550004": (400, 21610, "Attempt to send to unsubscribed recipient {to}."),
    "+15005550009": (400, 21614, "The 'To' number {to} is not a valid mobile number."),
    "+15005550429": (429, 20429, "Too Many Requests"),
    "+15005550500": (500, 20500, "Internal Server Error"),
}
MAGIC_FROM: dict[str, tuple[int, int, str]] = {
    "+15005550001": (400, 21212, "The 'From' number {from_} is not a valid phone number."),
    "+15005550007": (
        400,
        21606,
        "The 'From' phone number provided ({from_}) is not a valid message-capable Twilio "
        "phone number for this destination/account.",
    ),
    "+15005550008": (400, 21611, "This 'From' number has exceeded the maximum queue size."),
}
MAGIC_OUTCOME: dict[str, tuple[str, int]] = {
    "+15005550010": ("failed", 30008),
    "+15005550011": ("undelivered", 30003),
}
ERROR_MESSAGES = {
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}


def twilio_error(status: int, code: int, message: str, headers: dict | None = None) -> Response:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
        headers=headers,
    )


async def read_form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (what the twilio client sends), first
    value per field. Parsed here to avoid a python-multipart dependency."""
    body = (await request.body()).decode("utf-8", "replace")
    form: dict[str, str] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        form.setdefault(key, value)
    return form


def rfc2822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0))


def new_sid() -> str:
    return "SM" + secrets.token_hex(16)


def valid_e164(number: str) -> bool:
    if not E164_RE.match(number):
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return False


@dataclass
class CapturedSms:
    """One stored message: Twilio's JSON (`message`) plus what the capture server knows."""

    message: dict[str, Any]
    created_at: datetime
    status_callback: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sid(self) -> str:
        return self.message["sid"]

    @property
    def status(self) -> str:
        return self.message["status"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "created_at": self.created_at.isoformat(),
            "status_callback": self.status_callback,
            "history": self.history,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CapturedSms:
        return cls(
            message=data["message"],
            created_at=datetime.fromisoformat(data["created_at"]),
            status_callback=data.get("status_callback"),
            history=list(data.get("history", [])),
        )


class SmsNotFound(KeyError):
    """No captured SMS with this sid."""


class SmsStore:
    """Captured SMS in a directory, one `<sid>.json` per message."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, sid: str) -> Path:
        if not SID_RE.match(sid):
            raise SmsNotFound(sid)
        return self.root / f"{sid}.json"

    def save(self, sms: CapturedSms) -> None:
        atomic_write_json(self._path(sms.sid), sms.to_dict())

    def get(self, sid: str) -> CapturedSms:
        try:
            return CapturedSms.from_dict(read_json(self._path(sid)))
        except FileNotFoundError:
            raise SmsNotFound(sid) from None

    def list(
        self, *, account_sid: str | None = None, to: str | None = None, from_: str | None = None
    ) -> list[CapturedSms]:
        """Newest first, optionally filtered."""
        if not self.root.is_dir():
            return []
        out = []
        for path in self.root.glob("SM*.json"):
            try:
                sms = CapturedSms.from_dict(read_json(path))
            except (OSError, ValueError, KeyError):
                continue
            msg = sms.message
            if account_sid is not None and msg.get("account_sid") != account_sid:
                continue
            if to is not None and msg.get("to") != to:
                continue
            if from_ is not None and msg.get("from") != from_:
                continue
            out.append(sms)
        out.sort(key=lambda s: (s.created_at, s.sid), reverse=True)
        return out

    def set_status(self, sid: str, status: str, error_code: int | None = None) -> CapturedSms:
        sms = self.get(sid)
        if status not in STATUSES:
            raise ValueError(f"unknown message status {status!r}")
        now = datetime.now(UTC)
        sms.message["status"] = status
        sms.message["date_updated"] = rfc2822(now)
        if status in {"sent", "delivered"} and not sms.message.get("date_sent"):
            sms.message["date_sent"] = rfc2822(now)
        sms.message["error_code"] = error_code
        sms.message["error_message"] = (
            ERROR_MESSAGES.get(error_code, "Error") if error_code else None
        )
        sms.history.append({"status": status, "error_code": error_code, "at": now.isoformat()})
        self.save(sms)
        return sms


class TwilioCapture:
    """The Twilio API endpoints over an `SmsStore`."""

    def __init__(
        self,
        store: SmsStore,
        account_sid: str,
        auth_token: str,
        auto_deliver: bool = True,
        incoming_url: str | None = None,
        templates_dir: Path | None = None,
    ):
        self.templates_dir = templates_dir  # where ContentSids are looked up (None: none)
        self.store = store
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.auto_deliver = auto_deliver
        self.incoming_url = incoming_url  # the number's "a message comes in" webhook

    # -- auth ---------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        user = password = ""
        if scheme.lower() == "basic":
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                user, _, password = base64.b64decode(encoded).decode().partition(":")
        ok = hmac.compare_digest(user.encode(), self.account_sid.encode()) and (
            hmac.compare_digest(password.encode(), self.auth_token.encode())
        )
        if not ok:
            return twilio_error(
                401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'}
            )
        if request.path_params["account_sid"] != self.account_sid:
            return twilio_error(
                404, 20404, f"The requested resource {request.url.path} was not found"
            )
        return None

    # -- endpoints ----------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        if (denied := self._authenticate(request)) is not None:
            return denied
        form = await read_form(request)
        to = str(form.get("To") or "").strip()
        from_ = str(form.get("From") or "").strip() or None
        body = str(form.get("Body") or "")
        service = str(form.get("MessagingServiceSid") or "").strip() or None
        callback = str(form.get("StatusCallback") or "").strip() or None
        content_sid = str(form.get("ContentSid") or "").strip() or None
        raw_variables = str(form.get("ContentVariables") or "").strip() or None
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        channel = "whatsapp" if whatsapp.is_whatsapp(to) else "sms"
        number, sender = whatsapp.bare_number(to), whatsapp.bare_number(from_ or "") or None
        if number in MAGIC_TO:
            status, code, text = MAGIC_TO[number]
            return twilio_error(status, code, text.format(to=to))
        if not valid_e164(number):
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not from_ and not service:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if from_ and whatsapp.is_whatsapp(from_) != (channel == "whatsapp"):
            return twilio_error(
                400, 63007, f"'From' {from_} and 'To' {to} are not on the same channel."
            )
        if sender in MAGIC_FROM:
            status, code, text = MAGIC_FROM[sender]
            return twilio_error(status, code, text.format(from_=from_))
        if sender and sender.startswith("+") and not valid_e164(sender):
            return twilio_error(
                400, 21212, f"The 'From' number {from_} is not a valid phone number."
            )
        variables: dict[str, str] | None = None
        if content_sid:
            try:
                variables = json.loads(raw_variables or "{}")
            except json.JSONDecodeError:
                return twilio_error(400, 21656, "The ContentVariables parameter is invalid.")
            if not isinstance(variables, dict):
                return twilio_error(400, 21656, "The ContentVariables parameter is invalid.")
            variables = {str(k): str(v) for k, v in variables.items()}
            body = self._content_text(content_sid, variables) or body
        if not body and not content_sid:
            return twilio_error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY:
            return twilio_error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        now = datetime.now(UTC)
        sid = new_sid()
        uri = f"{API}/Accounts/{self.account_sid}/Messages/{sid}.json"
        _, segments = sms_segments(body)
        status = "queued" if from_ else "accepted"
        message = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": rfc2822(now),
            "date_sent": None,
            "date_updated": rfc2822(now),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": str(segments),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": status,
            "content_sid": content_sid,
            "content_variables": variables,
            "subresource_uris": {
                "media": f"{API}/Accounts/{self.account_sid}/Messages/{sid}/Media.json",
                "feedback": f"{API}/Accounts/{self.account_sid}/Messages/{sid}/Feedback.json",
            },
            "to": to,
            "uri": uri,
        }
        sms = CapturedSms(
            message=message,
            created_at=now,
            status_callback=callback,
            history=[{"status": status, "error_code": None, "at": now.isoformat()}],
        )
        self.store.save(sms)
        log.info("captured %s %s to=%s segments=%d", channel, sid, to, segments)
        background = None
        if to in MAGIC_OUTCOME:
            outcome, code = MAGIC_OUTCOME[to]
            background = BackgroundTask(self._progress, sid, [("sending", None), (outcome, code)])
        elif self.auto_deliver:
            background = BackgroundTask(self._progress, sid, [("sent", None), ("delivered", None)])
        return JSONResponse(message, status_code=201, background=background)

    def _content_text(self, content_sid: str, variables: dict[str, str]) -> str:
        """The approved template's text with `variables` filled ("" if it is unknown)."""
        if self.templates_dir is None:
            return ""
        approved = whatsapp.content_catalogue(self.templates_dir).get(content_sid)
        return " ".join(whatsapp.fill(approved, variables).split()) if approved else ""

    async def fetch(self, request: Request) -> Response:
        if (denied := self._authenticate(request)) is not None:
            return denied
        try:
            sms = self.store.get(request.path_params["sid"])
        except SmsNotFound:
            return twilio_error(
                404, 20404, f"The requested resource {request.url.path} was not found"
            )
        if sms.message.get("account_sid") != self.account_sid:
            return twilio_error(
                404, 20404, f"The requested resource {request.url.path} was not found"
            )
        return JSONResponse(sms.message)

    async def list(self, request: Request) -> Response:
        if (denied := self._authenticate(request)) is not None:
            return denied
        q = request.query_params
        try:
            page_size = max(1, min(1000, int(q.get("PageSize", "50"))))
            page = max(0, int(q.get("Page", "0")))
        except ValueError:
            return twilio_error(400, 20001, "Invalid paging parameters")
        items = await asyncio.to_thread(  # reads every stored SMS: off the event loop
            self.store.list,
            account_sid=self.account_sid,
            to=q.get("To") or None,
            from_=q.get("From") or None,
        )
        chunk = items[page * page_size : (page + 1) * page_size]
        base = f"{API}/Accounts/{self.account_sid}/Messages.json"
        filters = {k: q[k] for k in ("To", "From") if q.get(k)}

        def page_uri(number: int) -> str:
            return f"{base}?{urlencode({**filters, 'PageSize': page_size, 'Page': number})}"

        has_next = (page + 1) * page_size < len(items)
        return JSONResponse(
            {
                "messages": [s.message for s in chunk],
                "page": page,
                "page_size": page_size,
                "start": page * page_size,
                "end": page * page_size + max(len(chunk) - 1, 0),
                "uri": page_uri(page),
                "first_page_uri": page_uri(0),
                "next_page_uri": page_uri(page + 1) if has_next else None,
                "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            }
        )

    async def control_status(self, request: Request) -> Response:
        """Failure injection: force a message's status (and fire its StatusCallback)."""
        if request.headers.get("content-type", "").startswith("application/json"):
            data = await request.json()
        else:
            data = await read_form(request)
        status = str(data.get("Status") or data.get("status") or "")
        raw_code = data.get("ErrorCode") or data.get("error_code")
        try:
            code = int(raw_code) if raw_code not in (None, "") else None
            sms = await self.set_status(request.path_params["sid"], status, code)
        except SmsNotFound:
            return twilio_error(404, 20404, "No such message")
        except ValueError as exc:
            return twilio_error(400, 20001, str(exc))
        return JSONResponse(sms.message)

    # -- status changes -----------------------------------------------------------------

    async def set_status(self, sid: str, status: str, error_code: int | None = None) -> CapturedSms:
        sms = self.store.set_status(sid, status, error_code)
        log.info("sms %s status=%s error_code=%s", sid, status, error_code)
        if sms.status_callback:
            await self._callback(sms)
        return sms

    async def _progress(self, sid: str, steps: list[tuple[str, int | None]]) -> None:
        for status, code in steps:
            await asyncio.sleep(0.05)
            try:
                current = self.store.get(sid)
            except SmsNotFound:
                return
            if current.status in TERMINAL:  # forced meanwhile: leave it alone
                return
            await self.set_status(sid, status, code)

    async def _callback(self, sms: CapturedSms) -> None:
        msg = sms.message
        params = {
            "AccountSid": msg["account_sid"],
            "ApiVersion": "2010-04-01",
            "From": msg.get("from") or "",
            "MessageSid": msg["sid"],
            "MessageStatus": msg["status"],
            "SmsSid": msg["sid"],
            "SmsStatus": msg["status"],
            "To": msg["to"],
        }
        if msg.get("messaging_service_sid"):
            params["MessagingServiceSid"] = msg["messaging_service_sid"]
        if msg.get("error_code"):
            params["ErrorCode"] = str(msg["error_code"])
        url = sms.status_callback or ""
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        try:
            async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
                response = await client.post(
                    url, data=params, headers={"X-Twilio-Signature": signature}
                )
            log.info("status callback %s -> %s", url, response.status_code)
        except httpx.HTTPError as exc:
            log.warning("status callback %s failed: %s", url, exc)

    # -- messages from customers -------------------------------------------------------

    async def receive(self, sender: str, body: str, to: str = "") -> tuple[str, int]:
        """A customer's SMS to our number: POSTed, signed as Twilio signs it, to the
        incoming webhook. Returns the message sid and the webhook's HTTP status."""
        if not self.incoming_url:
            raise ValueError("no incoming-message webhook is configured (incoming_url)")
        sid = new_sid()
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "Body": body,
            "From": sender,
            "MessageSid": sid,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "To": to,
        }
        signature = RequestValidator(self.auth_token).compute_signature(self.incoming_url, params)
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            response = await client.post(
                self.incoming_url, data=params, headers={"X-Twilio-Signature": signature}
            )
        log.info("incoming sms %s -> %s", sid, response.status_code)
        return sid, response.status_code

    async def control_incoming(self, request: Request) -> Response:
        """`POST /_capture/sms/incoming` (From, Body[, To]): a customer writes to us."""
        if request.headers.get("content-type", "").startswith("application/json"):
            data = await request.json()
        else:
            data = await read_form(request)
        sender = str(data.get("From") or data.get("from") or "").strip()
        body = str(data.get("Body") or data.get("body") or "")
        if not valid_e164(whatsapp.bare_number(sender)):
            return twilio_error(400, 21211, f"From {sender!r} is not an E.164 number")
        try:
            sid, status = await self.receive(sender, body, str(data.get("To") or ""))
        except (ValueError, httpx.HTTPError) as exc:
            return twilio_error(502, 11200, f"incoming-message webhook: {exc}")
        return JSONResponse({"sid": sid, "webhook_status": status})

    def routes(self) -> list[BaseRoute]:
        base = f"{API}/Accounts/{{account_sid}}"
        return [
            Route(f"{base}/Messages.json", self.create, methods=["POST"]),
            Route(f"{base}/Messages.json", self.list, methods=["GET"]),
            Route(f"{base}/Messages/{{sid}}.json", self.fetch, methods=["GET"]),
            Route("/_capture/sms/incoming", self.control_incoming, methods=["POST"]),
            Route("/_capture/sms/{sid}/status", self.control_status, methods=["POST"]),
        ]
