"""Capture SMTP server (aiosmtpd) for development and tests.

It listens on loopback, accepts plain SMTP (no STARTTLS needed; AUTH optional, off by
default) and stores every message durably under `<dir>/` as two files written atomically:
`<id>.eml` (the message exactly as received) then `<id>.json` (envelope and a parsed
summary; its presence marks the message as complete). Messages survive restarts.

Failure injection: a recipient whose local part is `reject-<code>` (e.g.
`reject-550@example.com`, `reject-451@example.com`) is refused at RCPT with that
4xx/5xx code, so senders can be tested against permanent and temporary refusals.

Reader API: `MailStore(dir).list()`, `.get(id)`, `.find(message_id=..., to=...)`; over
HTTP, the inbox's `GET /api/mail?message_id=...`, which `CaptureRelayLookup` (the
`cobro.channels.relay.RelayLookup` of the capture server) asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import hmac
import logging
import re
import secrets
import warnings
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from cobro.channels.relay import RelayAnswer, RelayLookupError
from cobro.devkit.loopback import bind_socket
from cobro.devkit.storage import atomic_write, atomic_write_json, read_json

if TYPE_CHECKING:
    from cobro.settings import Settings

log = logging.getLogger("cobro.devkit.capture_smtp")

MAIL_ID_RE = re.compile(r"^\d{8}T\d{12}Z-[0-9a-f]{8}$")
REJECT_RE = re.compile(r"^reject-([45]\d\d)@", re.IGNORECASE)


class MailNotFound(KeyError):
    """No captured message with this id."""


@dataclass(frozen=True)
class MailSummary:
    """One captured message, as listed."""

    id: str
    received_at: datetime
    envelope_from: str
    envelope_to: tuple[str, ...]
    from_: str
    to: tuple[str, ...]
    subject: str
    message_id: str | None
    date: str | None  # the Date header as sent
    size: int

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["from"] = data.pop("from_")
        data["received_at"] = self.received_at.isoformat()
        data["envelope_to"] = list(self.envelope_to)
        data["to"] = list(self.to)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MailSummary:
        return cls(
            id=data["id"],
            received_at=datetime.fromisoformat(data["received_at"]),
            envelope_from=data["envelope_from"],
            envelope_to=tuple(data["envelope_to"]),
            from_=data["from"],
            to=tuple(data["to"]),
            subject=data["subject"],
            message_id=data.get("message_id"),
            date=data.get("date"),
            size=data.get("size", 0),
        )


@dataclass(frozen=True)
class CapturedMail:
    """One captured message in full: headers (in order, decoded), text and HTML parts, raw."""

    summary: MailSummary
    headers: tuple[tuple[str, str], ...]
    text: str | None
    html: str | None
    raw: bytes

    @property
    def id(self) -> str:
        return self.summary.id

    def header(self, name: str) -> str | None:
        """The first header called `name` (case-insensitive), decoded, or None."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def to_dict(self, include_raw: bool = True) -> dict[str, Any]:
        data = self.summary.to_dict()
        data["headers"] = [[k, v] for k, v in self.headers]
        data["text"] = self.text
        data["html"] = self.html
        if include_raw:
            data["raw"] = self.raw.decode("utf-8", "replace")
        return data


def parse_message(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def _header(message: EmailMessage, name: str) -> str | None:
    try:
        value = message.get(name)
    except Exception:  # a header the parser cannot decode: keep the raw text
        value = message.get_all(name, failobj=[None])[0]
    return None if value is None else str(value).strip()


def _part_content(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_type() != f"text/{subtype}":
        return None
    try:
        content = part.get_content()
    except Exception:  # unknown charset: best effort
        payload = part.get_payload(decode=True) or b""
        content = payload.decode("utf-8", "replace")
    return content.replace("\r\n", "\n")  # SMTP line endings -> text


class MailStore:
    """Captured messages in a directory: `<id>.eml` + `<id>.json` per message."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def save(
        self,
        raw: bytes,
        envelope_from: str,
        envelope_to: list[str] | tuple[str, ...],
        received_at: datetime | None = None,
    ) -> MailSummary:
        received_at = received_at or datetime.now(UTC)
        mail_id = f"{received_at:%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(4)}"
        message = parse_message(raw)
        to = [
            addr for _, addr in getaddresses(message.get_all("To", []) + message.get_all("Cc", []))
        ]
        summary = MailSummary(
            id=mail_id,
            received_at=received_at,
            envelope_from=envelope_from,
            envelope_to=tuple(envelope_to),
            from_=_header(message, "From") or "",
            to=tuple(a for a in to if a),
            subject=_header(message, "Subject") or "",
            message_id=(_header(message, "Message-ID") or "").strip() or None,
            date=_header(message, "Date"),
            size=len(raw),
        )
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.root / f"{mail_id}.eml", raw)
        atomic_write_json(self.root / f"{mail_id}.json", summary.to_dict())
        return summary

    def list(self, limit: int | None = None) -> list[MailSummary]:
        """Newest first."""
        if not self.root.is_dir():
            return []
        paths = sorted(self.root.glob("*.json"), reverse=True)
        if limit is not None:
            paths = paths[:limit]
        out = []
        for path in paths:
            if not MAIL_ID_RE.match(path.stem):
                continue
            with contextlib.suppress(OSError, ValueError, KeyError):
                out.append(MailSummary.from_dict(read_json(path)))
        return out

    def get(self, mail_id: str) -> CapturedMail:
        if not MAIL_ID_RE.match(mail_id):
            raise MailNotFound(mail_id)
        try:
            summary = MailSummary.from_dict(read_json(self.root / f"{mail_id}.json"))
            raw = (self.root / f"{mail_id}.eml").read_bytes()
        except FileNotFoundError:
            raise MailNotFound(mail_id) from None
        message = parse_message(raw)
        headers = []
        for key, value in message.raw_items():
            try:
                decoded = str(message.policy.header_fetch_parse(key, value))
            except Exception:  # undecodable header: keep it as received
                decoded = str(value)
            headers.append((key, decoded.strip()))
        return CapturedMail(
            summary=summary,
            headers=tuple(headers),
            text=_part_content(message, "plain"),
            html=_part_content(message, "html"),
            raw=raw,
        )

    def find(self, *, message_id: str | None = None, to: str | None = None) -> list[MailSummary]:
        """Messages with this Message-ID and/or this recipient (envelope or header)."""
        out = []
        for summary in self.list():
            if message_id is not None and summary.message_id != message_id:
                continue
            if to is not None and to.lower() not in {
                a.lower() for a in (*summary.envelope_to, *summary.to)
            }:
                continue
            out.append(summary)
        return out


class _CaptureHandler:
    def __init__(self, store: MailStore):
        self.store = store

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options
    ) -> str:
        match = REJECT_RE.match(address)
        if match:
            code = match.group(1)
            return f"{code} {code[0]}.1.1 <{address}>: rejected by capture failure injection"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        summary = await asyncio.to_thread(
            self.store.save, raw, envelope.mail_from or "", list(envelope.rcpt_tos)
        )
        log.info(
            "captured mail %s from=%s to=%s subject=%r",
            summary.id,
            summary.envelope_from,
            ",".join(summary.envelope_to),
            summary.subject,
        )
        return f"250 2.0.0 Message accepted for delivery ({summary.id})"


class _Authenticator:
    def __init__(self, username: str, password: str):
        self.username = username.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = hmac.compare_digest(auth_data.login, self.username) and hmac.compare_digest(
            auth_data.password, self.password
        )
        # handled=False: aiosmtpd then answers 535 itself
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class CaptureSmtpServer:
    """The capture SMTP server, running on the current event loop.

    `port=0` picks a free port; `.port` is the actual one once started. `auth` is an
    optional `(username, password)`: when given, AUTH PLAIN/LOGIN is offered over plain
    SMTP and required before MAIL.
    """

    def __init__(
        self,
        storage_dir: Path | MailStore,
        host: str = "127.0.0.1",
        port: int = 0,
        auth: tuple[str, str] | None = None,
        hostname: str = "cobro-capture.localhost",
    ):
        self.store = storage_dir if isinstance(storage_dir, MailStore) else MailStore(storage_dir)
        self.host = host
        self.requested_port = port
        self.auth = auth
        self.hostname = hostname
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[SMTP] = set()
        self.port: int | None = None

    def _protocol(self) -> SMTP:
        kwargs: dict[str, Any] = {}
        if self.auth:
            kwargs = {
                "authenticator": _Authenticator(*self.auth),
                "auth_required": True,
                "auth_require_tls": False,
            }
        with warnings.catch_warnings():
            # AUTH over plain SMTP is the point of this loopback dev server
            warnings.simplefilter("ignore", UserWarning)
            protocol = _TrackedSMTP(
                _CaptureHandler(self.store),
                hostname=self.hostname,
                ident="Cobro capture SMTP",
                enable_SMTPUTF8=True,
                **kwargs,
            )
        protocol.connections = self._connections
        return protocol

    async def start(self) -> None:
        if self._server is not None:
            return
        self.store.root.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        sock = bind_socket(self.host, self.requested_port, "capture SMTP")
        self._server = await loop.create_server(self._protocol, sock=sock)
        self.port = sock.getsockname()[1]
        log.info("capture SMTP listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for protocol in list(self._connections):
            if protocol.transport is not None:
                protocol.transport.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)

    async def __aenter__(self) -> CaptureSmtpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class _TrackedSMTP(SMTP):
    connections: set[SMTP]

    def connection_made(self, transport) -> None:
        self.connections.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        super().connection_lost(exc)


class CaptureRelayLookup:
    """`RelayLookup` for the capture server: its inbox knows every message it accepted, so
    its answer is definitive (found or certainly not)."""

    def __init__(self, inbox_url: str, timeout: float = 10.0):
        self.inbox_url = inbox_url.rstrip("/")
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> CaptureRelayLookup:
        return cls(settings.smtp_lookup_url or f"http://127.0.0.1:{settings.capture_http_port}")

    async def find_message(self, message_id: str) -> RelayAnswer:
        import httpx

        url = f"{self.inbox_url}/api/mail"
        try:
            async with httpx.AsyncClient(timeout=self.timeout, trust_env=False) as client:
                response = await client.get(url, params={"message_id": message_id})
                response.raise_for_status()
                found = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RelayLookupError(f"capture inbox {url}: {type(exc).__name__}: {exc}") from exc
        if not found:
            return RelayAnswer(False, detail="not in the capture inbox")
        return RelayAnswer(True, message_id, detail=f"captured as {found[-1]['id']}")
