"""Read models for the dashboard: a few SQL queries, portable across SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, case, func, select

from cobro.dunning.store import Hold, addresses_of, holds
from cobro.exposure.book import active_rules, exposures_of
from cobro.exposure.compute import ExposureRules
from cobro.forecast import run as forecast_run
from cobro.forecast.model import Forecast
from cobro.formatting import money_or_dash, percent
from cobro.i18n import gettext as _
from cobro.models import (
    Alert,
    Communication,
    Customer,
    DunningPause,
    GradeHistory,
    InboundEmail,
    InsurerCover,
    Invoice,
    RiskAssessment,
    Task,
    TimelineEvent,
    UndeliverableAddress,
)
from cobro.queues.lists import (  # noqa: F401 (the pages and the API read them from here)
    PER_PAGE,
    AlertFilters,
    InboxAlert,
    ListedTask,
    TaskFilters,
    alert_choices,
    alerts_inbox,
    latest_risk_classes,
    task_counts,
    tasks_list,
)
from cobro.queues.people import Person, assignable
from cobro.search import matches

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
        return [label for label, _limit in AGING_BUCKETS] + [OVER_LAST]


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
    cond = matches(Customer.search_text, search)
    if cond is not None:
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


@dataclass(frozen=True)
class EmailAddress:
    """One of the customer's email addresses; `undeliverable` since a hard bounce."""

    address: str
    undeliverable: bool = False
    since: datetime | None = None
    status: str | None = None  # the bounce's status code, 5.1.1
    reason: str | None = None


@dataclass
class CustomerFile:
    customer: Customer
    invoices: list[Invoice]
    timeline: list[TimelineEvent]
    communications: list[Communication]
    addresses: list[EmailAddress] = field(default_factory=list)
    inbound: list[InboundEmail] = field(default_factory=list)  # replies, bounces, newest first


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
        inbound = session.scalars(
            select(InboundEmail)
            .where(InboundEmail.customer_id == customer.id)
            .order_by(InboundEmail.received_at.desc(), InboundEmail.id.desc())
            .limit(100)
        ).all()
        listed = addresses_of(customer.email)
        bounced = {
            u.address: u
            for u in session.scalars(
                select(UndeliverableAddress).where(
                    UndeliverableAddress.address.in_([a.lower() for a in listed])
                )
            )
        }
        addresses = [
            EmailAddress(a)
            if (u := bounced.get(a.lower())) is None
            else EmailAddress(a, True, u.since, u.status, u.reason)
            for a in listed
        ]
        session.expunge_all()
    return CustomerFile(
        customer, list(invoices), list(timeline), list(communications), addresses, list(inbound)
    )


# --- customers list with filters ---------------------------------------------------------


@dataclass
class CustomerFilters:
    q: str = ""
    risk_class: str = ""
    segment: str = ""
    country: str = ""
    over_limit: bool = False
    owner: str = ""  # a username, or `none`: customers without owner


@dataclass
class ListedCustomer:
    """A row of the customers list: the amounts are the customer's exposure (`used`,
    `authorised`, `used − authorised` when over limit) in its exposure currency."""

    account: str
    name: str
    country: str
    segment: str | None
    risk_class: str | None
    currency: str | None
    outstanding: Decimal  # the exposure's `used`
    total_limit: Decimal  # the exposure's `authorised`
    over_by: Decimal | None  # the exposure's excess, None when within the limit
    owner: str | None = None


def list_customers(
    engine: Engine,
    as_of: date,
    filters: CustomerFilters,
    page: int = 1,
    per_page: int = 50,
    exposure_rules: ExposureRules | None = None,
) -> tuple[list[ListedCustomer], int]:
    """One page of customers, filtered in SQL; limits and "over limit" are the exposure
    engine's (`cobro.exposure.book`). Without the over-limit filter the page is chosen first
    and only its customers' exposures are computed, so a page costs the same on 300 or 100k
    customers; with it, the portfolio's exposure is computed once and the page chosen from
    the customers over limit (the filtered ids come back in account order, ids only)."""
    rules = exposure_rules if exposure_rules is not None else active_rules(engine)
    risk = latest_risk_classes()
    columns = [
        Customer.id,
        Customer.account,
        Customer.name,
        Customer.country,
        Customer.segment,
        risk.c.risk_class,
        Customer.owner,
    ]
    base = select(*columns).outerjoin(risk, risk.c.customer_id == Customer.id)
    found = matches(Customer.search_text, filters.q)
    if found is not None:  # case and accents ignored: "nunez" finds "Núñez" (cobro.search)
        base = base.where(found)
    if filters.risk_class:
        base = base.where(risk.c.risk_class == filters.risk_class)
    if filters.segment:
        base = base.where(Customer.segment == filters.segment)
    if filters.country:
        base = base.where(Customer.country == filters.country.upper())
    if filters.owner:
        base = base.where(
            Customer.owner.is_(None) if filters.owner == "none" else Customer.owner == filters.owner
        )
    start = (page - 1) * per_page
    with engine.connect() as conn:
        if filters.over_limit:
            over = exposures_of(conn, as_of, rules).over_limit_ids()
            matching = base.subquery()
            ids_in_order = [
                cid
                for cid in conn.scalars(select(matching.c.id).order_by(matching.c.account))
                if cid in over
            ]
            total = len(ids_in_order)
            chosen = ids_in_order[start : start + per_page]
            found = {r.id: r for r in conn.execute(base.where(Customer.id.in_(chosen))).all()}
            rows = [found[cid] for cid in chosen]
        else:
            rows = conn.execute(base.order_by(Customer.account).limit(per_page).offset(start)).all()
            total = conn.scalar(select(func.count()).select_from(base.subquery())) or 0
        book = exposures_of(conn, as_of, rules, [r.id for r in rows])
    out = []
    for r in rows:
        e = book.get(r.id)
        out.append(
            ListedCustomer(
                r.account,
                r.name,
                r.country,
                r.segment,
                r.risk_class,
                e.currency if e else None,
                e.used if e else Decimal(0),
                e.authorised if e else Decimal(0),
                e.excess if e and e.over_limit else None,
                r.owner,
            )
        )
    return out, total


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


def assignable_people(engine: Engine) -> list[Person]:
    """The user picker: everyone work can go to."""
    with engine.connect() as conn:
        return assignable(conn)


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

    @property
    def plan(self) -> Hold | None:
        """The customer's open payment plan (requested or approved)."""
        return next((h for h in self.holds if h.kind == "plan"), None)

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


# --- collection forecast -------------------------------------------------------------------


def collection_forecast(engine: Engine, as_of: date, weeks: int = 8) -> Forecast:
    """The collection forecast (`cobro.forecast.run`): one implementation for pages and API."""
    return forecast_run.collection_forecast(engine, as_of, weeks)


# --- report: accounts needing a limit or terms change ----------------------------------------


@dataclass
class LimitReviewRow:
    """A customer to review; the amounts are its exposure (in `currency`)."""

    account: str
    name: str
    segment: str | None
    currency: str | None
    outstanding: Decimal  # the exposure's `used`
    total_limit: Decimal  # the exposure's `authorised`
    usage: Decimal | None  # used ÷ authorised (0.9 = 90 %); None when nothing is authorised
    over_by: Decimal | None  # used − authorised when over limit
    grade_from: int | None
    grade_to: int | None
    reasons: list[str]


def limit_review(
    engine: Engine,
    as_of: date,
    usage_threshold: Decimal = Decimal("0.9"),
    grade_days: int = 90,
    exposure_rules: ExposureRules | None = None,
) -> list[LimitReviewRow]:
    """Customers over their limit, using more than `usage_threshold` of it, or whose insurer
    grade worsened in the last `grade_days` days (and who owe something): candidates for a
    new limit or new terms, most over first. Limit, usage and over limit are the exposure
    engine's. Computed once per state of the data (`cobro.portfolio_cache`): the list is
    shared, read-only."""
    from cobro.i18n import current_locale
    from cobro.portfolio_cache import cached

    rules = exposure_rules if exposure_rules is not None else active_rules(engine)
    key = ("limit_review", as_of, usage_threshold, grade_days, rules, current_locale())
    with engine.connect() as conn:  # the reasons are in the reader's language
        return cached(
            conn, key, lambda: _limit_review(conn, as_of, usage_threshold, grade_days, rules)
        )


def _limit_review(
    conn: Connection,
    as_of: date,
    usage_threshold: Decimal,
    grade_days: int,
    rules: ExposureRules,
) -> list[LimitReviewRow]:
    since = as_of - timedelta(days=grade_days)
    regraded = select(GradeHistory.customer_id).where(
        GradeHistory.graded_on >= since, GradeHistory.graded_on <= as_of
    )
    book = exposures_of(conn, as_of, rules)
    grades = conn.execute(
        select(GradeHistory.customer_id, GradeHistory.graded_on, GradeHistory.grade)
        .where(GradeHistory.graded_on <= as_of, GradeHistory.customer_id.in_(regraded))
        .order_by(GradeHistory.customer_id, GradeHistory.graded_on)
    ).all()
    history: dict[int, list[tuple[date, int]]] = defaultdict(list)
    for cid, on, grade in grades:
        history[cid].append((on, grade))
    candidates = {e.customer_id: e for e in book.usage_at_least(usage_threshold)}
    candidates.update((cid, book.rows[cid]) for cid in history if cid in book.rows)
    out = []
    for cid, e in candidates.items():
        if e.used <= 0:
            continue
        reasons = []
        if e.over_limit:
            reasons.append(
                _("over limit by %(amount)s") % {"amount": money_or_dash(e.excess, e.currency)}
            )
        elif e.usage is not None and e.usage > usage_threshold:
            usage = percent(e.usage * 100, digits=0)
            reasons.append(_("uses %(usage)s of its limit") % {"usage": usage})
        grade_from = grade_to = None
        past = history.get(cid, [])
        if len(past) >= 2 and past[-1][0] >= since and past[-1][1] > past[-2][1]:
            grade_from, grade_to = past[-2][1], past[-1][1]
            reasons.append(
                _("insurer grade worsened %(before)s → %(after)s")
                % {"before": grade_from, "after": grade_to}
            )
        if reasons:
            out.append(
                LimitReviewRow(
                    e.account,
                    e.name,
                    e.segment,
                    e.currency,
                    e.used,
                    e.authorised,
                    e.usage,
                    e.excess if e.over_limit else None,
                    grade_from,
                    grade_to,
                    reasons,
                )
            )
    # over limit first (most over first), then by usage, highest first
    out.sort(key=lambda x: (x.over_by is None, -(x.over_by or 0), -(x.usage or 0), x.account))
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
    """The customer's exposure under the active rules/exposure.yaml, explained (None if it
    fails: the page still shows everything else)."""
    from cobro.exposure.sql import exposures_for

    try:
        rules = active_rules(engine)
        with engine.connect() as conn:
            found = exposures_for(conn, as_of, rules, ids=[customer_id], explain=True)
    except Exception:
        log.exception("exposure of customer %s", customer_id)
        return None
    return found[0] if found else None


# ---------------------------------------------------------------------- insurer obligations


@dataclass
class ObligationsView:
    """What `cobro insurer obligations`, the page and `GET /api/insurer/obligations` show."""

    as_of: date
    within_days: int | None
    rules_hash: str
    any_terms: bool
    obligations: list[Any]  # cobro.insurers.obligations.Obligation
    totals: dict[str, Any]  # currency -> ObligationTotals

    def as_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "within_days": self.within_days,
            "rules_hash": self.rules_hash,
            "totals": {c: t.as_json() for c, t in sorted(self.totals.items())},
            "obligations": [o.as_json(self.as_of) for o in self.obligations],
        }


def insurer_obligations(
    engine: Engine,
    as_of: date,
    within_days: int | None = None,
    account: str | None = None,
    ruleset: Any = None,
) -> ObligationsView | None:
    """The insured open invoices' obligations under the active rules (None: no such
    customer)."""
    from cobro.insurers.obligations import totals_by_currency
    from cobro.insurers.obligations_sql import ObligationRules, select_obligations
    from cobro.rules.classify import load_active_ruleset

    ruleset = ruleset or load_active_ruleset(engine)
    rules = ObligationRules.of(ruleset)
    with engine.connect() as conn:
        ids = None
        if account is not None:
            cid = conn.scalar(select(Customer.id).where(Customer.account == account))
            if cid is None:
                return None
            ids = [cid]
        rows = list(select_obligations(conn, as_of, rules, within_days, ids))
    return ObligationsView(
        as_of, within_days, ruleset.hash, rules.any_terms, rows, totals_by_currency(rows, as_of)
    )


STOP_SUPPLY_CSV = ["account", "name", "reasons", "since", "cover_status", "outstanding"]
STOP_SUPPLY_CSV += ["overdue_amount"]


def stop_supply_list(engine: Engine, as_of: date, ruleset: Any = None) -> list[Any]:
    """The stop-supply list (`cobro.insurers.stop_supply`) under the active rules: the page,
    the API and its CSV."""
    from cobro.insurers.obligations_sql import ObligationRules
    from cobro.insurers.stop_supply_sql import iter_stop_supply
    from cobro.rules.classify import load_active_ruleset

    rules = ObligationRules.of(ruleset or load_active_ruleset(engine))
    with engine.connect() as conn:
        return list(iter_stop_supply(conn, as_of, rules))


def stop_supply_rows(entries: list[Any]) -> list[list[Any]]:
    return [
        [
            e.account,
            e.name,
            "; ".join(e.reasons),
            e.since,
            e.cover_status,
            e.outstanding,
            e.overdue_amount,
        ]
        for e in entries
    ]
