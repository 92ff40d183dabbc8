"""Collection forecast: expected cash-in per week for the next weeks, from each customer's
historical days late. Pure: the database side is in `cobro.web.queries.collection_forecast`.

An open invoice is expected on its due date + its customer's average days late (customers
without a payment history: the portfolio's average); an expected date already past means
"this week". Week 0 starts on `as_of`. Disputed invoices are not forecast (nobody knows
when a dispute ends): they are totalled apart, as is everything expected after the last
week."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal


@dataclass(frozen=True)
class OpenItem:
    customer_id: int
    due_date: date
    currency: str
    open_amount: Decimal
    disputed: bool = False


@dataclass
class Forecast:
    as_of: date
    weeks: int
    by_currency: dict[str, list[Decimal]] = field(default_factory=dict)
    later: dict[str, Decimal] = field(default_factory=dict)
    disputed: dict[str, Decimal] = field(default_factory=dict)

    def week_starts(self) -> list[date]:
        return [self.as_of + timedelta(days=7 * w) for w in range(self.weeks)]


@dataclass(frozen=True)
class OpenGroup:
    """Open invoices summed by due date, currency, disputed and their customer's average
    days late (None: no payment history) — what the database hands over at scale."""

    due_date: date
    currency: str
    disputed: bool
    days_late: int | None
    open_amount: Decimal


def forecast_groups(
    groups: Iterable[OpenGroup], default_late: Decimal, as_of: date, weeks: int = 8
) -> Forecast:
    """`forecast` over pre-grouped amounts: the same buckets, far fewer rows."""
    result = Forecast(as_of, weeks)
    for g in groups:
        late = g.days_late if g.days_late is not None else round(default_late)
        _add(result, g.due_date + timedelta(days=late), g.currency, g.disputed, g.open_amount)
    return result


def _add(result: Forecast, expected: date, currency: str, disputed: bool, amount: Decimal) -> None:
    if amount <= 0:
        return
    if disputed:
        result.disputed[currency] = result.disputed.get(currency, Decimal(0)) + amount
        return
    week = max(0, (expected - result.as_of).days // 7)
    if week >= result.weeks:
        result.later[currency] = result.later.get(currency, Decimal(0)) + amount
        return
    row = result.by_currency.setdefault(currency, [Decimal(0)] * result.weeks)
    row[week] += amount


def portfolio_days_late(days_late: Mapping[int, Decimal]) -> Decimal:
    if not days_late:
        return Decimal(0)
    return sum(days_late.values(), Decimal(0)) / len(days_late)


def forecast(
    items: Iterable[OpenItem],
    days_late: Mapping[int, Decimal],
    as_of: date,
    weeks: int = 8,
) -> Forecast:
    default = portfolio_days_late(days_late)
    result = Forecast(as_of, weeks)
    for item in items:
        late = days_late.get(item.customer_id, default)
        expected = item.due_date + timedelta(days=round(late))
        _add(result, expected, item.currency, item.disputed, item.open_amount)
    return result
