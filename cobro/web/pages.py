"""The dashboard's HTML pages (server-rendered, no external asset). Every form posts a CSRF
token; every action needs the collector role and lands on the customer timeline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import date
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cobro.dunning import collector
from cobro.kpi_trend import dso_trend
from cobro.kpis import compute_kpis
from cobro.users import CurrentUser
from cobro.web import actions, queries
from cobro.web.api import as_of_param, workflows_url
from cobro.web.auth import check_csrf, require
from cobro.web.charts import bar_chart, line_chart

router = APIRouter(include_in_schema=False)
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return request.app.state.render(request, name, status_code, **context)


def as_of(request: Request) -> date:
    raw = request.query_params.get("as_of")
    if not raw:
        return date.today()
    try:
        day = date.fromisoformat(raw)
    except ValueError as exc:
        raise HTTPException(422, f"as_of: {raw!r} is not a date (YYYY-MM-DD)") from exc
    return as_of_param(day)


def _engine(request: Request) -> Any:
    return request.app.state.engine


@router.get("/", response_class=HTMLResponse)
async def portfolio(request: Request) -> Response:
    require(request)
    day = as_of(request)
    engine = _engine(request)
    kpis, trend = await asyncio.gather(
        asyncio.to_thread(compute_kpis, engine, day), asyncio.to_thread(dso_trend, engine, day)
    )
    charts = {}
    for currency, k in sorted(kpis.currencies.items()):
        charts[currency] = {
            "aging": bar_chart(
                kpis.buckets,
                [(currency, [k.aging.get(b, Decimal(0)) for b in kpis.buckets])],
                title=f"Aging balance {currency}",
            ),
            "covered": bar_chart(
                ["open", "overdue", "covered by insurance"],
                [(currency, [k.receivables, k.overdue, k.covered])],
                title=f"Unpaid vs covered {currency}",
                height=180,
            ),
            "dso": line_chart(
                [end.strftime("%b %y") for end, _ in trend],
                [points.get(currency) for _, points in trend],
                title=f"DSO over 12 months {currency}",
                width=1000,
                height=220,
            ),
        }
    return render(request, "portfolio.html", k=kpis, charts=charts, as_of=day)


@router.get("/customers", response_class=HTMLResponse)
async def customers(request: Request) -> Response:
    require(request)
    params = request.query_params
    filters = queries.CustomerFilters(
        q=params.get("q", "").strip()[:200],
        risk_class=params.get("risk_class", "")[:64],
        segment=params.get("segment", "")[:64],
        country=params.get("country", "")[:2],
        over_limit=params.get("over_limit") in ("1", "on", "true"),
    )
    try:
        page = min(100_000, max(1, int(params.get("page", "1"))))
    except ValueError:
        page = 1
    day = as_of(request)
    engine = _engine(request)
    rows, total = await asyncio.to_thread(queries.list_customers, engine, day, filters, page)
    choices = await asyncio.to_thread(queries.filter_choices, engine)
    query = {k: v for k, v in vars(filters).items() if v}
    return render(
        request,
        "customers.html",
        rows=rows,
        total=total,
        page=page,
        per_page=50,
        f=filters,
        choices=choices,
        query=urlencode({**query, "over_limit": "1"} if filters.over_limit else query),
    )


@router.get("/customers/{account}", response_class=HTMLResponse)
async def customer(request: Request, account: str) -> Response:
    require(request)
    engine = _engine(request)
    file = await asyncio.to_thread(queries.customer_file, engine, account)
    if file is None:
        return render(request, "not_found.html", 404, what=f"customer {account}")
    risk = await asyncio.to_thread(queries.customer_risk, engine, file.customer.id)
    exposure = await asyncio.to_thread(
        queries.customer_exposure, engine, file.customer.id, date.today()
    )
    upcoming = await asyncio.to_thread(queries.next_contact, engine, account)
    grade_chart = None
    if risk.grades:
        grade_chart = line_chart(
            [d.isoformat() for d, _ in risk.grades],
            [g for _, g in risk.grades],
            title="Insurer grade (1 best, 10 worst)",
            width=1000,
            invert=True,
            low=1,
            high=10,
            height=160,
        )
    return render(
        request,
        "customer.html",
        f=file,
        risk=risk,
        grade_chart=grade_chart,
        exposure=exposure,
        next_contact=upcoming,
        workflows_url=workflows_url(request.app.state.settings, account),
        today=date.today(),
        notice=request.query_params.get("notice", "")[:300],
    )


@router.get("/customers/{account}/next-contact", response_class=HTMLResponse)
async def next_contact(request: Request, account: str) -> Response:
    require(request)
    upcoming = await asyncio.to_thread(queries.next_contact, _engine(request), account)
    if upcoming is None:
        return render(request, "not_found.html", 404, what=f"next contact of {account}")
    return render(request, "next_contact.html", nc=upcoming, account=account)


@router.get("/customers/{account}/messages/{message_id}", response_class=HTMLResponse)
async def message(request: Request, account: str, message_id: RowId) -> Response:
    require(request)
    found = await asyncio.to_thread(queries.communication, _engine(request), account, message_id)
    if found is None:
        return render(request, "not_found.html", 404, what=f"message {message_id}")
    return render(request, "message.html", m=found, account=account)


def _back(account: str, notice: str) -> RedirectResponse:
    return RedirectResponse(
        f"/customers/{quote(account, safe='')}?notice={quote(notice)}", status_code=303
    )


async def _act(action: Awaitable[str | collector.Outcome]) -> str:
    """The action's message, or why it was not done (shown on the page it returns to)."""
    try:
        done = await action
    except actions.ActionError as exc:
        return f"not done: {exc}"
    return done if isinstance(done, str) else done.text


async def _collector_form(request: Request) -> tuple[CurrentUser, Any]:
    user = require(request, "collector")
    await check_csrf(request)
    return user, await request.form()


def _text(form: Any, name: str, limit: int) -> str:
    return str(form.get(name, "")).replace("\x00", "")[:limit]


@router.post("/customers/{account}/pause")
async def pause(request: Request, account: str) -> Response:
    user, form = await _collector_form(request)
    notice = await _act(
        collector.pause_dunning(
            _engine(request),
            request.app.state.settings,
            account,
            user.username,
            _text(form, "reason", 1000),
            _text(form, "until", 32),
        )
    )
    return _back(account, notice)


@router.post("/customers/{account}/resume")
async def resume(request: Request, account: str) -> Response:
    user, form = await _collector_form(request)
    notice = await _act(
        collector.resume_dunning(
            _engine(request),
            request.app.state.settings,
            account,
            user.username,
            _text(form, "reason", 1000),
        )
    )
    return _back(account, notice)


@router.post("/customers/{account}/promise")
async def promise(request: Request, account: str) -> Response:
    user, form = await _collector_form(request)
    notice = await _act(
        collector.promise_dunning(
            _engine(request),
            request.app.state.settings,
            account,
            user.username,
            _text(form, "until", 32),
            _text(form, "amount", 64),
            _text(form, "currency", 16),
            _text(form, "reason", 1000),
        )
    )
    return _back(account, notice)


@router.post("/customers/{account}/promise/cancel")
async def promise_cancel(request: Request, account: str) -> Response:
    user, form = await _collector_form(request)
    notice = await _act(
        collector.cancel_promise_dunning(
            _engine(request),
            request.app.state.settings,
            account,
            user.username,
            _text(form, "reason", 1000),
        )
    )
    return _back(account, notice)


@router.post("/customers/{account}/dispute")
async def dispute(request: Request, account: str) -> Response:
    user, form = await _collector_form(request)
    notice = await _act(
        collector.dispute_dunning(
            _engine(request),
            request.app.state.settings,
            _text(form, "invoice", 64),
            user.username,
            _text(form, "reason", 1000),
            account,
        )
    )
    return _back(account, notice)


@router.post("/customers/{account}/resolve")
async def resolve(request: Request, account: str) -> Response:
    user, form = await _collector_form(request)
    notice = await _act(
        collector.resolve_dunning(
            _engine(request),
            request.app.state.settings,
            _text(form, "invoice", 64),
            user.username,
            _text(form, "reason", 1000),
            account,
        )
    )
    return _back(account, notice)


@router.get("/alerts", response_class=HTMLResponse)
async def alerts(request: Request) -> Response:
    require(request)
    state = request.query_params.get("state", "open")
    state = state if state in ("open", "acknowledged", "resolved", "") else "open"
    rows, total = await asyncio.to_thread(queries.alerts_inbox, _engine(request), state)
    return render(request, "alerts.html", rows=rows, total=total, state=state)


@router.post("/alerts/{alert_id}/acknowledge")
async def acknowledge(request: Request, alert_id: RowId) -> Response:
    user, _ = await _collector_form(request)
    notice = await _act(
        asyncio.to_thread(actions.acknowledge_alert, _engine(request), alert_id, user.username)
    )
    return RedirectResponse(f"/alerts?notice={quote(notice)}", status_code=303)


@router.post("/alerts/{alert_id}/assign")
async def assign(request: Request, alert_id: RowId) -> Response:
    user, form = await _collector_form(request)
    assignee = _text(form, "assignee", 128)
    notice = await _act(
        asyncio.to_thread(actions.assign_alert, _engine(request), alert_id, assignee, user.username)
    )
    return RedirectResponse(f"/alerts?notice={quote(notice)}", status_code=303)


@router.get("/tasks", response_class=HTMLResponse)
async def tasks(request: Request) -> Response:
    user = require(request)
    status = request.query_params.get("status", "open")
    status = status if status in ("open", "done") else "open"
    mine = request.query_params.get("mine") == "1"
    rows = await asyncio.to_thread(
        queries.tasks_list, _engine(request), status, user.username if mine else None
    )
    return render(request, "tasks.html", rows=rows, status=status, mine=mine)


@router.post("/tasks/{task_id}/done")
async def task_done(request: Request, task_id: RowId) -> Response:
    user, _ = await _collector_form(request)
    notice = await _act(
        asyncio.to_thread(actions.complete_task, _engine(request), task_id, user.username)
    )
    return RedirectResponse(f"/tasks?notice={quote(notice)}", status_code=303)


@router.get("/reports", response_class=HTMLResponse)
async def reports(request: Request) -> Response:
    require(request)
    day = as_of(request)
    engine = _engine(request)
    review = await asyncio.to_thread(queries.limit_review, engine, day)
    forecast = await asyncio.to_thread(queries.collection_forecast, engine, day)
    labels = [d.strftime("%d %b") for d in forecast.week_starts()]
    chart = (
        bar_chart(labels, sorted(forecast.by_currency.items()), title="Expected cash-in per week")
        if forecast.by_currency
        else None
    )
    return render(
        request,
        "reports.html",
        review=review,
        forecast=forecast,
        labels=labels,
        chart=chart,
        as_of=day,
    )
