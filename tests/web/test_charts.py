"""The server-drawn SVG charts: value axes from 0, every bar's value written above it, the
last label inside the picture, text escaped."""

from __future__ import annotations

import re
from decimal import Decimal

from cobro.web.charts import bar_chart, line_chart


def _texts(svg: str) -> list[tuple[float, str]]:
    return [(float(x), t) for x, t in re.findall(r'<text x="([\d.]+)"[^>]*>([^<]*)</text>', svg)]


def test_bars_start_at_zero_and_carry_their_values() -> None:
    svg = str(bar_chart(["not due", "1-30"], [("EUR", [Decimal("1500"), Decimal("250")])]))
    shown = [t for _, t in _texts(svg)]
    assert "0" in shown  # the axis starts at 0, and says so
    assert "1,500" in shown and "250" in shown  # each bar's value, above it
    heights = [float(h) for h in re.findall(r'<rect class="bar s0"[^>]*height="([\d.]+)"', svg)]
    assert heights[0] > 0 and abs(heights[1] / heights[0] - 250 / 1500) < 0.01


def test_a_line_starts_at_zero_and_keeps_its_last_label_inside() -> None:
    labels = [f"M{i:02d}" for i in range(12)]
    svg = str(line_chart(labels, [100 + i for i in range(12)], width=1000, title="DSO <&>"))
    ticks = dict((t, x) for x, t in _texts(svg))
    assert "0" in ticks  # from 0, not from the smallest value (100)
    assert ticks["M11"] + 20 <= 1000  # the last label's half-width fits before the edge
    assert "DSO &lt;&amp;&gt;" in svg
    # the grade chart gives its own range (1 is best, on top)
    grades = str(line_chart(["a", "b"], [3, 5], low=1, high=10, invert=True))
    assert "0" not in [t for _, t in _texts(grades)]
