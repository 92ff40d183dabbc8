"""Scoring past forecasts against the cash that came in, pure.

A backtest makes forecasts at past days (origins), each from the data as it was then, and
compares every horizon week's expected cash with the cash that actually came in that week
against the invoices open at the origin (not disputed), per currency, for the model and two
naive baselines:

    due dates      each open invoice paid on its due date; already overdue: never (within
                   the horizon)
    overdue next   not yet due: on its due date; every overdue invoice in the first week

Errors per currency and horizon week h (over the origins whose actual cash that week > 0):

    MAPE_h = mean |forecast − actual| ÷ actual × 100
    bias_h = Σ (forecast − actual) ÷ Σ actual × 100     (> 0: too optimistic)

and the same over every (origin, week) of the horizon ("all weeks": the 8-week MAPE).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from cobro.forecast.model import Forecast

MODEL, DUE_DATES, OVERDUE_NEXT = "model", "due_dates", "overdue_next_week"
METHODS = (MODEL, DUE_DATES, OVERDUE_NEXT)
ORIGINS = 12  # weekly origins, the last one a horizon before the last payment


def weekly(
    amounts: Iterable[tuple[str, date, Decimal]], as_of: date, weeks: int
) -> dict[str, list[Decimal]]:
    """(currency, day, amount) into weekly totals; days outside the horizon are dropped."""
    out: dict[str, list[Decimal]] = {}
    for currency, day, amount in amounts:
        days = (day - as_of).days
        if 1 <= days <= 7 * weeks:
            out.setdefault(currency, [Decimal(0)] * weeks)[(days - 1) // 7] += amount
    return out


def baselines(
    due_groups: Iterable[tuple[str, bool, date, Decimal]], as_of: date, weeks: int
) -> dict[str, dict[str, list[Decimal]]]:
    """The two naive forecasts from the amounts open at as_of by due date."""
    due: list[tuple[str, date, Decimal]] = []
    overdue: dict[str, Decimal] = {}
    for currency, disputed, day, amount in due_groups:
        if disputed or amount <= 0:
            continue
        if day <= as_of:
            overdue[currency] = overdue.get(currency, Decimal(0)) + amount
        else:
            due.append((currency, day, amount))
    by_due = weekly(due, as_of, weeks)
    next_week = {c: list(v) for c, v in by_due.items()}
    for currency, amount in overdue.items():
        next_week.setdefault(currency, [Decimal(0)] * weeks)[0] += amount
        by_due.setdefault(currency, [Decimal(0)] * weeks)
    return {DUE_DATES: by_due, OVERDUE_NEXT: next_week}


@dataclass
class OriginResult:
    """One past forecast: per method and currency the expected cash per week, and the cash
    that came in."""

    as_of: date
    forecasts: dict[str, dict[str, list[Decimal]]]
    actual: dict[str, list[Decimal]]


def origin_result(
    as_of: date,
    model: Forecast,
    naive: Mapping[str, dict[str, list[Decimal]]],
    actual: dict[str, list[Decimal]],
) -> OriginResult:
    return OriginResult(as_of, {MODEL: model.by_currency, **naive}, actual)


@dataclass
class Errors:
    mape: list[float | None]  # per horizon week, percent
    bias: list[float | None]
    mape_all: float | None
    bias_all: float | None


@dataclass
class Backtest:
    weeks: int
    origins: list[date]
    errors: dict[str, dict[str, Errors]] = field(default_factory=dict)  # currency -> method
    actual: dict[str, Decimal] = field(default_factory=dict)  # cash per currency, all origins

    def to_json(self) -> dict[str, Any]:
        return {
            "weeks": self.weeks,
            "origins": [d.isoformat() for d in self.origins],
            "currencies": {
                currency: {
                    "actual_cash": str(self.actual.get(currency, Decimal(0))),
                    **{
                        method: {
                            "mape_by_week": e.mape,
                            "bias_by_week": e.bias,
                            "mape": e.mape_all,
                            "bias": e.bias_all,
                        }
                        for method, e in methods.items()
                    },
                }
                for currency, methods in self.errors.items()
            },
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _errors(pairs_by_week: Sequence[list[tuple[Decimal, Decimal]]]) -> Errors:
    def mape(pairs: list[tuple[Decimal, Decimal]]) -> float | None:
        scored = [abs(f - a) / a for f, a in pairs if a > 0]
        return _round(float(sum(scored) / len(scored)) * 100) if scored else None

    def bias(pairs: list[tuple[Decimal, Decimal]]) -> float | None:
        total = sum((a for _, a in pairs), Decimal(0))
        if total <= 0:
            return None
        return _round(float(sum((f - a for f, a in pairs), Decimal(0)) / total) * 100)

    every = [p for pairs in pairs_by_week for p in pairs]
    return Errors(
        [mape(p) for p in pairs_by_week], [bias(p) for p in pairs_by_week], mape(every), bias(every)
    )


def score(results: Sequence[OriginResult], weeks: int) -> Backtest:
    currencies = sorted({c for r in results for c in r.actual})
    out = Backtest(weeks, [r.as_of for r in results])
    zero = [Decimal(0)] * weeks
    for currency in currencies:
        out.actual[currency] = sum(
            (sum(r.actual.get(currency, zero), Decimal(0)) for r in results), Decimal(0)
        )
        out.errors[currency] = {}
        for method in METHODS:
            pairs: list[list[tuple[Decimal, Decimal]]] = [[] for _ in range(weeks)]
            for r in results:
                forecast = r.forecasts.get(method, {}).get(currency, zero)
                actual = r.actual.get(currency, zero)
                for w in range(weeks):
                    pairs[w].append((forecast[w], actual[w]))
            out.errors[currency][method] = _errors(pairs)
    return out
