"""A Starlette app served by uvicorn on the current event loop (capture servers, insurer
simulator): port 0 picks a free port, and the embedding process keeps its signal handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

log = logging.getLogger("cobro.devkit.loopback")


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its SIGINT/SIGTERM handlers: those belong to the embedding process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class EmbeddedHttpServer:
    def __init__(self, app: Any, host: str, port: int, name: str) -> None:
        self.app, self.host, self.requested_port, self.name = app, host, port, name
        self.port: int | None = None
        self._server: _EmbeddedServer | None = None
        self._sock: Any = None
        self._main: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> int:
        if self._server is not None:
            assert self.port is not None
            return self.port
        sock = bind_socket(self.host, self.requested_port, self.name)
        config = uvicorn.Config(
            self.app,
            log_config=None,  # leave the embedding process's logging alone
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_keep_alive=5,
        )
        server = _EmbeddedServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name=self.name)
        while not server.started:
            if task.done():
                sock.close()
                task.result()  # raises the startup error, if any
                raise RuntimeError(f"{self.name} exited during startup")
            await asyncio.sleep(0.01)
        self._server, self._sock, self._main = server, sock, task
        self.port = sock.getsockname()[1]
        log.info("%s listening on http://%s:%s", self.name, self.host, self.port)
        return self.port

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.should_exit = True
        if self._main is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._main
        if self._sock is not None:
            self._sock.close()


def bind_socket(host: str, port: int, what: str) -> socket.socket:
    """A listening TCP socket on host:port (0 = a free port), or a clear OSError."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"{what}: cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock
