"""The dashboard's HTML pages (server-rendered, no external asset). Every form posts a CSRF
token; every action needs the collector role and lands on the customer timeline."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from datetime import date
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cobro import formatting, notices
from cobro.customer_activity import customer_activity
from cobro.dunning import collector, plan_actions
from cobro.i18n import gettext as _
from cobro.insurers import actions as insurer_actions
from cobro.kpi_trend import dso_trend
from cobro.kpis import NOT_DUE, compute_kpis
from cobro.queues import actions
from cobro.queues.lists import ALERT_STATES, TASK_VIEWS
from cobro.queues.routing import may_take
from cobro.users import ROLES, CurrentUser
from cobro.web import queries
from cobro.web.api import as_of_param, workflows_url
from cobro.web.auth import check_csrf, require
from cobro.web.charts import bar_chart, line_chart
from cobro.web.headers import EMAIL_CSP

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
        raise HTTPException(
            422, _("as_of: %(raw)r is not a date (YYYY-MM-DD)") % {"raw": raw}
        ) from exc
    return as_of_param(day)


def _engine(request: Request) -> Any:
    return request.app.state.engine


@router.get("/", response_class=HTMLResponse)
async def portfolio(request: Request) -> Response:
    require(request)
    day = as_of(request)
    engine = _engine(request)
    kpis, trend, activity = await asyncio.gather(
        asyncio.to_thread(compute_kpis, engine, day, obligations=True),
        asyncio.to_thread(dso_trend, engine, day),
        asyncio.to_thread(customer_activity, engine, day),
    )
    charts = {}
    for currency, k in sorted(kpis.shown().items()):
        charts[currency] = {
            "aging": bar_chart(
                [_("not due") if b == NOT_DUE else b for b in kpis.buckets],
                [(currency, [k.aging.get(b, Decimal(0)) for b in kpis.buckets])],
                title=_("Aging balance %(currency)s") % {"currency": currency},
            ),
            "covered": bar_chart(
                [_("open"), _("overdue"), _("covered by insurance")],
                [(currency, [k.receivables, k.overdue, k.covered])],
                title=_("Unpaid vs covered %(currency)s") % {"currency": currency},
                height=180,
            ),
            "dso": line_chart(
                [formatting.month(end) for end, _points in trend],
                [points.get(currency) for _end, points in trend],
                title=_("DSO over 12 months %(currency)s") % {"currency": currency},
                width=1000,
                height=220,
            ),
        }
    return render(request, "portfolio.html", k=kpis, charts=charts, as_of=day, activity=activity)


@router.get("/customers", response_class=HTMLResponse)
async def customers(request: Request) -> Response:
    user = require(request)
    params = request.query_params
    filters = queries.CustomerFilters(
        q=params.get("q", "").strip()[:200],
        risk_class=params.get("risk_class", "")[:64],
        segment=params.get("segment", "")[:64],
        country=params.get("country", "")[:2],
        over_limit=params.get("over_limit") in ("1", "on", "true"),
        owner=_who(params.get("owner", ""), user),
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
        people=await asyncio.to_thread(queries.assignable_people, engine),
        mine=filters.owner == user.username,
        query=urlencode({**query, "over_limit": "1"} if filters.over_limit else query),
    )


@router.get("/customers/{account}", response_class=HTMLResponse)
async def customer(request: Request, account: str) -> Response:
    require(request)
    engine = _engine(request)
    file = await asyncio.to_thread(queries.customer_file, engine, account)
    if file is None:
        what = _("customer %(account)s") % {"account": account}
        return render(request, "not_found.html", 404, what=what)
    risk = await asyncio.to_thread(queries.customer_risk, engine, file.customer.id)
    exposure = await asyncio.to_thread(
        queries.customer_exposure, engine, file.customer.id, date.today()
    )
    upcoming = await asyncio.to_thread(queries.next_contact, engine, account)
    obligations = await asyncio.to_thread(
        queries.insurer_obligations, engine, date.today(), None, account
    )
    declarations = await asyncio.to_thread(insurer_actions.declarations, engine, None, account)
    claims = await asyncio.to_thread(insurer_actions.claims_report, engine, account)
    grade_chart = None
    if risk.grades:
        grade_chart = line_chart(
            [formatting.day(d) for d, _grade in risk.grades],
            [g for _day, g in risk.grades],
            title=_("Insurer grade (1 best, 10 worst)"),
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
        obligations=obligations,
        declarations=declarations,
        claims=claims,
        claimable=_claimable(declarations, claims.claims),
        workflows_url=workflows_url(request.app.state.settings, account),
        may_take=may_take,
        people=await asyncio.to_thread(queries.assignable_people, engine),
        today=date.today(),
    )


@router.get("/customers/{account}/next-contact", response_class=HTMLResponse)
async def next_contact(request: Request, account: str) -> Response:
    require(request)
    upcoming = await asyncio.to_thread(queries.next_contact, _engine(request), account)
    if upcoming is None:
        what = _("next contact of %(account)s") % {"account": account}
        return render(request, "not_found.html", 404, what=what)
    return render(request, "next_contact.html", nc=upcoming, account=account)


@router.get("/customers/{account}/messages/{message_id}", response_class=HTMLResponse)
async def message(request: Request, account: str, message_id: RowId) -> Response:
    require(request)
    found = await asyncio.to_thread(queries.communication, _engine(request), account, message_id)
    if found is None:
        what = _("message %(id)s") % {"id": message_id}
        return render(request, "not_found.html", 404, what=what)
    return render(request, "message.html", m=found, account=account)


@router.get("/customers/{account}/messages/{message_id}/html", response_class=HTMLResponse)
async def message_html(request: Request, account: str, message_id: RowId) -> Response:
    """An e-mail's HTML as the customer sees it, for the sandboxed frame of its message
    page: its own CSP (the inline styles e-mails are written with, nothing else)."""
    require(request)
    found = await asyncio.to_thread(queries.communication, _engine(request), account, message_id)
    if found is None or not found.body_html:
        raise HTTPException(404, _("message %(id)s") % {"id": message_id})
    return HTMLResponse(
        found.body_html,
        headers={"Content-Security-Policy": EMAIL_CSP, "X-Frame-Options": "SAMEORIGIN"},
    )


def _back(account: str, said: str) -> RedirectResponse:
    return RedirectResponse(
        f"/customers/{quote(account, safe='')}?{notices.query(said)}", status_code=303
    )


async def _act(action: Awaitable[str | collector.Outcome]) -> str:
    """What the action did (a `Notice`: its keys go in the URL of the page it returns
    to, never its text), or an error page saying why it was not done."""
    try:
        done = await action
    except actions.ActionError as exc:
        raise HTTPException(exc.status, _("not done: %(why)s") % {"why": exc}) from None
    if isinstance(done, str):
        return done
    said = done.message
    if done.unsignalled is None or not isinstance(said, notices.Notice):
        return said if done.unsignalled is None else done.text
    unreachable = re.match(r"cannot reach Temporal at (\S+?): ", done.unsignalled)
    extra = ("unreachable",) if unreachable else ("unsignalled",)
    address = unreachable.group(1) if unreachable else ""
    return notices.Notice(said.keys + extra, **{**said.params, "address": address})


async def _collector_form(request: Request) -> tuple[CurrentUser, Any]:
    user = require(request, "collector")
    await check_csrf(request)
    return user, await request.form()


def _text(form: Any, name: str, limit: int) -> str:
    return str(form.get(name, "")).replace("\x00", "")[:limit]


def _claimable(declarations: list[dict[str, Any]], claims: list[dict[str, Any]]) -> set[str]:
    """The invoices whose OVD the insurer registered and that have no claim yet."""
    claimed = {c["invoice"] for c in claims}
    return {
        d["invoice"]
        for d in declarations
        if d["category"] == "OVD" and d["status"] == "registered" and d["invoice"] not in claimed
    }


@router.post("/customers/{account}/claim")
async def claim(request: Request, account: str) -> Response:
    user, form = await _collector_form(request)
    notice = await _act(
        insurer_actions.file_claim_dunning(
            _engine(request), request.app.state.settings, _text(form, "invoice", 64),
            user.username,
        )
    )  # fmt: skip
    return _back(account, notice)


@router.post("/customers/{account}/declarations/{declaration_id}/approve")
async def approve_declaration(request: Request, account: str, declaration_id: RowId) -> Response:
    user, _form = await _collector_form(request)
    notice = await _act(
        insurer_actions.approve_declaration_dunning(
            _engine(request), request.app.state.settings, user.username,
            declaration_id=declaration_id,
        )
    )  # fmt: skip
    return _back(account, notice)


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


@router.post("/customers/{account}/payment-plan")
async def plan_request(request: Request, account: str) -> Response:
    user, form = await _collector_form(request)
    notice = await _act(
        plan_actions.request_dunning(
            _engine(request),
            request.app.state.settings,
            account,
            user.username,
            _text(form, "instalments", 8),
            _text(form, "currency", 16) or None,
            _text(form, "note", 1000),
        )
    )
    return _back(account, notice)


@router.post("/customers/{account}/payment-plan/{decision}")
async def plan_decision(request: Request, account: str, decision: str) -> Response:
    """`approve`, `reject` (a reason is required) or `cancel` the customer's plan."""
    actions_of = {
        "approve": plan_actions.approve_dunning,
        "reject": plan_actions.reject_dunning,
        "cancel": plan_actions.cancel_dunning,
    }
    if decision not in actions_of:
        raise HTTPException(404, _("Not found"))
    user, form = await _collector_form(request)
    notice = await _act(
        actions_of[decision](
            _engine(request),
            request.app.state.settings,
            account,
            user.username,
            _text(form, "note", 1000),
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


@router.post("/customers/{account}/settle")
async def settle(request: Request, account: str) -> Response:
    """An uncertain contact: the collector says it went out (`sent`) or resends it."""
    from cobro.dunning.settle import settle_contact

    user, form = await _collector_form(request)
    notice = await _act(
        settle_contact(
            _engine(request),
            _text(form, "contact", 255),
            _text(form, "decision", 16),
            user.username,
            _text(form, "reason", 1000),
            account,
        )
    )
    return _back(account, notice)


def _page_number(request: Request) -> int:
    try:
        return min(100_000, max(1, int(request.query_params.get("page", "1"))))
    except ValueError:
        return 1


def _who(raw: str, user: CurrentUser) -> str:
    """A people filter as typed in a URL: `me` is the user looking."""
    value = raw.strip()[:128]
    return user.username if value == "me" else value


def _alert_filters(params: Any, user: CurrentUser) -> queries.AlertFilters:
    state = params.get("state", "open")
    return queries.AlertFilters(
        state=state if state in queries_states() else "open",
        severity=params.get("severity", "")[:16],
        name=params.get("name", "")[:64],
        risk_class=params.get("risk_class", "")[:64],
        assignee=_who(params.get("assignee", ""), user),
    )


def queries_states() -> tuple[str, ...]:
    return (*ALERT_STATES, "")


@router.get("/alerts", response_class=HTMLResponse)
async def alerts(request: Request) -> Response:
    user = require(request)
    filters = _alert_filters(request.query_params, user)
    page = _page_number(request)
    engine = _engine(request)
    per_page = queries.PER_PAGE
    rows, total = await asyncio.to_thread(
        queries.alerts_inbox, engine, filters, per_page, (page - 1) * per_page
    )
    choices = await asyncio.to_thread(queries.alert_choices, engine)
    query = urlencode({k: v for k, v in vars(filters).items() if k != "account"})
    return render(
        request,
        "alerts.html",
        rows=rows,
        total=total,
        f=filters,
        page=page,
        per_page=queries.PER_PAGE,
        choices=choices,
        query=query,
        states=ALERT_STATES,
    )


def _back_to(form: Any, base: str) -> str:
    """Where a bulk form returns: its page, with the filters it was posted from."""
    back = _text(form, "back", 2000)
    return f"{base}?{back}&" if re.fullmatch(r"[\w.%+=&~-]+", back) else f"{base}?"


@router.post("/alerts/bulk")
async def alerts_bulk(request: Request) -> Response:
    """One form for the page's ticked alerts: `action` = acknowledge or assign."""
    user, form = await _collector_form(request)
    ids = [str(v)[:12] for v in form.getlist("ids")][: actions.MAX_BULK + 1]
    engine = _engine(request)
    if form.get("action") == "assign":
        assignee = _text(form, "assignee", 128)
        if not assignee:
            raise HTTPException(422, _("not done: choose who the alerts go to (or nobody)"))
        who = None if assignee == "none" else assignee
        work = asyncio.to_thread(actions.assign_alerts, engine, ids, who, user.username)
    else:
        work = asyncio.to_thread(actions.acknowledge_alerts, engine, ids, user.username)
    notice = await _act(work)
    return RedirectResponse(f"{_back_to(form, '/alerts')}{notices.query(notice)}", status_code=303)


@router.post("/alerts/{alert_id}/acknowledge")
async def acknowledge(request: Request, alert_id: RowId) -> Response:
    user, _ = await _collector_form(request)
    notice = await _act(
        asyncio.to_thread(actions.acknowledge_alert, _engine(request), alert_id, user.username)
    )
    return RedirectResponse(f"/alerts?{notices.query(notice)}", status_code=303)


@router.post("/alerts/{alert_id}/assign")
async def assign(request: Request, alert_id: RowId) -> Response:
    user, form = await _collector_form(request)
    assignee = _text(form, "assignee", 128)
    notice = await _act(
        asyncio.to_thread(actions.assign_alert, _engine(request), alert_id, assignee, user.username)
    )
    return RedirectResponse(f"/alerts?{notices.query(notice)}", status_code=303)


def _task_view(params: Any) -> str:
    """`view`, or the older `status=done` / `mine=1`; by default the user's own tasks."""
    view = params.get("view", "")
    if view in TASK_VIEWS:
        return view
    if params.get("status") == "done":
        return "done"
    if params.get("mine") == "1":
        return "mine"
    return "open" if params.get("status") == "open" else "mine"


@router.get("/tasks", response_class=HTMLResponse)
async def tasks(request: Request) -> Response:
    user = require(request)
    params = request.query_params
    filters = queries.TaskFilters(
        view=_task_view(params),
        user=user.username,
        user_role=user.role,
        assignee=_who(params.get("assignee", ""), user),
        queue=params.get("queue", "")[:64],
    )
    page = _page_number(request)
    engine = _engine(request)
    per_page = queries.PER_PAGE
    rows, total = await asyncio.to_thread(
        queries.tasks_list, engine, filters, per_page, (page - 1) * per_page
    )
    counts = await asyncio.to_thread(queries.task_counts, engine, user.username, user.role)
    people = await asyncio.to_thread(queries.assignable_people, engine)
    query = urlencode(
        {"view": filters.view, "assignee": params.get("assignee", ""), "queue": filters.queue}
    )
    return render(
        request,
        "tasks.html",
        rows=rows,
        total=total,
        f=filters,
        page=page,
        per_page=queries.PER_PAGE,
        counts=counts,
        people=people,
        queues=ROLES,
        query=query,
        may_take=may_take,
    )


@router.post("/tasks/{task_id}/take")
async def task_take(request: Request, task_id: RowId) -> Response:
    user, form = await _collector_form(request)
    notice = await _act(
        asyncio.to_thread(actions.take_task, _engine(request), task_id, user.username)
    )
    account = _text(form, "account", 64)
    if account:  # taken from the customer file: back to it
        return _back(account, notice)
    return RedirectResponse(f"{_back_to(form, '/tasks')}{notices.query(notice)}", status_code=303)


@router.post("/tasks/{task_id}/done")
async def task_done(request: Request, task_id: RowId) -> Response:
    user, form = await _collector_form(request)
    notice = await _act(
        asyncio.to_thread(actions.complete_task, _engine(request), task_id, user.username)
    )
    return RedirectResponse(f"{_back_to(form, '/tasks')}{notices.query(notice)}", status_code=303)


@router.post("/customers/{account}/owner")
async def owner(request: Request, account: str) -> Response:
    user, form = await _collector_form(request)
    notice = await _act(
        asyncio.to_thread(
            actions.set_owner, _engine(request), account, _text(form, "owner", 128), user.username
        )
    )
    return _back(account, notice)


@router.get("/insurer/obligations", response_class=HTMLResponse)
async def insurer_obligations(request: Request) -> Response:
    require(request)
    day = as_of(request)
    raw = request.query_params.get("within_days", "").strip()
    within = int(raw) if raw.isdigit() and int(raw) <= 3650 else None
    engine = _engine(request)
    view = await asyncio.to_thread(queries.insurer_obligations, engine, day, within)
    declarations = await asyncio.to_thread(insurer_actions.declarations, engine, "pending")
    claims = await asyncio.to_thread(insurer_actions.claims_report, engine)
    return render(
        request, "obligations.html", v=view, as_of=day, within=within,
        declarations=declarations, claims=claims,
    )  # fmt: skip


@router.get("/insurer/stop-supply", response_class=HTMLResponse)
async def stop_supply(request: Request) -> Response:
    require(request)
    day = as_of(request)
    entries = await asyncio.to_thread(queries.stop_supply_list, _engine(request), day)
    return render(request, "stop_supply.html", rows=entries, as_of=day)


REVIEW_SHOWN = 100  # the page shows the accounts most over limit; the CSV has every one


@router.get("/reports", response_class=HTMLResponse)
async def reports(request: Request) -> Response:
    require(request)
    day = as_of(request)
    engine = _engine(request)
    review = await asyncio.to_thread(queries.limit_review, engine, day)
    forecast = await asyncio.to_thread(queries.collection_forecast, engine, day)
    labels = [formatting.day_month(d) for d in forecast.week_starts()]
    # one chart per currency, each on its own axis: amounts of two currencies never share one
    charts = [
        (
            currency,
            bar_chart(
                labels,
                [(currency, weeks)],
                title=_("Expected cash-in, %(currency)s") % {"currency": currency},
            ),
        )
        for currency, weeks in sorted(forecast.by_currency.items())
    ]
    return render(
        request,
        "reports.html",
        review=review[:REVIEW_SHOWN],
        review_total=len(review),
        forecast=forecast,
        labels=labels,
        charts=charts,
        as_of=day,
    )
