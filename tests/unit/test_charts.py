"""The inline-SVG chart builder: labelled axes, a legend, names for screen readers, one series
per currency, an empty chart that says so, escaped text, and CSV cells that never run."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from decimal import Decimal

from console.charts import Chart, Series, csv_rows, defuse, nice_ticks, per_currency, render, rows

NS = "{http://www.w3.org/2000/svg}"


def _texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(el.itertext()) for el in root.iter(f"{NS}text")]


def _chart(**kwargs: object) -> Chart:
    values: dict[str, object] = {
        "key": "orders_by_region",
        "title": "Orders by region",
        "x_label": "Region",
        "y_label": "Orders",
        "categories": ["EU", "US"],
        "series": [Series("Orders", [3, 7])],
        "empty_text": "no orders in this period",
        **kwargs,
    }
    return Chart(**values)  # type: ignore[arg-type]


def test_bar_chart_has_title_axis_labels_legend_and_accessible_name() -> None:
    svg = render(_chart())
    root = ET.fromstring(svg)  # well-formed XML
    assert root.get("role") == "img"
    assert root.get("aria-label") == "Orders by region"
    title = root.find(f"{NS}title")
    assert title is not None
    assert title.text == "Orders by region"
    ids = (root.get("aria-labelledby") or "").split()
    assert title.get("id") in ids
    texts = _texts(svg)
    assert "Region" in texts  # x axis label
    assert "Orders" in texts  # y axis label and the legend
    assert {"EU", "US"} <= set(texts)  # category labels
    bars = root.findall(f"{NS}rect")[1:]  # after the background
    assert len(bars) == 2
    heights = [float(b.get("height", "0")) for b in bars]
    assert heights[1] > heights[0] * 2  # 7 vs 3, on the same scale
    assert [b.findtext(f"{NS}title") for b in bars] == ["EU · Orders: 3", "US · Orders: 7"]


def test_y_axis_ticks_reach_the_largest_value() -> None:
    assert nice_ticks(7) == [0, 2, 4, 6, 8]
    assert nice_ticks(1234)[-1] >= 1234
    texts = _texts(render(_chart()))
    assert "8" in texts
    assert "0" in texts


def test_one_series_per_currency_never_summed() -> None:
    figures = {
        "EU": {"EUR": Decimal("100.00"), "USD": Decimal("5.50")},
        "US": {"USD": Decimal("40.00")},
    }
    series = per_currency(["EU", "US"], figures)
    assert [s.name for s in series] == ["EUR", "USD"]
    assert list(series[0].values) == [Decimal("100.00"), Decimal(0)]
    assert list(series[1].values) == [Decimal("5.50"), Decimal("40.00")]
    chart = _chart(series=series, decimals=2)
    texts = _texts(render(chart))
    assert "EUR" in texts
    assert "USD" in texts
    assert rows(chart) == [["EU", "100.00", "5.50"], ["US", "0.00", "40.00"]]
    assert "145.50" not in render(chart)  # no cross-currency total anywhere


def test_line_chart_draws_a_polyline_per_series() -> None:
    days = ["2025-01-01", "2025-01-02", "2025-01-03"]
    chart = _chart(
        kind="line", categories=days, series=[Series("EUR", [1, 2, 3]), Series("USD", [3, 0, 1])]
    )
    root = ET.fromstring(render(chart))
    lines = root.findall(f"{NS}polyline")
    assert len(lines) == 2
    assert lines[0].get("stroke-dasharray") != lines[1].get("stroke-dasharray")  # not colour only
    assert len(root.findall(f"{NS}circle")) == 6


def test_empty_data_says_so() -> None:
    for chart in (_chart(categories=[], series=[]), _chart(series=[Series("Orders", [0, 0])])):
        assert chart.empty
        svg = render(chart)
        assert "no orders in this period" in _texts(svg)
        assert "<rect" in svg
        assert "<polyline" not in svg
        assert ET.fromstring(svg).get("role") == "img"


def test_text_is_escaped() -> None:
    svg = render(_chart(categories=["<script>x</script>", "A&B"], title='"Orders" <b>'))
    assert "<script>" not in svg
    assert "<b>" not in svg
    ET.fromstring(svg)  # still well-formed
    assert re.search(r"A&amp;B", svg)


def test_csv_cells_that_look_like_formulas_are_defused() -> None:
    chart = _chart(categories=["=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "EU"])
    chart = _chart(
        categories=chart.categories, series=[Series("=cmd", [1, 2, 3, 4, 5, 6, Decimal("7.5")])]
    )
    out = csv_rows(chart)
    assert out[0] == ["Region", "'=cmd"]
    assert [r[0] for r in out[1:]] == [
        "'=HYPERLINK(1)",
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
        "EU",
    ]
    assert out[-1][1] == "8"  # decimals=0: plain number, no thousands separator
    assert defuse("safe") == "safe"
