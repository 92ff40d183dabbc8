"""Send email over SMTP with aiosmtplib (any relay in production, the capture server in
development and tests).

Every message is multipart/alternative (text + optional HTML), carries a `List-Unsubscribe`
header, and has a `Message-ID` derived from the caller's idempotency key
(`<sha256(key)[:32]@cobro>`), so a retried send is recognisable downstream.

Errors are split for retry policies: `PermanentEmailError` (5xx, refused recipient, bad
address, authentication or TLS configuration) must not be retried; `TemporaryEmailError`
(connection refused, timeout, disconnect, 4xx) may be. Every error says whether the relay
may have accepted the message all the same (`maybe_accepted`: the connection was lost or
timed out after the message data was handed over, before the relay's answer): a caller
that must not duplicate asks the relay (`cobro.channels.relay`) before any resend.

`SmtpPool` keeps connections to one relay open between sends (one event loop); a send on
a pooled connection that the relay closed meanwhile is retried on a fresh connection only
when nothing of the message was handed over.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from email import charset
from email.generator import BytesGenerator
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr, getaddresses, localtime

import aiosmtplib
from pydantic import SecretStr

from cobro.observability.logs import redact
from cobro.settings import Settings, get_settings

log = logging.getLogger("cobro.channels.email")

MESSAGE_ID_DOMAIN = "cobro"


class EmailError(Exception):
    """Sending an email failed. `permanent` tells a retry policy whether to give up."""

    permanent: bool = False

    def __init__(self, message: str, *, code: int | None = None, maybe_accepted: bool = False):
        super().__init__(message)
        self.code = code
        self.maybe_accepted = maybe_accepted


class PermanentEmailError(EmailError):
    """Retrying will not help: 5xx, refused or malformed recipient, auth/TLS misconfiguration."""

    permanent = True


class TemporaryEmailError(EmailError):
    """May succeed later: connection refused or lost, timeout, 4xx."""

    permanent = False


@dataclass(frozen=True)
class SmtpConfig:
    """How to reach the SMTP relay. `password` is a SecretStr and is never logged."""

    host: str = "127.0.0.1"
    port: int = 8025
    mail_from: str = "Cobro Collections <collections@cobro.localhost>"
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    use_tls: bool = False
    timeout: float = 30.0
    validate_certs: bool = True
    ca_file: str | None = None  # PEM CA bundle for the relay's certificate (default: system)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> SmtpConfig:
        settings = settings or get_settings()
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            mail_from=settings.mail_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            use_tls=settings.smtp_use_tls,
            ca_file=str(settings.smtp_tls_ca_file) if settings.smtp_tls_ca_file else None,
        )


def message_id_for(idempotency_key: str, domain: str = MESSAGE_ID_DOMAIN) -> str:
    """The Message-ID for a send: `<sha256(key)[:32]@cobro>`, the same on every retry."""
    if not idempotency_key:
        raise ValueError("an idempotency key is required")
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def _addresses(value: str | Sequence[str], what: str) -> list[str]:
    """Bare addresses from header-style values; PermanentEmailError if one is malformed."""
    values = [value] if isinstance(value, str) else list(value)
    out = []
    for raw in values:
        if any(ch in raw for ch in "\r\n"):
            raise PermanentEmailError(f"bad {what} address {raw!r}: line break")
        parsed = getaddresses([raw])
        if not parsed or not raw.strip():
            raise PermanentEmailError(f"bad {what} address {raw!r}")
        for _, addr in parsed:
            local, at, domain = addr.rpartition("@")
            if not at or not local or not domain or " " in addr or "." not in domain:
                raise PermanentEmailError(f"bad {what} address {raw!r}")
            out.append(addr)
    if not out:
        raise PermanentEmailError(f"no {what} address")
    return out


def list_unsubscribe_header(unsubscribe: str | Sequence[str] | None, mail_from: str) -> str:
    """`<mailto:...>, <https://...>`; defaults to a mailto to the sender asking to unsubscribe."""
    if unsubscribe is None:
        sender = _addresses(mail_from, "From")[0]
        unsubscribe = [f"mailto:{sender}?subject=unsubscribe"]
    elif isinstance(unsubscribe, str):
        unsubscribe = [unsubscribe]
    return ", ".join(f"<{u.strip().strip('<>')}>" for u in unsubscribe)


# The stdlib's `email` package with its compat32 model: headers stored as given, encoded
# once (RFC 2047 for non-ASCII), bodies quoted-printable UTF-8 (7-bit clean for any relay).
# Its `policy.default` model parses and re-folds every header at each set and flatten,
# three times the CPU per message for the same bytes on the wire.
_UTF8 = charset.Charset("utf-8")
_UTF8.body_encoding = charset.QP
_WIRE = compat32.clone(linesep="\r\n")


def build_email(
    *,
    to: str | Sequence[str],
    subject: str,
    text: str,
    html: str | None = None,
    idempotency_key: str,
    mail_from: str,
    unsubscribe: str | Sequence[str] | None = None,
    reply_to: str | None = None,
    headers: Mapping[str, str] | None = None,
    date: datetime | None = None,
) -> Message:
    """The message `send_email` sends (pure: no I/O); `wire_bytes` gives its bytes."""
    recipients = [to] if isinstance(to, str) else list(to)
    _addresses(recipients, "To")
    _addresses(mail_from, "From")
    try:
        message_id = message_id_for(idempotency_key)
    except ValueError as exc:
        raise PermanentEmailError(f"cannot build the email: {exc}") from None
    fields: list[tuple[str, str | Header]] = [
        ("From", _address_header(mail_from)),
        ("To", _address_header(", ".join(recipients))),
        ("Subject", _text_header("Subject", subject)),
        ("Date", format_datetime(date or localtime())),
        ("Message-ID", message_id),
    ]
    if reply_to:
        _addresses(reply_to, "Reply-To")
        fields.append(("Reply-To", _address_header(reply_to)))
    fields.append(("List-Unsubscribe", list_unsubscribe_header(unsubscribe, mail_from)))
    if any(u.startswith("https:") for u in _unsubscribe_list(unsubscribe)):
        fields.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))  # RFC 8058
    fields.append(("Auto-Submitted", "auto-generated"))
    for name, value in (headers or {}).items():
        if not name.isascii() or not name.isprintable() or ":" in name or " " in name:
            raise PermanentEmailError(f"cannot build the email: bad header name {name!r}")
        fields.append((name, _text_header(name, value)))
    parts = [_part(text, "plain")] + ([_part(html, "html")] if html is not None else [])
    message = MIMEMultipart("alternative", _subparts=parts)
    for name, value in fields:
        message[name] = value
    return message


def wire_bytes(message: Message) -> bytes:
    """The message as it goes out: CRLF line ends, 7-bit."""
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_WIRE).flatten(message)
    return out.getvalue()


def _part(body: str, subtype: str) -> MIMEText:
    # a body ends with a line end, as mail clients (and `EmailMessage.set_content`) expect
    part = MIMEText(body if body.endswith("\n") else body + "\n", subtype, _UTF8)
    del part["MIME-Version"]  # said once, on the message
    return part


def _text_header(name: str, value: str) -> str | Header:
    if "\r" in value or "\n" in value:
        raise PermanentEmailError(f"cannot build the email: a line break in {name} {value!r}")
    return value if value.isascii() else Header(value, _UTF8, header_name=name)


def _address_header(value: str) -> str:
    """Addresses with their display names, non-ASCII names RFC 2047-encoded."""
    return ", ".join(formataddr(pair, charset="utf-8") for pair in getaddresses([value]))


def _unsubscribe_list(unsubscribe: str | Sequence[str] | None) -> list[str]:
    if unsubscribe is None:
        return []
    return [unsubscribe] if isinstance(unsubscribe, str) else list(unsubscribe)


def classify_smtp_error(exc: BaseException, context: str, *, data_sent: bool = False) -> EmailError:
    """Map an aiosmtplib/OS error to PermanentEmailError or TemporaryEmailError.

    `data_sent`: the message data was being handed over when it happened; then an error
    without an SMTP reply (lost connection, timeout) leaves the outcome unknown and the
    error says `maybe_accepted`. A reply code is the relay's refusal: not accepted.
    """
    error = _classify(exc, context)
    error.maybe_accepted = data_sent and not isinstance(exc, aiosmtplib.SMTPResponseException)
    return error


def _classify(exc: BaseException, context: str) -> EmailError:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        if codes and all(400 <= c < 500 for c in codes):
            return TemporaryEmailError(f"{context}: recipients deferred: {detail}", code=codes[0])
        code = next((c for c in codes if c >= 500), codes[0] if codes else None)
        return PermanentEmailError(f"{context}: recipients refused: {detail}", code=code)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError) and exc.code >= 500:
        return PermanentEmailError(
            f"{context}: the relay refused the login ({exc.code} {exc.message}): check "
            "COBRO_SMTP_USERNAME and COBRO_SMTP_PASSWORD",
            code=exc.code,
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        detail = f"{context}: {exc.code} {exc.message}"
        if 400 <= exc.code < 500:
            return TemporaryEmailError(detail, code=exc.code)
        if exc.code >= 500:
            return PermanentEmailError(detail, code=exc.code)
        return TemporaryEmailError(detail, code=exc.code)  # e.g. -1: connection problem
    if isinstance(exc, ssl.SSLCertVerificationError):
        return PermanentEmailError(f"{context}: TLS certificate not trusted: {exc}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return PermanentEmailError(f"{context}: {exc}")
    if isinstance(exc, (OSError, TimeoutError, ssl.SSLError)):
        # connection refused/reset, DNS failure, timeout, disconnect (aiosmtplib's connect,
        # timeout and disconnect errors are OSErrors too)
        return TemporaryEmailError(f"{context}: {type(exc).__name__}: {exc}")
    if isinstance(exc, aiosmtplib.SMTPException):
        # e.g. "SMTP AUTH extension not supported by server": configuration
        return PermanentEmailError(f"{context}: {exc}")
    return TemporaryEmailError(f"{context}: {type(exc).__name__}: {exc}")


class _StagedSMTP(aiosmtplib.SMTP):
    """An SMTP client that remembers whether the message data started to go out."""

    data_started = False

    async def data(self, message, /, **kwargs):  # type: ignore[no-untyped-def,override]
        self.data_started = True
        return await super().data(message, **kwargs)


def _client(config: SmtpConfig) -> _StagedSMTP:
    """STARTTLS whenever the relay offers it (`start_tls=None`), required with
    `starttls`; never with `use_tls` (TLS from the first byte). The credentials are not
    given to aiosmtplib: `_open` logs in, and only over TLS."""
    return _StagedSMTP(
        hostname=config.host,
        port=config.port,
        use_tls=config.use_tls,
        start_tls=False if config.use_tls else (True if config.starttls else None),
        validate_certs=config.validate_certs,
        cert_bundle=config.ca_file,
        timeout=config.timeout,
    )


async def _open(config: SmtpConfig) -> _StagedSMTP:
    """A connected client, logged in when `config` has a username — never over a plain
    connection: the password would cross the network in clear."""
    smtp = _client(config)
    await smtp.connect()
    if config.username:
        if smtp.get_transport_info("sslcontext") is None:
            smtp.close()
            raise aiosmtplib.SMTPException(
                "the relay offers no TLS (no STARTTLS): AUTH refused over a plain "
                "connection (set COBRO_SMTP_USE_TLS for TLS from the start, or use a "
                "relay that offers STARTTLS)"
            )
        password = config.password.get_secret_value() if config.password else ""
        await smtp.login(config.username, password)
    return smtp


class SmtpPool:
    """Open connections to one relay, reused between sends (at most `size` idle).

    Bound to the event loop that uses it; `pool_for(config)` gives the current loop's."""

    def __init__(self, config: SmtpConfig, size: int = 32):
        self.config = config
        self.size = size
        self._idle: list[_StagedSMTP] = []

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[tuple[_StagedSMTP, bool]]:
        """A connected client and whether it was reused; kept for reuse unless the block
        raised (then it is closed: its state is unknown)."""
        smtp = None
        while self._idle and smtp is None:
            candidate = self._idle.pop()
            if candidate.is_connected:
                smtp = candidate
        reused = smtp is not None
        if smtp is None:
            smtp = await _open(self.config)
        smtp.data_started = False
        try:
            yield smtp, reused
        except BaseException:
            smtp.close()
            raise
        if len(self._idle) < self.size and smtp.is_connected:
            self._idle.append(smtp)
        else:
            await _quit(smtp)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for smtp in idle:
            await _quit(smtp)


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.quit()
    except Exception:
        smtp.close()


_POOLS: dict[tuple[int, SmtpConfig], SmtpPool] = {}


def pool_for(config: SmtpConfig) -> SmtpPool:
    """This event loop's pool for `config` (created on first use)."""
    loop = asyncio.get_running_loop()
    key = (id(loop), config)
    pool = _POOLS.get(key)
    if pool is None or getattr(pool, "_loop", None) is not loop:
        pool = SmtpPool(config)
        pool._loop = loop  # type: ignore[attr-defined]
        _POOLS[key] = pool
    return pool


async def send_email(
    *,
    to: str | Sequence[str],
    subject: str,
    text: str,
    html: str | None = None,
    idempotency_key: str,
    unsubscribe: str | Sequence[str] | None = None,
    reply_to: str | None = None,
    headers: Mapping[str, str] | None = None,
    config: SmtpConfig | None = None,
    pool: SmtpPool | None = None,
    return_path: str | None = None,
) -> str:
    """Send one email and return its Message-ID (`<sha256(key)[:32]@cobro>`).

    Raises `PermanentEmailError` or `TemporaryEmailError` (`maybe_accepted` when the relay
    may have taken it all the same). If the relay accepts some recipients and refuses
    others, the message was sent: the refusals are logged and the Message-ID returned
    (retrying would duplicate it to the accepted ones). With `pool`, the connection is
    reused from and returned to it; without, one connection is opened for this message.
    `return_path`: the envelope sender (MAIL FROM, where bounces go), default the From.
    """
    config = pool.config if pool is not None else (config or SmtpConfig.from_settings())
    message = build_email(
        to=to,
        subject=subject,
        text=text,
        html=html,
        idempotency_key=idempotency_key,
        mail_from=config.mail_from,
        unsubscribe=unsubscribe,
        reply_to=reply_to,
        headers=headers,
    )
    message_id = message["Message-ID"]
    data = wire_bytes(message)
    recipients = _addresses([to] if isinstance(to, str) else list(to), "To")
    sender = _addresses(return_path or config.mail_from, "Return-Path")[0]
    context = f"email {message_id} to {', '.join(recipients)} via {config.host}:{config.port}"
    where = f"email {message_id} via {config.host}:{config.port}"  # logs: no address
    attempts = 2 if pool is not None else 1  # a stale pooled connection: once more, fresh
    for attempt in range(attempts):
        smtp: _StagedSMTP | None = None
        try:
            if pool is None:
                smtp = await _open(config)
                try:
                    refused, response = await smtp.sendmail(sender, recipients, data)
                finally:
                    await _quit(smtp)
            else:
                async with pool.connection() as (smtp, reused):
                    try:
                        refused, response = await smtp.sendmail(sender, recipients, data)
                    except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
                        if reused and not smtp.data_started and attempt + 1 < attempts:
                            raise _StaleConnection from None
                        raise
        except _StaleConnection:
            log.info("%s: pooled connection closed by the relay, reconnecting", where)
            continue
        except Exception as exc:
            data_sent = smtp is not None and smtp.data_started
            error = classify_smtp_error(exc, context, data_sent=data_sent)
            log.warning(
                "email not sent (permanent=%s, maybe accepted=%s): %s",
                error.permanent,
                error.maybe_accepted,
                error,
            )
            raise error from exc
        break
    for address, reply in refused.items():
        log.warning(
            "%s key=%s: recipient %d of %d refused: %s %s",
            where,
            idempotency_key,
            recipients.index(address) + 1 if address in recipients else 0,
            len(recipients),
            reply.code,
            redact(reply.message),  # relays quote the refused address
        )
    log.info("email sent: %s key=%s: %s", where, idempotency_key, response)
    return message_id


class _StaleConnection(Exception):
    """A reused connection was found closed before anything of the message went out."""
