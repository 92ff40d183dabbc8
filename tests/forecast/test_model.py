"""The forecast's model, by hand: Kaplan–Meier with open invoices, shrinkage, the
conditional spread of an overdue invoice, one series per currency."""

from __future__ import annotations

import math
from datetime import date, timedelta
from decimal import Decimal as D

import pytest

from cobro.forecast.model import (
    L_MAX,
    L_MIN,
    LatenessSums,
    OpenGroup,
    Portfolio,
    SurvivalCounts,
    forecast,
    portfolio,
    profile,
    spread_probabilities,
    survival_curve,
)

AS_OF = date(2026, 6, 1)


def at(curve: tuple[float, ...], late: int) -> float:
    return curve[late - L_MIN]


def test_kaplan_meier_counts_open_invoices_as_censored() -> None:
    # four invoices at risk from the start: paid at 0 and 10 days late, one still open at
    # 5 days late (censored), one open at 20
    counts = SurvivalCounts(entries={L_MIN - 1: 4}, events={0: 1, 10: 1}, censored={5: 1, 20: 1})
    curve = survival_curve(counts)
    assert at(curve, -1) == 1.0
    assert at(curve, 0) == pytest.approx(3 / 4)
    assert at(curve, 9) == pytest.approx(3 / 4)
    assert at(curve, 10) == pytest.approx(3 / 4 * (1 - 1 / 2))  # 2 at risk after day 5
    assert at(curve, L_MAX) == pytest.approx(3 / 8)  # the plateau: not expected


def test_left_truncation_an_invoice_seen_late_is_not_at_risk_early() -> None:
    # one invoice paid on time; another that entered the window 30 days late, paid at 40
    counts = SurvivalCounts(entries={L_MIN - 1: 1, 30: 1}, events={0: 1, 40: 1}, censored={})
    curve = survival_curve(counts)
    assert at(curve, 0) == 0.0  # alone at risk on day 0, and paid


def _book(mean: float = 10.0, within: float = 16.0, between: float = 84.0) -> Portfolio:
    counts = SurvivalCounts({L_MIN - 1: 100}, {d: 5 for d in range(0, 40, 2)}, {})
    curve = survival_curve(counts)
    return Portfolio(mean, math.sqrt(within + between), within, between, within / between, curve)


def test_portfolio_spreads_and_credibility() -> None:
    # customer A: 0, 2 (mean 1, var 1); B: 18, 22 (mean 20, var 4)
    sums = [LatenessSums(2, 2, 4), LatenessSums(2, 40, 808)]
    book = portfolio(sums, SurvivalCounts({}, {}, {}))
    assert book.mean == pytest.approx(10.5)
    assert book.within == pytest.approx(2.5)  # average variance inside customers
    assert book.spread**2 == pytest.approx((4 + 808) / 4 - 10.5**2)
    assert book.between == pytest.approx(book.spread**2 - 2.5)
    assert book.k == pytest.approx(max(0.5, 2.5 / book.between))


def test_shrinkage_towards_the_portfolio() -> None:
    book = _book()  # K = 16 / 84 → clamped to 0.5
    assert book.k == pytest.approx(16 / 84)
    nobody = profile(None, book)
    assert nobody.delay_days == 10 and nobody.spread_step == 0
    one = profile(LatenessSums(1, 40, 1600), book)  # one payment 40 days late
    many = profile(LatenessSums(50, 50 * 40, 50 * 1600), book)  # always 40 days late
    assert 10 < one.delay_days <= many.delay_days == 40
    assert many.spread_step < 0  # tighter than the portfolio: its own spread (shrunk)
    heavy = Portfolio(10.0, 10.0, 4.0, 96.0, 25.0, book.curve)  # K = 25: own history weak
    assert profile(LatenessSums(5, 5 * 40, 5 * 1600), heavy).delay_days == round(
        5 / 30 * 40 + 25 / 30 * 10
    )


def test_an_overdue_invoice_is_spread_given_how_late_it_already_is() -> None:
    book = _book()
    # 60 days past its expected date, beyond every payment seen: not next week
    weeks, later, never = spread_probabilities(book, 0, 60, 8)
    assert sum(weeks) == pytest.approx(0.0) and never == pytest.approx(1.0)
    # 10 days past expected (20 days late): what is paid of invoices still unpaid at 20
    weeks, later, never = spread_probabilities(book, 0, 10, 8)
    assert weeks[0] < 0.5 and sum(weeks) + later + never == pytest.approx(1.0)
    assert weeks[1] > 0 and weeks[2] > 0  # spread, not all in the first week
    # the same invoice for a wider customer (step +3) is spread further
    wide, _, _ = spread_probabilities(book, 3, 10, 8)
    assert wide[0] < weeks[0]


def test_one_series_per_currency_disputed_apart() -> None:
    book = _book()
    groups = [
        OpenGroup("EUR", False, 0, -5, D("1000")),
        OpenGroup("USD", False, 0, -5, D("500")),
        OpenGroup("EUR", True, 0, -5, D("40")),
        OpenGroup("EUR", False, 0, 0, D("0")),
    ]
    f = forecast(groups, book, AS_OF)
    assert set(f.by_currency) == {"EUR", "USD"}
    eur, usd = f.by_currency["EUR"], f.by_currency["USD"]
    assert [v * 2 for v in usd] == pytest.approx(eur, abs=D("0.02"))  # never added together
    total = sum(eur) + f.later["EUR"] + f.not_expected["EUR"]
    assert abs(total - D("1000")) <= D("0.05")
    assert f.disputed == {"EUR": D("40.00")}
    assert f.week_starts()[0] == AS_OF + timedelta(days=1)
    assert f.currencies() == ["EUR", "USD"]
