"""The import's downloadable template and its problem report, as CSV and XLSX bytes (pure).

Cells are written as text (``strings_to_formulas`` off), and a report cell beginning with
= + - @ tab or CR is prefixed with a quote, so a spreadsheet never runs what a file brought in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal

from domain.import_formats import Sheet, Table, write_csv, write_xlsx
from domain.imports import COLUMN_NAMES, COLUMNS, Problem

_TEXT_COLUMNS = frozenset(
    i for i, c in enumerate(COLUMNS) if c.name not in ("quantity", "unit_price", "list_price")
)
_NUMERIC = frozenset({"quantity", "unit_price", "list_price"})


def _example_rows(typed: bool) -> Iterator[list[str | int | float | Decimal]]:
    for i in range(2):
        row: list[str | int | float | Decimal] = []
        for c in COLUMNS:
            value = c.example[i]
            if typed and value and c.name in _NUMERIC:
                row.append(int(value) if c.name == "quantity" else Decimal(value))
            else:
                row.append(value)
        yield row


def template_csv() -> bytes:
    """The import template as CSV (UTF-8 with BOM): the header and one order of two lines."""
    return write_csv([list(COLUMN_NAMES), *([str(v) for v in r] for r in _example_rows(False))])


def template_xlsx() -> bytes:
    """The import template: sheet "orders" with the header and one example order of two lines,
    sheet "columns" documenting each column (name, required, format, example, meaning)."""
    docs = [
        [c.name, "yes" if c.required else "no", c.format, c.example[0] or c.example[1], c.meaning]
        for c in COLUMNS
    ]
    docs.append(
        ["(rows)", "", "", "", "One row per order line; the rows with the same order_ref are one "
         "order. Order-level columns may be left blank on the order's other rows."]
    )  # fmt: skip
    return write_xlsx(
        [
            Sheet(
                "orders",
                COLUMN_NAMES,
                _example_rows(True),
                widths=[max(12, len(c.name) + 2) for c in COLUMNS],
                text_columns=_TEXT_COLUMNS,
            ),
            Sheet(
                "columns",
                ("column", "required", "format", "example", "meaning"),
                docs,
                widths=(18, 9, 24, 18, 90),
            ),
        ]
    )


REPORT_HEADER = ("row", "order_ref", "column", "severity", "code", "message", "value")


def _report_rows(problems: Iterable[Problem], table: Table) -> Iterator[list[str]]:
    by_number = {row.number: row for row in table.rows}
    width = len(table.header)
    for p in problems:
        original: Sequence[str] = ()
        if p.row is not None:
            found = by_number.get(p.row)
            original = found.cells if found else table.header if p.row == table.header_row else ()
        cells = list(original[:width]) + [""] * (width - len(original[:width]))
        yield [
            str(p.row) if p.row is not None else "",
            p.order_ref or "",
            p.column or "",
            p.severity,
            p.code,
            p.message,
            p.value,
            *cells,
        ]


def _report_header(table: Table) -> list[str]:
    return [*REPORT_HEADER, *(f"[{name}]" for name in table.header)]


def report_csv(problems: Iterable[Problem], table: Table) -> bytes:
    """The problems as CSV (UTF-8 with BOM), each with the original row's cells (headed by the
    file's column names in brackets); a cell that could run as a formula gets a leading '."""
    return write_csv([_report_header(table), *_report_rows(problems, table)])


def report_xlsx(problems: Iterable[Problem], table: Table) -> bytes:
    """The same report as an XLSX workbook (one sheet, "problems")."""
    header = _report_header(table)
    return write_xlsx(
        [
            Sheet(
                "problems",
                header,
                _report_rows(problems, table),
                widths=[6, 14, 16, 8, 18, 70, 20] + [16] * len(table.header),
                text_columns=frozenset(range(len(header))),
            )
        ]
    )
