"""Charts as inline SVG, drawn on the server: no JavaScript, no external asset, readable
without colour (every bar and point carries its value in a <title>). Text is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape

from markupsafe import Markup

Number = Decimal | int | float


def _fmt(value: Number) -> str:
    v = float(value)
    if abs(v) >= 1_000_000:
        return f"{v / 1_000_000:.1f}M"
    if abs(v) >= 10_000:
        return f"{v / 1000:.0f}k"
    return f"{v:,.0f}"


def bar_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[Number]]],
    *,
    width: int = 640,
    height: int = 220,
    title: str = "",
) -> Markup:
    """Grouped vertical bars: one group per label, one bar per series."""
    top = max((float(v) for _, values in series for v in values), default=0.0) or 1.0
    pad_left, pad_bottom, pad_top = 48, 28, 12
    plot_w, plot_h = width - pad_left - 8, height - pad_bottom - pad_top
    group_w = plot_w / max(1, len(labels))
    bar_w = group_w * 0.8 / max(1, len(series))
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} '
        f'{height}" width="100%" preserveAspectRatio="xMinYMin meet">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{width - 8}" '
        f'y2="{pad_top + plot_h}" class="axis"/>',
        f'<text x="{pad_left - 4}" y="{pad_top + 8}" class="tick" text-anchor="end">'
        f"{_fmt(top)}</text>",
    ]
    for i, label in enumerate(labels):
        x0 = pad_left + i * group_w + group_w * 0.1
        for j, (name, values) in enumerate(series):
            value = float(values[i]) if i < len(values) else 0.0
            h = plot_h * max(0.0, value) / top
            x = x0 + j * bar_w
            parts.append(
                f'<rect class="bar s{j}" x="{x:.1f}" y="{pad_top + plot_h - h:.1f}" '
                f'width="{bar_w * 0.92:.1f}" height="{h:.1f}"><title>{escape(name)} '
                f"{escape(label)}: {_fmt(value)}</title></rect>"
            )
        parts.append(
            f'<text x="{pad_left + (i + 0.5) * group_w:.1f}" y="{height - 8}" class="tick" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    if len(series) > 1:
        for j, (name, _) in enumerate(series):
            y = pad_top + 4 + j * 14
            parts.append(
                f'<rect class="bar s{j}" x="{width - 150}" y="{y}" width="10" height="10"/>'
                f'<text x="{width - 136}" y="{y + 9}" class="tick">{escape(name)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(
    labels: Sequence[str],
    values: Sequence[Number | None],
    *,
    width: int = 640,
    height: int = 200,
    title: str = "",
    invert: bool = False,
    low: float | None = None,
    high: float | None = None,
) -> Markup:
    """A line over labelled points; None leaves a gap. `invert`: small values on top (insurer
    grades, where 1 is best)."""
    known = [float(v) for v in values if v is not None]
    lo = low if low is not None else min(known, default=0.0)
    hi = high if high is not None else max(known, default=1.0)
    if hi == lo:
        hi = lo + 1
    pad_left, pad_bottom, pad_top = 48, 28, 12
    plot_w, plot_h = width - pad_left - 12, height - pad_bottom - pad_top
    step = plot_w / max(1, len(labels) - 1)

    def y_of(v: float) -> float:
        share = (v - lo) / (hi - lo)
        return pad_top + (share if invert else 1 - share) * plot_h

    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} '
        f'{height}" width="100%" preserveAspectRatio="xMinYMin meet">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{width - 12}" '
        f'y2="{pad_top + plot_h}" class="axis"/>',
        f'<text x="{pad_left - 4}" y="{y_of(hi) + 4:.1f}" class="tick" text-anchor="end">'
        f"{_fmt(hi)}</text>",
        f'<text x="{pad_left - 4}" y="{y_of(lo) + 4:.1f}" class="tick" text-anchor="end">'
        f"{_fmt(lo)}</text>",
    ]
    path: list[str] = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = pad_left + i * step
        if value is None:
            if path:
                parts.append(f'<polyline class="line" points="{" ".join(path)}"/>')
            path = []
        else:
            y = y_of(float(value))
            path.append(f"{x:.1f},{y:.1f}")
            parts.append(
                f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3"><title>'
                f"{escape(label)}: {_fmt(value)}</title></circle>"
            )
        if len(labels) <= 13 or i % max(1, len(labels) // 12) == 0:
            parts.append(
                f'<text x="{x:.1f}" y="{height - 8}" class="tick" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    if path:
        parts.append(f'<polyline class="line" points="{" ".join(path)}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
