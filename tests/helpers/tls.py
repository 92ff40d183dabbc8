"""TLS in front of a plain Temporal frontend, for the connection tests: a test CA
(`trustme`), its certificates as PEM files, and a TLS-terminating TCP proxy.

gRPC is HTTP/2: the proxy offers ALPN "h2" and forwards the decrypted bytes as they are to
the dev server's plaintext port (which speaks HTTP/2 with prior knowledge). With
`require_client_cert` it is an mTLS frontend: a client without a certificate signed by the
test CA is refused during the handshake. It runs its own event loop in a thread, so a
synchronous caller (typer's CliRunner, a subprocess wait) does not stall it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import h2.config
import h2.connection
import h2.events
import trustme

SERVER_NAME = "temporal.cobro.test"


@dataclass
class Pki:
    ca_file: Path
    server_cert: trustme.LeafCert
    client_cert_file: Path
    client_key_file: Path
    ca: trustme.CA

    def server_context(self, require_client_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(context)
        context.set_alpn_protocols(["h2"])
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(context)
        return context


def make_pki(directory: Path, server_name: str = SERVER_NAME) -> Pki:
    """A CA, a server certificate for `server_name` and a client certificate, as files."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="Cobro test CA")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client = ca.issue_cert("cobro-worker@cobro.test")
    cert_file, key_file = directory / "client.pem", directory / "client.key"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in client.cert_chain_pems))
    client.private_key_pem.write_to_path(str(key_file))
    return Pki(ca_file, ca.issue_cert(server_name), cert_file, key_file, ca)


class TlsServer:
    """A TLS server on 127.0.0.1:<port>, in a thread of its own; `_serve` each connection."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.port = 0
        self.handshakes_refused = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        self._loop.set_exception_handler(self._quiet)
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, ssl=self.context, ssl_handshake_timeout=10
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    def _quiet(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        """Refused handshakes are what the mTLS test expects: counted, not printed."""
        error = context.get("exception")
        if isinstance(error, asyncio.CancelledError):  # connections open at stop
            return
        if isinstance(error, ssl.SSLError | ConnectionError):
            self.handshakes_refused += 1
            return
        loop.default_exception_handler(context)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class TlsProxy(TlsServer):
    """TLS on 127.0.0.1:<port> → plain TCP to `upstream` (host:port)."""

    def __init__(self, upstream: str, context: ssl.SSLContext) -> None:
        super().__init__(context)
        host, _, port = upstream.rpartition(":")
        self.upstream = (host or "127.0.0.1", int(port))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


class RefusingFrontend(TlsServer):
    """A gRPC frontend over TLS that records every call's headers (path, metadata) and
    answers each with UNAUTHENTICATED, as Temporal Cloud does for a wrong API key."""

    def __init__(self, context: ssl.SSLContext, message: str = "Request unauthorized.") -> None:
        super().__init__(context)
        self.message = message
        self.calls: list[dict[str, str]] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        conn = h2.connection.H2Connection(config)
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        try:
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        self.calls.append({str(k): str(v) for k, v in event.headers})
                        conn.send_headers(
                            event.stream_id,
                            [
                                (":status", "200"),
                                ("content-type", "application/grpc"),
                                ("grpc-status", "16"),
                                ("grpc-message", self.message),
                            ],
                            end_stream=True,
                        )
                    elif isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                writer.write(conn.data_to_send())
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
