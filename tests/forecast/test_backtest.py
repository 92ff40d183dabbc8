"""Scoring past forecasts, by hand: the two naive baselines, MAPE and bias per week."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

import pytest

from cobro.forecast.backtest import (
    DUE_DATES,
    MODEL,
    OVERDUE_NEXT,
    OriginResult,
    baselines,
    score,
    weekly,
)

AS_OF = date(2026, 6, 1)


def day(n: int) -> date:
    return AS_OF + timedelta(days=n)


def test_baselines() -> None:
    groups = [
        ("EUR", False, day(3), D("100")),  # week 0
        ("EUR", False, day(8), D("50")),  # week 1
        ("EUR", False, day(-30), D("70")),  # overdue
        ("EUR", False, day(0), D("5")),  # due today: overdue tomorrow
        ("EUR", True, day(3), D("999")),  # disputed: not forecast
        ("USD", False, day(100), D("1")),  # beyond the horizon
    ]
    b = baselines(groups, AS_OF, 2)
    assert b[DUE_DATES]["EUR"] == [D("100"), D("50")]
    assert b[OVERDUE_NEXT]["EUR"] == [D("175"), D("50")]
    assert "USD" not in b[DUE_DATES]


def test_weekly_buckets() -> None:
    cash = [("EUR", day(1), D("1")), ("EUR", day(7), D("2")), ("EUR", day(8), D("4"))]
    assert weekly([*cash, ("EUR", day(0), D("9")), ("EUR", day(15), D("9"))], AS_OF, 2) == {
        "EUR": [D("3"), D("4")]
    }


def test_mape_and_bias() -> None:
    def origin(model: list[str], actual: list[str]) -> OriginResult:
        return OriginResult(
            AS_OF,
            {
                MODEL: {"EUR": [D(v) for v in model]},
                DUE_DATES: {"EUR": [D("0"), D("0")]},
                OVERDUE_NEXT: {},
            },
            {"EUR": [D(v) for v in actual]},
        )

    result = score([origin(["110", "50"], ["100", "100"]), origin(["90", "0"], ["100", "0"])], 2)
    e = result.errors["EUR"][MODEL]
    assert e.mape == [10.0, 50.0]  # week 2: the origin without cash is not scored
    assert e.bias == [0.0, -50.0]
    assert e.mape_all == pytest.approx(round((0.1 + 0.5 + 0.1) / 3 * 100, 1))
    assert e.bias_all == pytest.approx(round((10 - 50 - 10) / 300 * 100, 1))
    assert result.errors["EUR"][DUE_DATES].mape_all == 100.0
    assert result.errors["EUR"][OVERDUE_NEXT].bias_all == -100.0
    assert result.actual == {"EUR": D("300")}
    assert result.to_json()["currencies"]["EUR"]["model"]["mape_by_week"] == [10.0, 50.0]
