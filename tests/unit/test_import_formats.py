"""Reading CSV/XLSX uploads into tables, and refusing the files that cannot be read safely."""

from __future__ import annotations

import codecs
import datetime as dt
import io
import struct
import zipfile

import pytest
import xlsxwriter

from domain.import_formats import (
    MAX_BYTES,
    MAX_ZIP_ENTRIES,
    ImportFileError,
    Sheet,
    Table,
    cell_text,
    escape_cell,
    read_table,
    write_csv,
    write_xlsx,
)

HEADER = "order_ref,customer_name,ship_city"


def _csv(text: str, encoding: str = "utf-8") -> bytes:
    return text.encode(encoding)


def _xlsx(*sheets: list[list[object]], formula: tuple[int, int, str] | None = None) -> bytes:
    """A workbook written with xlsxwriter; ``formula`` puts a formula cell in the first sheet."""
    out = io.BytesIO()
    wb = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_formulas": False})
    for i, rows in enumerate(sheets):
        ws = wb.add_worksheet(f"s{i}")
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, dt.date):
                    ws.write_datetime(r, c, value, wb.add_format({"num_format": "yyyy-mm-dd"}))
                else:
                    ws.write(r, c, value)
        if formula is not None and i == 0:
            ws.write_formula(formula[0], formula[1], formula[2])
    wb.close()
    return out.getvalue()


def _refused(data: bytes, filename: str = "orders.csv", **limits: int) -> ImportFileError:
    with pytest.raises(ImportFileError) as info:
        read_table(data, filename, **limits)
    return info.value


def _values(table: Table) -> list[tuple[int, tuple[str, ...]]]:
    return [(row.number, row.cells) for row in table.rows]


# --- CSV encodings -------------------------------------------------------------------------


CHINESE = (
    f"{HEADER}\r\nORD-1,张伟,北京市朝阳区\r\nORD-2,李娜,上海市浦东新区\r\n"
    "ORD-3,王芳,广州市天河区\r\nORD-4,刘洋,深圳市南山区\r\n"
)
LATIN = (
    f"{HEADER}\nORD-1,François Müller,Zürich\nORD-2,Zoë Núñez,Málaga\n"
    "ORD-3,Søren Ærø,Århus\nORD-4,José Garçon,Besançon\n"
)


@pytest.mark.parametrize("encoding", ["gb18030", "gbk"])
def test_chinese_csv_is_detected_and_decoded(encoding: str) -> None:
    table = read_table(_csv(CHINESE, encoding), "orders.csv")
    assert table.encoding == "gb18030"
    assert table.header == ("order_ref", "customer_name", "ship_city")
    assert _values(table)[:2] == [
        (2, ("ORD-1", "张伟", "北京市朝阳区")),
        (3, ("ORD-2", "李娜", "上海市浦东新区")),
    ]


def test_latin1_csv_with_accents_is_decoded() -> None:
    table = read_table(_csv(LATIN, "latin-1"), "orders.csv")
    assert table.encoding == "cp1252"
    assert [row.cells[1] for row in table.rows] == [
        "François Müller",
        "Zoë Núñez",
        "Søren Ærø",
        "José Garçon",
    ]


def test_utf8_with_bom_drops_the_bom() -> None:
    table = read_table(codecs.BOM_UTF8 + _csv(CHINESE), "orders.csv")
    assert table.encoding == "utf-8-sig"
    assert table.header[0] == "order_ref"
    assert table.rows[0].cells[1] == "张伟"


def test_utf8_without_bom() -> None:
    table = read_table(_csv(LATIN), "orders.csv")
    assert table.encoding == "utf-8"
    assert table.rows[1].cells == ("ORD-2", "Zoë Núñez", "Málaga")


def test_utf16_tab_separated_unicode_text_as_excel_saves_it() -> None:
    data = _csv(CHINESE.replace(",", "\t"), "utf-16")
    table = read_table(data, "orders.txt")
    assert (table.encoding, table.delimiter) == ("utf-16", "\t")
    assert table.rows[0].cells == ("ORD-1", "张伟", "北京市朝阳区")


def test_odd_utf16_is_an_encoding_error() -> None:
    error = _refused(codecs.BOM_UTF16_LE + "order_ref".encode("utf-16-le") + b"\x41")
    assert error.code == "encoding"


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_delimiter_is_sniffed(delimiter: str) -> None:
    text = "order_ref;sku;unit_price\nA-1;W-1;1,50\n".replace(";", delimiter)
    table = read_table(_csv(text), "orders.csv")
    assert table.delimiter == delimiter
    assert len(table.header) == 3


def test_semicolon_csv_keeps_decimal_commas_inside_cells() -> None:
    table = read_table(_csv("order_ref;unit_price\nA-1;1,50\n"), "orders.csv")
    assert table.rows[0].cells == ("A-1", "1,50")


def test_row_numbers_count_blank_rows_and_records_not_lines() -> None:
    text = '\n\norder_ref,notes\nA-1,"two\nlines"\n\n,\nA-2,x\n'
    table = read_table(_csv(text), "orders.csv")
    assert table.header_row == 3
    assert _values(table) == [(4, ("A-1", "two\nlines")), (7, ("A-2", "x"))]


def test_csv_cell_that_looks_like_a_formula_is_plain_text() -> None:
    table = read_table(_csv("order_ref,quantity\n=1+2,-5\n"), "orders.csv")
    assert table.rows[0].cells == ("=1+2", "-5")


def test_trailing_blank_cells_are_dropped_and_longer_rows_kept() -> None:
    table = read_table(_csv("a,b,,\n1,,,\n1,2,3\n"), "orders.csv")
    assert table.header == ("a", "b")
    assert _values(table) == [(2, ("1",)), (3, ("1", "2", "3"))]


# --- XLSX ----------------------------------------------------------------------------------


def test_xlsx_numbers_dates_and_booleans_read_as_typed() -> None:
    data = _xlsx(
        [
            ["order_ref", "quantity", "unit_price", "date", "flag", "postal"],
            ["A-1", 5, 19.99, dt.date(2026, 3, 1), True, "01234"],
            ["A-2", 1000000, 0.1, None, False, 1234],
        ]
    )
    table = read_table(data, "orders.xlsx")
    assert table.format == "xlsx"
    assert _values(table) == [
        (2, ("A-1", "5", "19.99", "2026-03-01", "TRUE", "01234")),
        (3, ("A-2", "1000000", "0.1", "", "FALSE", "1234")),
    ]


def test_xlsx_row_numbers_are_the_sheet_rows() -> None:
    data = _xlsx([[], [], [None, "order_ref", "sku"], [], [None, "A-1", "W-1"]])
    table = read_table(data, "orders.xlsx")
    assert table.header_row == 3
    assert table.header == ("order_ref", "sku")
    assert _values(table) == [(5, ("A-1", "W-1"))]


def test_xlsx_reads_the_first_sheet_only() -> None:
    data = _xlsx([["order_ref"], ["A-1"]], [["other"], ["B-1"], ["B-2"]])
    table = read_table(data, "orders.xlsx")
    assert _values(table) == [(2, ("A-1",))]


def test_format_is_decided_by_content_not_name() -> None:
    table = read_table(_xlsx([["order_ref"], ["A-1"]]), "orders.csv")
    assert table.format == "xlsx"


def test_cell_text_of_floats() -> None:
    assert cell_text(5.0) == "5"
    assert cell_text(-3.0) == "-3"
    assert cell_text(1e-05) == "0.00001"
    assert cell_text(12.5) == "12.5"
    assert cell_text(dt.datetime(2026, 1, 2, 13, 30)) == "2026-01-02 13:30:00"


# --- refused files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "0 bytes"),
        (b"\r\n\n  \n,,\n", "no rows"),
        (b"order_ref,sku\n\n", "no data rows"),
    ],
)
def test_empty_files_are_refused(data: bytes, fragment: str) -> None:
    error = _refused(data)
    assert error.code == "empty"
    assert fragment in error.message


def test_empty_xlsx_is_refused() -> None:
    assert _refused(_xlsx([]), "orders.xlsx").code == "empty"


@pytest.mark.parametrize(
    ("data", "filename", "fragment"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "photo.png", "binary"),
        (b"%PDF-1.7\n\x00\x01\x02", "orders.pdf", "binary"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "orders.xls", ".xls"),
        (b"order_ref,sku\nA,B\n", "orders.xlsx", "named like an XLSX"),
        (b"PK\x03\x04garbage-not-a-zip", "orders.xlsx", "damaged ZIP"),
    ],
)
def test_files_that_are_no_spreadsheet_are_refused(
    data: bytes, filename: str, fragment: str
) -> None:
    error = _refused(data, filename)
    assert error.code == "not_a_spreadsheet"
    assert fragment in error.message


def test_zip_that_is_not_a_workbook_is_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    error = _refused(out.getvalue(), "letter.docx")
    assert error.code == "not_a_spreadsheet"
    assert "xl/workbook.xml" in error.message


def test_file_over_the_size_limit_is_refused() -> None:
    error = _refused(b"a" * (MAX_BYTES + 1))
    assert error.code == "too_large"
    assert "50 MiB" in error.message
    assert _refused(b"order_ref\nA\n", max_bytes=5).code == "too_large"


def test_200_column_csv_is_refused() -> None:
    header = ",".join(f"c{i}" for i in range(200))
    error = _refused(_csv(f"{header}\n" + ",".join("x" * 200) + "\n"))
    assert error.code == "too_many_columns"
    assert "200 columns" in error.message


def test_data_row_wider_than_the_limit_is_refused() -> None:
    error = _refused(_csv("a,b\n" + ",".join("1" * 101) + "\n"))
    assert error.code == "too_many_columns"
    assert "row 2" in error.message


def test_200_column_xlsx_is_refused() -> None:
    error = _refused(_xlsx([[f"c{i}" for i in range(200)], ["x"] * 200]), "wide.xlsx")
    assert error.code == "too_many_columns"


def test_too_many_rows_is_refused() -> None:
    data = _csv("order_ref\n" + "A\n" * 4)
    assert read_table(data, "o.csv", max_rows=4).rows[-1].number == 5
    error = _refused(data, max_rows=3)
    assert error.code == "too_many_rows"
    assert _refused(_xlsx([["order_ref"], ["A"], ["B"]]), "o.xlsx", max_rows=1).code == (
        "too_many_rows"
    )


def test_oversized_csv_field_is_malformed() -> None:
    error = _refused(_csv("order_ref,notes\nA," + "x" * 200_000 + "\n"))
    assert error.code == "malformed"
    assert "row 2" in error.message


# --- zip bombs and formulas ---------------------------------------------------------------------


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, payload in entries.items():
            archive.writestr(name, payload)
    return out.getvalue()


def _patch_sizes(data: bytes, name: str, size: int, *, local: bool) -> bytes:
    """The archive with ``name``'s declared uncompressed size set to ``size`` in its central
    directory record (and its local header when ``local``)."""
    buf = bytearray(data)
    encoded = name.encode()
    pos = buf.find(b"PK\x01\x02")
    while pos != -1:
        name_len = struct.unpack_from("<H", buf, pos + 28)[0]
        if bytes(buf[pos + 46 : pos + 46 + name_len]) == encoded:
            struct.pack_into("<I", buf, pos + 24, size)
            if local:
                offset = struct.unpack_from("<I", buf, pos + 42)[0]
                struct.pack_into("<I", buf, offset + 22, size)
        pos = buf.find(b"PK\x01\x02", pos + 4)
    return bytes(buf)


def _workbook_entries(sheet: bytes) -> dict[str, bytes]:
    return {
        "xl/workbook.xml": b'<workbook><sheets><sheet name="a" sheetId="1" r:id="rId1"/>'
        b"</sheets></workbook>",
        "xl/_rels/workbook.xml.rels": b'<Relationships><Relationship Id="rId1" '
        b'Target="worksheets/sheet1.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": sheet,
    }


def test_highly_compressed_entry_is_a_zip_bomb() -> None:
    data = _zip(_workbook_entries(b"<sheetData>" + b" " * 50_000_000 + b"</sheetData>"))
    assert len(data) < 1_000_000
    error = _refused(data, "bomb.xlsx")
    assert error.code == "zip_bomb"
    assert "xl/worksheets/sheet1.xml" in error.message


def test_entry_declaring_2_gb_is_a_zip_bomb_before_extraction() -> None:
    data = _zip(_workbook_entries(b"<sheetData/>"))
    bomb = _patch_sizes(data, "xl/worksheets/sheet1.xml", 2_000_000_000, local=False)
    error = _refused(bomb, "bomb.xlsx")
    assert error.code == "zip_bomb"
    assert "would expand to 2,000,000," in error.message


def test_entry_inflating_beyond_its_declared_size_is_a_zip_bomb() -> None:
    sheet = b"<sheetData>" + b"<row/>" * 20_000 + b"</sheetData>"
    data = _patch_sizes(
        _zip(_workbook_entries(sheet)), "xl/worksheets/sheet1.xml", 1000, local=True
    )
    error = _refused(data, "liar.xlsx")
    assert error.code == "zip_bomb"
    assert "beyond its declared" in error.message


def test_zip_with_too_many_entries_is_a_zip_bomb() -> None:
    entries = _workbook_entries(b"<sheetData/>")
    entries.update({f"xl/media/{i}.bin": b"" for i in range(MAX_ZIP_ENTRIES)})
    assert _refused(_zip(entries), "many.xlsx").code == "zip_bomb"


def test_formula_cell_in_the_first_sheet_is_refused() -> None:
    data = _xlsx([["order_ref", "quantity"], ["A-1", 1]], formula=(2, 1, "=B2*2"))
    error = _refused(data, "orders.xlsx")
    assert error.code == "formula"
    assert "cell B3" in error.message
    assert "Paste Special" in error.message


def test_formula_in_another_sheet_and_formula_like_text_are_fine() -> None:
    out = io.BytesIO()
    wb = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_formulas": False})
    first = wb.add_worksheet("orders")
    first.write_string(0, 0, "order_ref")
    first.write_string(1, 0, "=1+2")
    wb.add_worksheet("calc").write_formula(0, 0, "=1+2")
    wb.close()
    table = read_table(out.getvalue(), "orders.xlsx")
    assert table.rows[0].cells == ("=1+2",)


# --- writing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+1", "'+1"),
        ("-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_escape_cell(text: str, escaped: str) -> None:
    assert escape_cell(text) == escaped


def test_write_csv_has_bom_and_escapes() -> None:
    data = write_csv([["a", "b"], ["=1+2", "张伟"]])
    assert data.startswith(codecs.BOM_UTF8)
    assert data.decode("utf-8-sig") == "a,b\r\n'=1+2,张伟\r\n"


def test_write_xlsx_round_trips_and_writes_no_formula() -> None:
    data = write_xlsx([Sheet("s", ["a", "b"], [["=1+2", 5], ["x", 2.5]])])
    table = read_table(data, "w.xlsx")  # would be refused if a formula had been written
    assert _values(table) == [(2, ("'=1+2", "5")), (3, ("x", "2.5"))]


@pytest.mark.parametrize("with_rels", [True, False])
def test_namespaced_formula_is_found_with_or_without_the_workbook_rels(with_rels: bool) -> None:
    sheet = b'<x:sheetData><x:row r="1"><x:c r="C7"><x:f>1+2</x:f><x:v>3</x:v></x:c></x:row>'
    entries = _workbook_entries(sheet + b"</x:sheetData>")
    if not with_rels:
        del entries["xl/_rels/workbook.xml.rels"]
    error = _refused(_zip(entries), "hand.xlsx")
    assert error.code == "formula"
    assert "cell C7" in error.message


def test_formula_deep_in_a_large_sheet_is_found() -> None:
    cells = b"".join(b'<c r="A%d"><v>%d</v></c>' % (i, i * 7919 % 10007) for i in range(1, 200_000))
    sheet = b"<sheetData>" + cells + b'<c r="B9"><f>SUM(A1:A9)</f></c></sheetData>'
    assert len(sheet) > 4 * 1024 * 1024  # inflated in several chunks
    error = _refused(_zip(_workbook_entries(sheet)), "big.xlsx")
    assert (error.code, "cell B9" in error.message) == ("formula", True)
