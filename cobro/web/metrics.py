"""The dashboard's Prometheus series and its `/metrics` (prometheus_client):

- `cobro_web_requests_total{method, route, status}`: every request, by route template
  (`/customers/{account}`, never the account itself; collector actions are their routes);
- `cobro_web_request_seconds{method, route}` (histogram);
- `cobro_portal_pages_total{outcome}`: customers' self-service pages shown (`shown`) and
  links refused (`refused`: tampered, expired, revoked, rate-limited);
- `cobro_portal_actions_total{action, outcome}`: what customers did there (`paid`,
  `promise`, `dispute`, `plan`) and how it ended: `done`, `approved` (a plan approved by
  rule at once), `invalid` (the page said why), `refused` (a bad link or form token).

`COBRO_METRICS_TOKEN` set: /metrics wants `Authorization: Bearer <token>`; unset, it is
open like /healthz (keep it behind the proxy or firewall that fronts the dashboard).
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "cobro_web_requests",
    "Dashboard and API requests",
    ["method", "route", "status"],
    registry=REGISTRY,
)
SECONDS = Histogram(
    "cobro_web_request_seconds",
    "Time to answer a dashboard or API request",
    ["method", "route"],
    registry=REGISTRY,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

PORTAL_PAGES = Counter(
    "cobro_portal_pages",
    "Customers' self-service pages shown, and links refused",
    ["outcome"],
    registry=REGISTRY,
)
PORTAL_ACTIONS = Counter(
    "cobro_portal_actions",
    "Customers' actions on their self-service page",
    ["action", "outcome"],
    registry=REGISTRY,
)


def portal_page(outcome: str) -> None:
    PORTAL_PAGES.labels(outcome).inc()


def portal_action(action: str, outcome: str) -> None:
    PORTAL_ACTIONS.labels(action, outcome).inc()


class RequestMetrics:
    """ASGI middleware counting and timing every HTTP request by its route template."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or _fallback(scope)
            method = scope.get("method", "GET")
            REQUESTS.labels(method, route, str(status)).inc()
            SECONDS.labels(method, route).observe(time.perf_counter() - started)


def _fallback(scope: Any) -> str:
    # mounted apps (static files) and unknown paths: one label each, not one per URL
    return "/static" if scope.get("path", "").startswith("/static/") else "unmatched"


def metrics_endpoint(token: str | None):  # type: ignore[no-untyped-def]
    async def metrics(request: Request) -> Response:
        if token:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return PlainTextResponse("a bearer token is required\n", status_code=401)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return metrics
