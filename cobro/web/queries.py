"""Read models for the dashboard: a few SQL queries, portable across SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, Float, and_, case, cast, func, literal_column, or_, select

from cobro.dunning.store import Hold, holds
from cobro.forecast import Forecast, OpenGroup, forecast_groups
from cobro.models import (
    Alert,
    Communication,
    Customer,
    DunningPause,
    GradeHistory,
    InsurerCover,
    Invoice,
    PaymentAllocation,
    RiskAssessment,
    Task,
    TimelineEvent,
)
from cobro.rules.facts_sql import cover_in_force, days_between

AGING_BUCKETS = [("not due", None), ("1-30", 30), ("31-60", 60), ("61-90", 90), ("91-120", 120)]
OVER_LAST = ">120"

log = logging.getLogger(__name__)


def aging_bucket_expr(as_of: date):  # type: ignore[no-untyped-def]
    """CASE over the due date, bounds computed in Python so both databases agree."""
    whens = [(Invoice.due_date >= as_of, "not due")]
    for label, days in AGING_BUCKETS[1:]:
        whens.append((Invoice.due_date >= as_of - timedelta(days=days), label))
    return case(*whens, else_=OVER_LAST)


@dataclass
class Portfolio:
    as_of: date
    customers: int
    open_invoices: int
    open_by_currency: dict[str, Decimal]
    overdue_by_currency: dict[str, Decimal]
    aging: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # currency -> bucket

    @property
    def bucket_labels(self) -> list[str]:
        return [label for label, _ in AGING_BUCKETS] + [OVER_LAST]


def portfolio(engine: Engine, as_of: date) -> Portfolio:
    bucket = aging_bucket_expr(as_of).label("bucket")
    with engine.connect() as conn:
        customers = conn.scalar(select(func.count()).select_from(Customer)) or 0
        rows = conn.execute(
            select(Invoice.currency, bucket, func.count(), func.sum(Invoice.open_amount))
            .where(Invoice.open_amount > Decimal(0))
            .group_by(Invoice.currency, bucket)
        ).all()
    aging: dict[str, dict[str, Decimal]] = defaultdict(dict)
    open_by: dict[str, Decimal] = defaultdict(Decimal)
    overdue_by: dict[str, Decimal] = defaultdict(Decimal)
    count = 0
    for currency, label, n, total in rows:
        aging[currency][label] = total
        open_by[currency] += total
        count += n
        if label != "not due":
            overdue_by[currency] += total
    return Portfolio(as_of, customers, count, dict(open_by), dict(overdue_by), dict(aging))


@dataclass
class CustomerRow:
    account: str
    name: str
    country: str
    segment: str | None
    open_amount: dict[str, Decimal]
    overdue_amount: dict[str, Decimal]


def customers_page(
    engine: Engine, as_of: date, search: str = "", page: int = 1, per_page: int = 50
) -> tuple[list[CustomerRow], int]:
    query = select(Customer.id, Customer.account, Customer.name, Customer.country, Customer.segment)
    count_query = select(func.count()).select_from(Customer)
    if search:
        pattern = f"%{search.lower()}%"
        cond = or_(
            func.lower(Customer.name).like(pattern), func.lower(Customer.account).like(pattern)
        )
        query = query.where(cond)
        count_query = count_query.where(cond)
    query = query.order_by(Customer.account).limit(per_page).offset((page - 1) * per_page)
    with engine.connect() as conn:
        total = conn.scalar(count_query) or 0
        customers = conn.execute(query).all()
        ids = [c.id for c in customers]
        sums = conn.execute(
            select(
                Invoice.customer_id,
                Invoice.currency,
                func.sum(Invoice.open_amount),
                func.sum(case((Invoice.due_date < as_of, Invoice.open_amount), else_=None)),
            )
            .where(Invoice.customer_id.in_(ids), Invoice.open_amount > Decimal(0))
            .group_by(Invoice.customer_id, Invoice.currency)
        ).all()
    open_by: dict[int, dict[str, Decimal]] = defaultdict(dict)
    overdue_by: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for customer_id, currency, open_total, overdue_total in sums:
        open_by[customer_id][currency] = open_total
        if overdue_total:
            overdue_by[customer_id][currency] = Decimal(overdue_total)
    rows = [
        CustomerRow(c.account, c.name, c.country, c.segment, open_by[c.id], overdue_by[c.id])
        for c in customers
    ]
    return rows, total


@dataclass
class CustomerFile:
    customer: Customer
    invoices: list[Invoice]
    timeline: list[TimelineEvent]
    communications: list[Communication]


def customer_file(engine: Engine, account: str) -> CustomerFile | None:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        customer = session.scalar(select(Customer).where(Customer.account == account))
        if customer is None:
            return None
        invoices = session.scalars(
            select(Invoice)
            .where(Invoice.customer_id == customer.id)
            .order_by(Invoice.due_date, Invoice.number)
        ).all()
        timeline = session.scalars(
            select(TimelineEvent)
            .where(TimelineEvent.customer_id == customer.id)
            .order_by(TimelineEvent.at.desc(), TimelineEvent.id.desc())
            .limit(200)
        ).all()
        communications = session.scalars(
            select(Communication)
            .where(Communication.customer_id == customer.id)
            .order_by(Communication.created_at.desc())
        ).all()
        session.expunge_all()
    return CustomerFile(customer, list(invoices), list(timeline), list(communications))


# --- customers list with filters ---------------------------------------------------------


def latest_risk_classes():  # type: ignore[no-untyped-def]
    """customer_id → its latest risk class (a subquery)."""
    latest = (
        select(RiskAssessment.customer_id, func.max(RiskAssessment.id).label("id"))
        .group_by(RiskAssessment.customer_id)
        .subquery()
    )
    return (
        select(RiskAssessment.customer_id, RiskAssessment.risk_class)
        .join(latest, latest.c.id == RiskAssessment.id)
        .subquery()
    )


def _limits_subqueries(as_of: date, ids: list[int] | None = None):  # type: ignore[no-untyped-def]
    """Per customer: the open invoices' sum (`outstanding`) and the in-force covers' granted
    sum (`cover`); of every customer, or only of `ids`."""
    owed_where = [Invoice.open_amount > literal_column("0")]  # inlined: the partial index
    cover_where = [InsurerCover.customer_id.is_not(None), cover_in_force(InsurerCover, as_of)]
    if ids is not None:
        owed_where.append(Invoice.customer_id.in_(ids))
        cover_where.append(InsurerCover.customer_id.in_(ids))
    outstanding = (
        select(Invoice.customer_id, func.sum(Invoice.open_amount).label("outstanding"))
        .where(*owed_where)
        .group_by(Invoice.customer_id)
        .subquery()
    )
    covers = (
        select(InsurerCover.customer_id, func.sum(InsurerCover.granted_amount).label("cover"))
        .where(*cover_where)
        .group_by(InsurerCover.customer_id)
        .subquery()
    )
    return outstanding, covers


def _limit_columns(as_of: date):  # type: ignore[no-untyped-def]
    """The two subqueries, and over them: owed, whether there is a limit, the limit
    (active covers + discretionary limit: the rule facts' definitions)."""
    outstanding, covers = _limits_subqueries(as_of)
    owed = func.coalesce(outstanding.c.outstanding, Decimal(0))
    has_limit = or_(covers.c.cover.is_not(None), Customer.discretionary_limit.is_not(None))
    limit = func.coalesce(covers.c.cover, Decimal(0)) + func.coalesce(
        Customer.discretionary_limit, Decimal(0)
    )
    return outstanding, covers, owed, has_limit, limit


@dataclass
class CustomerFilters:
    q: str = ""
    risk_class: str = ""
    segment: str = ""
    country: str = ""
    over_limit: bool = False


@dataclass
class ListedCustomer:
    account: str
    name: str
    country: str
    segment: str | None
    risk_class: str | None
    outstanding: Decimal
    total_limit: Decimal | None
    over_by: Decimal | None


def list_customers(
    engine: Engine, as_of: date, filters: CustomerFilters, page: int = 1, per_page: int = 50
) -> tuple[list[ListedCustomer], int]:
    """One page of customers, filtered in SQL. Limit = active covers + discretionary limit,
    over limit = outstanding above it (the rule facts' definitions). Without the over-limit
    filter the page is chosen first and only its customers' sums are computed, so a page
    costs the same on 300 or 100k customers; with it, the sums cover everyone."""
    risk = latest_risk_classes()
    columns = [
        Customer.id,
        Customer.account,
        Customer.name,
        Customer.country,
        Customer.segment,
        Customer.discretionary_limit,
        risk.c.risk_class,
    ]
    base = select(*columns).outerjoin(risk, risk.c.customer_id == Customer.id)
    if filters.q:
        pattern = f"%{filters.q.lower()}%"
        base = base.where(
            or_(func.lower(Customer.name).like(pattern), func.lower(Customer.account).like(pattern))
        )
    if filters.risk_class:
        base = base.where(risk.c.risk_class == filters.risk_class)
    if filters.segment:
        base = base.where(Customer.segment == filters.segment)
    if filters.country:
        base = base.where(Customer.country == filters.country.upper())
    if filters.over_limit:
        outstanding, covers, owed, has_limit, limit = _limit_columns(as_of)
        base = (
            base.outerjoin(outstanding, outstanding.c.customer_id == Customer.id)
            .outerjoin(covers, covers.c.customer_id == Customer.id)
            .where(has_limit, owed > limit)
        )

    def page_of(stmt: Any) -> Any:
        return stmt.order_by(Customer.account).limit(per_page).offset((page - 1) * per_page)

    with engine.connect() as conn:
        if filters.over_limit:  # the sums are the cost: count with the page, in one pass
            rows = conn.execute(page_of(base.add_columns(func.count().over().label("n")))).all()
            total = rows[0].n if rows else None
        else:
            rows, total = conn.execute(page_of(base)).all(), None
        if total is None:
            total = conn.scalar(select(func.count()).select_from(base.subquery())) or 0
        sums = _sums_for(conn, as_of, [r.id for r in rows])
    out = []
    for r in rows:
        owed_amount, cover = sums.get(r.id, (Decimal(0), None))
        total_limit = None
        if cover is not None or r.discretionary_limit is not None:
            total_limit = (cover or Decimal(0)) + (r.discretionary_limit or Decimal(0))
        over = owed_amount - total_limit if total_limit is not None else None
        out.append(
            ListedCustomer(
                r.account,
                r.name,
                r.country,
                r.segment,
                r.risk_class,
                owed_amount,
                total_limit,
                over if over is not None and over > 0 else None,
            )
        )
    return out, total


def _sums_for(conn, as_of: date, ids: list[int]) -> dict[int, tuple[Decimal, Decimal | None]]:  # type: ignore[no-untyped-def]
    if not ids:
        return {}
    outstanding, covers = _limits_subqueries(as_of, ids)
    owed = dict(conn.execute(select(outstanding)).all())
    granted = dict(conn.execute(select(covers)).all())
    return {cid: (Decimal(owed.get(cid) or 0), granted.get(cid)) for cid in ids}


def filter_choices(engine: Engine) -> dict[str, list[str]]:
    with engine.connect() as conn:
        segments = conn.scalars(
            select(Customer.segment).where(Customer.segment.is_not(None)).distinct()
        ).all()
        countries = conn.scalars(select(Customer.country).distinct()).all()
        classes = conn.scalars(select(RiskAssessment.risk_class).distinct()).all()
    return {
        "segments": sorted(segments),
        "countries": sorted(countries),
        "risk_classes": sorted(classes),
    }


# --- the customer file, beyond invoices and messages ---------------------------------------


@dataclass
class CustomerRisk:
    covers: list[InsurerCover]
    grades: list[tuple[date, int]]
    assessment: RiskAssessment | None
    alerts: list[Alert]
    tasks: list[Task]
    pauses: list[DunningPause]
    holds: list[Hold]  # the active pauses and promises, then the open disputes

    @property
    def manual_pause(self) -> bool:
        return any(p.kind == "pause" for p in self.pauses)

    @property
    def promise(self) -> DunningPause | None:
        return next((p for p in reversed(self.pauses) if p.kind == "promise"), None)

    def dispute_of(self, invoice: str) -> Hold | None:
        return next((h for h in self.holds if h.invoice == invoice), None)


def customer_risk(engine: Engine, customer_id: int) -> CustomerRisk:
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        covers = s.scalars(
            select(InsurerCover)
            .where(InsurerCover.customer_id == customer_id)
            .order_by(InsurerCover.valid_until.desc(), InsurerCover.cover_id)
        ).all()
        grades = s.execute(
            select(GradeHistory.graded_on, GradeHistory.grade)
            .where(GradeHistory.customer_id == customer_id)
            .order_by(GradeHistory.graded_on)
        ).all()
        assessment = s.scalars(
            select(RiskAssessment)
            .where(RiskAssessment.customer_id == customer_id)
            .order_by(RiskAssessment.id.desc())
            .limit(1)
        ).first()
        alerts = s.scalars(
            select(Alert).where(Alert.customer_id == customer_id).order_by(Alert.id.desc())
        ).all()
        tasks = s.scalars(
            select(Task).where(Task.customer_id == customer_id).order_by(Task.id.desc())
        ).all()
        pauses = s.scalars(
            select(DunningPause)
            .where(DunningPause.customer_id == customer_id, DunningPause.status == "active")
            .order_by(DunningPause.id)
        ).all()
        held = holds(s, customer_id)
        s.expunge_all()
    return CustomerRisk(
        list(covers),
        [(d, g) for d, g in grades],
        assessment,
        list(alerts),
        list(tasks),
        list(pauses),
        held,
    )


def communication(engine: Engine, account: str, message_id: int) -> Communication | None:
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        found = s.scalars(
            select(Communication)
            .join(Customer, Customer.id == Communication.customer_id)
            .where(Communication.id == message_id, Customer.account == account)
        ).first()
        s.expunge_all()
    return found


# --- alerts inbox and tasks ----------------------------------------------------------------


@dataclass
class InboxAlert:
    id: int
    account: str
    customer: str
    name: str
    severity: str
    message: str
    state: str
    fired_at: datetime
    assigned_to: str | None
    acknowledged_by: str | None


def alerts_inbox(
    engine: Engine, state: str = "open", limit: int = 200, offset: int = 0
) -> tuple[list[InboxAlert], int]:
    query = select(
        Alert.id,
        Customer.account,
        Customer.name,
        Alert.name,
        Alert.severity,
        Alert.message,
        Alert.state,
        Alert.fired_at,
        Alert.assigned_to,
        Alert.acknowledged_by,
    ).join(Customer, Customer.id == Alert.customer_id)
    if state:
        query = query.where(Alert.state == state)
    severity_order = case(
        (Alert.severity == "critical", 0), (Alert.severity == "warning", 1), else_=2
    )
    with engine.connect() as conn:
        total = conn.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = conn.execute(
            query.order_by(severity_order, Alert.fired_at.desc(), Alert.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
    return [InboxAlert(*r) for r in rows], total


@dataclass
class ListedTask:
    id: int
    account: str
    customer: str
    kind: str
    note: str
    assignee: str | None
    assignee_role: str | None
    due_date: date | None
    status: str


def tasks_list(
    engine: Engine, status: str = "open", assignee: str | None = None, limit: int = 200
) -> list[ListedTask]:
    query = select(
        Task.id,
        Customer.account,
        Customer.name,
        Task.kind,
        Task.note,
        Task.assignee,
        Task.assignee_role,
        Task.due_date,
        Task.status,
    ).join(Customer, Customer.id == Task.customer_id)
    if status:
        query = query.where(Task.status == status)
    if assignee:
        query = query.where(Task.assignee == assignee)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(Task.due_date, Task.id).limit(limit)).all()
    return [ListedTask(*r) for r in rows]


# --- collection forecast -------------------------------------------------------------------


def collection_forecast(engine: Engine, as_of: date, weeks: int = 8) -> Forecast:
    """Each customer's average days late over the last 12 months of payment allocations
    (rounded to whole days), joined to its open invoices, summed in SQL by due date,
    currency, disputed and days late: a few thousand rows whatever the portfolio size,
    bucketed by `cobro.forecast`. Customers without history: the average of the others."""

    with engine.connect() as conn:
        a = PaymentAllocation  # with copies of its payment's date and invoice's due date
        late = days_between(conn, a.payment_date, a.due_date)
        per_customer = (
            select(
                a.customer_id.label("customer_id"),
                func.round(
                    cast(func.sum(case((late > 0, late), else_=0)), Float) / func.count()
                ).label("late"),
            )
            .where(a.payment_date > as_of - timedelta(days=365), a.payment_date <= as_of)
            .group_by(a.customer_id)
            .subquery()
        )
        default = conn.scalar(select(func.avg(per_customer.c.late)))
        rows = conn.execute(
            select(
                Invoice.due_date,
                Invoice.currency,
                Invoice.disputed,
                per_customer.c.late,
                func.sum(Invoice.open_amount),
            )
            .outerjoin(per_customer, per_customer.c.customer_id == Invoice.customer_id)
            .where(Invoice.open_amount > Decimal(0))
            .group_by(Invoice.due_date, Invoice.currency, Invoice.disputed, per_customer.c.late)
        ).all()
    groups = (
        OpenGroup(due, currency, bool(disputed), None if lt is None else int(lt), Decimal(total))
        for due, currency, disputed, lt, total in rows
    )
    return forecast_groups(groups, Decimal(str(default or 0)), as_of, weeks)


# --- report: accounts needing a limit or terms change ----------------------------------------


@dataclass
class LimitReviewRow:
    account: str
    name: str
    segment: str | None
    outstanding: Decimal
    total_limit: Decimal | None
    usage: Decimal | None  # 0.9 = 90 %
    grade_from: int | None
    grade_to: int | None
    reasons: list[str]


def limit_review(
    engine: Engine, as_of: date, usage_threshold: Decimal = Decimal("0.9"), grade_days: int = 90
) -> list[LimitReviewRow]:
    """Customers over their limit, using more than `usage_threshold` of it, or whose insurer
    grade worsened in the last `grade_days` days: candidates for a new limit or new terms."""
    outstanding, covers, owed, has_limit, limit = _limit_columns(as_of)
    since = as_of - timedelta(days=grade_days)
    # candidates only, decided below: near or over their limit, or graded recently. The
    # ratio is compared as floats with a margin (the usage is rounded before it is
    # compared; both sides are in the same scale on either database)
    regraded = select(GradeHistory.customer_id).where(
        GradeHistory.graded_on >= since, GradeHistory.graded_on <= as_of
    )
    margin = float(usage_threshold) - 0.0002
    near = cast(owed, Float) >= cast(limit, Float) * literal_column(repr(margin))
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Customer.id,
                Customer.account,
                Customer.name,
                Customer.segment,
                owed.label("owed"),
                case((has_limit, limit), else_=None).label("total_limit"),
            )
            .outerjoin(outstanding, outstanding.c.customer_id == Customer.id)
            .outerjoin(covers, covers.c.customer_id == Customer.id)
            .where(owed > 0, or_(and_(has_limit, near), Customer.id.in_(regraded)))
        ).all()
        grades = conn.execute(
            select(GradeHistory.customer_id, GradeHistory.graded_on, GradeHistory.grade)
            .where(GradeHistory.graded_on <= as_of, GradeHistory.customer_id.in_(regraded))
            .order_by(GradeHistory.customer_id, GradeHistory.graded_on)
        ).all()
    history: dict[int, list[tuple[date, int]]] = defaultdict(list)
    for cid, on, grade in grades:
        history[cid].append((on, grade))
    out = []
    for r in rows:
        reasons = []
        total_limit = r.total_limit
        usage = None
        if total_limit is not None and total_limit > 0:
            usage = (Decimal(r.owed) / Decimal(total_limit)).quantize(Decimal("0.0001"))
        if total_limit is not None and r.owed > total_limit:
            reasons.append(f"over limit by {Decimal(r.owed) - Decimal(total_limit):.2f}")
        elif usage is not None and usage > usage_threshold:
            reasons.append(f"uses {usage * 100:.0f} % of its limit")
        grade_from = grade_to = None
        past = history.get(r.id, [])
        if len(past) >= 2 and past[-1][0] >= since and past[-1][1] > past[-2][1]:
            grade_from, grade_to = past[-2][1], past[-1][1]
            reasons.append(f"insurer grade worsened {grade_from} → {grade_to}")
        if reasons:
            out.append(
                LimitReviewRow(
                    r.account,
                    r.name,
                    r.segment,
                    Decimal(r.owed),
                    total_limit,
                    usage,
                    grade_from,
                    grade_to,
                    reasons,
                )
            )
    out.sort(key=lambda x: (-(x.usage or Decimal(0)), x.account))
    return out


def next_contact(engine: Engine, account: str, now: datetime | None = None):  # type: ignore[no-untyped-def]
    """The customer's next email/SMS as it will be sent (cobro.dunning.preview), or None when
    the dunning rules do not load (the page still shows everything else)."""
    from datetime import UTC

    from cobro.db import transaction
    from cobro.dunning.preview import next_contact as preview
    from cobro.dunning.store import load_customer_facts

    try:
        with transaction(engine) as session:
            facts = load_customer_facts(session, account)
            return None if facts is None else preview(facts, now or datetime.now(UTC))
    except Exception:
        log.exception("next contact of %s", account)
        return None


def customer_exposure(engine: Engine, customer_id: int, as_of: date):  # type: ignore[no-untyped-def]
    """The customer's exposure under the active rules/exposure.yaml (None if it fails: the
    page still shows everything else)."""
    from cobro.exposure.rulefile import rules_of
    from cobro.exposure.sql import exposures_for
    from cobro.rules.classify import load_active_ruleset

    try:
        rules = rules_of(load_active_ruleset(engine))
        with engine.connect() as conn:
            found = exposures_for(conn, as_of, rules, ids=[customer_id], explain=True)
    except Exception:
        return None
    return found[0] if found else None
