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
from cobro.dunning import plan_actions
from cobro.dunning.preview import NextContact
from cobro.insurers import actions as insurer_actions
from cobro.queues import actions
from cobro.timeline import title
from cobro.types import FIRST_DAY, LAST_DAY
from cobro.users import CurrentUser
from cobro.web import queries
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


class EmailAddressOut(BaseModel):
    address: str
    undeliverable: bool = Field(
        False, description="a relay bounced it for good: no email goes to it any more"
    )
    since: datetime | None = None
    status: str | None = Field(None, description="the bounce's status code, e.g. 5.1.1")
    reason: str | None = None


class InboundEmailOut(BaseModel):
    """An email that came back: the customer's reply, an automatic reply, or a bounce."""

    id: int
    received_at: datetime
    kind: str = Field(description="human, auto_reply, bounce or delayed")
    sender: str
    subject: str
    text: str = Field(description="the reply's own words, without the quoted original")
    why: str = Field(description="what decided the kind")
    communication_id: int | None = Field(None, description="the reminder it answers")


class ObligationOut(BaseModel):
    """One insured open invoice's insurer obligations (calendar days, rules/insurance.yaml)."""

    account: str
    invoice: str
    due_date: date
    currency: str
    open_amount: Decimal
    insured_basis: str
    policy: str | None
    declarations: str | None
    may_extend_until: date | None
    declare_by: date | None
    days_to_declaration_deadline: int | None
    claim_by: date | None
    stop_supplies_from: date | None
    expected_indemnity_on: date | None
    eligible: Decimal
    expected_indemnity: Decimal
    declaration_required: bool
    status: str
    stop_supply: bool
    disputed: bool


class ObligationTotalsOut(BaseModel):
    invoices: int
    deadlines_missed: int
    missed_amount: Decimal
    at_risk: int
    amount_at_risk_of_losing_cover: Decimal
    expected_indemnity: Decimal
    stop_supply_customers: int


class ObligationsOut(BaseModel):
    as_of: date
    within_days: int | None
    rules_hash: str
    totals: dict[str, ObligationTotalsOut]
    obligations: list[ObligationOut]


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
    email_addresses: list[EmailAddressOut] = Field(default_factory=list)
    inbound_emails: list[InboundEmailOut] = Field(
        default_factory=list, description="replies, automatic replies and bounces, newest first"
    )
    timeline: list[EventOut]
    dunning_paused: bool
    owner: str | None = None
    holds: list[HoldOut]
    workflows_url: str
    obligations: list[ObligationOut] = Field(
        default_factory=list, description="insurer obligations of its insured open invoices"
    )
    declarations: list[dict[str, Any]] = Field(
        default_factory=list, description="its overdue declarations (OVD, EXP, RES)"
    )
    claims: list[dict[str, Any]] = Field(
        default_factory=list,
        description="its claims to the insurer: claimed, indemnified, recovered",
    )


class AlertPage(BaseModel):
    total: int
    alerts: list[queries.InboxAlert]


class ForecastOut(BaseModel):
    as_of: date
    week_starts: list[date]
    by_currency: dict[str, list[Decimal]] = Field(
        description="expected cash-in per currency, one amount per week (never summed "
        "across currencies)"
    )
    later: dict[str, Decimal] = Field(description="expected after the last week")
    not_expected: dict[str, Decimal] = Field(
        description="what the payment history says is not paid within two years"
    )
    disputed: dict[str, Decimal] = Field(description="disputed: not forecast")


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
    status: str | None = None  # a payment plan: requested | approved
    instalments: int | None = None  # a payment plan
    sentence: str


class PromiseIn(BaseModel):
    """Checked by `cobro.dunning.collector.check_promise`, as from the CLI and the pages."""

    until: date
    amount: Decimal | None = None
    currency: str | None = None
    reason: str = ""


class PlanIn(BaseModel):
    """Checked by `cobro.dunning.plan_actions.check_request`, as from the CLI and the pages."""

    instalments: int
    currency: str | None = None
    note: str = ""


class PlanDecisionIn(BaseModel):
    """The note of an approval or a cancellation; the reason (required) of a rejection."""

    note: str = ""


class AssignIn(BaseModel):
    """A user who may be given work (collector or above); null or empty: nobody."""

    assignee: Text | None = Field(None, max_length=128)


AlertIds = Annotated[list[Annotated[int, Field(ge=1, le=2**31 - 1)]], Field(min_length=1)]


class AlertsIn(BaseModel):
    ids: AlertIds


class AssignManyIn(AssignIn):
    ids: AlertIds


class OwnerIn(BaseModel):
    """The owner's username (collector or above); null or empty: no owner."""

    owner: Text | None = Field(None, max_length=128)


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

    result = await asyncio.to_thread(compute_kpis, _engine(request), as_of, obligations=True)
    return result.to_json()


@router.get("/customer-activity", tags=["portfolio"])
async def activity(
    request: Request,
    _: Viewer,
    as_of: AsOf,
    days: Annotated[int, Query(ge=1, le=366, description="the days counted, ending as_of")] = 30,
) -> dict[str, Any]:
    """What the customers did and wrote: self-service visits, actions, replies, SMS
    opt-outs and bounced addresses (the portfolio page's figures)."""
    from cobro.customer_activity import customer_activity

    result = await asyncio.to_thread(customer_activity, _engine(request), as_of, days)
    return result.to_json()


def customer_filters(
    request: Request,
    q: Annotated[
        str,
        Query(
            max_length=200,
            description="name, account, SIREN, VAT or email contains (case and accents ignored)",
        ),
    ] = "",
    risk_class: Annotated[str, Query(max_length=64)] = "",
    segment: Annotated[str, Query(max_length=64)] = "",
    country: Annotated[str, Query(max_length=2)] = "",
    over_limit: bool = False,
    owner: Annotated[
        str, Query(max_length=128, description="a username, `me` (my customers) or `none`")
    ] = "",
) -> queries.CustomerFilters:
    user = getattr(request.state, "user", None)
    if owner == "me" and user is not None:
        owner = user.username
    return queries.CustomerFilters(q.strip(), risk_class, segment, country, over_limit, owner)


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


# outstanding / total_limit / over_by: the exposure's used / authorised / excess, in currency
CUSTOMER_CSV = ["account", "name", "country", "segment", "risk_class", "currency"]
CUSTOMER_CSV += ["outstanding", "total_limit", "over_by"]


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
    obligations = await asyncio.to_thread(
        queries.insurer_obligations, engine, date.today(), None, account
    )
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
        email_addresses=[
            EmailAddressOut.model_validate(a, from_attributes=True) for a in file.addresses
        ],
        inbound_emails=[
            InboundEmailOut.model_validate(m, from_attributes=True) for m in file.inbound
        ],
        timeline=[event_out(e) for e in file.timeline],
        dunning_paused=bool(risk.pauses),
        owner=c.owner,
        holds=[HoldOut.model_validate(h, from_attributes=True) for h in risk.holds],
        workflows_url=workflows_url(_settings(request), c.account),
        obligations=obligations.as_json()["obligations"] if obligations else [],
        declarations=await asyncio.to_thread(insurer_actions.declarations, engine, None, c.account),
        claims=(await asyncio.to_thread(insurer_actions.claims_report, engine, c.account)).claims,
    )


@router.get("/customers/{account}/next-contact", response_model=NextContact, tags=["customers"])
async def next_contact(request: Request, account: str, _: Viewer) -> Any:
    """The customer's next email and SMS rendered exactly as they will be sent (nothing is
    sent): the same as `cobro dunning preview --customer ACCOUNT --json`."""
    found = await asyncio.to_thread(queries.next_contact, _engine(request), account)
    if found is None:
        raise HTTPException(404, f"no next contact for {account!r}")
    return found


def _person(raw: str, user: CurrentUser) -> str:
    return user.username if raw == "me" else raw


Person = Annotated[
    str,
    Query(max_length=128, description="a username, `me`, or `none` (nobody); empty: anyone"),
]


@router.get("/alerts", response_model=AlertPage, tags=["alerts"])
async def alerts(
    request: Request,
    user: Viewer,
    state: Annotated[str, Query(pattern=r"^(open|acknowledged|resolved|)$")] = "open",
    severity: Annotated[str, Query(max_length=16)] = "",
    name: Annotated[Text, Query(max_length=64, description="the alert's rule name")] = "",
    risk_class: Annotated[Text, Query(max_length=64)] = "",
    assignee: Person = "",
    account: Annotated[Text, Query(max_length=64)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Any:
    """The alerts inbox, filtered like the page: most severe and most recent first."""
    filters = queries.AlertFilters(
        state, severity, name, risk_class, _person(assignee, user), account
    )
    rows, total = await asyncio.to_thread(
        queries.alerts_inbox, _engine(request), filters, limit, offset
    )
    return AlertPage(total=total, alerts=rows)


@router.get("/tasks", response_model=list[queries.ListedTask], tags=["tasks"])
async def tasks(
    request: Request,
    user: Viewer,
    view: Annotated[
        str,
        Query(
            pattern=r"^(mine|queue|open|done|)$",
            description="mine: yours; queue: waiting in a queue you may take from; open; done",
        ),
    ] = "",
    status: Annotated[str, Query(pattern=r"^(open|done|)$")] = "open",
    mine: bool = False,
    assignee: Person = "",
    queue: Annotated[Text, Query(max_length=64, description="the role queue")] = "",
    account: Annotated[Text, Query(max_length=64)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Any:
    """Tasks, the most urgent first (`mine=true` is `view=mine`, `status=done` `view=done`)."""
    chosen = view or ("mine" if mine else "done" if status == "done" else "open")
    filters = queries.TaskFilters(
        chosen, user.username, user.role, _person(assignee, user), queue, account
    )
    rows, _total = await asyncio.to_thread(
        queries.tasks_list, _engine(request), filters, limit, offset
    )
    return rows


@router.get("/reports/limit-review", response_model=list[queries.LimitReviewRow], tags=["reports"])
async def limit_review(
    request: Request,
    _: Viewer,
    as_of: AsOf,
    limit: Annotated[
        int | None, Query(ge=1, description="at most this many, most over first")
    ] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    """Accounts needing a limit or terms change: over limit, usage above 90 %, or an insurer
    grade that worsened in the last 90 days; most over limit first. `limit`/`offset` page
    through them (all by default)."""
    rows = await asyncio.to_thread(queries.limit_review, _engine(request), as_of)
    return rows[offset : None if limit is None else offset + limit]


REVIEW_CSV = ["account", "name", "segment", "currency", "outstanding", "total_limit", "usage"]
REVIEW_CSV += ["over_by"]
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


@router.get("/insurer/obligations", response_model=ObligationsOut, tags=["insurer"])
async def insurer_obligations(
    request: Request,
    _: Viewer,
    as_of: AsOf,
    within_days: Annotated[
        int | None,
        Query(ge=0, le=3650, description="only deadlines in the next N days, and missed ones"),
    ] = None,
    account: Annotated[Text | None, Query(max_length=64, description="one customer")] = None,
) -> Any:
    """Per insured open invoice: declare-by, may-extend-until, stop-supplies-from, claim-by,
    expected indemnity date and amount, with totals per currency (deadlines missed, amount
    at risk of losing cover): the same as `cobro insurer obligations --json`."""
    view = await asyncio.to_thread(
        queries.insurer_obligations, _engine(request), as_of, within_days, account
    )
    if view is None:
        raise HTTPException(404, f"no customer {account!r}")
    return view.as_json()


class ClaimOut(BaseModel):
    account: str
    invoice: str
    client_reference: str | None
    status: str = Field(description="queued, filed, acknowledged, indemnified, refused")
    policy: str
    currency: str
    claimed: Decimal
    insured_percent: Decimal
    indemnified: Decimal | None
    recovered: Decimal = Field(description="paid by the buyer after the indemnity")
    recovered_to_insurer: Decimal = Field(description="the recoveries' share owed the insurer")
    insurer_reference: str | None
    filed_on: date
    claim_by: date | None
    acknowledged_on: date | None
    indemnified_on: date | None
    refused_on: date | None
    reason: str | None
    filed_by: str


class ClaimsOut(BaseModel):
    totals: dict[str, dict[str, Decimal]]
    claims: list[ClaimOut]


@router.get("/insurer/claims", response_model=ClaimsOut, tags=["insurer"])
async def insurer_claims(
    request: Request,
    _: Viewer,
    account: Annotated[Text | None, Query(max_length=64, description="one customer")] = None,
) -> Any:
    """The claims report: status, claimed, indemnified and recovered amounts, totals per
    currency: the same as `cobro insurer claims --json`."""
    report = await _listed(
        asyncio.to_thread(insurer_actions.claims_report, _engine(request), account)
    )
    return report.as_json()


class DeclarationOut(BaseModel):
    id: int
    account: str
    invoice: str
    category: str = Field(description="OVD, EXP or RES")
    client_reference: str
    status: str
    policy: str
    currency: str
    amount: Decimal
    deadline: date | None
    new_due_date: date | None
    job_id: str | None
    overdue_id: str | None
    attempts: int
    error: str | None
    filed_at: datetime | None
    requested_by: str
    approved_by: str | None


@router.get("/insurer/declarations", response_model=list[DeclarationOut], tags=["insurer"])
async def insurer_declarations(
    request: Request,
    _: Viewer,
    status: Annotated[
        Text | None,
        Query(max_length=32, description="pending (awaiting approval, queued, filed) or one"),
    ] = None,
    account: Annotated[Text | None, Query(max_length=64, description="one customer")] = None,
) -> Any:
    """The overdue declarations, newest first: the same as `cobro insurer declarations
    --json`."""
    return await _listed(
        asyncio.to_thread(insurer_actions.declarations, _engine(request), status, account)
    )


async def _listed(work: Awaitable[Any]) -> Any:
    try:
        return await work
    except actions.ActionError as exc:
        raise HTTPException(exc.status, str(exc)) from exc


class StopSupplyOut(BaseModel):
    account: str
    name: str
    reasons: list[str]
    since: date | None
    cover_status: str | None
    outstanding: Decimal
    overdue_amount: Decimal


@router.get("/insurer/stop-supply", response_model=list[StopSupplyOut], tags=["insurer"])
async def stop_supply(request: Request, _: Viewer, as_of: AsOf) -> Any:
    """The stop-supply list for the sales and order desk: customers whose cover is
    withdrawn, refused or suspended, or whose policy's stop-supply date has come."""
    entries = await asyncio.to_thread(queries.stop_supply_list, _engine(request), as_of)
    return [e.as_json() for e in entries]


@router.get("/insurer/stop-supply.csv", tags=["insurer"], response_class=Response)
async def stop_supply_csv(request: Request, _: Viewer, as_of: AsOf, fmt: Separator) -> Response:
    entries = await asyncio.to_thread(queries.stop_supply_list, _engine(request), as_of)
    return csv_response(
        f"stop-supply-{as_of}.csv",
        queries.STOP_SUPPLY_CSV,
        queries.stop_supply_rows(entries),
        fmt,
    )


@router.get("/forecast", response_model=ForecastOut, tags=["reports"])
async def forecast(request: Request, _: Viewer, as_of: AsOf) -> Any:
    """Expected cash-in per currency for the next 8 weeks (week n: the days as_of + 7n + 1
    to as_of + 7n + 7), each open invoice spread by its customer's distribution of days late
    given how late it already is (see `cobro.forecast.model`)."""
    f = await asyncio.to_thread(queries.collection_forecast, _engine(request), as_of)
    return ForecastOut(
        as_of=f.as_of,
        week_starts=f.week_starts(),
        by_currency=f.by_currency,
        later=f.later,
        not_expected=f.not_expected,
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


@router.post("/customers/{account}/payment-plan", response_model=Done, tags=["customers"])
async def plan_request(request: Request, account: str, body: PlanIn, user: Collector) -> Any:
    """A payment plan of the customer's open invoices: approved by rule within its policy's
    `payment_plans:` limits, else waiting for a collector."""
    return await _done(
        plan_actions.request_dunning(
            _engine(request),
            _settings(request),
            account,
            user.username,
            body.instalments,
            body.currency,
            body.note,
        )
    )


@router.post("/customers/{account}/payment-plan/approve", response_model=Done, tags=["customers"])
async def plan_approve(
    request: Request, account: str, body: PlanDecisionIn, user: Collector
) -> Any:
    return await _done(
        plan_actions.approve_dunning(
            _engine(request), _settings(request), account, user.username, body.note
        )
    )


@router.post("/customers/{account}/payment-plan/reject", response_model=Done, tags=["customers"])
async def plan_reject(request: Request, account: str, body: PlanDecisionIn, user: Collector) -> Any:
    return await _done(
        plan_actions.reject_dunning(
            _engine(request), _settings(request), account, user.username, body.note
        )
    )


@router.post("/customers/{account}/payment-plan/cancel", response_model=Done, tags=["customers"])
async def plan_cancel(request: Request, account: str, body: PlanDecisionIn, user: Collector) -> Any:
    return await _done(
        plan_actions.cancel_dunning(
            _engine(request), _settings(request), account, user.username, body.note
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


class SettleIn(BaseModel):
    """`sent`: it went out, never resend it; `resend`: send it now (same Message-ID)."""

    decision: str
    reason: str = ""


@router.post("/invoices/{number}/claim", response_model=Done, tags=["insurer"])
async def claim(request: Request, number: str, user: Collector) -> Any:
    """Hand an insured invoice whose OVD the insurer registered over to the insurer: the
    customer's workflow files the claim once and follows it (`cobro insurer claim`)."""
    return await _done(
        insurer_actions.file_claim_dunning(_engine(request), _settings(request), number,
                                           user.username)
    )  # fmt: skip


@router.post(
    "/insurer/declarations/{declaration_id}/approve", response_model=Done, tags=["insurer"]
)
async def approve_declaration(request: Request, declaration_id: RowId, user: Collector) -> Any:
    """Approve an overdue declaration waiting for approval (`cobro insurer declarations
    approve`): the customer's workflow files it."""
    return await _done(
        insurer_actions.approve_declaration_dunning(
            _engine(request), _settings(request), user.username, declaration_id=declaration_id
        )
    )


@router.post("/communications/{key}/settle", response_model=Done, tags=["customers"])
async def settle(request: Request, key: str, body: SettleIn, user: Collector) -> Any:
    """Settle an `uncertain` contact (by its idempotency key or Message-ID)."""
    from cobro.dunning.settle import settle_contact

    return await _done(
        settle_contact(_engine(request), key, body.decision, user.username, body.reason)
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


@router.post("/alerts/acknowledge", response_model=Done, tags=["alerts"])
async def acknowledge_many(request: Request, body: AlertsIn, user: Collector) -> Any:
    """Acknowledge many alerts at once (those not open are left as they are, and named)."""
    return await _done(
        asyncio.to_thread(actions.acknowledge_alerts, _engine(request), body.ids, user.username)
    )


@router.post("/alerts/assign", response_model=Done, tags=["alerts"])
async def assign_many(request: Request, body: AssignManyIn, user: Collector) -> Any:
    return await _done(
        asyncio.to_thread(
            actions.assign_alerts, _engine(request), body.ids, body.assignee, user.username
        )
    )


@router.post("/tasks/{task_id}/take", response_model=Done, tags=["tasks"])
async def task_take(request: Request, task_id: RowId, user: Collector) -> Any:
    """Take a task waiting in a queue you may work: it becomes yours."""
    return await _done(
        asyncio.to_thread(actions.take_task, _engine(request), task_id, user.username)
    )


@router.post("/customers/{account}/owner", response_model=Done, tags=["customers"])
async def set_owner(request: Request, account: str, body: OwnerIn, user: Collector) -> Any:
    """Set or clear the customer's owner; its open tasks and alerts follow."""
    return await _done(
        asyncio.to_thread(actions.set_owner, _engine(request), account, body.owner, user.username)
    )


@router.post("/tasks/{task_id}/done", response_model=Done, tags=["tasks"])
async def task_done(request: Request, task_id: RowId, user: Collector) -> Any:
    return await _done(
        asyncio.to_thread(actions.complete_task, _engine(request), task_id, user.username)
    )
