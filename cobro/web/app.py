"""Dashboard pages and their JSON twins. Binds to loopback by default (no users yet)."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import uvicorn
from babel.numbers import format_currency
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from cobro.db import make_engine
from cobro.settings import Settings, get_settings
from cobro.web import queries
from cobro.web.webhooks import twilio_status_endpoint

HERE = Path(__file__).parent


def money(amount: Decimal | None, currency: str) -> str:
    return format_currency(amount or Decimal(0), currency, locale="en")


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> Starlette:
    settings = settings or get_settings()
    engine = engine or make_engine(settings.resolved_database_url)
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
    )
    env.filters["money"] = money
    ui_host = settings.temporal_address.rpartition(":")[0] or "127.0.0.1"
    temporal_ui = f"http://{ui_host}:{settings.temporal_ui_port}"

    def render(name: str, status: int = 200, **context: object) -> HTMLResponse:
        context.setdefault("temporal_ui", temporal_ui)
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    def as_of(request: Request) -> date:
        raw = request.query_params.get("as_of")
        return date.fromisoformat(raw) if raw else date.today()

    async def portfolio_page(request: Request) -> Response:
        data = await asyncio.to_thread(queries.portfolio, engine, as_of(request))
        return render("portfolio.html", p=data)

    async def portfolio_json(request: Request) -> Response:
        p = await asyncio.to_thread(queries.portfolio, engine, as_of(request))
        return JSONResponse(
            {
                "as_of": p.as_of.isoformat(),
                "customers": p.customers,
                "open_invoices": p.open_invoices,
                "open_by_currency": {k: str(v) for k, v in p.open_by_currency.items()},
                "overdue_by_currency": {k: str(v) for k, v in p.overdue_by_currency.items()},
                "aging": {c: {b: str(v) for b, v in d.items()} for c, d in p.aging.items()},
            }
        )

    async def customers_page(request: Request) -> Response:
        search = request.query_params.get("q", "").strip()
        try:
            page = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            page = 1
        rows, total = await asyncio.to_thread(
            queries.customers_page, engine, as_of(request), search, page
        )
        return render("customers.html", rows=rows, total=total, page=page, q=search, per_page=50)

    async def customer_page(request: Request) -> Response:
        account = request.path_params["account"]
        file = await asyncio.to_thread(queries.customer_file, engine, account)
        if file is None:
            return render("not_found.html", status=404, what=f"customer {account}")
        query = quote(f'CobroCustomerId="{account}"')
        workflows_url = (
            f"{temporal_ui}/namespaces/{settings.temporal_namespace}/workflows?query={query}"
        )
        return render("customer.html", f=file, workflows_url=workflows_url, today=date.today())

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/", portfolio_page),
            Route("/api/portfolio", portfolio_json),
            Route("/customers", customers_page),
            Route("/customers/{account}", customer_page),
            Route("/healthz", healthz),
            Route(
                "/webhooks/twilio/status",
                twilio_status_endpoint(settings, engine),
                methods=["POST"],
            ),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
    )


async def serve_web(settings: Settings, stop: asyncio.Event) -> None:
    config = uvicorn.Config(
        create_app(settings),
        host=settings.web_host,
        port=settings.web_port,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    server_task = asyncio.create_task(server.serve())
    stop_task = asyncio.create_task(stop.wait())
    await asyncio.wait({server_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stop_task.cancel()
    await server_task
