"""The inbound SMTP server (aiosmtpd): it accepts mail for the reply domain
(`COBRO_REPLY_DOMAIN`) and records each message (`cobro.replies.incoming_email`).

Production runs it (`cobro replies serve`) behind the company's MX: the reply domain is a
subdomain (`reply.example.com`) whose MX record names the host of this server, so replies
and bounces reach it directly, on port 25 or through the company's inbound relay. Other
recipients are refused at RCPT (550: it relays nothing). A message that cannot be recorded
now (the database away) is refused with 451, so the sending MTA retries it; a message that
cannot be processed at all gets 554; the server carries on either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from cobro.replies.incoming_email import receive_email
from cobro.settings import Settings

log = logging.getLogger("cobro.replies.smtp")

MAX_SIZE = 10 * 1024 * 1024  # replies with attachments: more is refused at DATA (552)


class _Handler:
    def __init__(self, engine: Engine, settings: Settings):
        self.engine = engine
        self.settings = settings

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        domain = address.rpartition("@")[2].strip("<> ").lower()
        if not self.settings.reply_domain or domain != self.settings.reply_domain.lower():
            return f"550 5.1.1 <{address}>: no such mailbox here (replies only)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        sender = envelope.mail_from if envelope.mail_from not in (None, "<>") else ""
        try:
            done = await receive_email(
                self.engine, self.settings, raw, sender or "", list(envelope.rcpt_tos)
            )
        except SQLAlchemyError as exc:
            log.warning("inbound mail not recorded (database): %s", str(exc).splitlines()[0])
            return "451 4.3.0 cannot record the message now, try again later"
        except Exception:
            log.exception("inbound mail could not be processed")
            return "554 5.6.0 message could not be processed"
        log.info("inbound mail %s: %s %s", done.message_id, done.outcome, ",".join(done.accounts))
        return f"250 2.0.0 {done.outcome}"


class _TrackedSMTP(SMTP):
    connections: set[SMTP]

    def connection_made(self, transport: Any) -> None:
        self.connections.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        super().connection_lost(exc)


class InboundSmtpServer:
    """The inbound server on the current event loop; `port=0` picks a free port (`.port`
    is the actual one once started)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        host: str | None = None,
        port: int | None = None,
        hostname: str | None = None,
    ):
        self.engine = engine
        self.settings = settings
        self.host = host if host is not None else settings.inbound_smtp_host
        self.requested_port = port if port is not None else settings.inbound_smtp_port
        self.hostname = hostname or settings.reply_domain or "cobro.localhost"
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[SMTP] = set()
        self.port: int | None = None

    def _protocol(self) -> SMTP:
        protocol = _TrackedSMTP(
            _Handler(self.engine, self.settings),
            hostname=self.hostname,
            ident="Cobro replies",
            data_size_limit=MAX_SIZE,
            enable_SMTPUTF8=True,
            decode_data=False,
        )
        protocol.connections = self._connections
        return protocol

    async def start(self) -> None:
        if self._server is not None:
            return
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, host=self.host, port=self.requested_port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("inbound SMTP listening on %s:%s for @%s", self.host, self.port, self.hostname)

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

    async def __aenter__(self) -> InboundSmtpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def serve_inbound(
    settings: Settings, stop: asyncio.Event, engine: Engine | None = None
) -> None:
    """Run the inbound server until `stop` is set (`cobro replies serve`, `cobro dev`)."""
    from cobro.db import make_engine

    own = engine is None
    engine = engine or make_engine(settings.resolved_database_url)
    try:
        async with InboundSmtpServer(engine, settings):
            await stop.wait()
    finally:
        if own:
            engine.dispose()
