"""The forecast's queries: the history, what was open, the cash that came in, as of any day
t, from the data as it was then (invoices issued by t, payments dated by t). The same SQL on
SQLite and PostgreSQL; the model itself is in `cobro.forecast.model`.

Open at t = open now + the allocations of payments dated after t (allocations carry copies of
their invoice's customer, currency and dates), invoices issued by t — as in `cobro.kpis`.
Days are compared with bound Python dates and counted with `days_between`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Connection,
    Date,
    and_,
    case,
    distinct,
    false,
    func,
    literal,
    literal_column,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.orm import aliased

from cobro.forecast.model import (
    L_MAX,
    L_MIN,
    WINDOW_DAYS,
    LatenessSums,
    OpenGroup,
    Profile,
    SurvivalCounts,
)
from cobro.models import ForecastProfile, ImportRun, Invoice, PaymentAllocation, TimelineEvent
from cobro.rules.facts_sql import days_between
from cobro.types import Money


def _clamp(expr: Any, lo: int, hi: int) -> Any:
    return case((expr < lo, lo), (expr > hi, hi), else_=expr)


def _day(value: date) -> Any:
    return literal(value, Date())


def _money_sum(expr: Any) -> Any:
    return type_coerce(func.sum(expr), Money())


def _window(as_of: date) -> tuple[date, date]:
    return as_of - timedelta(days=WINDOW_DAYS), as_of


# ------------------------------------------------------------------------- history


def lateness_sums(conn: Connection, as_of: date) -> dict[int, LatenessSums]:
    """Per customer: n, ΣL, ΣL² of the days late (clamped) of the allocations of payments
    dated in (as_of − 365, as_of]."""
    a = PaymentAllocation
    start, end = _window(as_of)
    late = _clamp(days_between(conn, a.payment_date, a.due_date), L_MIN, L_MAX).label("late")
    per_allocation = (
        select(a.customer_id.label("customer_id"), late)
        .where(a.payment_date > start, a.payment_date <= end)
        .subquery()
    )
    q = per_allocation.c
    rows = conn.execute(
        select(q.customer_id, func.count(), func.sum(q.late), func.sum(q.late * q.late)).group_by(
            q.customer_id
        )
    )
    return {cid: LatenessSums(int(n), int(s1), int(s2)) for cid, n, s1, s2 in rows}


def _entry(conn: Connection, issue: Any, due: Any, start: date) -> Any:
    """Lateness on the day before the observation becomes visible: the window's start or
    the day before issue, whichever is later (at risk from the next day on)."""
    return case(
        (issue > start, days_between(conn, issue, due) - 1),
        else_=days_between(conn, _day(start), due),
    )


def survival_counts(conn: Connection, as_of: date) -> SurvivalCounts:
    """Kaplan–Meier inputs (see `cobro.forecast.model`): the window's paid allocations by
    entry and by days late, and the invoices open at as_of by entry and by age. Invoices
    visible only beyond L_MAX are left out."""
    a, i = PaymentAllocation, Invoice
    start, end = _window(as_of)
    still_open = aliased(Invoice, name="still_open")

    paid_entry = _entry(conn, a.issue_date, a.due_date, start)
    paid = (
        select(
            _clamp(paid_entry, L_MIN - 1, L_MAX).label("entry"),
            _clamp(days_between(conn, a.payment_date, a.due_date), L_MIN, L_MAX).label("late"),
            func.count().label("n"),
        )
        .where(a.payment_date > start, a.payment_date <= end, paid_entry < L_MAX)
        .group_by(literal_column("1"), literal_column("2"))
    )
    open_now_entry = _entry(conn, i.issue_date, i.due_date, start)
    open_now = (
        select(
            _clamp(open_now_entry, L_MIN - 1, L_MAX).label("entry"),
            _clamp(days_between(conn, _day(end), i.due_date), L_MIN, L_MAX).label("age"),
            func.count().label("n"),
        )
        .where(i.open_amount > literal_column("0"), i.issue_date <= end, open_now_entry < L_MAX)
        .group_by(literal_column("1"), literal_column("2"))
    )
    # paid in full since as_of: open at as_of, one row per invoice whatever its allocations
    later_entry = _entry(conn, a.issue_date, a.due_date, start)
    paid_since = (
        select(
            _clamp(later_entry, L_MIN - 1, L_MAX).label("entry"),
            _clamp(days_between(conn, _day(end), a.due_date), L_MIN, L_MAX).label("age"),
            func.count(distinct(a.invoice_id)).label("n"),
        )
        .outerjoin(
            still_open,
            and_(still_open.id == a.invoice_id, still_open.open_amount > literal_column("0")),
        )
        .where(
            a.payment_date > end,
            a.issue_date <= end,
            still_open.id.is_(None),
            later_entry < L_MAX,
        )
        .group_by(literal_column("1"), literal_column("2"))
    )
    entries: dict[int, int] = defaultdict(int)
    events: dict[int, int] = defaultdict(int)
    censored: dict[int, int] = defaultdict(int)
    for entry, late, n in conn.execute(paid):
        entries[int(entry)] += int(n)
        events[int(late)] += int(n)
    for statement in (open_now, paid_since):
        for entry, age, n in conn.execute(statement):
            entries[int(entry)] += int(n)
            censored[int(age)] += int(n)
    return SurvivalCounts(dict(entries), dict(events), dict(censored))


# ------------------------------------------------------------------------- open at as_of


def _open_at(conn: Connection, as_of: date) -> Any:
    """(customer_id, currency, disputed, due_date, amount) rows whose sums are the amounts
    open at as_of: invoices open now, plus the allocations dated after as_of (none when
    as_of is today: that part is left out then). Disputed is the flag as it is now; an
    invoice paid since as_of counts as not disputed."""
    a, i = PaymentAllocation, Invoice
    open_now = select(
        i.customer_id.label("customer_id"),
        i.currency.label("currency"),
        i.disputed.label("disputed"),
        i.due_date.label("due_date"),
        i.open_amount.label("amount"),
    ).where(i.open_amount > literal_column("0"), i.issue_date <= as_of)
    if conn.scalar(select(a.id).where(a.payment_date > as_of).limit(1)) is None:
        return open_now.subquery()
    return union_all(
        open_now,
        select(a.customer_id, a.currency, false(), a.due_date, a.amount).where(
            a.payment_date > as_of, a.issue_date <= as_of
        ),
    ).subquery()


def open_groups(conn: Connection, as_of: date, default: Profile) -> list[OpenGroup]:
    """Amounts open at as_of by currency, disputed, spread step and days past the expected
    date, each customer's profile read from `forecast_profiles` (`default` for customers
    without one: no payment in the 12 months)."""
    opened = _open_at(conn, as_of)
    o = opened.c
    p = ForecastProfile
    step = func.coalesce(p.spread_step, default.spread_step)
    past = days_between(conn, _day(as_of), o.due_date) - func.coalesce(
        p.delay_days, default.delay_days
    )
    rows = conn.execute(
        select(o.currency, o.disputed, step, past, _money_sum(o.amount))
        .select_from(opened)
        .outerjoin(p, and_(p.as_of == as_of, p.customer_id == o.customer_id))
        .group_by(o.currency, o.disputed, step, past)
    )
    return [
        OpenGroup(currency, bool(disputed), int(s), int(x), Decimal(total))
        for currency, disputed, s, x, total in rows
    ]


def due_groups(conn: Connection, as_of: date) -> list[tuple[str, bool, date, Decimal]]:
    """Amounts open at as_of by currency, disputed and due date (for the naive baselines)."""
    o = _open_at(conn, as_of).c
    rows = conn.execute(
        select(o.currency, o.disputed, o.due_date, _money_sum(o.amount)).group_by(
            o.currency, o.disputed, o.due_date
        )
    )
    return [(c, bool(d), due, Decimal(total)) for c, d, due, total in rows]


# ------------------------------------------------------------------------- what came in


def cash_in(conn: Connection, as_of: date, days: int) -> dict[str, dict[date, Decimal]]:
    """Cash that came in during (as_of, as_of + days] against the invoices open at as_of
    (issued by then), per currency and payment date."""
    a = PaymentAllocation
    rows = conn.execute(
        select(a.currency, a.payment_date, _money_sum(a.amount))
        .where(
            a.payment_date > as_of,
            a.payment_date <= as_of + timedelta(days=days),
            a.issue_date <= as_of,
        )
        .group_by(a.currency, a.payment_date)
    )
    out: dict[str, dict[date, Decimal]] = defaultdict(dict)
    for currency, day, total in rows:
        out[currency][day] = Decimal(total)
    return dict(out)


def last_payment_date(conn: Connection) -> date | None:
    return conn.scalar(select(func.max(PaymentAllocation.payment_date)))


def fingerprints(conn: Connection) -> tuple[str, str]:
    """(history, open): what the profiles depend on, and what the open amounts depend on,
    read from primary keys. History: the newest allocation, invoice and import run (every
    import records a run, so a re-import that changed due dates or amounts changes it).
    Open: that and the newest timeline event (disputes opened or resolved by a collector
    land there)."""
    last = conn.execute(
        select(
            select(func.max(PaymentAllocation.id)).scalar_subquery(),
            select(func.max(Invoice.id)).scalar_subquery(),
            select(func.max(ImportRun.id)).scalar_subquery(),
            select(func.max(TimelineEvent.id)).scalar_subquery(),
        )
    ).one()
    history = ":".join("-" if v is None else str(v) for v in last[:3])
    return history, f"{history}:{'-' if last[3] is None else last[3]}"
