"""DSO at each of the last months' ends, in two grouped queries whatever the portfolio size
(the dashboard's trend chart; computing the full KPIs 12 times would scan everything 12
times). Same definitions as `cobro.kpis`:

    open at D      = open_amount + allocations of payments dated after D (invoices ≤ D)
    receivables(D) = Σ open at D of the invoices (amount > 0) issued ≤ D
    credit sales   = Σ amount of the invoices issued in (D − N, D] (credit notes net)
    DSO(D)         = receivables(D) ÷ credit sales × N

An invoice's open amount at any date is its stored open amount plus what later payments
took off it, so receivables(D) = Σ stored of the invoices issued ≤ D + Σ allocations of
payments dated after D to invoices issued ≤ D. Both are grouped by *which month end* the
issue date and the payment date fall before: a few dozen rows. Credit sales come grouped by
issue date (one row per day)."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, case, func, literal_column, select

from cobro.kpis import dso, months_back
from cobro.models import Invoice, PaymentAllocation
from cobro.types import Money

ZERO = Decimal("0.0000")


def month_ends(as_of: date, months: int) -> list[date]:
    """The `months` dates ending with as_of, a month apart (oldest first)."""
    return [months_back(as_of, k) for k in range(months - 1, -1, -1)]


def _slot(column: Any, ends: Sequence[date]) -> Any:
    """The index of the first end ≥ column (len(ends) when after the last)."""
    return case(*[(column <= end, i) for i, end in enumerate(ends)], else_=len(ends))


def dso_trend(
    engine: Engine, as_of: date, months: int = 12, period_days: int = 90
) -> list[tuple[date, dict[str, Decimal | None]]]:
    ends = month_ends(as_of, months)
    issued = _slot(Invoice.issue_date, ends).label("issued")
    a = PaymentAllocation  # with copies of its payment's date and its invoice's fields
    with engine.connect() as conn:
        # invoices with amount > 0 never have a negative open amount: Σ over the open ones
        # (`0` inlined: the partial index of the open invoices serves it)
        stored = conn.execute(
            select(Invoice.currency, issued, func.sum(Invoice.open_amount, type_=Money()))
            .where(Invoice.open_amount > literal_column("0"), Invoice.issue_date <= ends[-1])
            .group_by(Invoice.currency, issued)
        ).all()
        # allocations are only ever made to invoices with amount > 0
        a_issued, a_paid = _slot(a.issue_date, ends), _slot(a.payment_date, ends)
        later = conn.execute(
            select(a.currency, a_issued, a_paid, func.sum(a.amount, type_=Money()))
            .where(a.issue_date <= ends[-1], a.payment_date > ends[0])
            .group_by(a.currency, a_issued, a_paid)
        ).all()
        first_day = ends[0] - timedelta(days=period_days)
        sales_rows = conn.execute(
            select(Invoice.currency, Invoice.issue_date, func.sum(Invoice.amount, type_=Money()))
            .where(Invoice.issue_date > first_day, Invoice.issue_date <= ends[-1])
            .group_by(Invoice.currency, Invoice.issue_date)
        ).all()

    currencies = sorted({r[0] for r in stored} | {r[0] for r in sales_rows})
    receivables: dict[str, list[Decimal]] = {c: [ZERO] * len(ends) for c in currencies}
    for currency, slot, total in stored:  # counted at every end on or after its issue
        for k in range(slot, len(ends)):
            receivables[currency][k] += total or ZERO
    for currency, slot_issued, slot_paid, total in later:  # still open at ends before paid
        for k in range(slot_issued, min(slot_paid, len(ends))):
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
