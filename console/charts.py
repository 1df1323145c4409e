"""Charts as inline SVG, built on the server from numbers: no chart script, nothing external.

A :class:`Chart` holds categories (the x axis: days, regions, levels) and one or more
:class:`Series` of values; :func:`render` draws it as a bar or line chart with a title,
labelled axes and a legend, and names it for screen readers (``role="img"``, ``<title>``,
``<desc>``, ``aria-labelledby``). The page shows the same figures as a table beside it
(:func:`rows`), and :func:`csv_rows` is what the export button downloads. Money is never summed
across currencies: :func:`per_currency` turns figures keyed by currency into one series each.

Every text that reaches the markup (titles, labels, region names) is escaped here, so the
markup can be marked safe for the template.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from html import escape
from typing import Literal

from services.report_files import defuse as defuse  # the one formula-defusing rule

Number = int | float | Decimal

WIDTH, HEIGHT = 640, 320
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 64, 64
# Distinct colours (dark enough for white paper) plus a dash pattern each, so series differ
# by more than colour.
PALETTE = ("#0b4f9c", "#a4161a", "#136c2e", "#8a4b00", "#5b2a86", "#00606b")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4")


@dataclass(frozen=True)
class Series:
    """One line or one colour of bars: a value per category (None: no figure)."""

    name: str
    values: Sequence[Number | None]


@dataclass(frozen=True)
class Chart:
    """What one chart shows. ``extra`` are columns of the table and the export only."""

    key: str
    title: str
    x_label: str
    y_label: str
    categories: Sequence[str]
    series: Sequence[Series]
    kind: Literal["bar", "line"] = "bar"
    empty_text: str = "no data"
    decimals: int = 0
    extra: Sequence[Series] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not self.categories or not any(
            v is not None and v != 0 for s in self.series for v in s.values
        )


def per_currency(
    categories: Sequence[str], figures: Mapping[str, Mapping[str, Number]]
) -> list[Series]:
    """One series per currency from ``{category: {currency: amount}}``, currencies sorted; a
    category without an amount in a currency gets 0 there. Amounts are never added across
    currencies."""
    currencies = sorted({c for amounts in figures.values() for c in amounts})
    return [
        Series(cur, [figures.get(cat, {}).get(cur, Decimal(0)) for cat in categories])
        for cur in currencies
    ]


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top`` (about ``count`` steps)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < top - 1e-9:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def fmt(value: Number | None, decimals: int = 0) -> str:
    """A figure as the chart and the table print it (thousands separated)."""
    if value is None:
        return "-"
    return format(value, f",.{decimals}f")


def _tick_label(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _label_every(labels: Sequence[str], room: float) -> int:
    """Show every n-th category label so labels never overlap (about 7 px a character)."""
    if not labels:
        return 1
    width = max(len(_short(label)) for label in labels) * 7 + 10
    return max(1, math.ceil(len(labels) * width / room))


def render(chart: Chart) -> str:
    """The chart as an ``<svg>`` element (scales to its container's width)."""
    ident = f"chart-{escape(chart.key)}"
    title, desc = escape(chart.title), escape(_description(chart))
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{ident}-title {ident}-desc" aria-label="{title}" '
        f'class="chart-svg" data-chart="{escape(chart.key)}">'
        f'<title id="{ident}-title">{title}</title><desc id="{ident}-desc">{desc}</desc>'
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>'
        f'<text x="{LEFT}" y="22" class="chart-title" font-weight="700">{title}</text>'
    )
    if chart.empty:
        return (
            head + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" '
            f'class="chart-empty">{escape(chart.empty_text)}</text></svg>'
        )
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = max(float(v) for s in chart.series for v in s.values if v is not None)
    ticks = nice_ticks(top)
    scale = plot_h / ticks[-1]
    base = TOP + plot_h
    parts = [head, _legend(chart)]
    for tick in ticks:  # grid lines and y tick labels
        y = base - tick * scale
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" '
            'stroke="#c9d0d9" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_tick_label(tick)}</text>'
        )
    n = len(chart.categories)
    slot = plot_w / n
    every = _label_every(chart.categories, plot_w)
    for i, cat in enumerate(chart.categories):  # x labels
        if i % every == 0:
            x = LEFT + slot * (i + 0.5)
            parts.append(
                f'<text x="{x:.1f}" y="{base + 18}" text-anchor="middle">'
                f"{escape(_short(cat))}</text>"
            )
    parts.append(_bars(chart, slot, scale, base) if chart.kind == "bar" else "")
    parts.append(_lines(chart, slot, scale, base) if chart.kind == "line" else "")
    parts.append(  # axes and their labels
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}" stroke="#1b1f24"/>'
        f'<line x1="{LEFT}" y1="{base}" x2="{LEFT + plot_w}" y2="{base}" stroke="#1b1f24"/>'
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 12}" text-anchor="middle" '
        f'class="axis-label">{escape(chart.x_label)}</text>'
        f'<text x="16" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" class="axis-label" '
        f'transform="rotate(-90 16 {TOP + plot_h / 2:.1f})">{escape(chart.y_label)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _short(text: str, limit: int = 12) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _description(chart: Chart) -> str:
    if chart.empty:
        return chart.empty_text
    names = ", ".join(s.name for s in chart.series)
    return f"{chart.x_label} / {chart.y_label}: {names} ({len(chart.categories)})"


def _legend(chart: Chart) -> str:
    parts, x = ['<g class="legend">'], float(LEFT)
    for i, s in enumerate(chart.series):
        colour, dash = PALETTE[i % len(PALETTE)], DASHES[i % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<line x1="{x:.1f}" y1="40" x2="{x + 22:.1f}" y2="40" stroke="{colour}" '
            f'stroke-width="4"{dash_attr}/>'
            f'<text x="{x + 28:.1f}" y="44">{escape(s.name)}</text>'
        )
        x += 40 + 8 * len(s.name)
    parts.append("</g>")
    return "".join(parts)


def _bars(chart: Chart, slot: float, scale: float, base: float) -> str:
    groups = len(chart.series)
    width = slot * 0.8 / groups
    parts = []
    for j, s in enumerate(chart.series):
        colour = PALETTE[j % len(PALETTE)]
        for i, value in enumerate(s.values):
            if value is None:
                continue
            h = float(value) * scale
            x = LEFT + slot * i + slot * 0.1 + width * j
            label = f"{chart.categories[i]} · {s.name}: {fmt(value, chart.decimals)}"
            parts.append(
                f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{max(width - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(label)}</title></rect>'
            )
    return "".join(parts)


def _lines(chart: Chart, slot: float, scale: float, base: float) -> str:
    parts = []
    for j, s in enumerate(chart.series):
        colour, dash = PALETTE[j % len(PALETTE)], DASHES[j % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        points = [
            (LEFT + slot * (i + 0.5), base - float(v) * scale, i, v)
            for i, v in enumerate(s.values)
            if v is not None
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr}/>'
        )
        for x, y, i, v in points:
            label = f"{chart.categories[i]} · {s.name}: {fmt(v, chart.decimals)}"
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                f"<title>{escape(label)}</title></circle>"
            )
    return "".join(parts)


def header(chart: Chart) -> list[str]:
    """Column names of the chart's table and export."""
    return [chart.x_label, *(s.name for s in chart.series), *(s.name for s in chart.extra)]


def rows(chart: Chart) -> list[list[str]]:
    """The figures behind the chart, one row per category, formatted for the page."""
    columns = [*chart.series, *chart.extra]
    return [
        [cat, *(fmt(c.values[i], chart.decimals) for c in columns)]
        for i, cat in enumerate(chart.categories)
    ]


def csv_rows(chart: Chart) -> list[list[str]]:
    """Header and rows for a CSV export: plain numbers (no separators), empty for no figure,
    and every cell a spreadsheet could run as a formula defused."""
    columns = [*chart.series, *chart.extra]
    out = [header(chart)]
    for i, cat in enumerate(chart.categories):
        out.append([cat, *(_plain(c.values[i], chart.decimals) for c in columns)])
    return [[defuse(cell) for cell in row] for row in out]


def _plain(value: Number | None, decimals: int) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else format(value, f".{decimals}f")


def categories_of(values: Iterable[str]) -> list[str]:
    """Distinct categories in first-seen order."""
    return list(dict.fromkeys(values))
