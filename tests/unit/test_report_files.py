"""Report files: CSV with a BOM and defused text, XLSX read back with typed cells, a frozen
filterable header and no formulas, and PNG charts (panels, bands, the empty chart)."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from PIL import Image
from python_calamine import CalamineWorkbook

from services.report_files import (
    Chart,
    Column,
    Panel,
    Series,
    Table,
    content_type,
    defuse,
    file_suffix,
    render_png,
    write_csv,
    write_xlsx,
)

TRICKY = ["=cmd()", "+1", "-x", "@a", "\tx", "\rx"]
COLUMNS = (
    Column("name", "Name"),
    Column("orders", "Orders", "int"),
    Column("net", "Net", "money"),
    Column("margin", "Margin", "percent"),
    Column("day", "Day", "date"),
    Column("placed", "Placed", "datetime"),
)
NOTES = ("Revenue per currency; never summed across currencies.",)


def _rows() -> Iterator[tuple[object, ...]]:
    placed = datetime(2024, 3, 5, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    yield ("ACME", 3, Decimal("-12.50"), 12.5, date(2024, 3, 5), placed)
    yield ("=1+1", -4, None, None, None, None)
    for text in TRICKY:
        yield (text, 1, Decimal("1E+3"), 0.00001, date(2024, 1, 1), datetime(2024, 1, 1))


def _table(rows: object = None) -> Table:
    return Table("Orders by customer", COLUMNS, rows or _rows(), NOTES)  # type: ignore[arg-type]


def test_defuse_only_touches_formula_starts() -> None:
    assert [defuse(t) for t in TRICKY] == ["'" + t for t in TRICKY]
    assert defuse("safe -1") == "safe -1"
    assert defuse("") == ""


def test_csv_has_bom_header_plain_numbers_and_defused_text() -> None:
    out = io.BytesIO()
    ticks: list[int] = []
    assert write_csv(_table(), out, progress=ticks.append) == 8
    data = out.getvalue()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[0] == ["Name", "Orders", "Net", "Margin", "Day", "Placed"]
    assert rows[1] == ["ACME", "3", "-12.50", "12.5", "2024-03-05", "2024-03-05T14:30:00+02:00"]
    assert rows[2] == ["'=1+1", "-4", "", "", "", ""]  # a negative number stays a number
    assert [r[0] for r in rows[3:]] == ["'" + t for t in TRICKY]
    assert rows[3][1:4] == ["1", "1000", "0.00001"]  # no exponent
    assert ticks == [8]  # fewer than 1,000 rows: one final report


def test_csv_reports_progress_every_thousand_rows_and_keeps_stream_open() -> None:
    out = io.BytesIO()
    ticks: list[int] = []
    rows = (("x", i, None, None, None, None) for i in range(2_500))
    assert write_csv(_table(rows), out, progress=ticks.append) == 2_500
    assert ticks == [1_000, 2_000, 2_500]
    assert not out.closed


def test_row_of_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="row 1 has 1 cells"):
        write_csv(_table(iter([("only one",)])), io.BytesIO())


def _xlsx(table: Table) -> bytes:
    out = io.BytesIO()
    write_xlsx(table, out)
    return out.getvalue()


def test_xlsx_reads_back_typed_and_defused() -> None:
    data = _xlsx(_table())
    book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    assert book.sheet_names == ["Orders by customer", "About"]
    rows = book.get_sheet_by_index(0).to_python()
    assert rows[0] == ["Name", "Orders", "Net", "Margin", "Day", "Placed"]
    name, orders, net, margin, day, placed = rows[1]
    assert (name, orders, net, margin) == ("ACME", 3, -12.5, 12.5)
    assert isinstance(orders, int | float)
    assert isinstance(net, float)
    assert day == date(2024, 3, 5)
    assert placed == datetime(2024, 3, 5, 12, 30)  # aware -> UTC, naive
    assert rows[2][:2] == ["'=1+1", -4]  # literal text, not 2
    assert [r[0] for r in rows[3:]] == ["'" + t for t in TRICKY]
    about = book.get_sheet_by_name("About").to_python()
    assert about[0][0] == "Orders by customer"
    assert [r[0] for r in about[1:] if r[0]] == list(NOTES)


def test_xlsx_header_is_frozen_filtered_and_there_are_no_formulas() -> None:
    with zipfile.ZipFile(io.BytesIO(_xlsx(_table()))) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
        styles = z.read("xl/styles.xml").decode()
    assert "<pane" in sheet
    assert 'ySplit="1"' in sheet
    assert '<autoFilter ref="A1:F9"/>' in sheet
    assert "<f>" not in sheet
    assert "<f " not in sheet
    assert 'formatCode="#,##0.00"' in styles
    assert 'formatCode="0.0&quot;%&quot;"' in styles


def test_xlsx_streams_a_generator_of_20000_rows() -> None:
    rows = (
        (f"c{i}", i, Decimal(i) / 100, 1.5, date(2024, 1, 1), datetime(2024, 1, 1, tzinfo=UTC))
        for i in range(20_000)
    )
    ticks: list[int] = []
    out = io.BytesIO()
    assert write_xlsx(_table(rows), out, progress=ticks.append) == 20_000
    assert ticks == [1_000 * k for k in range(1, 21)]
    sheet = CalamineWorkbook.from_filelike(io.BytesIO(out.getvalue())).get_sheet_by_index(0)
    assert sheet.height == 20_001


def test_formats() -> None:
    assert content_type("csv") == "text/csv; charset=utf-8"
    assert content_type("xlsx").endswith("spreadsheetml.sheet")
    assert content_type("png") == "image/png"
    assert [file_suffix(f) for f in ("csv", "xlsx", "png")] == [".csv", ".xlsx", ".png"]
    with pytest.raises(ValueError, match="unknown report format"):
        content_type("pdf")


CATS = tuple(f"2024-{m:02d}" for m in range(1, 13))
EUR = Panel("EUR", (Series("Actual", (1.0, None, 3.0, *[4.0] * 9)), Series("Plan", (2.0,) * 12)))
USD = Panel("USD", (Series("Actual", tuple(float(i) for i in range(12))),))


def _png(chart: Chart, **kw: int) -> Image.Image:
    data = render_png(chart, **kw)
    assert data.startswith(b"\x89PNG")
    return Image.open(io.BytesIO(data))


def test_png_has_the_width_and_grows_with_panels() -> None:
    one = _png(Chart("Revenue", "Month", "Amount", CATS, (EUR,)), width_px=800)
    two = _png(Chart("Revenue", "Month", "Amount", CATS, (EUR, USD), kind="bar"), width_px=800)
    assert one.width == two.width == 800
    assert two.height > one.height


def test_png_renders_bands_and_many_categories() -> None:
    cats = tuple(f"d{i}" for i in range(60))
    forecast = Panel("EUR", (Series("Forecast", tuple(float(i) for i in range(60))),))
    lower = tuple(i - 2.0 for i in range(60))
    upper = tuple(i + 2.0 for i in range(60))
    chart = Chart("Forecast", "Day", "EUR", cats, (forecast,), bands=(("Forecast", lower, upper),))
    assert _png(chart).size == (1000, 500)


def test_png_band_of_wrong_length_is_refused() -> None:
    chart = Chart("F", "x", "y", CATS, (USD,), bands=(("Actual", (1.0,), (2.0,)),))
    with pytest.raises(ValueError, match="band 'Actual'"):
        render_png(chart)


@pytest.mark.parametrize(
    "chart",
    [
        Chart("Nothing", "x", "y", (), ()),
        Chart("Nothing", "x", "y", CATS, ()),
        Chart("Nothing", "x", "y", (), (EUR,)),
    ],
)
def test_empty_chart_is_still_a_png(chart: Chart) -> None:
    assert _png(chart, height_px=300).size == (1000, 300)
