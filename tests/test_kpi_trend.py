"""The DSO trend (two grouped queries) equals the full KPIs computed at each month end, on
the demo portfolio (payments spread over months), on both databases."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from cobro.db import default_engine
from cobro.devkit.demo import load_demo
from cobro.kpi_trend import dso_trend, month_ends
from cobro.kpis import compute_kpis

ANCHOR = date(2026, 6, 30)


def test_month_ends() -> None:
    assert month_ends(date(2026, 3, 31), 3) == [
        date(2026, 1, 31),
        date(2026, 2, 28),
        ANCHOR.replace(month=3, day=31),
    ]


def test_trend_equals_the_kpis_at_each_month_end(use_database: str, tmp_path: Path) -> None:
    load_demo(tmp_path / "demo", ANCHOR)
    engine = default_engine()
    for as_of in (ANCHOR, date(2026, 8, 15)):
        trend = dso_trend(engine, as_of, months=12)
        assert [end for end, _ in trend] == month_ends(as_of, 12)
        seen = 0
        for end, values in trend:
            expected = {c: k.dso for c, k in compute_kpis(engine, end).currencies.items()}
            assert {c: v for c, v in values.items() if c in expected} == expected, end
            assert all(v is None for c, v in values.items() if c not in expected)
            seen += sum(v is not None for v in values.values())
        assert seen > 12, "the demo has sales and receivables over several months"
