"""Charts as inline SVG, drawn on the server: no JavaScript, no external asset, readable
without colour (every bar carries its value above it, and every bar and point in a
<title>). Value axes start at 0 (unless a caller gives its own range, as the grade chart
does); the first and last labels stay inside the picture. Text is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape

from babel.numbers import format_compact_decimal, format_decimal
from markupsafe import Markup

from cobro.i18n import current_locale

Number = Decimal | int | float


def _fmt(value: Number) -> str:
    """A bar's value as the reader's language shortens it: `1.4M` / `1,4 M` / `1,4 Mio.`,
    `719K` / `719 mil`; below 10,000 (or where CLDR has no short form) grouped in full."""
    v = float(value)
    locale = current_locale()
    if abs(v) >= 10_000:
        short = format_compact_decimal(v, locale=locale, fraction_digits=1 if abs(v) >= 1e6 else 0)
        if any(c.isalpha() for c in short):
            return short
    return format_decimal(round(v), format="#,##0", locale=locale)


def bar_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[Number]]],
    *,
    width: int = 640,
    height: int = 220,
    title: str = "",
) -> Markup:
    """Grouped vertical bars from 0: one group per label, one bar per series, each with its
    value written above it."""
    top = max((float(v) for _, values in series for v in values), default=0.0) or 1.0
    pad_left, pad_bottom, pad_top = 48, 28, 26 if len(series) > 1 else 16
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
        f'<text x="{pad_left - 4}" y="{pad_top + plot_h + 4}" class="tick" text-anchor="end">'
        "0</text>",
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
                f'<text x="{x + bar_w * 0.46:.1f}" y="{pad_top + plot_h - h - 3:.1f}" '
                f'class="tick value" text-anchor="middle">{_fmt(value)}</text>'
            )
        parts.append(
            f'<text x="{pad_left + (i + 0.5) * group_w:.1f}" y="{height - 8}" class="tick" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    if len(series) > 1:
        for j, (name, _) in enumerate(series):
            x = pad_left + j * 90  # the legend on one line above the plot
            parts.append(
                f'<rect class="bar s{j}" x="{x}" y="2" width="10" height="10"/>'
                f'<text x="{x + 14}" y="11" class="tick">{escape(name)}</text>'
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
    """A line over labelled points, its value axis from 0 (or `low`..`high`); None leaves a
    gap. `invert`: small values on top (insurer grades, where 1 is best)."""
    known = [float(v) for v in values if v is not None]
    lo = low if low is not None else min(0.0, *known) if known else 0.0
    hi = high if high is not None else max(known, default=1.0)
    if hi == lo:
        hi = lo + 1
    pad_left, pad_bottom, pad_top, pad_right = 48, 28, 12, 28  # room for the last label
    plot_w, plot_h = width - pad_left - pad_right, height - pad_bottom - pad_top
    step = plot_w / max(1, len(labels) - 1)

    def y_of(v: float) -> float:
        share = (v - lo) / (hi - lo)
        return pad_top + (share if invert else 1 - share) * plot_h

    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} '
        f'{height}" width="100%" preserveAspectRatio="xMinYMin meet">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{width - pad_right}" '
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
        if len(labels) <= 13 or i % max(1, len(labels) // 12) == 0 or i == len(labels) - 1:
            parts.append(
                f'<text x="{x:.1f}" y="{height - 8}" class="tick" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    if path:
        parts.append(f'<polyline class="line" points="{" ".join(path)}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
