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
import logging
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, localtime

import aiosmtplib
from pydantic import SecretStr

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
) -> EmailMessage:
    """The message `send_email` sends (pure: no I/O)."""
    recipients = [to] if isinstance(to, str) else list(to)
    _addresses(recipients, "To")
    _addresses(mail_from, "From")
    message = EmailMessage()
    try:
        message["From"] = mail_from
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
        message["Date"] = format_datetime(date or localtime())
        message["Message-ID"] = message_id_for(idempotency_key)
        if reply_to:
            _addresses(reply_to, "Reply-To")
            message["Reply-To"] = reply_to
        message["List-Unsubscribe"] = list_unsubscribe_header(unsubscribe, mail_from)
        if any(u.startswith("https:") for u in _unsubscribe_list(unsubscribe)):
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058
        message["Auto-Submitted"] = "auto-generated"
        for name, value in (headers or {}).items():
            message[name] = value
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
    except ValueError as exc:  # e.g. a line break in a header value
        raise PermanentEmailError(f"cannot build the email: {exc}") from None
    return message


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
    return _StagedSMTP(
        hostname=config.host,
        port=config.port,
        username=config.username,
        password=config.password.get_secret_value() if config.password else None,
        use_tls=config.use_tls,
        start_tls=config.starttls and not config.use_tls,
        validate_certs=config.validate_certs,
        timeout=config.timeout,
    )


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
            smtp = _client(self.config)
            await smtp.connect()
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
) -> str:
    """Send one email and return its Message-ID (`<sha256(key)[:32]@cobro>`).

    Raises `PermanentEmailError` or `TemporaryEmailError` (`maybe_accepted` when the relay
    may have taken it all the same). If the relay accepts some recipients and refuses
    others, the message was sent: the refusals are logged and the Message-ID returned
    (retrying would duplicate it to the accepted ones). With `pool`, the connection is
    reused from and returned to it; without, one connection is opened for this message.
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
    recipients = _addresses([to] if isinstance(to, str) else list(to), "To")
    sender = Address(addr_spec=_addresses(config.mail_from, "From")[0]).addr_spec
    context = f"email {message_id} to {', '.join(recipients)} via {config.host}:{config.port}"
    attempts = 2 if pool is not None else 1  # a stale pooled connection: once more, fresh
    for attempt in range(attempts):
        smtp: _StagedSMTP | None = None
        try:
            if pool is None:
                smtp = _client(config)
                await smtp.connect()
                try:
                    refused, response = await smtp.send_message(
                        message, sender=sender, recipients=recipients
                    )
                finally:
                    await _quit(smtp)
            else:
                async with pool.connection() as (smtp, reused):
                    try:
                        refused, response = await smtp.send_message(
                            message, sender=sender, recipients=recipients
                        )
                    except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
                        if reused and not smtp.data_started and attempt + 1 < attempts:
                            raise _StaleConnection from None
                        raise
        except _StaleConnection:
            log.info("%s: pooled connection closed by the relay, reconnecting", context)
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
        log.warning("%s: recipient %s refused: %s %s", context, address, reply.code, reply.message)
    log.info("email sent: %s key=%s: %s", context, idempotency_key, response)
    return message_id


class _StaleConnection(Exception):
    """A reused connection was found closed before anything of the message went out."""
