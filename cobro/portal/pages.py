"""The self-service page's routes, under /p/{token} (mounted by `cobro.web.app`): no login,
the link is the key. Every request checks the token (signature in constant time, then the
row: not revoked, not expired) and counts against the link's per-minute limit before any
customer data is read; the customer shown is the link's, whatever else the URL says. Forms
echo a CSRF token kept in a SameSite=Strict cookie (double submit). The page speaks the
customer's language (the dashboard's catalogues; English where they have none)."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import ChoiceLoader, Environment, FileSystemLoader
from sqlalchemy import Engine

from cobro.dunning.collector import ActionError, Outcome
from cobro.i18n import DEFAULT_LOCALE, N_, gettext, normalise, using
from cobro.portal import actions
from cobro.portal.links import LinkRefused, OpenedLink, open_link
from cobro.portal.statement import Statement, load_statement, pay_url
from cobro.settings import Settings
from cobro.web import metrics

HERE = Path(__file__).parent
CSRF_COOKIE = "cobro_portal_csrf"
DONE = {
    "paid": N_("Thank you: we will check your payment. Reminders wait until it arrives."),
    "promise": N_("Thank you: your promise to pay is recorded."),
    "dispute": N_("Your dispute is recorded: this invoice gets no reminder until it is resolved."),
    "plan": N_("Your request for a payment plan was sent: we will contact you."),
    "plan_approved": N_(
        "Your payment plan is approved: we will remind you before each instalment."
    ),
}


def portal_environment(env: Environment) -> Environment:
    """The dashboard's environment (filters, gettext) with the portal's own templates first."""
    return env.overlay(loader=ChoiceLoader([FileSystemLoader(HERE / "templates"), env.loader]))  # type: ignore[list-item]


def portal_router(settings: Settings, engine: Engine, dashboard_env: Environment) -> APIRouter:
    env = portal_environment(dashboard_env)
    router = APIRouter(include_in_schema=False)

    def html(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    def refused(exc: LinkRefused) -> HTMLResponse:
        metrics.portal_page("refused")
        if exc.status == 429:
            text = gettext("Too many requests on this link: try again in %(num)s s.") % {
                "num": exc.retry_after_s
            }
            response = html("portal_refused.html", 429, locale=_locale(None), text=text)
            response.headers["Retry-After"] = str(exc.retry_after_s)
            return response
        text = gettext(
            "This link does not work: it may have expired or been replaced. The link in our "
            "latest message works, or ask us for a new one."
        )
        return html("portal_refused.html", 404, locale=_locale(None), text=text)

    async def opened(token: str) -> OpenedLink | LinkRefused:
        try:
            return await asyncio.to_thread(open_link, engine, settings, token)
        except LinkRefused as exc:
            return exc

    def page(
        request: Request,
        token: str,
        statement: Statement,
        status: int = 200,
        error: str = "",
    ) -> HTMLResponse:
        csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        done = DONE.get(request.query_params.get("done", ""))
        response = html(
            "portal.html",
            status,
            locale=_locale(statement.language),
            statement=statement,
            base=f"/p/{token}",
            csrf=csrf,
            notice=gettext(done) if done else "",
            error=error,
            reasons=[(code, gettext(text)) for code, text in actions.REASONS.items()],
            pay_url=pay_url(settings.portal_pay_url_template, statement),
            max_days=settings.portal_promise_max_days,
        )
        response.set_cookie(
            CSRF_COOKIE,
            csrf,
            httponly=True,
            samesite="strict",
            secure=settings.public_base_url.startswith("https://"),
            path="/p/",
            max_age=86400,
        )
        return response

    @router.get("/p/{token}", response_class=HTMLResponse)
    async def show(request: Request, token: str) -> Response:
        link = await opened(token)
        if isinstance(link, LinkRefused):
            return refused(link)
        statement = await asyncio.to_thread(load_statement, engine, link.customer_id)
        metrics.portal_page("shown")
        with using(statement.language):
            return page(request, token, statement)

    @router.get("/p/{token}/statement", response_class=HTMLResponse)
    async def printable(request: Request, token: str) -> Response:
        link = await opened(token)
        if isinstance(link, LinkRefused):
            return refused(link)
        statement = await asyncio.to_thread(load_statement, engine, link.customer_id)
        with using(statement.language):
            return html(
                "portal_statement.html",
                locale=_locale(statement.language),
                statement=statement,
                company=settings.company_name,
                base=f"/p/{token}",
            )

    Handler = Callable[[OpenedLink, Statement, dict[str, str]], Awaitable[Outcome]]

    async def act(
        request: Request, token: str, kind: str, handler: Handler, approved: str = ""
    ) -> Response:
        """`approved`: the `done` kind when the outcome says it was approved at once."""
        link = await opened(token)
        if isinstance(link, LinkRefused):
            metrics.portal_action(kind, "refused")
            return refused(link)
        form = {k: str(v) for k, v in (await request.form()).items()}
        statement = await asyncio.to_thread(load_statement, engine, link.customer_id)
        with using(statement.language):
            expected = request.cookies.get(CSRF_COOKIE, "")
            sent = form.get("csrf_token", "")
            if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
                metrics.portal_action(kind, "refused")
                text = gettext("This form has expired: reload the page and try again.")
                return html(
                    "portal_refused.html", 403, locale=_locale(statement.language), text=text
                )
            try:
                outcome = await handler(link, statement, form)
            except ActionError as exc:
                metrics.portal_action(kind, "invalid")
                fresh = await asyncio.to_thread(load_statement, engine, link.customer_id)
                return page(request, token, fresh, exc.status, str(exc))
            if approved and outcome.message == gettext(DONE[approved]):
                metrics.portal_action(kind, "approved")
                kind = approved
            else:
                metrics.portal_action(kind, "done")
        return RedirectResponse(f"/p/{token}?done={kind}", status_code=303)

    @router.post("/p/{token}/paid")
    async def paid(request: Request, token: str) -> Response:
        async def run(link: OpenedLink, st: Statement, form: dict[str, str]) -> Outcome:
            return await actions.declare_paid(
                engine,
                settings,
                link.customer_id,
                st,
                form.get("paid_on"),
                form.get("amount"),
                form.get("reference"),
            )

        return await act(request, token, "paid", run)

    @router.post("/p/{token}/promise")
    async def promise(request: Request, token: str) -> Response:
        async def run(link: OpenedLink, st: Statement, form: dict[str, str]) -> Outcome:
            return await actions.promise(
                engine, settings, st, form.get("until"), form.get("amount")
            )

        return await act(request, token, "promise", run)

    @router.post("/p/{token}/dispute")
    async def dispute(request: Request, token: str) -> Response:
        async def run(link: OpenedLink, st: Statement, form: dict[str, str]) -> Outcome:
            return await actions.dispute(
                engine,
                settings,
                link.customer_id,
                st,
                form.get("invoice"),
                form.get("reason"),
                form.get("text"),
            )

        return await act(request, token, "dispute", run)

    @router.post("/p/{token}/plan")
    async def plan(request: Request, token: str) -> Response:
        async def run(link: OpenedLink, st: Statement, form: dict[str, str]) -> Outcome:
            return await actions.ask_plan(
                engine, settings, link.customer_id, st, form.get("text"), form.get("instalments")
            )

        return await act(request, token, "plan", run, approved="plan_approved")

    return router


def _locale(language: str | None) -> str:
    from cobro.i18n import current_locale

    if language is None:
        return current_locale()
    return normalise(language) or DEFAULT_LOCALE
