"""DSO at each of the last months' ends, in four grouped queries whatever the portfolio size,
run at once on their own connections (the dashboard's trend chart; computing the full KPIs
12 times would scan everything 12 times). Same definitions and sources as `cobro.kpis`:

    open at D      = open_amount + allocations of payments dated after D (items issued ≤ D)
    receivables(D) = Σ open at D of the open invoices and open credit notes issued ≤ D (net)
    credit sales   = Σ amount of the invoices and credit notes issued in (D − N, D] (net)
    DSO(D)         = receivables(D) ÷ credit sales × N                         [CRF]

The points are the ends of the calendar months before as_of's month, then as_of itself (a
month end too when as_of is one): `trend_dates`.

An invoice's open amount at any date is its stored open amount plus what later payments
took off it, so receivables(D) = Σ stored of the invoices issued ≤ D + Σ allocations of
payments dated after D to invoices issued ≤ D (+ the open credit notes issued ≤ D, which
never receive allocations). Each sum is grouped by *which point* the issue date falls
before — a balanced CASE over the points, four comparisons a row — and the allocations also
by payment day: a few thousand rows. Credit sales come grouped by issue date (one row per day)."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, case, func, literal, literal_column, select

from cobro.kpis import dso, month_start, run_concurrently
from cobro.models import Invoice, PaymentAllocation
from cobro.types import Money

ZERO = Decimal("0.0000")


def trend_dates(as_of: date, months: int) -> list[date]:
    """The last `months` points, oldest first: the ends of the calendar months before
    as_of's month, then as_of (12 month ends when as_of is the last day of its month)."""
    ends = [month_start(as_of, k) - timedelta(days=1) for k in range(months - 2, -1, -1)]
    return [*ends, as_of]


def _slot(column: Any, ends: Sequence[date], lo: int = 0, hi: int | None = None) -> Any:
    """The index of the first end ≥ column (len(ends) when after the last), as a balanced
    CASE: log2(len(ends)) comparisons a row instead of len(ends)."""
    hi = len(ends) if hi is None else hi
    if lo == hi:
        return literal(lo)
    mid = (lo + hi) // 2
    return case(
        (column <= ends[mid], _slot(column, ends, lo, mid)),
        else_=_slot(column, ends, mid + 1, hi),
    )


def dso_trend(
    engine: Engine, as_of: date, months: int = 12, period_days: int = 90
) -> list[tuple[date, dict[str, Decimal | None]]]:
    ends = trend_dates(as_of, months)
    issued = _slot(Invoice.issue_date, ends).label("issued")
    a = PaymentAllocation  # with copies of its payment's date and its invoice's fields
    a_issued = _slot(a.issue_date, ends)
    first_day = ends[0] - timedelta(days=period_days)
    stored, credits, later, sales_rows = run_concurrently(
        engine,
        [
            # invoices with amount > 0 never have a negative open amount: Σ over the open
            # ones (`0` inlined: the partial index of the open invoices serves it)
            select(Invoice.currency, issued, func.sum(Invoice.open_amount, type_=Money()))
            .where(Invoice.open_amount > literal_column("0"), Invoice.issue_date <= ends[-1])
            .group_by(Invoice.currency, issued),
            # the open credit notes (their own partial index); never allocated
            select(Invoice.currency, issued, func.sum(Invoice.open_amount, type_=Money()))
            .where(Invoice.open_amount < literal_column("0"), Invoice.issue_date <= ends[-1])
            .group_by(Invoice.currency, issued),
            # allocations are only ever made to invoices with amount > 0; by payment day
            # (a few hundred): one CASE a row, the payment's point found in Python
            select(a.currency, a_issued, a.payment_date, func.sum(a.amount, type_=Money()))
            .where(a.issue_date <= ends[-1], a.payment_date > ends[0])
            .group_by(a.currency, a_issued, a.payment_date),
            select(Invoice.currency, Invoice.issue_date, func.sum(Invoice.amount, type_=Money()))
            .where(Invoice.issue_date > first_day, Invoice.issue_date <= ends[-1])
            .group_by(Invoice.currency, Invoice.issue_date),
        ],
    )

    currencies = sorted({r[0] for r in (*stored, *credits)} | {r[0] for r in sales_rows})
    receivables: dict[str, list[Decimal]] = {c: [ZERO] * len(ends) for c in currencies}
    for currency, slot, total in (*stored, *credits):  # counted at every end from its issue
        for k in range(slot, len(ends)):
            receivables[currency][k] += total or ZERO
    for currency, slot_issued, paid_on, total in later:  # still open at ends before paid
        slot_paid = bisect_left(ends, paid_on)  # the first end ≥ the payment date
        for k in range(slot_issued, slot_paid):
            receivables[currency][k] += total or ZERO
    days: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
    for currency, day, total in sales_rows:
        days[currency].append((day, total or ZERO))
    out: list[tuple[date, dict[str, Decimal | None]]] = []
    for k, end in enumerate(ends):
        values: dict[str, Decimal | None] = {}
        for currency in currencies:
            series = sorted(days.get(currency, []))
            dates = [d for d, _ in series]
            lo = bisect_left(dates, end - timedelta(days=period_days) + timedelta(days=1))
            hi = bisect_left(dates, end + timedelta(days=1))
            sales = sum((t for _, t in series[lo:hi]), ZERO)
            values[currency] = dso(receivables[currency][k], sales, period_days)
        out.append((end, values))
    return out
