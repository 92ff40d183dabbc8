"""Send email over SMTP with aiosmtplib (any relay in production, the capture server in
development and tests).

Every message is multipart/alternative (text + optional HTML), carries a `List-Unsubscribe`
header, and has a `Message-ID` derived from the caller's idempotency key
(`<sha256(key)[:32]@cobro>`), so a retried send is recognisable downstream.

Errors are split for retry policies: `PermanentEmailError` (5xx, refused recipient, bad
address, authentication or TLS configuration) must not be retried; `TemporaryEmailError`
(connection refused, timeout, disconnect, 4xx) may be.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from collections.abc import Mapping, Sequence
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

    def __init__(self, message: str, *, code: int | None = None):
        super().__init__(message)
        self.code = code


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


def classify_smtp_error(exc: BaseException, context: str) -> EmailError:
    """Map an aiosmtplib/OS error to PermanentEmailError or TemporaryEmailError."""
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
) -> str:
    """Send one email and return its Message-ID (`<sha256(key)[:32]@cobro>`).

    Raises `PermanentEmailError` or `TemporaryEmailError`. If the relay accepts some
    recipients and refuses others, the message was sent: the refusals are logged and the
    Message-ID returned (retrying would duplicate it to the accepted ones).
    """
    config = config or SmtpConfig.from_settings()
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
    try:
        refused, response = await aiosmtplib.send(
            message,
            sender=sender,
            recipients=recipients,
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password.get_secret_value() if config.password else None,
            use_tls=config.use_tls,
            start_tls=config.starttls and not config.use_tls,
            validate_certs=config.validate_certs,
            timeout=config.timeout,
        )
    except Exception as exc:
        error = classify_smtp_error(exc, context)
        log.warning("email not sent (permanent=%s): %s", error.permanent, error)
        raise error from exc
    for address, reply in refused.items():
        log.warning("%s: recipient %s refused: %s %s", context, address, reply.code, reply.message)
    log.info("email sent: %s key=%s: %s", context, idempotency_key, response)
    return message_id
