"""Portfolio KPIs computed in the database, as of any date, per currency.

    kpis = compute_kpis(engine, date(2026, 12, 31))          # every currency
    kpis.currencies["EUR"].dso, kpis.to_json()

Three set-based queries whatever the portfolio size: one pass over the invoices (grouped by
currency × aging bucket × month of issue), one per-customer aggregation (covered share,
over-limit, top debtors, finished with window functions), one over the covers. The SQL is
the same on SQLite and PostgreSQL: dates are compared with bound Python dates, money is
only summed, compared and subtracted in SQL (scaled integers on SQLite, see `cobro.types`)
and every ratio is finished in Python from exact sums, so both databases give identical
Decimals. Amounts of different currencies are never added together. The formulas are
listed below, one line each (N = `period_days`, 90 by default).
"""

from __future__ import annotations

import calendar
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import (
    Date,
    Engine,
    String,
    and_,
    case,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.orm import aliased

from cobro.models import Customer, InsurerCover, Invoice, Payment, PaymentAllocation
from cobro.rules.facts_sql import ACTIVE_STATUSES
from cobro.types import Money

ZERO = Decimal("0.0000")
HUNDRED = Decimal(100)
_2 = Decimal("0.01")
DEFAULT_BUCKETS = (30, 60, 90, 120)
COUNTBACK_MONTHS = 12
EXPIRING_DAYS = 30
TOP_DEBTORS = 10
OVER_LIMIT_LISTED = 50
NOT_DUE = "not due"

# -- formulas (one line each; every ratio is None when its denominator is not positive) --
# open at D      = open_amount + allocations of payments dated after D, invoices issued ≤ D
# receivables    = Σ open at as_of of the invoices open (> 0) at as_of
# credit sales   = Σ amount of the invoices issued in (as_of − N, as_of] (credit notes net)
# DSO            = receivables ÷ credit sales × N
# countback DSO  = whole months walked back from as_of while their sales ≤ what is left
#                  of receivables, plus (left ÷ that month's sales) × its days
# best DSO       = current (not due) receivables ÷ credit sales × N
# ADD            = DSO − best DSO (= overdue receivables ÷ credit sales × N)
# % overdue      = receivables past due (due_date < as_of) ÷ receivables × 100
# CEI            = (begin AR + sales − end AR) ÷ (begin AR + sales − end current AR) × 100
# covered        = Σ per customer min(open at as_of, granted amount of its in-force covers)
# limit          = in-force covers + discretionary limit (same currency or none given)
# over limit     = customers whose open at as_of exceeds their limit, excess = open − limit
# cover in force = status granted/partially_granted/active/reduced, valid on as_of
# expiring cover = in force and valid_until ≤ as_of + 30 days
# expired cover  = granted once, valid_until < as_of, no cover in force for that customer


def _q(value: Decimal) -> Decimal:
    return value.quantize(_2, rounding=ROUND_HALF_UP)


def ratio(numerator: Decimal, denominator: Decimal, scale: Decimal | int = 1) -> Decimal | None:
    """numerator ÷ denominator × scale, 2 places; None when the denominator is not positive."""
    if denominator <= 0:
        return None
    return _q(numerator * Decimal(scale) / denominator)


def dso(receivables: Decimal, sales: Decimal, days: int) -> Decimal | None:
    """DSO = receivables ÷ credit sales × days."""
    return ratio(receivables, sales, days)


def cei(begin: Decimal, sales: Decimal, end: Decimal, end_current: Decimal) -> Decimal | None:
    """CEI = (begin + sales − end) ÷ (begin + sales − end current) × 100."""
    return ratio(begin + sales - end, begin + sales - end_current, HUNDRED)


def countback_dso(receivables: Decimal, months: list[tuple[int, Decimal]]) -> Decimal | None:
    """Countback: `months` = [(days, sales)] from the latest back; None if nothing is owed."""
    if receivables <= 0:
        return None
    left, days = receivables, Decimal(0)
    for month_days, sales in months:
        if sales >= left and sales > 0:
            return _q(days + left / sales * month_days)
        days += month_days
        left -= max(sales, ZERO)
    return _q(days)  # receivables older than the horizon: a lower bound


def months_back(as_of: date, k: int) -> date:
    """as_of moved back k months, the day clamped to the month's length."""
    y, m = divmod(as_of.year * 12 + as_of.month - 1 - k, 12)
    m += 1
    return date(y, m, min(as_of.day, calendar.monthrange(y, m)[1]))


def bucket_labels(buckets: tuple[int, ...]) -> list[str]:
    labels, lo = [NOT_DUE], 1
    for b in buckets:
        labels.append(f"{lo}-{b}")
        lo = b + 1
    return [*labels, f">{buckets[-1]}"]


@dataclass
class Debtor:
    account: str
    name: str
    open: Decimal
    overdue: Decimal
    covered: Decimal
    limit: Decimal | None
    excess: Decimal | None


@dataclass
class CurrencyKpis:
    currency: str
    open_invoices: int
    receivables: Decimal
    current: Decimal
    overdue: Decimal
    overdue_pct: Decimal | None
    aging: dict[str, Decimal]
    credit_sales: Decimal
    beginning_receivables: Decimal
    dso: Decimal | None
    countback_dso: Decimal | None
    best_possible_dso: Decimal | None
    add: Decimal | None
    cei: Decimal | None
    covered: Decimal
    covered_pct: Decimal | None
    over_limit_customers: int
    over_limit_excess: Decimal
    over_limit: list[Debtor] = field(default_factory=list)
    top_debtors: list[Debtor] = field(default_factory=list)
    covers_expiring: int = 0
    covers_expiring_amount: Decimal = ZERO
    covers_expired: int = 0
    covers_expired_amount: Decimal = ZERO


@dataclass
class Kpis:
    as_of: date
    period_days: int
    buckets: list[str]
    currencies: dict[str, CurrencyKpis]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: dates ISO, money and ratios as decimal strings (exact), None as null."""
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal | date):
        return str(value)
    return value


def _money(expr: Any) -> Any:
    return type_coerce(expr, Money())


def compute_kpis(
    engine: Engine,
    as_of: date,
    buckets: tuple[int, ...] = DEFAULT_BUCKETS,
    currency: str | None = None,
    period_days: int = 90,
) -> Kpis:
    buckets = tuple(sorted(buckets))
    if not buckets or buckets[0] < 1 or len(set(buckets)) != len(buckets):
        raise ValueError("aging buckets must be distinct positive day counts")
    if period_days < 1:
        raise ValueError("the DSO period must be at least one day")
    labels = bucket_labels(buckets)
    start = as_of - timedelta(days=period_days)
    zero = literal(ZERO, Money())

    # Allocations of payments dated after the period start, per invoice (those after as_of
    # too): they rebuild the open amounts at as_of and at the period start (CEI).
    later = (
        select(
            PaymentAllocation.invoice_id.label("invoice_id"),
            func.sum(PaymentAllocation.amount).label("after_start"),
            func.sum(PaymentAllocation.amount).filter(Payment.date > as_of).label("after_end"),
        )
        .join(Payment, Payment.id == PaymentAllocation.payment_id)
        .where(Payment.date > start)
        .group_by(PaymentAllocation.invoice_id)
        .cte("later")
    )
    scope = [Invoice.issue_date <= as_of]
    if currency:
        scope.append(Invoice.currency == currency)
    # The only invoices that can be open at as_of or at the period start are those open as
    # stored or touched by a payment after the start (a few percent of the table). One pass
    # picks them with their rebuilt amounts; that small set is materialised once and
    # aggregated twice (by issue × due day, and by customer). Sales come from their own
    # range scan on the issue date. `0` is inlined so that a partial index can serve it.
    rows = (
        select(
            Invoice.customer_id.label("customer_id"),
            Invoice.currency.label("currency"),
            Invoice.issue_date.label("issued"),
            Invoice.due_date.label("due"),
            (Invoice.open_amount + func.coalesce(later.c.after_end, zero)).label("o_end"),
            (Invoice.open_amount + func.coalesce(later.c.after_start, zero)).label("o_start"),
        )
        .select_from(Invoice.__table__.outerjoin(later, later.c.invoice_id == Invoice.id))
        .where(
            *scope,
            or_(Invoice.open_amount > literal_column("0"), later.c.invoice_id.is_not(None)),
        )
        .cte("open_rows")
    )
    o = rows.c

    # 1. by (currency, issue day, due day): a few thousand groups; then into aging buckets ×
    # months of issue (sales rows have no due day, hence no aging bucket)
    bounds = [months_back(as_of, k) for k in range(COUNTBACK_MONTHS + 1)]
    open_by_day = select(
        o.currency,
        o.issued,
        o.due,
        func.count().filter(o.o_end > zero).label("n"),
        _money(func.sum(o.o_end).filter(o.o_end > zero)).label("open"),
        _money(zero).label("amount"),
        _money(func.sum(o.o_start).filter(o.issued <= start, o.o_start > zero)).label("begin"),
    ).group_by(o.currency, o.issued, o.due)
    sales_by_day = (
        select(
            Invoice.currency,
            Invoice.issue_date,
            type_coerce(null(), Date()),
            literal(0),
            zero,
            _money(func.sum(Invoice.amount)),
            zero,
        )
        .where(*scope, Invoice.issue_date > min(start, bounds[-1]))
        .group_by(Invoice.currency, Invoice.issue_date)
    )
    by_day = union_all(open_by_day, sales_by_day).subquery()
    g = by_day.c
    whens = [(g.due.is_(None), None), (g.due >= as_of, 0)]
    whens += [(g.due >= as_of - timedelta(days=b), i + 1) for i, b in enumerate(buckets)]
    age = case(*whens, else_=len(buckets) + 1)
    month = case(*[(g.issued > bounds[k + 1], k) for k in range(COUNTBACK_MONTHS)], else_=None)
    # main rows and debtor rows come back from one statement: kind, currency, 2 texts,
    # 3 integers, 7 amounts
    main = select(
        literal(0).label("kind"),
        g.currency.label("currency"),
        type_coerce(null(), String()).label("account"),
        type_coerce(null(), String()).label("name"),
        age.label("i1"),
        month.label("i2"),
        func.sum(g.n).label("i3"),
        _money(func.sum(g.open)).label("m1"),
        _money(func.sum(case((g.issued > start, g.amount), else_=zero))).label("m2"),
        _money(func.sum(g.amount)).label("m3"),
        _money(func.sum(g.begin)).label("m4"),
        _money(null()).label("m5"),
        _money(null()).label("m6"),
        _money(null()).label("m7"),
    ).group_by(g.currency, age, month)

    # 2. per customer and currency: open, overdue, cover, limit, excess, ranks and totals
    per_customer = (
        select(
            o.customer_id,
            o.currency,
            _money(func.sum(o.o_end)).label("open"),
            _money(func.coalesce(func.sum(o.o_end).filter(o.due < as_of), zero)).label("overdue"),
        )
        .where(o.o_end > zero)
        .group_by(o.customer_id, o.currency)
        .cte("per_customer")
    )
    status = func.lower(InsurerCover.status)
    in_force = and_(
        status.in_(list(ACTIVE_STATUSES)),
        or_(InsurerCover.valid_from.is_(None), InsurerCover.valid_from <= as_of),
        or_(InsurerCover.valid_until.is_(None), InsurerCover.valid_until >= as_of),
    )
    cover = (
        select(
            InsurerCover.customer_id.label("customer_id"),
            InsurerCover.currency.label("currency"),
            func.sum(func.coalesce(InsurerCover.granted_amount, zero)).label("granted"),
        )
        .where(in_force, InsurerCover.customer_id.is_not(None))
        .group_by(InsurerCover.customer_id, InsurerCover.currency)
        .cte("cover")
    )
    pc, cv = per_customer.c, cover.c
    own = case(
        (
            or_(
                Customer.discretionary_limit_currency.is_(None),
                Customer.discretionary_limit_currency == pc.currency,
            ),
            Customer.discretionary_limit,
        ),
        else_=None,
    )
    limit = case(
        (and_(cv.granted.is_(None), own.is_(None)), None),
        else_=func.coalesce(cv.granted, zero) + func.coalesce(own, zero),
    )
    covered = case((cv.granted.is_(None), zero), (cv.granted < pc.open, cv.granted), else_=pc.open)
    excess = case((pc.open > limit, pc.open - limit), else_=None)
    ranked = (
        select(
            pc.currency,
            Customer.account,
            Customer.name,
            pc.open,
            pc.overdue,
            covered.label("covered"),
            limit.label("limit_"),
            excess.label("excess"),
            func.row_number()
            .over(partition_by=pc.currency, order_by=(pc.open.desc(), Customer.account))
            .label("rank_open"),
            func.row_number()
            .over(
                partition_by=pc.currency,
                order_by=(case((excess.is_(None), 1), else_=0), excess.desc(), Customer.account),
            )
            .label("rank_excess"),
            func.sum(covered).over(partition_by=pc.currency).label("total_covered"),
            func.count(excess).over(partition_by=pc.currency).label("n_over"),
            func.sum(excess).over(partition_by=pc.currency).label("total_excess"),
        )
        .select_from(per_customer)
        .join(Customer, Customer.id == pc.customer_id)
        .outerjoin(cover, and_(cv.customer_id == pc.customer_id, cv.currency == pc.currency))
        .subquery()
    )
    r = ranked.c
    debtors = select(
        literal(1),
        r.currency,
        r.account,
        r.name,
        r.rank_open,
        r.rank_excess,
        r.n_over,
        _money(r.open),
        _money(r.overdue),
        _money(r.covered),
        _money(r.limit_),
        _money(r.excess),
        _money(r.total_covered),
        _money(r.total_excess),
    ).where(
        or_(
            r.rank_open <= TOP_DEBTORS,
            and_(r.excess.is_not(None), r.rank_excess <= OVER_LIMIT_LISTED),
        )
    )

    # 3. covers expiring soon / expired without a cover in force to replace them
    other = aliased(InsurerCover)
    other_in_force = and_(
        func.lower(other.status).in_(list(ACTIVE_STATUSES)),
        or_(other.valid_from.is_(None), other.valid_from <= as_of),
        or_(other.valid_until.is_(None), other.valid_until >= as_of),
    )
    expiring = and_(in_force, InsurerCover.valid_until <= as_of + timedelta(days=EXPIRING_DAYS))
    live = (
        select(other.customer_id.label("cid"), other.currency.label("cur"))
        .where(other_in_force, other.customer_id.is_not(None))
        .group_by(other.customer_id, other.currency)
        .subquery("live")
    )
    expired = and_(
        status.in_([*ACTIVE_STATUSES, "expired"]),
        InsurerCover.valid_until < as_of,
        live.c.cid.is_(None),
    )
    covers = (
        select(
            InsurerCover.currency,
            func.count(case((expiring, 1), else_=None)),
            _money(func.sum(case((expiring, InsurerCover.granted_amount), else_=zero))),
            func.count(case((expired, 1), else_=None)),
            _money(func.sum(case((expired, InsurerCover.granted_amount), else_=zero))),
        )
        .select_from(InsurerCover)
        .outerjoin(
            live, and_(live.c.cid == InsurerCover.customer_id, live.c.cur == InsurerCover.currency)
        )
        .group_by(InsurerCover.currency)
    )
    if currency:
        covers = covers.where(InsurerCover.currency == currency)

    both, cover_rows = _run_concurrently(engine, [union_all(main, debtors), covers])
    main_rows = [(row[1], row[4], row[5], row[6], *row[7:11]) for row in both if row[0] == 0]
    debtor_rows = [
        (*row[1:4], *row[7:12], row[4], row[5], row[12], int(row[6]), row[13])
        for row in both
        if row[0] == 1
    ]

    return assemble(as_of, period_days, buckets, labels, main_rows, debtor_rows, cover_rows, bounds)


def _run_concurrently(engine: Engine, statements: list[Any]) -> list[list[Any]]:
    """The independent queries at once, one connection each: PostgreSQL runs them on
    different cores (SQLite's WAL lets readers run side by side too)."""

    def run(statement: Any) -> list[Any]:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # JIT compiling costs more than it saves on these short aggregates, and the
                # per-invoice hash aggregate must not spill to disk
                conn.exec_driver_sql("SET LOCAL jit = off")
                conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
            return list(conn.execute(statement).all())

    with ThreadPoolExecutor(max_workers=len(statements)) as pool:
        return list(pool.map(run, statements))


def assemble(
    as_of: date,
    period_days: int,
    buckets: tuple[int, ...],
    labels: list[str],
    main_rows: Any,
    debtor_rows: Any,
    cover_rows: Any,
    bounds: list[date],
) -> Kpis:
    """The KPIs from the aggregated rows (shared with the benchmark's Python baseline)."""
    sums: dict[str, dict[str, Any]] = {}

    def acc(cur: str) -> dict[str, Any]:
        return sums.setdefault(
            cur,
            {
                "count": 0,
                "aging": [ZERO] * len(labels),
                "sales": ZERO,
                "months": [ZERO] * COUNTBACK_MONTHS,
                "begin": ZERO,
            },
        )

    for cur, age, month, count, open_, sales, amount, begin in main_rows:
        a = acc(cur)
        a["count"] += int(count or 0)
        if age is not None:
            a["aging"][age] += open_ or ZERO
        a["sales"] += sales or ZERO
        if month is not None:
            a["months"][month] += amount or ZERO
        a["begin"] += begin or ZERO
    month_days = [(bounds[k] - bounds[k + 1]).days for k in range(COUNTBACK_MONTHS)]
    result: dict[str, CurrencyKpis] = {}
    for cur in sorted(sums):
        a = sums[cur]
        total = sum(a["aging"], ZERO)
        current = a["aging"][0]
        overdue = total - current
        std = dso(total, a["sales"], period_days)
        best = dso(current, a["sales"], period_days)
        result[cur] = CurrencyKpis(
            currency=cur,
            open_invoices=a["count"],
            receivables=total,
            current=current,
            overdue=overdue,
            overdue_pct=ratio(overdue, total, HUNDRED),
            aging=dict(zip(labels, a["aging"], strict=True)),
            credit_sales=a["sales"],
            beginning_receivables=a["begin"],
            dso=std,
            countback_dso=countback_dso(total, list(zip(month_days, a["months"], strict=True))),
            best_possible_dso=best,
            add=None if std is None or best is None else std - best,
            cei=cei(a["begin"], a["sales"], total, current),
            covered=ZERO,
            covered_pct=ratio(ZERO, total, HUNDRED),
            over_limit_customers=0,
            over_limit_excess=ZERO,
        )
    for row in debtor_rows:
        (cur, account, name, open_, overdue, covered, limit, excess, rank_open, rank_excess) = row[
            :10
        ]
        total_covered, n_over, total_excess = row[10:]
        k = result.get(cur)
        if k is None:
            continue
        k.covered = total_covered or ZERO
        k.covered_pct = ratio(k.covered, k.receivables, HUNDRED)
        k.over_limit_customers = n_over
        k.over_limit_excess = total_excess or ZERO
        d = Debtor(account, name, open_, overdue, covered, limit, excess)
        if rank_open <= TOP_DEBTORS:
            k.top_debtors.append((rank_open, d))  # type: ignore[arg-type]
        if excess is not None and rank_excess <= OVER_LIMIT_LISTED:
            k.over_limit.append((rank_excess, d))  # type: ignore[arg-type]
    for k in result.values():
        k.top_debtors = [d for _, d in sorted(k.top_debtors, key=lambda t: t[0])]  # type: ignore[misc]
        k.over_limit = [d for _, d in sorted(k.over_limit, key=lambda t: t[0])]  # type: ignore[misc]
    for cur, n_expiring, expiring_amount, n_expired, expired_amount in cover_rows:
        if cur not in result:
            continue  # covers in a currency without receivables: nothing to report against
        k = result[cur]
        k.covers_expiring, k.covers_expiring_amount = n_expiring, expiring_amount or ZERO
        k.covers_expired, k.covers_expired_amount = n_expired, expired_amount or ZERO
    return Kpis(as_of, period_days, labels, result)
