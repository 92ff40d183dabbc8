"""The JSON API: everything the dashboard pages show, plus the collector actions, described
by OpenAPI at /api/openapi.json. Authentication: an API token (`Authorization: Bearer ...`,
`cobro users token`) or the dashboard's session cookie (then writes need `X-CSRF-Token`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPBearer
from pydantic import AfterValidator, BaseModel, Field

from cobro.csv_export import CsvFormat, to_bytes
from cobro.dunning import collector as dunning_actions
from cobro.dunning.preview import NextContact
from cobro.timeline import title
from cobro.types import FIRST_DAY, LAST_DAY
from cobro.users import CurrentUser
from cobro.web import actions, queries
from cobro.web.auth import check_csrf, require


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]  # PostgreSQL text cannot hold NUL

bearer = HTTPBearer(auto_error=False, description="an API token from `cobro users token`")
router = APIRouter(prefix="/api", dependencies=[Depends(bearer)])


def viewer(request: Request) -> CurrentUser:
    return require(request, "viewer")


async def collector(request: Request) -> CurrentUser:
    user = require(request, "collector")
    await check_csrf(request)
    return user


Viewer = Annotated[CurrentUser, Depends(viewer)]
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # an integer primary key
Collector = Annotated[CurrentUser, Depends(collector)]


def as_of_param(
    as_of: Annotated[
        date | None, Query(description="the day to compute for (default today)")
    ] = None,
) -> date:
    if as_of is None:
        return date.today()
    if not FIRST_DAY <= as_of <= LAST_DAY:
        raise HTTPException(422, f"as_of must be between {FIRST_DAY} and {LAST_DAY}")
    return as_of


AsOf = Annotated[date, Depends(as_of_param)]


def _engine(request: Request) -> Any:
    return request.app.state.engine


def _settings(request: Request) -> Any:
    return request.app.state.settings


def csv_format(
    separator: Annotated[
        str,
        Query(
            description="',' (with '.' decimals, the default) or ';' (with decimal commas, as"
            " Excel reads CSV in Spanish or French); also 'comma' or 'semicolon'",
            pattern=r"^(,|;|comma|semicolon|)$",
        ),
    ] = ",",
) -> CsvFormat:
    return CsvFormat.parse(separator)


Separator = Annotated[CsvFormat, Depends(csv_format)]


def csv_response(
    name: str, header: list[str], rows: list[list[Any]], fmt: CsvFormat | None = None
) -> Response:
    """A download written by `cobro.csv_export`: UTF-8 with BOM, formula cells neutralised."""
    return Response(
        to_bytes(header, rows, fmt),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# --- models ------------------------------------------------------------------------------


class PortfolioOut(BaseModel):
    as_of: date
    customers: int
    open_invoices: int
    open_by_currency: dict[str, Decimal]
    overdue_by_currency: dict[str, Decimal]
    aging: dict[str, dict[str, Decimal]]


class CustomerPage(BaseModel):
    total: int
    page: int
    per_page: int
    customers: list[queries.ListedCustomer]


class CoverOut(BaseModel):
    cover_id: str
    policy_id: str | None
    cover_type: str | None
    status: str | None
    granted_amount: Decimal | None
    requested_amount: Decimal | None
    currency: str | None
    request_date: date | None
    decision_date: date | None
    valid_from: date | None
    valid_until: date | None
    grade: int | None


class InvoiceOut(BaseModel):
    number: str
    issue_date: date
    due_date: date
    currency: str
    amount: Decimal
    open_amount: Decimal
    disputed: bool


class EventOut(BaseModel):
    at: datetime
    kind: str
    actor: str
    summary: str
    title: str = ""  # the kind in words (cobro.timeline.title)


def event_out(e: Any) -> EventOut:
    return EventOut(at=e.at, kind=e.kind, actor=e.actor, summary=e.summary, title=title(e.kind))


class CommunicationOut(BaseModel):
    id: int
    created_at: datetime
    channel: str
    template: str
    recipient: str
    status: str
    subject: str | None
    error: str | None = None  # e.g. "delayed: SMTP refused (451), attempt 4"


class CustomerFileOut(BaseModel):
    account: str
    name: str
    country: str
    segment: str | None
    risk_class: str | None
    risk_explanation: dict[str, Any] | None
    covers: list[CoverOut]
    grades: list[tuple[date, int]]
    invoices: list[InvoiceOut]
    communications: list[CommunicationOut]
    timeline: list[EventOut]
    dunning_paused: bool
    holds: list[HoldOut]
    workflows_url: str


class AlertPage(BaseModel):
    total: int
    alerts: list[queries.InboxAlert]


class ForecastOut(BaseModel):
    as_of: date
    week_starts: list[date]
    by_currency: dict[str, list[Decimal]]
    later: dict[str, Decimal]
    disputed: dict[str, Decimal]


class Done(BaseModel):
    ok: bool = True
    message: str


class PauseIn(BaseModel):
    """Checked by `cobro.dunning.collector.check_pause`, as from the CLI and the pages."""

    reason: str = ""
    until: date | None = None


class ResumeIn(BaseModel):
    """Also the body of a promise cancel, a dispute and its resolution."""

    reason: str = ""


class HoldOut(BaseModel):
    """An active pause or promise to pay (with what was paid towards it), or an open
    dispute: what holds the customer's dunning back."""

    kind: str
    by: str
    since: datetime
    reason: str
    until: date | None
    amount: Decimal | None
    currency: str | None
    paid: Decimal | None
    invoice: str | None
    sentence: str


class PromiseIn(BaseModel):
    """Checked by `cobro.dunning.collector.check_promise`, as from the CLI and the pages."""

    until: date
    amount: Decimal | None = None
    currency: str | None = None
    reason: str = ""


class AssignIn(BaseModel):
    assignee: Text = Field(min_length=1, max_length=128)


# --- read --------------------------------------------------------------------------------


@router.get("/portfolio", response_model=PortfolioOut, tags=["portfolio"])
async def portfolio(request: Request, _: Viewer, as_of: AsOf) -> Any:
    p = await asyncio.to_thread(queries.portfolio, _engine(request), as_of)
    return PortfolioOut(
        as_of=p.as_of,
        customers=p.customers,
        open_invoices=p.open_invoices,
        open_by_currency=p.open_by_currency,
        overdue_by_currency=p.overdue_by_currency,
        aging=p.aging,
    )


@router.get("/kpis", tags=["portfolio"])
async def kpis(request: Request, _: Viewer, as_of: AsOf) -> dict[str, Any]:
    """DSO (standard and countback), aging, % overdue, CEI, ADD, covered share, covers
    expired and expiring, customers over limit, top debtors; per currency."""
    from cobro.kpis import compute_kpis

    result = await asyncio.to_thread(compute_kpis, _engine(request), as_of)
    return result.to_json()


def customer_filters(
    q: Annotated[str, Query(max_length=200, description="name or account contains")] = "",
    risk_class: Annotated[str, Query(max_length=64)] = "",
    segment: Annotated[str, Query(max_length=64)] = "",
    country: Annotated[str, Query(max_length=2)] = "",
    over_limit: bool = False,
) -> queries.CustomerFilters:
    return queries.CustomerFilters(q.strip(), risk_class, segment, country, over_limit)


Filters = Annotated[queries.CustomerFilters, Depends(customer_filters)]


@router.get("/customers", response_model=CustomerPage, tags=["customers"])
async def customers(
    request: Request,
    _: Viewer,
    as_of: AsOf,
    filters: Filters,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    rows, total = await asyncio.to_thread(
        queries.list_customers, _engine(request), as_of, filters, page, per_page
    )
    return CustomerPage(
        total=total,
        page=page,
        per_page=per_page,
        customers=rows,
    )


CUSTOMER_CSV = ["account", "name", "country", "segment", "risk_class", "outstanding"]
CUSTOMER_CSV += ["total_limit", "over_by"]


@router.get("/customers.csv", tags=["customers"], response_class=Response)
async def customers_csv(
    request: Request, _: Viewer, as_of: AsOf, filters: Filters, fmt: Separator
) -> Response:
    rows, _total = await asyncio.to_thread(
        queries.list_customers, _engine(request), as_of, filters, 1, 1_000_000
    )
    return csv_response(
        "customers.csv", CUSTOMER_CSV, [[getattr(r, k) for k in CUSTOMER_CSV] for r in rows], fmt
    )


def workflows_url(settings: Any, account: str) -> str:
    from urllib.parse import quote

    host = settings.temporal_address.rpartition(":")[0] or "127.0.0.1"
    query = quote(f'CobroCustomerId="{account}"')
    return (
        f"http://{host}:{settings.temporal_ui_port}/namespaces/"
        f"{settings.temporal_namespace}/workflows?query={query}"
    )


@router.get("/customers/{account}", response_model=CustomerFileOut, tags=["customers"])
async def customer(request: Request, account: str, _: Viewer) -> Any:
    engine = _engine(request)
    file = await asyncio.to_thread(queries.customer_file, engine, account)
    if file is None:
        raise HTTPException(404, f"no customer {account!r}")
    risk = await asyncio.to_thread(queries.customer_risk, engine, file.customer.id)
    c = file.customer
    return CustomerFileOut(
        account=c.account,
        name=c.name,
        country=c.country,
        segment=c.segment,
        risk_class=risk.assessment.risk_class if risk.assessment else None,
        risk_explanation=risk.assessment.explanation if risk.assessment else None,
        covers=[CoverOut.model_validate(x, from_attributes=True) for x in risk.covers],
        grades=risk.grades,
        invoices=[InvoiceOut.model_validate(i, from_attributes=True) for i in file.invoices],
        communications=[
            CommunicationOut.model_validate(m, from_attributes=True) for m in file.communications
        ],
        timeline=[event_out(e) for e in file.timeline],
        dunning_paused=bool(risk.pauses),
        holds=[HoldOut.model_validate(h, from_attributes=True) for h in risk.holds],
        workflows_url=workflows_url(_settings(request), c.account),
    )


@router.get("/customers/{account}/next-contact", response_model=NextContact, tags=["customers"])
async def next_contact(request: Request, account: str, _: Viewer) -> Any:
    """The customer's next email and SMS rendered exactly as they will be sent (nothing is
    sent): the same as `cobro dunning preview --customer ACCOUNT --json`."""
    found = await asyncio.to_thread(queries.next_contact, _engine(request), account)
    if found is None:
        raise HTTPException(404, f"no next contact for {account!r}")
    return found


@router.get("/alerts", response_model=AlertPage, tags=["alerts"])
async def alerts(
    request: Request,
    _: Viewer,
    state: Annotated[str, Query(pattern=r"^(open|acknowledged|resolved|)$")] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Any:
    rows, total = await asyncio.to_thread(
        queries.alerts_inbox, _engine(request), state, limit, offset
    )
    return AlertPage(total=total, alerts=rows)


@router.get("/tasks", response_model=list[queries.ListedTask], tags=["tasks"])
async def tasks(
    request: Request,
    user: Viewer,
    status: Annotated[str, Query(pattern=r"^(open|done|)$")] = "open",
    mine: bool = False,
) -> Any:
    return await asyncio.to_thread(
        queries.tasks_list, _engine(request), status, user.username if mine else None
    )


@router.get("/reports/limit-review", response_model=list[queries.LimitReviewRow], tags=["reports"])
async def limit_review(request: Request, _: Viewer, as_of: AsOf) -> Any:
    """Accounts needing a limit or terms change: over limit, usage above 90 %, or an insurer
    grade that worsened in the last 90 days."""
    return await asyncio.to_thread(queries.limit_review, _engine(request), as_of)


REVIEW_CSV = ["account", "name", "segment", "outstanding", "total_limit", "usage"]
REVIEW_CSV += ["grade_from", "grade_to", "reasons"]


@router.get("/reports/limit-review.csv", tags=["reports"], response_class=Response)
async def limit_review_csv(request: Request, _: Viewer, as_of: AsOf, fmt: Separator) -> Response:
    rows = await asyncio.to_thread(queries.limit_review, _engine(request), as_of)
    return csv_response(
        f"limit-review-{as_of}.csv",
        REVIEW_CSV,
        [[*(getattr(r, k) for k in REVIEW_CSV[:-1]), "; ".join(r.reasons)] for r in rows],
        fmt,
    )


@router.get("/forecast", response_model=ForecastOut, tags=["reports"])
async def forecast(request: Request, _: Viewer, as_of: AsOf) -> Any:
    """Expected cash-in per week for the next 8 weeks (due date + the customer's average
    days late)."""
    f = await asyncio.to_thread(queries.collection_forecast, _engine(request), as_of)
    return ForecastOut(
        as_of=f.as_of,
        week_starts=f.week_starts(),
        by_currency=f.by_currency,
        later=f.later,
        disputed=f.disputed,
    )


# --- actions -----------------------------------------------------------------------------


async def _done(action: Awaitable[str | dunning_actions.Outcome]) -> Done:
    try:
        done = await action
    except actions.ActionError as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    return Done(message=done if isinstance(done, str) else done.text)


@router.post("/customers/{account}/pause", response_model=Done, tags=["customers"])
async def pause(request: Request, account: str, body: PauseIn, user: Collector) -> Any:
    return await _done(
        dunning_actions.pause_dunning(
            _engine(request), _settings(request), account, user.username, body.reason, body.until
        )
    )


@router.post("/customers/{account}/resume", response_model=Done, tags=["customers"])
async def resume(request: Request, account: str, body: ResumeIn, user: Collector) -> Any:
    return await _done(
        dunning_actions.resume_dunning(
            _engine(request), _settings(request), account, user.username, body.reason
        )
    )


@router.post("/customers/{account}/promise", response_model=Done, tags=["customers"])
async def promise(request: Request, account: str, body: PromiseIn, user: Collector) -> Any:
    return await _done(
        dunning_actions.promise_dunning(
            _engine(request),
            _settings(request),
            account,
            user.username,
            body.until,
            body.amount,
            body.currency,
            body.reason,
        )
    )


@router.post("/customers/{account}/promise/cancel", response_model=Done, tags=["customers"])
async def promise_cancel(request: Request, account: str, body: ResumeIn, user: Collector) -> Any:
    return await _done(
        dunning_actions.cancel_promise_dunning(
            _engine(request), _settings(request), account, user.username, body.reason
        )
    )


@router.post("/invoices/{number}/dispute", response_model=Done, tags=["invoices"])
async def dispute(request: Request, number: str, body: ResumeIn, user: Collector) -> Any:
    """The invoice leaves dunning until resolved (a reason is required)."""
    return await _done(
        dunning_actions.dispute_dunning(
            _engine(request), _settings(request), number, user.username, body.reason
        )
    )


@router.post("/invoices/{number}/resolve", response_model=Done, tags=["invoices"])
async def resolve(request: Request, number: str, body: ResumeIn, user: Collector) -> Any:
    return await _done(
        dunning_actions.resolve_dunning(
            _engine(request), _settings(request), number, user.username, body.reason
        )
    )


@router.post("/alerts/{alert_id}/acknowledge", response_model=Done, tags=["alerts"])
async def acknowledge(request: Request, alert_id: RowId, user: Collector) -> Any:
    return await _done(
        asyncio.to_thread(actions.acknowledge_alert, _engine(request), alert_id, user.username)
    )


@router.post("/alerts/{alert_id}/assign", response_model=Done, tags=["alerts"])
async def assign(request: Request, alert_id: RowId, body: AssignIn, user: Collector) -> Any:
    return await _done(
        asyncio.to_thread(
            actions.assign_alert, _engine(request), alert_id, body.assignee, user.username
        )
    )


@router.post("/tasks/{task_id}/done", response_model=Done, tags=["tasks"])
async def task_done(request: Request, task_id: RowId, user: Collector) -> Any:
    return await _done(
        asyncio.to_thread(actions.complete_task, _engine(request), task_id, user.username)
    )
