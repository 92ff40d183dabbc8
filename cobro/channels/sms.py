"""Send SMS and WhatsApp messages through Twilio's Messages API with the real `twilio` client.

One implementation for both channels (`send_message(channel=...)`): a WhatsApp message is
the same API call with `whatsapp:`-prefixed `To`/`From` (`COBRO_WHATSAPP_FROM`) and, for an
approved template, `ContentSid` + `ContentVariables` instead of `Body`
(`cobro.channels.whatsapp`). Status callbacks and errors are the same.

When `twilio_base_url` is set (the default in development and tests) the client's `api`
domain is pointed at that base URL, i.e. at the loopback capture server
(`cobro.devkit.capture_sms`), which speaks the same REST API. Empty means real Twilio.

Errors are split for retry policies: `PermanentSmsError` (bad number, not SMS-capable,
wrong credentials, any 4xx) must not be retried; `TemporarySmsError` (connection refused,
timeouts, 429, 5xx) may be.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import phonenumbers
import requests
from pydantic import SecretStr
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from cobro.channels import whatsapp
from cobro.settings import Settings, get_settings

log = logging.getLogger("cobro.channels.sms")

Encoding = Literal["GSM-7", "UCS-2"]
MessageChannel = Literal["sms", "whatsapp"]

# GSM 03.38 default alphabet (the escape code 0x1B itself is not a character).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Characters of the extension table: each costs two septets (escape + code).
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_MULTI = 160, 153  # septets per segment (multipart loses 7 to the UDH)
UCS2_SINGLE, UCS2_MULTI = 70, 67  # UTF-16 code units per segment

# Twilio error codes that mean "this request will never succeed as is".
PERMANENT_TWILIO_CODES = frozenset(
    {
        20003,  # authentication failed
        20404,  # resource not found
        21211,  # invalid 'To' number
        21212,  # invalid 'From' number
        21408,  # no permission for the region
        21602,  # body required
        21603,  # 'From' required
        21604,  # 'To' required
        21606,  # 'From' is not a valid sender for this account
        21610,  # recipient unsubscribed (STOP)
        21612,  # cannot route to this number
        21614,  # 'To' is not SMS-capable
        21617,  # body too long
    }
)


def sms_segments(text: str) -> tuple[Encoding, int]:
    """The encoding an SMS needs and how many segments it is billed as.

    GSM-7 when every character is in the GSM 03.38 default alphabet or its extension table
    (extension characters cost two septets): 160 septets in one segment, else 153 per
    segment. Otherwise UCS-2: 70 UTF-16 code units in one segment, else 67 per segment.
    A multipart segment never splits an escape sequence or a surrogate pair. The empty
    text is one (empty) GSM-7 segment.
    """
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        units = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        return "GSM-7", _count_segments(units, GSM7_SINGLE, GSM7_MULTI)
    units = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return "UCS-2", _count_segments(units, UCS2_SINGLE, UCS2_MULTI)


def _count_segments(units: list[int], single: int, multi: int) -> int:
    if sum(units) <= single:
        return 1
    segments, used = 1, 0
    for size in units:
        if used + size > multi:
            segments += 1
            used = 0
        used += size
    return segments


class SmsError(Exception):
    """Sending an SMS failed. `permanent` tells a retry policy whether to give up."""

    permanent: bool = False

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


class PermanentSmsError(SmsError):
    """Retrying will not help: invalid number, unsubscribed, wrong credentials, any 4xx."""

    permanent = True


class TemporarySmsError(SmsError):
    """May succeed later: connection refused, timeout, rate limited, provider 5xx."""

    permanent = False


class InvalidPhoneNumberError(PermanentSmsError):
    """The number is not a valid E.164 phone number; raised before anything is sent."""

    def __init__(self, number: str, reason: str = "is not a valid E.164 phone number"):
        super().__init__(f"{number!r} {reason}", code=21211)
        self.number = number


def normalize_e164(number: str) -> str:
    """`number` in E.164 form (`+33612345678`), or `InvalidPhoneNumberError` naming it.

    Only international numbers are accepted (no default region): customer phone numbers
    are normalised to E.164 at import time.
    """
    candidate = (number or "").strip()
    if not candidate.startswith("+"):
        raise InvalidPhoneNumberError(number, "is not in E.164 form (+<country><number>)")
    try:
        parsed = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumberError(number, f"is not a valid phone number ({exc})") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumberError(number)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True)
class TwilioConfig:
    """Where and as whom to send. `base_url` None (or empty) means the real Twilio API."""

    account_sid: str
    auth_token: SecretStr
    sms_from: str
    base_url: str | None = None
    timeout: float = 30.0
    whatsapp_from: str = "whatsapp:+14155238886"

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> TwilioConfig:
        settings = settings or get_settings()
        return cls(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token,
            sms_from=settings.sms_from,
            base_url=settings.twilio_base_url or None,
            whatsapp_from=settings.whatsapp_from,
        )


@dataclass(frozen=True)
class SmsStatus:
    sid: str
    status: str
    error_code: int | None
    to: str
    num_segments: int | None


def make_client(config: TwilioConfig) -> Client:
    """A real `twilio.rest.Client`, its `api` domain pointed at `config.base_url` if set."""
    http_client = TwilioHttpClient(timeout=config.timeout)
    client = Client(
        config.account_sid, config.auth_token.get_secret_value(), http_client=http_client
    )
    if config.base_url:
        # Every Messages call goes through the `api` domain (api.twilio.com by default);
        # region/edge rewriting would mangle a custom host, so disable it.
        client.api.base_url = config.base_url.rstrip("/")
        client.region = None
        client.edge = None
        if _is_loopback(config.base_url):
            # never send loopback traffic through an HTTP(S)_PROXY from the environment
            http_client.proxy = {"http": None, "https": None}
    return client


def _close(client: Client) -> None:
    """Release the client's pooled connections (one client per call)."""
    session = getattr(client.http_client, "session", None)
    if session is not None:
        session.close()


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _classify(exc: Exception, context: str) -> SmsError:
    if isinstance(exc, TwilioRestException):
        code = exc.code if isinstance(exc.code, int) else None
        status = exc.status
        detail = f"{context}: Twilio error {code} (HTTP {status}): {exc.msg}"
        if status == 429 or status >= 500 or code == 20429:
            return TemporarySmsError(detail, code=code, status=status)
        if status >= 400 or (code is not None and code in PERMANENT_TWILIO_CODES):
            return PermanentSmsError(detail, code=code, status=status)
        return TemporarySmsError(detail, code=code, status=status)
    if isinstance(exc, requests.RequestException):
        return TemporarySmsError(f"{context}: {type(exc).__name__}: {exc}")
    if isinstance(exc, TwilioException):
        return PermanentSmsError(f"{context}: {exc}")
    return TemporarySmsError(f"{context}: {type(exc).__name__}: {exc}")


def send_sms(
    *,
    to: str,
    body: str,
    config: TwilioConfig | None = None,
    from_: str | None = None,
    status_callback: str | None = None,
    messaging_service_sid: str | None = None,
    idempotency_key: str | None = None,
) -> str:
    """Send one SMS and return the provider message sid (`SM...`). Blocking.

    `to` is validated (E.164) before anything is sent. `idempotency_key` is only logged:
    Twilio's Messages API has no idempotency, the caller records the send before it.
    """
    return send_message(
        channel="sms",
        to=to,
        body=body,
        config=config,
        from_=from_,
        status_callback=status_callback,
        messaging_service_sid=messaging_service_sid,
        idempotency_key=idempotency_key,
    )


def send_message(
    *,
    channel: MessageChannel,
    to: str,
    body: str,
    config: TwilioConfig | None = None,
    from_: str | None = None,
    status_callback: str | None = None,
    messaging_service_sid: str | None = None,
    idempotency_key: str | None = None,
    content_sid: str | None = None,
    content_variables: dict[str, str] | None = None,
) -> str:
    """Send one SMS or WhatsApp message; returns the provider message sid. Blocking.

    WhatsApp: `to` may be given with or without its `whatsapp:` prefix, the sender is
    `from_` or `config.whatsapp_from`; with `content_sid` the approved template is sent
    with `content_variables` (and `body` is only logged), else `body` as text.
    """
    config = config or TwilioConfig.from_settings()
    number = normalize_e164(whatsapp.bare_number(to) if channel == "whatsapp" else to)
    what = "SMS" if channel == "sms" else "WhatsApp message"
    if not body and not content_sid:
        raise PermanentSmsError(f"the {what} body is empty", code=21602)
    fields: dict[str, str | None] = {"body": body, "messaging_service_sid": messaging_service_sid}
    if channel == "whatsapp":
        recipient = whatsapp.address(number)
        sender = from_ or (None if messaging_service_sid else config.whatsapp_from)
        if sender is not None and not whatsapp.is_whatsapp(sender):
            raise PermanentSmsError(f"WhatsApp sender {sender!r} lacks `whatsapp:`", code=21212)
        if content_sid:
            fields = {
                "content_sid": content_sid,
                "content_variables": json.dumps(content_variables or {}, ensure_ascii=False),
                "messaging_service_sid": messaging_service_sid,
            }
        encoding, segments = "UCS-2", 1  # not billed per segment
    else:
        recipient = number
        sender = from_ or (None if messaging_service_sid else config.sms_from)
        encoding, segments = sms_segments(body)
    client = make_client(config)
    try:
        message = client.messages.create(
            to=recipient,
            from_=sender,  # None values are left out of the request
            status_callback=status_callback,
            **fields,
        )
    except Exception as exc:
        _close(client)
        error = _classify(exc, f"{what} to {recipient}")
        log.warning(
            "%s not sent: key=%s permanent=%s %s",
            channel,
            idempotency_key,
            error.permanent,
            error,
        )
        raise error from exc
    _close(client)
    log.info(
        "%s sent: sid=%s key=%s encoding=%s segments=%d status=%s",
        channel,
        message.sid,
        idempotency_key,
        encoding,
        segments,
        message.status,
    )
    return str(message.sid)


async def send_sms_async(
    *,
    to: str,
    body: str,
    config: TwilioConfig | None = None,
    from_: str | None = None,
    status_callback: str | None = None,
    messaging_service_sid: str | None = None,
    idempotency_key: str | None = None,
) -> str:
    """`send_sms` in a worker thread (the twilio client is synchronous)."""
    return await asyncio.to_thread(
        send_sms,
        to=to,
        body=body,
        config=config,
        from_=from_,
        status_callback=status_callback,
        messaging_service_sid=messaging_service_sid,
        idempotency_key=idempotency_key,
    )


async def send_message_async(**kwargs: object) -> str:
    """`send_message` in a worker thread (the twilio client is synchronous)."""
    return await asyncio.to_thread(lambda: send_message(**kwargs))  # type: ignore[arg-type]


def fetch_sms(sid: str, config: TwilioConfig | None = None) -> SmsStatus:
    """The provider's current view of a sent message (status, error code). Blocking."""
    config = config or TwilioConfig.from_settings()
    client = make_client(config)
    try:
        message = client.messages(sid).fetch()
    except Exception as exc:
        raise _classify(exc, f"fetching SMS {sid}") from exc
    finally:
        _close(client)
    return SmsStatus(
        sid=str(message.sid),
        status=str(message.status),
        error_code=message.error_code,
        to=str(message.to),
        num_segments=int(message.num_segments) if message.num_segments else None,
    )


async def fetch_sms_async(sid: str, config: TwilioConfig | None = None) -> SmsStatus:
    return await asyncio.to_thread(fetch_sms, sid, config)
