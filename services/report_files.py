"""Report tables as CSV / XLSX files and report charts as PNG images.

Pure apart from writing to the binary stream it is given. Rows are iterated once (they may be
a generator of 100,000+ rows), so memory stays bounded. Text cells that a spreadsheet could
run as a formula are defused (:func:`defuse`); numbers are written as numbers, never defused.

XLSX ``percent`` columns hold the value as given (12.5 means 12.5 %) with the number format
``0.0"%"``; they are not stored as fractions.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, BinaryIO, Literal

from xlsxwriter import Workbook  # type: ignore[import-untyped]
from xlsxwriter.format import Format  # type: ignore[import-untyped]
from xlsxwriter.worksheet import Worksheet  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from matplotlib.axes import Axes

ColumnKind = Literal["text", "int", "decimal", "money", "percent", "date", "datetime"]
Progress = Callable[[int], None]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PROGRESS_EVERY = 1_000
NO_DATA = "No data for this report"
_FORMATS = {
    "csv": (".csv", "text/csv; charset=utf-8"),
    "xlsx": (".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "png": (".png", "image/png"),
}
# xlsx number formats per column kind (None: General).
_NUM_FORMATS: dict[str, str | None] = {
    "money": "#,##0.00",
    "percent": '0.0"%"',
    "date": "yyyy-mm-dd",
    "datetime": "yyyy-mm-dd hh:mm",
}
_MIN_WIDTH = {"date": 12, "datetime": 17, "money": 14}
_EXACT_INT = 10**15  # Excel keeps 15 significant digits: larger ints go in as text


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: ColumnKind = "text"


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[Column, ...]
    rows: Iterable[Sequence[object]]  # may be a generator: iterated once
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float | None, ...]  # one per category


@dataclass(frozen=True)
class Panel:
    title: str  # e.g. "EUR"
    series: tuple[Series, ...]


@dataclass(frozen=True)
class Chart:
    title: str
    x_label: str
    y_label: str
    categories: tuple[str, ...]
    panels: tuple[Panel, ...]  # one per currency: money is never mixed
    kind: Literal["line", "bar"] = "line"
    # (series name, lower, upper): shaded interval drawn in each panel with that series.
    bands: tuple[tuple[str, tuple[float, ...], tuple[float, ...]], ...] = ()


def defuse(cell: str) -> str:
    """A text cell starting with = + - @ tab or CR gets a leading quote, so a spreadsheet
    shows it as text instead of evaluating it."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def content_type(fmt: str) -> str:
    return _format(fmt)[1]


def file_suffix(fmt: str) -> str:
    """The file name suffix, dot included (".csv")."""
    return _format(fmt)[0]


def _format(fmt: str) -> tuple[str, str]:
    try:
        return _FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown report format {fmt!r}") from None


def _checked_rows(table: Table) -> Iterable[Sequence[object]]:
    width = len(table.columns)
    for n, row in enumerate(table.rows, start=1):
        if len(row) != width:
            raise ValueError(f"row {n} has {len(row)} cells, expected {width}")
        yield row


def _tick(progress: Progress | None, done: int, final: bool = False) -> None:
    # Every PROGRESS_EVERY rows, plus once at the end if the count is not a multiple.
    if progress is not None and (done % PROGRESS_EVERY == 0) != final:
        progress(done)


def _plain(value: object) -> str:
    """A CSV cell: numbers plain (no exponent), dates ISO, None and NaN/inf empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f") if math.isfinite(value) else ""
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else ""
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    return defuse(str(value))


def write_csv(table: Table, out: BinaryIO, *, progress: Progress | None = None) -> int:
    """UTF-8 CSV with a BOM (for Excel): a header of labels, then one line per row. Returns
    the row count."""
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="", write_through=True)
    try:
        writer = csv.writer(text)
        writer.writerow([defuse(c.label) for c in table.columns])
        done = 0
        for row in _checked_rows(table):
            writer.writerow([_plain(v) for v in row])
            done += 1
            _tick(progress, done)
        _tick(progress, done, final=True)
    finally:
        text.flush()
        text.detach()  # leave ``out`` open for the caller
    return done


def write_xlsx(table: Table, out: BinaryIO, *, progress: Progress | None = None) -> int:
    """An XLSX workbook: sheet 1 has a styled, frozen, filterable header row and typed cells;
    sheet "About" the title and notes. Written in constant-memory mode (rows streamed to a
    temp file), so memory does not grow with the row count. Returns the row count."""
    options = {
        "constant_memory": True,  # needs in_memory=False (xlsxwriter turns it off otherwise)
        "in_memory": False,
        "strings_to_formulas": False,
        "strings_to_urls": False,
        "strings_to_numbers": False,
    }
    with Workbook(out, options) as book:
        sheet = book.add_worksheet(_sheet_name(table.title))
        about = book.add_worksheet("About")
        head = book.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1})
        fmts = {k: book.add_format({"num_format": f}) for k, f in _NUM_FORMATS.items() if f}
        cols = table.columns
        for i, col in enumerate(cols):
            width = max(len(col.label) + 3, _MIN_WIDTH.get(col.kind, 8))
            sheet.set_column(i, i, min(width, 60))
            sheet.write_string(0, i, defuse(col.label), head)
        sheet.freeze_panes(1, 0)
        kinds = [c.kind for c in cols]
        done = 0
        for r, row in enumerate(_checked_rows(table), start=1):
            for c, value in enumerate(row):
                _cell(sheet, r, c, value, kinds[c], fmts)
            done = r
            _tick(progress, done)
        _tick(progress, done, final=True)
        if cols:
            sheet.autofilter(0, 0, done, len(cols) - 1)
        about.set_column(0, 0, 100)
        about.write_string(0, 0, defuse(table.title), book.add_format({"bold": True}))
        for i, note in enumerate(table.notes, start=2):
            about.write_string(i, 0, defuse(note))
    return done


_Fmts = dict[str, Format]


def _sheet_name(title: str) -> str:
    # Excel: at most 31 characters, none of []:*?/\ and not "About" (our second sheet).
    name = "".join(" " if ch in "[]:*?/\\" else ch for ch in title).strip(" '")[:31]
    return name if name and name.lower() != "about" else "Report"


def _cell(sheet: Worksheet, r: int, c: int, value: object, kind: str, fmts: _Fmts) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        sheet.write_boolean(r, c, value)
    elif isinstance(value, int | float | Decimal):
        if isinstance(value, int) and abs(value) >= _EXACT_INT:
            sheet.write_string(r, c, str(value))
        elif math.isfinite(value):
            sheet.write_number(r, c, float(value), fmts.get(kind))
    elif isinstance(value, date):
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        if value.year < 1900:  # before Excel's epoch: keep the ISO text
            sheet.write_string(r, c, value.isoformat())
            return
        is_dt = isinstance(value, datetime)
        fmt = kind if kind in ("date", "datetime") else ("datetime" if is_dt else "date")
        sheet.write_datetime(r, c, value, fmts[fmt])
    else:
        sheet.write_string(r, c, defuse(str(value)))


def render_png(
    chart: Chart, *, width_px: int = 1000, height_px: int | None = None, dpi: int = 100
) -> bytes:
    """The chart as PNG: one subplot per panel, stacked. Uses matplotlib's object API with the
    Agg canvas (no pyplot global state, safe from worker threads)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    empty = not chart.panels or not chart.categories
    panels = chart.panels if not empty else (Panel("", ()),)
    height = height_px or 100 + 400 * len(panels)
    fig = Figure(figsize=(width_px / dpi, height / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels, strict=True):
        one = len(chart.panels) <= 1
        ax.set_title(chart.title if one else f"{chart.title} — {panel.title}")
        if empty or not any(v is not None for s in panel.series for v in s.values):
            _no_data(ax)
            continue
        _draw_panel(ax, chart, panel, width_px)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, NO_DATA, ha="center", va="center", transform=ax.transAxes, fontsize=14)
    ax.set_xticks([])
    ax.set_yticks([])


def _floats(values: Sequence[float | None], n: int, what: str) -> list[float]:
    if len(values) != n:
        raise ValueError(f"{what} has {len(values)} values for {n} categories")
    return [math.nan if v is None else float(v) for v in values]  # NaN: a gap


def _draw_panel(ax: Axes, chart: Chart, panel: Panel, width_px: int) -> None:
    n = len(chart.categories)
    xs = list(range(n))
    colours: dict[str, str] = {}
    group = 0.8 / max(1, len(panel.series))  # bar width within a category group
    for i, s in enumerate(panel.series):
        ys = _floats(s.values, n, f"series {s.name!r}")
        colour = f"C{i % 10}"
        colours[s.name] = colour
        if chart.kind == "bar":
            offset = (i - (len(panel.series) - 1) / 2) * group
            ax.bar([x + offset for x in xs], ys, width=group, label=s.name, color=colour)
        else:
            ax.plot(xs, ys, label=s.name, color=colour, marker="o", markersize=3)
    bands = [b for b in chart.bands if b[0] in colours]
    for name, lower, upper in bands:
        lo = _floats(lower, n, f"band {name!r}")
        hi = _floats(upper, n, f"band {name!r}")
        ax.fill_between(
            xs, lo, hi, color=colours[name], alpha=0.2, zorder=0.5, label=f"{name} (interval)"
        )
    ax.set_xlabel(chart.x_label)
    ax.set_ylabel(chart.y_label)
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    ax.grid(axis="y", alpha=0.3)
    # Thin and rotate category labels when there are many.
    step = max(1, math.ceil(n / max(1, width_px // 45)))
    ax.set_xticks(xs[::step], [chart.categories[x] for x in xs[::step]])
    if n > 12:
        ax.tick_params(axis="x", labelrotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    if len(panel.series) > 1 or bands:
        ax.legend()
