"""The dashboard (`cobro serve`, and `cobro dev`): server-rendered pages for people, a JSON
API for scripts (OpenAPI at /api/openapi.json), sign-in with roles. Every asset is served
from this package: it works offline."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles

from cobro import formatting, notices
from cobro.db import make_engine
from cobro.i18n import LOCALES, N_, NAMES, current_locale, gettext, ngettext, normalise
from cobro.i18n.codes import label
from cobro.login_limits import attempt_succeeded, begin_attempt
from cobro.portal.pages import portal_router
from cobro.settings import Settings, check_secrets, get_settings
from cobro.timeline import title
from cobro.users import authenticate, end_session, open_session, set_language
from cobro.web import api, pages
from cobro.web.auth import (
    LANGUAGE_COOKIE,
    AuthMiddleware,
    LocaleMiddleware,
    check_csrf,
    clear_session,
    set_session,
)
from cobro.web.codec import codec_router
from cobro.web.headers import SecurityHeaders
from cobro.web.metrics import RequestMetrics, metrics_endpoint
from cobro.web.webhooks import twilio_incoming_endpoint, twilio_status_endpoint

HERE = Path(__file__).parent
LOGIN_CSRF_COOKIE = "cobro_login_csrf"
TITLES = {
    401: N_("Please log in"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    422: N_("Not understood"),
}

# The filters of the pages: every amount, number and date in the user's language
# (`cobro.formatting`, with the request's locale set by `LocaleMiddleware`).


def money(value: Decimal | None, currency: str | None) -> str:
    return formatting.money_or_dash(value or Decimal(0), currency)


def amount(value: Decimal | None) -> str:
    return formatting.amount(value or Decimal(0))


def pct(value: Decimal | None) -> str:
    return "—" if value is None else formatting.percent(value)


def days(value: Decimal | None) -> str:
    if value is None:
        return "—"
    n = int(Decimal(value).quantize(Decimal(1)))
    return ngettext("%(num)s day", "%(num)s days", n) % {"num": formatting.amount(n, digits=0)}


def number(value: int | None) -> str:
    return "—" if value is None else formatting.amount(value, digits=0)


def template_environment() -> Environment:
    from cobro.queues.lists import alert_text

    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(
        money=money,
        amount=amount,
        pct=pct,
        days=days,
        number=number,
        day=formatting.day,
        currency_name=formatting.currency_name,
        moment=formatting.moment,
        label=lambda code, context: label(context, code),
        event_title=lambda kind: gettext(title(kind)),
        alert_text=lambda alert: alert_text(alert.message, alert.messages),
    )
    return env


def _safe_next(raw: str | None) -> str:
    """Only local paths: no open redirect through ?next=."""
    if raw and raw.startswith("/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return "/"


def _referrer(request: Request) -> str | None:
    """The dashboard page a refused form was posted from (a "back" link), if any."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc != request.url.netloc or request.method == "GET":
        return None
    path = referer.path + (f"?{referer.query}" if referer.query else "")
    return path if _safe_next(path) == path else None


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()
    check_secrets(settings)  # before anything is served
    engine = engine or make_engine(settings.resolved_database_url)
    env = template_environment()
    ui_host = settings.temporal_address.rpartition(":")[0] or "127.0.0.1"
    temporal_ui = f"http://{ui_host}:{settings.temporal_ui_port}"

    app = FastAPI(
        title="Cobro",
        summary="Credit risk and collections: portfolio, customers, alerts, tasks, reports.",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,  # the Swagger UI loads its assets from a CDN: not offline
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.settings = settings

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("temporal_ui", temporal_ui)
        context.setdefault("user", getattr(request.state, "user", None))
        context.setdefault("csrf", getattr(request.state, "csrf", None))
        context.setdefault("notice", notices.from_query(request.query_params))
        context.setdefault("locale", current_locale())
        context.setdefault("languages", [(code, NAMES[code]) for code in LOCALES])
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        context.setdefault("here", here if request.method == "GET" else "/")
        return HTMLResponse(env.get_template(name).render(**context), status_code=status_code)

    app.state.render = render

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/"):
            headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
            return JSONResponse({"detail": exc.detail}, exc.status_code, headers=headers)
        if exc.status_code == 401:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        title = gettext(TITLES.get(exc.status_code, N_("Error")))
        return render(
            request,
            "error.html",
            exc.status_code,
            code=exc.status_code,
            title=title,
            detail=exc.detail,
            back=_referrer(request),
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        detail = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": detail}, 422)
        text = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in detail)
        title = gettext(TITLES[422])
        return render(request, "error.html", 422, code=422, title=title, detail=text)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_page(request: Request) -> Response:
        token = secrets.token_urlsafe(24)
        response = render(
            request,
            "login.html",
            login_csrf=token,
            next=_safe_next(request.query_params.get("next")),
            username="",
            error="",
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", max_age=3600
        )
        return response

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await request.form()
        sent = str(form.get("csrf_token", ""))
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(sent, expected):
            raise HTTPException(403, gettext("CSRF token missing or wrong: reload the login page"))
        username = str(form.get("username", "")).replace("\x00", "")[:128]
        password = str(form.get("password", ""))[:1024]
        target = _safe_next(str(form.get("next", "/")))
        address = request.client.host if request.client else "unknown"
        refusal = await asyncio.to_thread(begin_attempt, engine, username, address)
        if refusal is not None:  # refused before any argon2 check
            if refusal.reason == "locked":
                error = gettext(
                    "Too many failed log-ins: this user is locked. An administrator can "
                    "unlock it (cobro users unlock)."
                )
                headers = {}
            else:
                error = gettext("Too many failed log-ins: try again in %(num)s s.") % {
                    "num": refusal.retry_after_s
                }
                headers = {"Retry-After": str(refusal.retry_after_s)}
            response = render(
                request,
                "login.html",
                429,
                login_csrf=expected,
                next=target,
                username=username,
                error=error,
            )
            response.headers.update(headers)
            return response
        user = await asyncio.to_thread(authenticate, engine, username, password)
        if user is not None:
            await asyncio.to_thread(attempt_succeeded, engine, username, address)
        if user is None:
            response = render(
                request,
                "login.html",
                401,
                login_csrf=expected,
                next=target,
                username=username,
                error=gettext("Wrong user name or password."),
            )
            return response
        key = await asyncio.to_thread(open_session, engine, user.id, settings.web_session_hours)
        response = RedirectResponse(target, status_code=303)
        set_session(response, settings, user.id, key)
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        if getattr(request.state, "user", None) is not None:
            await check_csrf(request)
        if key := getattr(request.state, "session_key", None):
            await asyncio.to_thread(end_session, engine, key)
        response = RedirectResponse("/login", status_code=303)
        clear_session(response)
        return response

    @app.post("/language", include_in_schema=False)
    async def language(request: Request) -> Response:
        """The language switch of the page header: stored on the user when logged in, and
        in a cookie (the login page and the next visit speak it too)."""
        user = getattr(request.state, "user", None)
        if user is not None:
            await check_csrf(request)
        form = await request.form()
        chosen = normalise(str(form.get("language", "")))
        if chosen is None:
            raise HTTPException(422, gettext("Unknown language: choose one of the list."))
        if user is not None and request.state.via == "session":
            await asyncio.to_thread(set_language, engine, user.id, chosen)
        response = RedirectResponse(_safe_next(str(form.get("next", "/"))), status_code=303)
        response.set_cookie(
            LANGUAGE_COOKIE, chosen, max_age=365 * 86400, samesite="lax", httponly=True
        )
        return response

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Ready when the database answers (Temporal is not needed to read the pages)."""
        try:
            await asyncio.to_thread(_ping, engine)
        except Exception as exc:
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            return JSONResponse({"ready": False, "checks": {"database": why[:300]}}, 503)
        return JSONResponse({"ready": True, "checks": {"database": True}})

    app.add_route(
        "/metrics",
        metrics_endpoint(settings.metrics_token),
        methods=["GET"],
        include_in_schema=False,
    )

    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(codec_router(settings))
    app.include_router(portal_router(settings, engine, env))
    app.add_route(
        "/webhooks/twilio/status",
        twilio_status_endpoint(settings, engine),
        methods=["POST"],
        include_in_schema=False,
    )
    app.add_route(
        "/webhooks/twilio/incoming",
        twilio_incoming_endpoint(settings, engine),
        methods=["POST"],
        include_in_schema=False,
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(LocaleMiddleware)  # inside AuthMiddleware: it knows the user
    app.add_middleware(AuthMiddleware, engine=engine, settings=settings)
    app.add_middleware(RejectNul)
    app.add_middleware(SecurityHeaders, https=settings.public_base_url.startswith("https://"))
    app.add_middleware(RequestMetrics)  # outermost: counts every answer, refusals too
    return app


def _ping(engine: Engine) -> None:
    from sqlalchemy import text

    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


class RejectNul:
    """NUL characters in a URL (`%00`) are refused with 400 before anything reads them:
    PostgreSQL text cannot hold them, and no legitimate request has one."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (
            b"%00" in scope.get("query_string", b"") or "\x00" in scope.get("path", "")
        ):
            response = JSONResponse({"detail": "NUL characters are not allowed"}, 400)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def serve_web(settings: Settings, stop: asyncio.Event) -> None:
    from cobro.web.warm import keep_figures_warm

    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.web_host,
        port=settings.web_port,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    server_task = asyncio.create_task(server.serve())
    stop_task = asyncio.create_task(stop.wait())
    warming = None
    if settings.web_warm_seconds > 0:
        warming = asyncio.create_task(
            keep_figures_warm(app.state.engine, stop, settings.web_warm_seconds)
        )
    await asyncio.wait({server_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stop_task.cancel()
    await server_task
    if warming is not None:
        warming.cancel()
