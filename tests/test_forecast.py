"""The collection forecast, by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from cobro.forecast import OpenItem, forecast

AS_OF = date(2026, 6, 1)  # week 0: Jun 1-7, week 1: Jun 8-14, ...


def test_due_date_plus_the_customers_days_late() -> None:
    items = [
        OpenItem(1, date(2026, 6, 3), "EUR", D("100")),  # +10 days late -> Jun 13: week 1
        OpenItem(2, date(2026, 6, 3), "EUR", D("50")),  # never late -> Jun 3: week 0
        OpenItem(1, date(2026, 5, 1), "EUR", D("30")),  # expected May 11: past -> week 0
        OpenItem(3, date(2026, 6, 20), "USD", D("70")),  # no history: average 5 -> Jun 25: week 3
        OpenItem(2, date(2026, 9, 1), "EUR", D("999")),  # after 8 weeks -> later
        OpenItem(2, date(2026, 6, 2), "EUR", D("40"), disputed=True),  # not forecast
        OpenItem(2, date(2026, 6, 2), "EUR", D("0")),  # paid
    ]
    f = forecast(items, {1: D("10"), 2: D("0")}, AS_OF)
    assert f.by_currency["EUR"][:2] == [D("80"), D("100")]
    assert sum(f.by_currency["EUR"]) == D("180")
    assert f.by_currency["USD"][3] == D("70") and sum(f.by_currency["USD"]) == D("70")
    assert f.later == {"EUR": D("999")}
    assert f.disputed == {"EUR": D("40")}
    assert f.week_starts()[1] == date(2026, 6, 8)


def test_no_history_at_all_means_on_time() -> None:
    f = forecast([OpenItem(1, date(2026, 6, 10), "EUR", D("5"))], {}, AS_OF, weeks=2)
    assert f.by_currency == {"EUR": [D("0"), D("5")]}
