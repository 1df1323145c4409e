"""Import rows become orders: columns, row problems, grouping, modes, template and report."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import python_calamine
import xlsxwriter

from domain.import_formats import ImportFileError, Table, read_table
from domain.import_reports import report_csv, report_xlsx, template_csv, template_xlsx
from domain.imports import (
    COLUMN_NAMES,
    COLUMNS,
    REQUIRED,
    CustomerCheck,
    ImportMode,
    Problem,
    Validation,
    blocked,
    orders_to_start,
    validate,
)
from domain.order import MAX_LINES, PaymentType
from tests.import_files import csv_bytes, row

SKUS = frozenset({"WIDGET-1", "GADGET-2", "BOLT-3"} | {f"S-{i}" for i in range(MAX_LINES + 1)})


def table_of(rows: list[dict[str, str]], header: list[str] | None = None) -> Table:
    return read_table(csv_bytes(rows, header), "orders.csv")


def check(
    rows: list[dict[str, str]],
    *,
    customers: Callable[[str, str], CustomerCheck] | None = None,
    imported: dict[str, str] | None = None,
    header: list[str] | None = None,
) -> Validation:
    known = imported or {}
    return validate(
        table_of(rows, header),
        known_skus=SKUS,
        is_known_customer=customers,
        already_imported=known.get,
    )


def codes(validation: Validation) -> list[tuple[int | None, str | None, str]]:
    return [(p.row, p.column, p.code) for p in validation.problems]


# --- header ---------------------------------------------------------------------------------------


def test_header_names_are_case_and_space_insensitive() -> None:
    header = [n.upper().replace("_", " ") for n in COLUMN_NAMES]
    header[0] = "  Order-Ref "
    body = csv_bytes([row()]).split(b"\n", 1)[1]
    table = read_table(",".join(header).encode() + b"\n" + body, "o.csv")
    result = validate(table, known_skus=SKUS)
    assert result.problems == ()
    assert list(result.orders) == ["PO-1"]


def test_unknown_column_is_ignored_with_a_warning() -> None:
    header = [*COLUMN_NAMES, "Notes"]
    result = check([row(Notes="call first")], header=header)
    assert codes(result) == [(1, "Notes", "unknown_column")]
    assert result.problems[0].severity == "warning"
    assert list(result.orders) == ["PO-1"]
    assert orders_to_start(result, ImportMode.ALL_OR_NOTHING)


def test_optional_columns_may_be_absent() -> None:
    optional = {c.name for c in COLUMNS if not c.required}
    header = [n for n in COLUMN_NAMES if n not in optional]
    result = check([row(payment_type="bank_transfer")], header=header)
    assert result.problems == ()
    spec = result.orders["PO-1"]
    assert spec.payment_method.type is PaymentType.BANK_TRANSFER
    assert spec.sales_rep is None


def test_missing_header_row_is_a_file_error() -> None:
    data = csv_bytes([row(), row(order_ref="PO-2")])
    headless = data.split(b"\n", 1)[1]  # the data rows only
    with pytest.raises(ImportFileError) as info:
        validate(read_table(headless, "o.csv"), known_skus=SKUS)
    assert info.value.code == "missing_header"
    assert "row 1" in info.value.message
    assert "'PO-1'" in info.value.message


def test_missing_required_columns_are_named() -> None:
    header = [n for n in COLUMN_NAMES if n not in ("sku", "ship_city")]
    with pytest.raises(ImportFileError) as info:
        check([row()], header=header)
    assert info.value.code == "missing_columns"
    assert "sku, ship_city" in info.value.message


def test_duplicate_column_is_a_file_error() -> None:
    with pytest.raises(ImportFileError) as info:
        check([row()], header=[*COLUMN_NAMES, "SKU"])
    assert info.value.code == "duplicate_columns"


# --- a valid file ---------------------------------------------------------------------------------


def test_valid_rows_become_order_specs() -> None:
    rows = [
        row(),
        row(sku="GADGET-2", quantity="1", unit_price="5.50", list_price="6.00"),
        row(order_ref="PO-2", customer_id="C-2", currency="jpy", unit_price="1500",
            payment_type="Bank Transfer", payment_token="", ship_country="de"),
    ]  # fmt: skip
    result = check(rows)
    assert result.problems == ()
    assert list(result.orders) == ["PO-1", "PO-2"]
    first = result.orders["PO-1"]
    assert first.external_reference == "PO-1"
    assert [(ln.sku, ln.quantity, ln.unit_price) for ln in first.lines] == [
        ("WIDGET-1", 2, Decimal("19.99")),
        ("GADGET-2", 1, Decimal("5.50")),
    ]
    assert first.lines[1].list_price == Decimal("6.00")
    second = result.orders["PO-2"]
    assert (second.currency, second.shipping_address.country) == ("JPY", "DE")
    assert second.payment_method.type is PaymentType.BANK_TRANSFER
    assert result.counts.rows == 3
    assert (result.counts.orders, result.counts.orders_valid, result.counts.orders_invalid) == (
        2,
        2,
        0,
    )
    assert result.order_rows == {"PO-1": (2, 3), "PO-2": (4,)}


def test_rows_with_one_order_ref_form_one_order_wherever_they_stand() -> None:
    rows = [row(), row(order_ref="PO-2"), row(sku="BOLT-3", customer_name="", ship_city="")]
    result = check(rows)
    assert result.problems == ()
    assert [ln.sku for ln in result.orders["PO-1"].lines] == ["WIDGET-1", "BOLT-3"]
    assert result.order_rows["PO-1"] == (2, 4)


def test_later_rows_may_leave_order_level_cells_blank() -> None:
    blank = dict.fromkeys(
        ("customer_id", "customer_name", "customer_email", "customer_region", "currency",
         "ship_name", "ship_line1", "ship_city", "ship_postal_code", "ship_country",
         "payment_type", "payment_token", "sales_rep"), "",
    )  # fmt: skip
    result = check([row(), row(sku="GADGET-2", **blank)])
    assert result.problems == ()
    assert len(result.orders["PO-1"].lines) == 2


def test_chinese_names_in_a_gb18030_csv_reach_the_order() -> None:
    data = csv_bytes([row(customer_name="张伟", ship_name="张伟", ship_city="北京市朝阳区")])
    table = read_table(data.decode().encode("gb18030"), "orders.csv")
    result = validate(table, known_skus=SKUS)
    assert result.problems == ()
    assert result.orders["PO-1"].customer.name == "张伟"
    assert result.orders["PO-1"].shipping_address.city == "北京市朝阳区"


# --- row problems ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "column", "code"),
    [
        ({"order_ref": ""}, "order_ref", "required"),
        ({"order_ref": "R" * 65}, "order_ref", "too_long"),
        ({"sku": ""}, "sku", "required"),
        ({"sku": "NOPE-9"}, "sku", "unknown_sku"),
        ({"sku": "bad sku!"}, "sku", "invalid_sku"),
        ({"quantity": ""}, "quantity", "required"),
        ({"quantity": "0"}, "quantity", "invalid_quantity"),
        ({"quantity": "-5"}, "quantity", "invalid_quantity"),
        ({"quantity": "2.5"}, "quantity", "invalid_quantity"),
        ({"quantity": "two"}, "quantity", "invalid_quantity"),
        ({"quantity": "1000001"}, "quantity", "invalid_quantity"),
        ({"unit_price": ""}, "unit_price", "required"),
        ({"unit_price": "-1"}, "unit_price", "invalid_price"),
        ({"unit_price": "19,99"}, "unit_price", "invalid_price"),
        ({"unit_price": "€19.99"}, "unit_price", "invalid_price"),
        ({"unit_price": "19.999"}, "unit_price", "invalid_price"),
        ({"unit_price": "1e3"}, "unit_price", "invalid_price"),
        ({"unit_price": "123456789012345"}, "unit_price", "invalid_price"),
        ({"currency": "JPY", "unit_price": "10.5"}, "unit_price", "invalid_price"),
        ({"list_price": "abc"}, "list_price", "invalid_price"),
        ({"currency": "XYZ"}, "currency", "unknown_currency"),
        ({"currency": ""}, "currency", "required"),
        ({"customer_id": ""}, "customer_id", "required"),
        ({"customer_id": "C" * 65}, "customer_id", "too_long"),
        ({"customer_name": "Ada\u202eLovelace"}, "customer_name", "invalid_characters"),
        ({"customer_email": "not-an-email"}, "customer_email", "invalid_email"),
        ({"customer_region": ""}, "customer_region", "required"),
        ({"customer_tier": "gold"}, "customer_tier", "invalid_choice"),
        ({"ship_name": ""}, "ship_name", "required"),
        ({"ship_line1": ""}, "ship_line1", "required"),
        ({"ship_city": ""}, "ship_city", "required"),
        ({"ship_postal_code": ""}, "ship_postal_code", "required"),
        ({"ship_postal_code": "1" * 21}, "ship_postal_code", "too_long"),
        ({"ship_country": "Germany"}, "ship_country", "invalid_country"),
        ({"ship_country": ""}, "ship_country", "required"),
        ({"payment_type": "cash"}, "payment_type", "invalid_choice"),
        ({"payment_type": ""}, "payment_type", "required"),
        ({"payment_token": ""}, "payment_token", "required"),
        ({"sales_rep": "r" * 65}, "sales_rep", "too_long"),
    ],
)
def test_each_bad_field_is_a_problem_on_its_row_and_column(
    overrides: dict[str, str], column: str, code: str
) -> None:
    result = check([row(order_ref="PO-0"), row(**overrides)])
    assert codes(result) == [(3, column, code)]
    problem = result.problems[0]
    assert problem.value == row(**overrides)[column]
    assert column in problem.message or code in ("unknown_sku", "unknown_currency")
    assert problem.severity == "error"
    assert list(result.orders) == ["PO-0"]  # the other order is not held back
    assert result.counts.rows_invalid == 1


def test_messages_explain_the_fix() -> None:
    messages = {
        p.column: p.message
        for p in check(
            [
                row(quantity="-5"),
                row(order_ref="PO-2", unit_price="1,50"),
                row(order_ref="PO-3", payment_token=""),
                row(order_ref="PO-4", sku="NOPE-9"),
            ]
        ).problems
    }
    assert messages["quantity"] == "quantity must be greater than 0"
    assert "point as decimal separator" in messages["unit_price"]
    assert messages["payment_token"] == "payment_token is required for card payments"
    assert messages["sku"] == "SKU 'NOPE-9' is not in the catalogue"


def test_several_problems_on_one_row_are_all_reported() -> None:
    result = check([row(sku="NOPE-9", quantity="0", unit_price="-1", ship_city="")])
    assert codes(result) == [
        (2, "sku", "unknown_sku"),
        (2, "quantity", "invalid_quantity"),
        (2, "unit_price", "invalid_price"),
        (2, "ship_city", "required"),
    ]
    assert result.counts.rows_invalid == 1


def test_value_right_of_the_last_column_is_a_problem() -> None:
    data = csv_bytes([row()]) + b"PO-2" + b"," * len(COLUMN_NAMES) + b"stray\n"
    result = validate(read_table(data, "o.csv"), known_skus=SKUS)
    assert (3, None, "extra_cells") in codes(result)
    assert "PO-2" in result.invalid


def test_too_many_lines_in_one_order() -> None:
    rows = [row(sku=f"S-{i}") for i in range(MAX_LINES + 1)]
    result = check(rows)
    assert codes(result) == [(MAX_LINES + 2, "order_ref", "too_many_lines")]
    assert result.invalid == ("PO-1",)


def test_order_total_over_the_limit() -> None:
    result = check([row(quantity="1000000", unit_price="2000000")])
    assert codes(result) == [(2, None, "order_total")]


def test_duplicate_sku_in_one_order_is_refused_on_the_later_row() -> None:
    result = check([row(), row(sku="GADGET-2"), row(quantity="5")])
    assert codes(result) == [(4, "sku", "duplicate_line")]
    assert "row 2" in result.problems[0].message
    assert result.orders == {}


def test_same_sku_in_two_orders_is_fine() -> None:
    assert check([row(), row(order_ref="PO-2")]).problems == ()


# --- orders: agreement, customers, already imported -----------------------------------------------


def test_rows_of_one_order_must_agree_on_order_level_fields() -> None:
    rows = [
        row(),
        row(sku="GADGET-2", currency="USD", ship_city="Paris"),
        row(sku="BOLT-3", customer_email="ADA@Example.com", ship_country="gb"),
    ]
    result = check(rows)
    assert codes(result) == [(3, "currency", "order_conflict"), (3, "ship_city", "order_conflict")]
    assert "'EUR' on row 2" in result.problems[0].message
    assert result.invalid == ("PO-1",)


def test_a_value_given_only_on_a_later_row_counts_for_the_order() -> None:
    result = check([row(sales_rep=""), row(sku="GADGET-2", sales_rep="rep-bob")])
    assert result.problems == ()
    assert result.orders["PO-1"].sales_rep == "rep-bob"


def test_required_order_field_blank_on_every_row() -> None:
    result = check([row(ship_city=""), row(sku="GADGET-2", ship_city="")])
    assert codes(result) == [(2, "ship_city", "required")]


def test_known_customer_with_another_email_is_a_mismatch() -> None:
    asked: list[tuple[str, str]] = []

    def customers(customer_id: str, email: str) -> CustomerCheck:
        asked.append((customer_id, email))
        return {"C-1": "known", "C-2": "mismatch"}.get(customer_id, "new")  # type: ignore[return-value]

    rows = [
        row(),
        row(sku="GADGET-2"),
        row(order_ref="PO-2"),
        row(order_ref="PO-3", customer_id="C-2", customer_email="eve@example.com"),
        row(order_ref="PO-4", customer_id="C-9", customer_email="new@example.com"),
    ]
    result = check(rows, customers=customers)
    assert codes(result) == [(5, "customer_email", "customer_mismatch")]
    assert "C-2 is on record with another email" in result.problems[0].message
    assert list(result.orders) == ["PO-1", "PO-2", "PO-4"]
    assert asked == [  # once per distinct (id, email)
        ("C-1", "ada@example.com"),
        ("C-2", "eve@example.com"),
        ("C-9", "new@example.com"),
    ]


def test_already_imported_order_is_skipped_with_an_info() -> None:
    rows = [
        row(),
        row(sku="NOPE-9"),  # not validated again: the order exists
        row(order_ref="PO-2"),
    ]
    result = check(rows, imported={"PO-1": "SO-20260101-7K2QF"})
    assert codes(result) == [(2, "order_ref", "already_imported")]
    problem = result.problems[0]
    assert problem.severity == "info"
    assert problem.message.startswith("already imported as SO-20260101-7K2QF")
    assert result.skipped == {"PO-1": "SO-20260101-7K2QF"}
    assert list(result.orders) == ["PO-2"]
    assert (result.counts.orders_skipped, result.counts.orders_invalid, result.counts.errors) == (
        1,
        0,
        0,
    )
    assert orders_to_start(result, ImportMode.ALL_OR_NOTHING) == [("PO-2", result.orders["PO-2"])]


def test_reimporting_the_same_file_starts_nothing() -> None:
    rows = [row(), row(order_ref="PO-2")]
    first = check(rows)
    done = {ref: f"SO-20260101-0000{i}" for i, ref in enumerate(first.orders)}
    again = check(rows, imported=done)
    assert again.orders == {}
    assert again.skipped == done
    assert orders_to_start(again, ImportMode.SKIP_INVALID) == []


# --- modes ----------------------------------------------------------------------------------------


def _mixed() -> Validation:
    return check(
        [
            row(),
            row(order_ref="PO-2", sku="GADGET-2"),
            row(order_ref="PO-2", sku="BOLT-3", quantity="0"),  # spoils all of PO-2
            row(order_ref="PO-3"),
            row(order_ref="", sku="GADGET-2"),  # belongs to no order
        ]
    )


def test_all_or_nothing_starts_nothing_when_any_row_is_bad() -> None:
    result = _mixed()
    assert blocked(result, ImportMode.ALL_OR_NOTHING)
    assert orders_to_start(result, ImportMode.ALL_OR_NOTHING) == []


def test_skip_invalid_starts_the_valid_orders_and_never_part_of_one() -> None:
    result = _mixed()
    assert not blocked(result, ImportMode.SKIP_INVALID)
    started = orders_to_start(result, ImportMode.SKIP_INVALID)
    assert [ref for ref, _ in started] == ["PO-1", "PO-3"]
    assert result.invalid == ("PO-2",)
    assert codes(result) == [(4, "quantity", "invalid_quantity"), (6, "order_ref", "required")]
    counts = result.counts
    assert (counts.rows, counts.rows_invalid, counts.orders, counts.orders_valid) == (5, 2, 3, 2)
    assert counts.orders_invalid == 1


def test_clean_file_starts_everything_in_both_modes() -> None:
    result = check([row(), row(order_ref="PO-2")])
    for mode in ImportMode:
        assert not blocked(result, mode)
        assert [ref for ref, _ in orders_to_start(result, mode)] == ["PO-1", "PO-2"]


def test_modes_parse_from_their_cli_spelling() -> None:
    assert ImportMode("skip-invalid") is ImportMode.SKIP_INVALID
    assert ImportMode("all-or-nothing") is ImportMode.ALL_OR_NOTHING


# --- template -------------------------------------------------------------------------------------


def test_template_xlsx_reads_back_and_validates_clean() -> None:
    table = read_table(template_xlsx(), "template.xlsx")
    assert table.header == COLUMN_NAMES
    result = validate(table, known_skus=SKUS, is_known_customer=lambda _i, _e: "new")
    assert result.problems == ()
    [(ref, spec)] = result.orders.items()
    assert len(spec.lines) == 2
    assert spec.external_reference == ref
    assert spec.lines[0].quantity == 2
    assert spec.lines[1].unit_price == Decimal("5.50")


def test_template_csv_reads_back_and_validates_clean() -> None:
    table = read_table(template_csv(), "template.csv")
    assert table.encoding == "utf-8-sig"
    result = validate(table, known_skus=SKUS)
    assert result.problems == ()
    assert len(next(iter(result.orders.values())).lines) == 2


def test_template_second_sheet_documents_every_column() -> None:
    workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(template_xlsx()))
    assert workbook.sheet_names == ["orders", "columns"]
    docs = workbook.get_sheet_by_name("columns").to_python()
    assert docs[0] == ["column", "required", "format", "example", "meaning"]
    documented = {r[0]: r for r in docs[1:]}
    for name in COLUMN_NAMES:
        assert documented[name][1] == ("yes" if name in REQUIRED else "no")
        assert documented[name][4]  # a meaning


# --- report ---------------------------------------------------------------------------------------


def _report_table(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_report_lists_each_problem_with_the_original_row() -> None:
    table = table_of([row(), row(order_ref="PO-2", quantity="-5", ship_city="=HYPERLINK(1)")])
    result = validate(table, known_skus=SKUS)
    lines = _report_table(report_csv(result.problems, table))
    assert lines[0][:7] == ["row", "order_ref", "column", "severity", "code", "message", "value"]
    assert lines[0][7:] == [f"[{n}]" for n in COLUMN_NAMES]
    [problem] = lines[1:]
    assert problem[:5] == ["3", "PO-2", "quantity", "error", "invalid_quantity"]
    assert problem[6] == "'-5"
    original = dict(zip(COLUMN_NAMES, problem[7:], strict=True))
    assert original["quantity"] == "'-5"
    assert original["ship_city"] == "'=HYPERLINK(1)"
    assert original["customer_name"] == "Ada Lovelace"


@pytest.mark.parametrize("dangerous", ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_report_escapes_every_formula_start(dangerous: str) -> None:
    table = table_of([row(customer_name=dangerous, sku="NOPE-9")])
    problems = validate(table, known_skus=SKUS).problems
    for data in (report_csv(problems, table),):
        cells = [c for line in _report_table(data)[1:] for c in line]
        assert "'" + dangerous in cells
        assert dangerous not in cells


def test_report_xlsx_holds_escaped_text_and_no_formula() -> None:
    table = table_of([row(customer_name="=cmd|' /C calc'!A0", sku="NOPE-9")])
    problems = validate(table, known_skus=SKUS).problems
    data = report_xlsx(problems, table)
    back = read_table(data, "report.xlsx")  # read_table refuses formulas: there are none
    assert back.header[:7] == ("row", "order_ref", "column", "severity", "code", "message", "value")
    cells = dict(zip(back.header, back.rows[-1].cells, strict=False))
    assert cells["[customer_name]"] == "'=cmd|' /C calc'!A0"
    assert cells["code"] == "unknown_sku"
    assert cells["row"] == "2"


def test_report_of_header_warning_shows_the_header() -> None:
    table = table_of([row()], header=[*COLUMN_NAMES, "notes"])
    problems = validate(table, known_skus=SKUS).problems
    lines = _report_table(report_csv(problems, table))
    assert lines[1][:5] == ["1", "", "notes", "warning", "unknown_column"]
    assert lines[1][7] == "order_ref"


def test_problem_fields() -> None:
    [problem] = check([row(quantity="0")]).problems
    assert problem == Problem(
        2, "quantity", "0", "invalid_quantity", problem.message, "error", "PO-1"
    )


# --- XLSX input -----------------------------------------------------------------------------------


def test_xlsx_with_typed_numbers_validates() -> None:
    out = io.BytesIO()
    wb = xlsxwriter.Workbook(out, {"in_memory": True})
    ws = wb.add_worksheet()
    values: dict[str, Any] = {**row(), "quantity": 3, "unit_price": 19.99, "list_price": 25}
    for c, name in enumerate(COLUMN_NAMES):
        ws.write_string(0, c, name)
        value = values[name]
        if isinstance(value, str):
            if value:
                ws.write_string(1, c, value)
        else:
            ws.write_number(1, c, value)
    wb.close()
    result = validate(read_table(out.getvalue(), "o.xlsx"), known_skus=SKUS)
    assert result.problems == ()
    line = result.orders["PO-1"].lines[0]
    assert (line.quantity, line.unit_price, line.list_price) == (3, Decimal("19.99"), Decimal(25))


# --- the price list fills blank prices ---------------------------------------------------------

PRICES = {("WIDGET-1", "EUR"): Decimal("25.00")}


def priced(rows: list[dict[str, str]]) -> Validation:
    return validate(
        table_of(rows), known_skus=SKUS, list_price=lambda sku, cur: PRICES.get((sku, cur))
    )


def test_blank_unit_price_takes_the_list_price() -> None:
    result = priced([row(unit_price="")])
    [line] = result.orders["PO-1"].lines
    assert (line.unit_price, line.list_price) == (Decimal("25.00"), Decimal("25.00"))
    assert result.orders["PO-1"].max_discount_pct() == 0


def test_explicit_price_below_the_list_price_is_a_discount() -> None:
    result = priced([row(unit_price="20.00")])
    [line] = result.orders["PO-1"].lines
    assert line.list_price == Decimal("25.00")
    assert result.orders["PO-1"].max_discount_pct() == Decimal(20)


def test_blank_price_without_a_list_price_names_the_sku_and_currency() -> None:
    result = priced([row(sku="GADGET-2", unit_price="")])
    [problem] = result.problems
    assert (problem.column, problem.code) == ("unit_price", "required")
    assert "GADGET-2 has no EUR price" in problem.message
    assert result.orders == {}


def test_without_a_price_list_a_blank_unit_price_is_required() -> None:
    result = validate(table_of([row(unit_price="")]), known_skus=SKUS)
    assert [(p.column, p.code) for p in result.problems] == [("unit_price", "required")]
