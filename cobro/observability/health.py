"""The worker's health endpoints (aiohttp, on `COBRO_WORKER_HEALTH_ADDRESS`):

- `GET /healthz`: 200 while the process runs its event loop (a liveness probe);
- `GET /readyz`: 200 when the worker polls its task queues, the database answers and the
  Temporal frontend answers; else 503. Both answer JSON: `{"ready": false, "checks":
  {"polling": true, "database": "OperationalError: ...", "temporal": true}}`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

Check = Callable[[], Awaitable[object]]  # raises or answers False when not ready


@dataclass
class Readiness:
    """What `/readyz` reports: `polling` is set by the worker; each check raises when its
    dependency is away."""

    checks: dict[str, Check] = field(default_factory=dict)
    polling: bool = False
    timeout: float = 3.0

    async def report(self) -> tuple[bool, dict[str, object]]:
        out: dict[str, object] = {"polling": self.polling}
        names = list(self.checks)
        results = await asyncio.gather(
            *(asyncio.wait_for(self.checks[n](), self.timeout) for n in names),
            return_exceptions=True,
        )
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                out[name] = _why(result)
            else:
                out[name] = True if result is not False else "not serving"
        return all(v is True for v in out.values()), out


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer within the timeout"
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}"[:300]


def health_app(readiness: Readiness) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ready, checks = await readiness.report()
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    return host or "127.0.0.1", int(port)


async def start_health_server(address: str, readiness: Readiness) -> web.AppRunner:
    """Serve the endpoints at `address` until the returned runner is cleaned up."""
    host, port = split_address(address)
    runner = web.AppRunner(health_app(readiness), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
