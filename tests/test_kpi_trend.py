"""The DSO trend (four grouped queries) equals the full KPIs computed at each month end, on
the demo portfolio (payments spread over months), on both databases."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from cobro.db import default_engine
from cobro.devkit.demo import load_demo
from cobro.kpi_trend import dso_trend, trend_dates
from cobro.kpis import compute_kpis

ANCHOR = date(2026, 6, 30)


def test_trend_dates_are_calendar_month_ends_then_as_of() -> None:
    # at a month end: three month ends (never "the 28th" after February)
    assert trend_dates(date(2026, 3, 31), 3) == [
        date(2026, 1, 31),
        date(2026, 2, 28),
        date(2026, 3, 31),
    ]
    assert trend_dates(date(2026, 4, 30), 3) == [
        date(2026, 2, 28),
        date(2026, 3, 31),
        date(2026, 4, 30),
    ]
    # mid-month: the month ends before, then as_of itself
    assert trend_dates(date(2026, 3, 15), 3) == [
        date(2026, 1, 31),
        date(2026, 2, 28),
        date(2026, 3, 15),
    ]


def test_trend_equals_the_kpis_at_each_month_end(use_database: str, tmp_path: Path) -> None:
    load_demo(tmp_path / "demo", ANCHOR)
    engine = default_engine()
    for as_of in (ANCHOR, date(2026, 8, 15)):
        trend = dso_trend(engine, as_of, months=12)
        assert [end for end, _ in trend] == trend_dates(as_of, 12)
        seen = 0
        for end, values in trend:
            expected = {c: k.dso for c, k in compute_kpis(engine, end).currencies.items()}
            assert {c: v for c, v in values.items() if c in expected} == expected, end
            assert all(v is None for c, v in values.items() if c not in expected)
            seen += sum(v is not None for v in values.values())
        assert seen > 12, "the demo has sales and receivables over several months"


def test_trend_nets_credit_notes_like_the_kpis(engine) -> None:  # type: ignore[no-untyped-def]
    from tests.test_kpis import seed_credit_notes

    seed_credit_notes(engine)
    trend = dso_trend(engine, date(2026, 12, 15), months=4)
    assert [end for end, _ in trend] == trend_dates(date(2026, 12, 15), 4)
    for end, values in trend:
        expected = {c: k.dso for c, k in compute_kpis(engine, end).currencies.items()}
        assert {c: v for c, v in values.items() if c in expected} == expected, end
    # at 2026-11-30: 1,600 net (credit note −200 included) over 2,050 net sales × 90 = 70.24
    assert dict(trend)[date(2026, 11, 30)] == {"EUR": Decimal("70.24")}
