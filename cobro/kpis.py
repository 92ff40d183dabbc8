"""Portfolio KPIs computed in the database, as of any date, per currency.

    kpis = compute_kpis(engine, date(2026, 12, 31))          # every currency
    kpis.currencies["EUR"].dso, kpis.to_json()

Four set-based statements whatever the portfolio size, run at once on their own
connections: receivables (open at as_of by aging bucket, invoices open, receivables at the
period start), credit sales by day of issue, debtors (per customer: open, overdue, covered;
the top debtors, with the currency's covered total) and covers; beside them the portfolio's
exposure (`cobro.exposure.book`), the one source of limits and of "over limit".
None of them visits the paid invoices: what was open on a past day comes from the invoices
open now (a partial index) plus the allocations dated after that day (an index on the
payment date; allocations carry copies of their invoice's customer, currency and dates).
The SQL is the same on SQLite and PostgreSQL: dates are compared with bound Python dates,
money is only summed, compared and subtracted in SQL (scaled integers on SQLite, see
`cobro.types`) and every ratio is finished in Python from exact sums, so both databases
give identical Decimals. Amounts of different currencies are never added together. The
formulas are listed below, one line each (N = `period_days`, 90 by default), each with its
source:

[CRF] Credit Research Foundation, "National Summary of Domestic Trade Receivables": the
      formulas of its quarterly survey and calculator (DSO, Best Possible DSO, Average Days
      Delinquent = DSO − Best Possible DSO, Collection Effectiveness Index, Percent Current).
[CB]  The countback method as Credit Today describes it ("Why You Should Switch to the
      Countback Method to Calculate DSO"): from the month-end *net* A/R, take away the
      current month's credit sales, then each earlier month's, counting each month's actual
      days; the month where the balance runs out counts pro rata.

Credit notes: receivables are *net* of the open credit notes (their open amounts are
negative), as credit sales are net of the credit notes issued, so both sides of every ratio
are measured the same way. A credit note is aged by its due date like any open item (an
aged trial balance). Every ratio and every figure derived from ratios (ADD) is computed from
exact, unrounded values and rounded once, at the end, to 2 places (half up).

`compute_kpis(..., obligations=True)` (the CLI, pages and API) adds the insurer-obligation
figures (`obligation_totals`): deadlines missed and the amount at risk of losing cover.
"""

from __future__ import annotations

import calendar
import copy
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import (
    Date,
    Engine,
    Integer,
    and_,
    case,
    distinct,
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

from cobro.exposure.book import ExposureBook, portfolio_exposures
from cobro.exposure.compute import Exposure, ExposureRules
from cobro.formatting import jsonable
from cobro.models import Customer, InsurerCover, Invoice, PaymentAllocation
from cobro.rules.facts_sql import ACTIVE_STATUSES, cover_in_force
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

# -- formulas (one line each, its source in brackets; every ratio is None when its
#    denominator is not positive)
# open at D      = open_amount + allocations of payments dated after D, items issued ≤ D
# receivables    = Σ open at as_of of the open invoices and open credit notes (net A/R) [CB]
# credit sales   = Σ amount of the invoices and credit notes issued in (as_of − N, as_of] [CRF]
# DSO            = receivables ÷ credit sales × N                                      [CRF]
# countback DSO  = calendar months back from as_of's month while their sales ≤ what is left
#                  of receivables, each its days, then (left ÷ that month's sales) × its days
#                  [CB]; mid-month, the current month is the 1st to as_of (as_of.day days)
# best DSO       = current (not due) receivables ÷ credit sales × N                    [CRF]
# ADD            = DSO − best DSO, unrounded (= overdue receivables ÷ credit sales × N)  [CRF]
# % overdue      = 100 − % current = receivables past due (due_date < as_of) ÷ receivables [CRF]
# CEI            = (begin AR + sales − end AR) ÷ (begin AR + sales − end current AR) × 100 [CRF]
# covered        = Σ per customer min(open at as_of, granted amount of its in-force covers)
# limit, over limit, excess = the exposure engine's authorised, used > authorised and
#                  used − authorised (`rules/exposure.yaml`, `cobro.exposure.book`): the
#                  same figures as `cobro exposure`, the customers list and the limit review
# cover in force = status granted/partially_granted/active/reduced, valid on as_of
# expiring cover = in force and valid_until ≤ as_of + 30 days
# expired cover  = granted once, valid_until < as_of, no cover in force for that customer


def _q(value: Decimal) -> Decimal:
    return value.quantize(_2, rounding=ROUND_HALF_UP)


def exact_ratio(
    numerator: Decimal, denominator: Decimal, scale: Decimal | int = 1
) -> Decimal | None:
    """numerator ÷ denominator × scale, unrounded; None when the denominator is not positive."""
    if denominator <= 0:
        return None
    return numerator * Decimal(scale) / denominator


def ratio(numerator: Decimal, denominator: Decimal, scale: Decimal | int = 1) -> Decimal | None:
    """numerator ÷ denominator × scale, 2 places; None when the denominator is not positive."""
    value = exact_ratio(numerator, denominator, scale)
    return None if value is None else _q(value)


def dso(receivables: Decimal, sales: Decimal, days: int) -> Decimal | None:
    """DSO = receivables ÷ credit sales × days [CRF]."""
    return ratio(receivables, sales, days)


def add_days(receivables: Decimal, current: Decimal, sales: Decimal, days: int) -> Decimal | None:
    """ADD = DSO − best possible DSO [CRF], both unrounded, rounded once: never the
    difference of two rounded figures (150.00 − 15.31 = 134.69 where it is 134.70)."""
    std, best = exact_ratio(receivables, sales, days), exact_ratio(current, sales, days)
    return None if std is None or best is None else _q(std - best)


def cei(begin: Decimal, sales: Decimal, end: Decimal, end_current: Decimal) -> Decimal | None:
    """CEI = (begin + sales − end) ÷ (begin + sales − end current) × 100 [CRF]."""
    return ratio(begin + sales - end, begin + sales - end_current, HUNDRED)


def countback_dso(receivables: Decimal, months: list[tuple[int, Decimal]]) -> Decimal | None:
    """Countback [CB]: `months` = [(days, sales)], the current month first, then each
    calendar month before it; None if nothing is owed."""
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


def month_start(day: date, k: int = 0) -> date:
    """The first day of the calendar month k months before `day`'s."""
    y, m = divmod(day.year * 12 + day.month - 1 - k, 12)
    return date(y, m + 1, 1)


def countback_months(as_of: date, months: int = COUNTBACK_MONTHS) -> list[tuple[date, date]]:
    """The countback's calendar months, the current one first: (first day, last day counted).
    The current month runs from its 1st to as_of: all of it at a month end, the month to
    date in mid-month (the convention stated in the README); the others are whole."""
    out = []
    for k in range(months):
        first = month_start(as_of, k)
        last = as_of if k == 0 else month_start(as_of, k - 1) - timedelta(days=1)
        out.append((first, last))
    return out


def bucket_labels(buckets: tuple[int, ...]) -> list[str]:
    labels, lo = [NOT_DUE], 1
    for b in buckets:
        labels.append(f"{lo}-{b}")
        lo = b + 1
    return [*labels, f">{buckets[-1]}"]


@dataclass
class Debtor:
    """A top debtor (open, overdue, covered at as_of) or a customer over limit (open and
    overdue: the exposure's used and its overdue part); limit and excess are the exposure
    engine's authorised and used − authorised (excess None when within the limit)."""

    account: str
    name: str
    open: Decimal
    overdue: Decimal
    covered: Decimal
    limit: Decimal | None
    excess: Decimal | None


def over_limit_debtor(e: Exposure) -> Debtor:
    overdue = e.used_parts.get("overdue", ZERO) + e.used_parts.get("disputed_overdue", ZERO)
    covered = min(e.used, e.insured)
    return Debtor(e.account, e.name, e.used, overdue, covered, e.authorised, e.excess)


@dataclass
class CurrencyKpis:
    currency: str
    open_invoices: int
    receivables: Decimal  # net: the open credit notes are netted
    credit_notes: Decimal  # the open credit notes at as_of (≤ 0), included in receivables
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
    # insurer obligations (`cobro.insurers.obligations`; with `obligations=True`)
    insurer_deadlines_missed: int = 0  # goal: zero
    insurer_deadlines_missed_amount: Decimal = ZERO
    amount_at_risk_of_losing_cover: Decimal = ZERO
    expected_indemnity: Decimal = ZERO


@dataclass
class Kpis:
    as_of: date
    period_days: int
    buckets: list[str]
    currencies: dict[str, CurrencyKpis]

    def shown(self) -> dict[str, CurrencyKpis]:
        """The currencies with something open at as_of (what the tiles and tables show)."""
        return {c: k for c, k in self.currencies.items() if k.open_invoices or k.receivables}

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: dates ISO, money and ratios as decimal strings (exact), None as null."""
        return jsonable(asdict(self))


def _money(expr: Any) -> Any:
    return type_coerce(expr, Money())


def compute_kpis(
    engine: Engine,
    as_of: date,
    buckets: tuple[int, ...] = DEFAULT_BUCKETS,
    currency: str | None = None,
    period_days: int = 90,
    obligations: bool = False,
    exposure_rules: ExposureRules | None = None,
) -> Kpis:
    """The KPIs as of `as_of`; `obligations=True` adds the insurer-obligation figures under
    the active rules (`obligation_totals`); limits from `exposure_rules` (default: the
    active ones). Computed once per state of the data and rules (`cobro.portfolio_cache`);
    each caller gets its own copy."""
    from cobro.exposure.rulefile import rules_of
    from cobro.portfolio_cache import cached
    from cobro.rules.classify import load_active_ruleset

    buckets = tuple(sorted(buckets))
    if not buckets or buckets[0] < 1 or len(set(buckets)) != len(buckets):
        raise ValueError("aging buckets must be distinct positive day counts")
    if period_days < 1:
        raise ValueError("the DSO period must be at least one day")
    ruleset = load_active_ruleset(engine)
    rules = exposure_rules if exposure_rules is not None else rules_of(ruleset)

    def compute() -> Kpis:
        return _compute_kpis(engine, as_of, buckets, currency, period_days, obligations, rules)

    key = ("kpis", as_of, buckets, currency, period_days, obligations, rules, ruleset.hash)
    with engine.connect() as conn:
        return copy.deepcopy(cached(conn, key, compute))


def _compute_kpis(
    engine: Engine,
    as_of: date,
    buckets: tuple[int, ...],
    currency: str | None,
    period_days: int,
    obligations: bool,
    exposure_rules: ExposureRules,
) -> Kpis:
    labels = bucket_labels(buckets)
    start = as_of - timedelta(days=period_days)
    months = countback_months(as_of)
    statements = [
        _receivables_statement(as_of, start, buckets, currency),
        _sales_statement(as_of, start, months, currency),
        _debtors_statement(as_of, currency),
        _covers_statement(as_of, currency),
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:  # each waits on the database mostly
        book = pool.submit(portfolio_exposures, engine, as_of, exposure_rules)
        owed = pool.submit(obligation_totals, engine, as_of) if obligations else None
        receivables, sales, debtors, cover_rows = run_concurrently(engine, statements)
        exposures = book.result()
        totals = owed.result() if owed is not None else {}
    main_rows = [*receivables, *sales]
    kpis = assemble(
        as_of, period_days, buckets, labels, main_rows, debtors, cover_rows, months, exposures
    )
    apply_obligation_totals(kpis, totals, currency)
    return kpis


def obligation_totals(engine: Engine, as_of: date) -> dict[str, Any]:
    """deadlines missed   = insured open invoices whose declaration deadline has passed with
                            no declaration recorded (the goal is zero)
    at risk of losing cover = Σ eligible amount whose declare-by falls within insurance.yaml's
                            `at_risk_within_days`
    (`cobro.insurers.obligations`, today's open invoices and the active rules' terms)."""
    from cobro.insurers.obligations_sql import ObligationRules, portfolio_totals
    from cobro.rules.classify import load_active_ruleset

    rules = ObligationRules.of(load_active_ruleset(engine))
    if not rules.any_terms:
        return {}
    with engine.connect() as conn:
        return dict(portfolio_totals(conn, as_of, rules))


def apply_obligation_totals(kpis: Kpis, totals: dict[str, Any], currency: str | None) -> None:
    for cur, t in totals.items():
        k = kpis.currencies.get(cur)
        if k is None or (currency is not None and cur != currency):
            continue
        k.insurer_deadlines_missed = t.deadlines_missed
        k.insurer_deadlines_missed_amount = t.missed_amount
        k.amount_at_risk_of_losing_cover = t.at_risk_amount
        k.expected_indemnity = t.expected_indemnity


# Which invoices are open on day D, and for how much, without visiting the paid ones:
# open at D = open_amount + allocations of payments dated after D, and both terms are ≥ 0
# (allocations are > 0; credit notes, the only negative open amounts, never get any). So an
# invoice is open at D exactly when it is open now or one of its allocations is dated after
# D, and the amounts open at D are the open invoices' open amounts plus those allocations.
# Both sets come from one index each: the open invoices (a partial index) and the
# allocations by payment date, which carry their invoice's customer, currency and dates.


def _open_invoices(as_of: date, currency: str | None) -> list[Any]:
    """Invoices open now and issued by as_of (`0` inlined so the partial index serves it)."""
    where = [Invoice.open_amount > literal_column("0"), Invoice.issue_date <= as_of]
    if currency:
        where.append(Invoice.currency == currency)
    return where


def _open_credit_notes(as_of: date, currency: str | None) -> list[Any]:
    """Credit notes open now and issued by as_of (`0` inlined for their partial index).
    They never receive allocations, so what is open now was open at as_of."""
    where = [Invoice.open_amount < literal_column("0"), Invoice.issue_date <= as_of]
    if currency:
        where.append(Invoice.currency == currency)
    return where


def _paid_after(day: date, issued_by: date, currency: str | None) -> list[Any]:
    """Allocations of payments dated after `day` to invoices issued by `issued_by`."""
    a = PaymentAllocation
    where = [a.payment_date > day, a.issue_date <= issued_by]
    if currency:
        where.append(a.currency == currency)
    return where


def _aging(due: Any, as_of: date, buckets: tuple[int, ...]) -> Any:
    whens = [(due >= as_of, 0)]
    whens += [(due >= as_of - timedelta(days=b), i + 1) for i, b in enumerate(buckets)]
    return case(*whens, else_=len(buckets) + 1)


def _receivables_statement(
    as_of: date, start: date, buckets: tuple[int, ...], currency: str | None
) -> Any:
    """Main rows (currency, age, month, count, open, credit, sales, amount, begin) for the
    amounts open at as_of by aging bucket (net of the open credit notes, also summed apart
    as `credit`), the number of invoices open, and the receivables at the period start
    (CEI)."""
    i, a = Invoice, PaymentAllocation
    zero = literal(ZERO, Money())
    # invoices open at as_of, amounts open at as_of and at the start, by (currency, due day),
    # from each source; an invoice open now that also has an allocation dated after as_of
    # is counted once
    still_open = aliased(Invoice, name="still_open")
    parts = union_all(
        select(
            i.currency.label("currency"),
            i.due_date.label("due"),
            func.count().label("n"),
            _money(func.sum(i.open_amount)).label("open"),
            zero.label("credit"),
            _money(
                func.coalesce(func.sum(i.open_amount).filter(i.issue_date <= start), zero)
            ).label("begin"),
        )
        .where(*_open_invoices(as_of, currency))
        .group_by(i.currency, i.due_date),
        select(
            i.currency,
            i.due_date,
            literal(0),
            _money(func.sum(i.open_amount)),
            _money(func.sum(i.open_amount)),
            _money(func.coalesce(func.sum(i.open_amount).filter(i.issue_date <= start), zero)),
        )
        .where(*_open_credit_notes(as_of, currency))
        .group_by(i.currency, i.due_date),
        select(
            a.currency,
            a.due_date,
            func.count(distinct(case((still_open.id.is_(None), a.invoice_id), else_=None))),
            _money(func.sum(a.amount)),
            zero,
            zero,
        )
        .outerjoin(
            still_open,
            and_(still_open.id == a.invoice_id, still_open.open_amount > literal_column("0")),
        )
        .where(*_paid_after(as_of, as_of, currency))
        .group_by(a.currency, a.due_date),
        select(
            a.currency,
            type_coerce(null(), Date()),
            literal(0),
            zero,
            zero,
            _money(func.sum(a.amount)),
        )
        .where(*_paid_after(start, start, currency))
        .group_by(a.currency),
    ).subquery()
    p = parts.c
    age = case((p.due.is_(None), None), else_=_aging(p.due, as_of, buckets))
    return select(
        p.currency,
        age,
        type_coerce(null(), Integer()),
        func.sum(p.n),
        _money(func.sum(p.open)),
        _money(func.sum(p.credit)),
        zero,
        zero,
        _money(func.sum(p.begin)),
    ).group_by(p.currency, age)


def _sales_statement(
    as_of: date, start: date, months: list[tuple[date, date]], currency: str | None
) -> Any:
    """Main rows with the credit sales of the period and of each countback month (credit
    notes netted: their amounts are negative)."""
    i = Invoice
    where = [i.issue_date <= as_of, i.issue_date > min(start, months[-1][0] - timedelta(days=1))]
    if currency:
        where.append(i.currency == currency)
    by_day = (
        select(i.currency, i.issue_date.label("issued"), func.sum(i.amount).label("amount"))
        .where(*where)
        .group_by(i.currency, i.issue_date)
        .subquery()
    )
    g = by_day.c
    zero = literal(ZERO, Money())
    month = case(*[(g.issued >= first, k) for k, (first, _) in enumerate(months)], else_=None)
    return select(
        g.currency,
        type_coerce(null(), Integer()),
        month,
        literal(0),
        zero,
        zero,
        _money(func.sum(case((g.issued > start, g.amount), else_=zero))),
        _money(func.sum(g.amount)),
        zero,
    ).group_by(g.currency, month)


def _debtors_statement(as_of: date, currency: str | None) -> Any:
    """Debtor rows: per customer and currency the amount open at as_of, overdue, covered,
    limit and excess, ranked; only the top debtors and the most over limit come back, each
    with the currency's totals (covered, customers over limit, excess)."""
    i, a = Invoice, PaymentAllocation
    zero = literal(ZERO, Money())
    rows = union_all(
        select(
            i.customer_id.label("customer_id"),
            i.currency.label("currency"),
            i.open_amount.label("amount"),
            i.due_date.label("due"),
        ).where(*_open_invoices(as_of, currency)),
        select(a.customer_id, a.currency, a.amount, a.due_date).where(
            *_paid_after(as_of, as_of, currency)
        ),
    ).subquery("open_rows")
    o = rows.c
    per_customer = (
        select(
            o.customer_id,
            o.currency,
            func.sum(o.amount).label("open"),
            func.coalesce(func.sum(o.amount).filter(o.due < as_of), zero).label("overdue"),
        )
        .group_by(o.customer_id, o.currency)
        .subquery("per_customer")
    )
    cover = (
        select(
            InsurerCover.customer_id.label("customer_id"),
            InsurerCover.currency.label("currency"),
            func.sum(func.coalesce(InsurerCover.granted_amount, zero)).label("granted"),
        )
        .where(cover_in_force(InsurerCover, as_of), InsurerCover.customer_id.is_not(None))
        .group_by(InsurerCover.customer_id, InsurerCover.currency)
        .subquery("cover")
    )
    pc, cv = per_customer.c, cover.c
    covered = (
        select(
            pc.customer_id,
            pc.currency,
            Customer.account,
            pc.open,
            pc.overdue,
            case(
                (cv.granted.is_(None), zero), (cv.granted < pc.open, cv.granted), else_=pc.open
            ).label("covered"),
        )
        .select_from(per_customer)
        .join(Customer, Customer.id == pc.customer_id)
        .outerjoin(cover, and_(cv.customer_id == pc.customer_id, cv.currency == pc.currency))
        .cte("debts")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    d = covered.c
    totals = (
        select(d.currency, func.sum(d.covered).label("covered")).group_by(d.currency).cte("totals")
    )
    t = totals.c
    # the Nth largest amount of each currency (a bounded sort per currency): only the rows
    # at or above it are ranked, ties included, so the ranks equal a ranking of all rows
    other = covered.alias("other")
    nth_open = _nth_largest(other.c.open, other.c.currency == t.currency, TOP_DEBTORS)
    cutoffs = (
        select(t.currency, nth_open.label("open"))
        .cte("cutoffs")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    c = cutoffs.c
    top_open = (
        select(
            *d,
            func.row_number()
            .over(partition_by=d.currency, order_by=(d.open.desc(), d.account))
            .label("rank_open"),
        )
        .join_from(covered, cutoffs, c.currency == d.currency)
        .where(or_(c.open.is_(None), d.open >= c.open))
        .subquery("top_open")
    )
    r = top_open.c
    # currencies without a top debtor row still bring their covered total
    return (
        select(
            r.currency,
            r.customer_id,
            r.account,
            Customer.name,
            _money(r.open),
            _money(r.overdue),
            _money(r.covered),
            r.rank_open,
            _money(t.covered),
        )
        .join_from(top_open, totals, t.currency == r.currency)
        .join(Customer, Customer.id == r.customer_id)
        .where(r.rank_open <= TOP_DEBTORS)
    )


def _nth_largest(amount: Any, where: Any, n: int) -> Any:
    """The n-th largest `amount` of the rows matching `where` (NULL when fewer than n)."""
    return (
        select(amount).where(where).order_by(amount.desc()).limit(1).offset(n - 1).scalar_subquery()
    )


def _covers_statement(as_of: date, currency: str | None) -> Any:
    """Covers expiring soon / expired without a cover in force to replace them."""
    other = aliased(InsurerCover)
    in_force = cover_in_force(InsurerCover, as_of)
    expiring = and_(in_force, InsurerCover.valid_until <= as_of + timedelta(days=EXPIRING_DAYS))
    live = (
        select(other.customer_id.label("cid"), other.currency.label("cur"))
        .where(cover_in_force(other, as_of), other.customer_id.is_not(None))
        .group_by(other.customer_id, other.currency)
        .subquery("live")
    )
    expired = and_(
        func.lower(InsurerCover.status).in_([*ACTIVE_STATUSES, "expired"]),
        InsurerCover.valid_until < as_of,
        live.c.cid.is_(None),
    )
    zero = literal(ZERO, Money())
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
    return covers


def run_concurrently(engine: Engine, statements: list[Any]) -> list[list[Any]]:
    """The independent queries at once, one connection each: PostgreSQL runs them on
    different cores (SQLite's WAL lets readers run side by side too)."""

    def run(statement: Any) -> list[Any]:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # JIT compiling costs more than it saves on these short aggregates, and the
                # per-customer hash aggregate must not spill to disk
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
    months: list[tuple[date, date]],
    exposures: ExposureBook | None = None,
) -> Kpis:
    """The KPIs from the aggregated rows (shared with the benchmark's Python baseline) and
    the portfolio's exposure (limits, over limit)."""
    sums: dict[str, dict[str, Any]] = {}

    def acc(cur: str) -> dict[str, Any]:
        return sums.setdefault(
            cur,
            {
                "count": 0,
                "aging": [ZERO] * len(labels),
                "credit": ZERO,
                "sales": ZERO,
                "months": [ZERO] * COUNTBACK_MONTHS,
                "begin": ZERO,
            },
        )

    for cur, age, month, count, open_, credit, sales, amount, begin in main_rows:
        a = acc(cur)
        a["count"] += int(count or 0)
        if age is not None:
            a["aging"][age] += open_ or ZERO
        a["credit"] += credit or ZERO
        a["sales"] += sales or ZERO
        if month is not None:
            a["months"][month] += amount or ZERO
        a["begin"] += begin or ZERO
    month_days = [(last - first).days + 1 for first, last in months]
    result: dict[str, CurrencyKpis] = {}
    for cur in sorted(sums):
        a = sums[cur]
        total = sum(a["aging"], ZERO)
        current = a["aging"][0]
        overdue = total - current
        result[cur] = CurrencyKpis(
            currency=cur,
            open_invoices=a["count"],
            receivables=total,
            credit_notes=a["credit"],
            current=current,
            overdue=overdue,
            overdue_pct=ratio(overdue, total, HUNDRED),
            aging=dict(zip(labels, a["aging"], strict=True)),
            credit_sales=a["sales"],
            beginning_receivables=a["begin"],
            dso=dso(total, a["sales"], period_days),
            countback_dso=countback_dso(total, list(zip(month_days, a["months"], strict=True))),
            best_possible_dso=dso(current, a["sales"], period_days),
            add=add_days(total, current, a["sales"], period_days),
            cei=cei(a["begin"], a["sales"], total, current),
            covered=ZERO,
            covered_pct=ratio(ZERO, total, HUNDRED),
            over_limit_customers=0,
            over_limit_excess=ZERO,
        )
    book = exposures or ExposureBook(as_of, {})
    for row in debtor_rows:
        cur, customer_id, account, name, open_, overdue, covered, rank_open, total_covered = row
        k = result.get(cur)
        if k is None:
            continue
        k.covered = total_covered or ZERO
        k.covered_pct = ratio(k.covered, k.receivables, HUNDRED)
        e = book.get(customer_id)
        limit = excess = None
        if e is not None and e.currency == cur:
            limit, excess = e.authorised, (e.excess if e.over_limit else None)
        k.top_debtors.append(
            (rank_open, Debtor(account, name, open_, overdue, covered, limit, excess))
        )  # type: ignore[arg-type]
    for k in result.values():
        k.top_debtors = [d for _, d in sorted(k.top_debtors, key=lambda t: t[0])]  # type: ignore[misc]
    for cur, over in book.over_limit_totals().items():
        k = result.get(cur)  # type: ignore[arg-type]
        if k is None:
            continue
        k.over_limit_customers, k.over_limit_excess = over.customers, over.excess
        k.over_limit = [over_limit_debtor(e) for e in book.over_limit(cur)[:OVER_LIMIT_LISTED]]
    for cur, n_expiring, expiring_amount, n_expired, expired_amount in cover_rows:
        if cur not in result:
            continue  # covers in a currency without receivables: nothing to report against
        k = result[cur]
        k.covers_expiring, k.covers_expiring_amount = n_expiring, expiring_amount or ZERO
        k.covers_expired, k.covers_expired_amount = n_expired, expired_amount or ZERO
    return Kpis(as_of, period_days, labels, result)
