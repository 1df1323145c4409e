"""Reading an uploaded spreadsheet into a table of strings, and writing one (pure: no I/O).

``read_table`` takes the bytes of a CSV or XLSX file and returns its header and its non-blank
rows as text, each row with its 1-based row number in the file (the number a spreadsheet shows).
It decides the format by content (magic bytes), never by the file name alone, and refuses a file
it cannot read safely with an ``ImportFileError`` whose ``code`` says why:

======================  =====================================================================
code                    when
======================  =====================================================================
``empty``               no bytes, only blank rows, or a header and no data rows
``not_a_spreadsheet``   neither CSV text nor an XLSX workbook (binary data, .xls, a ZIP that
                        holds no ``xl/workbook.xml``, a password-protected workbook)
``encoding``            CSV text in an encoding that cannot be told or decoded
``malformed``           a CSV field over the size limit, an XLSX the reader cannot parse
``too_large``           more than ``max_bytes`` (50 MiB by default)
``too_many_columns``    a header or a row with more than ``max_columns`` cells (100)
``too_many_rows``       more than ``max_rows`` data rows (100,000)
``zip_bomb``            an XLSX whose ZIP declares too many entries, too many uncompressed
                        bytes, a compression ratio no spreadsheet has, or entries that inflate
                        beyond their declared size; checked on the central directory before
                        anything is extracted, then by a bounded inflate
``formula``             a cell of the first sheet holds a formula (its cached value may be
                        stale, and an order must carry the values a person checked)
======================  =====================================================================

CSV: the encoding is UTF-8 (with or without BOM), UTF-16 with BOM (Excel's "Unicode text"), or
else detected by ``charset-normalizer`` among GB18030 (a superset of GBK and GB2312) and
Windows-1252 (a superset of Latin-1's printable characters); the delimiter is the one of ``,``
``;`` and tab that occurs most in the first non-blank line. Rows are decoded and split as a
stream. A CSV cell that starts with ``=`` is text like any other here (CSV has no formulas);
reports escape such cells (``escape_cell``).

XLSX: the first sheet, read by ``python-calamine``; numbers are rendered as a person typed them
(``5`` not ``5.0``, ``19.99``), dates in ISO 8601, booleans ``TRUE``/``FALSE``.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import math
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

import python_calamine
import xlsxwriter  # type: ignore[import-untyped]
from charset_normalizer import from_bytes

MAX_BYTES = 50 * 1024 * 1024
MAX_ROWS = 100_000  # data rows, header and blank rows not counted
MAX_COLUMNS = 100
# ZIP limits of an XLSX, checked on the central directory before anything is inflated.
MAX_ZIP_ENTRIES = 1_000
MAX_UNCOMPRESSED = 1024 * 1024 * 1024  # all entries together
MAX_RATIO = 200  # per entry larger than RATIO_FLOOR; real sheets measure 5-60, deflate caps ~1030
RATIO_FLOOR = 1024 * 1024
MAX_WORKBOOK_XML = 8 * 1024 * 1024  # workbook.xml and its rels, read to find the first sheet

FileErrorCode = Literal[
    "empty",
    "not_a_spreadsheet",
    "encoding",
    "malformed",
    "too_large",
    "too_many_columns",
    "too_many_rows",
    "missing_header",
    "missing_columns",
    "duplicate_columns",
    "zip_bomb",
    "formula",
]
Format = Literal["csv", "xlsx"]


class ImportFileError(ValueError):
    """The file as a whole cannot be imported; ``code`` is stable, ``message`` is for people."""

    def __init__(self, code: FileErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code: FileErrorCode = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Row:
    """One non-blank row: its 1-based row number in the file and its cells as text (trailing
    blank cells dropped; a row may be longer than the header)."""

    number: int
    cells: tuple[str, ...]

    def get(self, index: int) -> str:
        return self.cells[index] if index < len(self.cells) else ""


@dataclass(frozen=True, slots=True)
class Table:
    header: tuple[str, ...]
    header_row: int
    rows: tuple[Row, ...]
    format: Format
    encoding: str | None = None  # CSV only
    delimiter: str | None = None  # CSV only


# --- cells ------------------------------------------------------------------------------------

_RISKY_START = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(text: str) -> str:
    """The text prefixed with ``'`` when a spreadsheet could run it as a formula (it starts with
    = + - @ tab or CR), for every cell of a file we write."""
    return "'" + text if text.startswith(_RISKY_START) else text


CellValue = int | float | str | bool | dt.time | dt.date | dt.datetime | dt.timedelta


def cell_text(value: CellValue) -> str:
    """A calamine cell value as the text a person typed, as far as it can be told."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        text = repr(value)  # the shortest text that reads back as the same float
        return format(Decimal(text), "f") if "e" in text else text
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)  # timedelta


def _trimmed(cells: Iterable[str]) -> tuple[str, ...]:
    out = tuple(cells)
    end = len(out)
    while end and not out[end - 1].strip():
        end -= 1
    return out[:end]


# --- the table ---------------------------------------------------------------------------------


def read_table(
    data: bytes,
    filename: str,
    *,
    max_bytes: int = MAX_BYTES,
    max_rows: int = MAX_ROWS,
    max_columns: int = MAX_COLUMNS,
) -> Table:
    """The header (first non-blank row) and the non-blank rows of a CSV or XLSX file."""
    if not data:
        raise ImportFileError("empty", f"{filename} is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImportFileError(
            "too_large",
            f"{filename} has {len(data):,} bytes; at most {max_bytes:,} ({max_bytes // 2**20} MiB)",
        )
    lower = filename.lower()
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        rows = _xlsx_rows(data, filename, max_rows=max_rows, max_columns=max_columns)
        return _table(rows, filename, "xlsx", max_rows=max_rows, max_columns=max_columns)
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        raise ImportFileError(
            "not_a_spreadsheet",
            f"{filename} is an old Excel .xls or a password-protected workbook; "
            "save it as .xlsx without a password, or as CSV",
        )
    if lower.endswith((".xlsx", ".xlsm")):
        raise ImportFileError(
            "not_a_spreadsheet", f"{filename} is named like an XLSX workbook but is not one"
        )
    encoding = detect_encoding(data, filename)
    delimiter = _sniff_delimiter(data, encoding)
    table = _table(
        _csv_rows(data, filename, encoding, delimiter),
        filename,
        "csv",
        max_rows=max_rows,
        max_columns=max_columns,
    )
    return Table(
        table.header, table.header_row, table.rows, "csv", encoding=encoding, delimiter=delimiter
    )


def _table(
    rows: Iterator[tuple[int, tuple[str, ...]]],
    filename: str,
    fmt: Format,
    *,
    max_rows: int,
    max_columns: int,
) -> Table:
    header: tuple[str, ...] | None = None
    header_row = 0
    body: list[Row] = []
    for number, raw in rows:
        cells = _trimmed(raw)
        if not cells:
            continue  # blank rows are neither data nor counted
        if len(cells) > max_columns:
            what = "header" if header is None else f"row {number}"
            raise ImportFileError(
                "too_many_columns",
                f"{filename}: the {what} has {len(cells)} columns; at most {max_columns}",
            )
        if header is None:
            header, header_row = cells, number
            continue
        if len(body) >= max_rows:
            raise ImportFileError(
                "too_many_rows",
                f"{filename} has more than {max_rows:,} data rows; split it into several files",
            )
        body.append(Row(number, cells))
    if header is None:
        raise ImportFileError("empty", f"{filename} has no rows (only blank ones)")
    if not body:
        raise ImportFileError("empty", f"{filename} has a header row but no data rows")
    return Table(header, header_row, tuple(body), fmt)


# --- CSV ---------------------------------------------------------------------------------------

# Detected among these only: a free guess over every code page turns short Latin-1 text into
# Baltic or Big5 look-alikes. Anything else: save the file as UTF-8.
DETECTED_ENCODINGS = ("gb18030", "cp1252")
_CHUNK = 1 << 20


def detect_encoding(data: bytes, filename: str = "file") -> str:
    """The Python codec name of CSV bytes: utf-8-sig, utf-8, utf-16, gb18030 or cp1252."""
    if data.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    elif b"\x00" in data:
        raise ImportFileError(
            "not_a_spreadsheet", f"{filename} holds binary data: it is neither CSV text nor XLSX"
        )
    elif _decodes(data, "utf-8"):
        return "utf-8"
    else:
        best = from_bytes(data, cp_isolation=list(DETECTED_ENCODINGS)).best()
        encoding = best.encoding if best is not None else "latin_1"
        encoding = codecs.lookup(encoding).name
    if not _decodes(data, encoding):
        raise ImportFileError(
            "encoding",
            f"{filename} is not valid {encoding} text; save it as CSV UTF-8",
        )
    return encoding


def _decodes(data: bytes, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    view = memoryview(data)
    try:
        for start in range(0, len(view), _CHUNK):
            decoder.decode(view[start : start + _CHUNK])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _sniff_delimiter(data: bytes, encoding: str) -> str:
    head = data[: 64 * 1024].decode(encoding, errors="ignore")
    for line in head.splitlines():
        if line.strip():
            counts = {d: line.count(d) for d in (",", ";", "\t")}
            best = max(counts, key=lambda d: counts[d])
            return best if counts[best] else ","
    return ","


def _csv_rows(
    data: bytes, filename: str, encoding: str, delimiter: str
) -> Iterator[tuple[int, tuple[str, ...]]]:
    stream = io.TextIOWrapper(io.BytesIO(data), encoding=encoding, newline="")
    reader = csv.reader(stream, delimiter=delimiter)
    number = 0
    try:
        for number, cells in enumerate(reader, start=1):
            yield number, tuple(cells)
    except csv.Error as exc:
        raise ImportFileError("malformed", f"{filename}: row {number + 1}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            "encoding", f"{filename}: row {number + 1} is not valid {encoding} text"
        ) from exc


# --- XLSX --------------------------------------------------------------------------------------


def _xlsx_rows(
    data: bytes, filename: str, *, max_rows: int, max_columns: int
) -> Iterator[tuple[int, tuple[str, ...]]]:
    check_xlsx(data, filename)
    try:
        workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        sheet = workbook.get_sheet_by_index(0)
    except python_calamine.CalamineError as exc:
        raise ImportFileError("malformed", f"{filename}: cannot read the workbook: {exc}") from exc
    if sheet.width > max_columns:
        raise ImportFileError(
            "too_many_columns",
            f"{filename}: the sheet {sheet.name!r} uses {sheet.width} columns; at most "
            f"{max_columns} (delete the cells right of the last column)",
        )
    if sheet.height > max_rows + 1_000:  # blank rows are not counted, so allow some slack
        raise ImportFileError(
            "too_many_rows",
            f"{filename}: the sheet {sheet.name!r} has {sheet.height:,} rows; at most "
            f"{max_rows:,} data rows",
        )
    return _sheet_rows(sheet)


def _sheet_rows(sheet: python_calamine.CalamineSheet) -> Iterator[tuple[int, tuple[str, ...]]]:
    # calamine yields rows from the sheet's first row, so the index is the row number.
    for index, values in enumerate(sheet.iter_rows()):
        yield index + 1, tuple(cell_text(v) for v in values)


def check_xlsx(data: bytes, filename: str = "file") -> None:
    """Refuse a ZIP that is no workbook, a zip bomb, or a first sheet holding a formula."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))  # reads the central directory only
    except zipfile.BadZipFile as exc:
        raise ImportFileError("not_a_spreadsheet", f"{filename} is a damaged ZIP file") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise ImportFileError(
                "zip_bomb",
                f"{filename} holds {len(infos):,} ZIP entries; a workbook has far fewer "
                f"(at most {MAX_ZIP_ENTRIES:,})",
            )
        names = {info.filename for info in infos}
        if "xl/workbook.xml" not in names:
            raise ImportFileError(
                "not_a_spreadsheet",
                f"{filename} is a ZIP file but not an XLSX workbook (no xl/workbook.xml)",
            )
        total = sum(info.file_size for info in infos)
        if total > MAX_UNCOMPRESSED:
            raise ImportFileError(
                "zip_bomb",
                f"{filename} would expand to {total:,} bytes; at most {MAX_UNCOMPRESSED:,}",
            )
        for info in infos:
            if info.flag_bits & 0x1:
                raise ImportFileError(
                    "not_a_spreadsheet", f"{filename} has encrypted entries ({info.filename})"
                )
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ImportFileError(
                    "not_a_spreadsheet",
                    f"{filename}: entry {info.filename} uses an unsupported compression",
                )
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > RATIO_FLOOR and ratio > MAX_RATIO:
                raise ImportFileError(
                    "zip_bomb",
                    f"{filename}: entry {info.filename} expands {ratio:,.0f} times "
                    f"({info.file_size:,} bytes); at most {MAX_RATIO} times",
                )
        by_name = {info.filename: info for info in infos}
        first = _first_sheet_path(data, by_name, filename)
        for info in infos:  # every entry inflates to exactly its declared size, or none is read
            if info.filename == first or (
                first is None and info.filename.startswith("xl/worksheets/")
            ):
                _scan_formulas(data, info, filename)
            else:
                for _chunk in inflate(data, info, filename):
                    pass


def inflate(data: bytes, info: zipfile.ZipInfo, filename: str = "file") -> Iterator[bytes]:
    """The entry's bytes in chunks, inflated from the archive by hand so that no more than its
    declared size ever comes out (zipfile truncates silently, other readers may not stop)."""
    offset = info.header_offset
    header = data[offset : offset + 30]
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise ImportFileError("not_a_spreadsheet", f"{filename}: damaged ZIP entry {info.filename}")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    start = offset + 30 + name_len + extra_len
    raw = memoryview(data)[start : start + info.compress_size]
    if len(raw) != info.compress_size:
        raise ImportFileError(
            "not_a_spreadsheet", f"{filename}: truncated ZIP entry {info.filename}"
        )
    limit = info.file_size
    produced = 0
    crc = 0
    if info.compress_type == zipfile.ZIP_STORED:
        chunks: Iterator[bytes] = (bytes(raw[i : i + _CHUNK]) for i in range(0, len(raw), _CHUNK))
    else:
        chunks = _inflate_chunks(raw, info, filename)
    for chunk in chunks:
        produced += len(chunk)
        if produced > limit:
            raise _overflow(info, filename)
        crc = zlib.crc32(chunk, crc)
        yield chunk
    if produced != limit or crc != info.CRC:
        raise ImportFileError(
            "zip_bomb", f"{filename}: entry {info.filename} does not match its declared size/CRC"
        )


def _inflate_chunks(raw: memoryview, info: zipfile.ZipInfo, filename: str) -> Iterator[bytes]:
    inflater = zlib.decompressobj(-15)
    try:
        for i in range(0, len(raw), 64 * 1024):
            pending = bytes(raw[i : i + 64 * 1024])
            while pending:
                yield inflater.decompress(pending, _CHUNK)  # the caller counts and stops
                pending = inflater.unconsumed_tail
        out = inflater.flush()
    except zlib.error as exc:
        raise ImportFileError(
            "not_a_spreadsheet", f"{filename}: damaged ZIP entry {info.filename}"
        ) from exc
    if out:
        yield out


def _overflow(info: zipfile.ZipInfo, filename: str) -> ImportFileError:
    return ImportFileError(
        "zip_bomb",
        f"{filename}: entry {info.filename} inflates beyond its declared {info.file_size:,} bytes",
    )


_SHEET_RE = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?sheet\s[^>]*>")
_REL_RE = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?Relationship\s[^>]*>")
_RID_RE = re.compile(rb"\s(?:[A-Za-z_][\w.\-]*:)?id\s*=\s*[\"']([^\"']*)[\"']")
_ID_RE = re.compile(rb"\sId\s*=\s*[\"']([^\"']*)[\"']")
_TARGET_RE = re.compile(rb"\sTarget\s*=\s*[\"']([^\"']*)[\"']")


def _small_entry(data: bytes, info: zipfile.ZipInfo | None, filename: str) -> bytes:
    if info is None:
        return b""
    if info.file_size > MAX_WORKBOOK_XML:
        raise ImportFileError(
            "zip_bomb", f"{filename}: {info.filename} has {info.file_size:,} bytes"
        )
    return b"".join(inflate(data, info, filename))


def _first_sheet_path(
    data: bytes, by_name: dict[str, zipfile.ZipInfo], filename: str
) -> str | None:
    """The ZIP path of the workbook's first sheet (``xl/worksheets/sheet1.xml`` usually); None
    when the workbook's XML does not tell (then every sheet is scanned for formulas)."""
    workbook = _small_entry(data, by_name.get("xl/workbook.xml"), filename)
    rels = _small_entry(data, by_name.get("xl/_rels/workbook.xml.rels"), filename)
    sheet = _SHEET_RE.search(workbook)
    rid = _RID_RE.search(sheet.group(0)) if sheet else None
    if rid:
        for rel in _REL_RE.finditer(rels):
            ident, target = _ID_RE.search(rel.group(0)), _TARGET_RE.search(rel.group(0))
            if ident and target and ident.group(1) == rid.group(1):
                path = target.group(1).decode("utf-8", "replace")
                path = path.lstrip("/") if path.startswith("/") else "xl/" + path
                if path in by_name:
                    return path
    return None


_FORMULA_RE = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?f[\s>/]")
_CELL_REF_RE = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?c\s[^>]*\br\s*=\s*[\"']([A-Z]{1,3}[0-9]+)")
_CARRY = 512


def _scan_formulas(data: bytes, info: zipfile.ZipInfo, filename: str) -> None:
    tail = b""
    for chunk in inflate(data, info, filename):
        window = tail + chunk
        found = _FORMULA_RE.search(window)
        if found:
            refs = _CELL_REF_RE.findall(window, 0, found.start())
            where = f"cell {refs[-1].decode()}" if refs else "a cell"
            raise ImportFileError(
                "formula",
                f"{filename}: {where} of the first sheet holds a formula; replace formulas "
                "by their values (copy, then Paste Special > Values) and upload again",
            )
        tail = window[-_CARRY:]


# --- writing -----------------------------------------------------------------------------------


def write_csv(rows: Iterable[Sequence[str]]) -> bytes:
    """UTF-8 CSV with a BOM (so that Excel shows non-ASCII text right), every cell escaped."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([escape_cell(cell) for cell in row])
    return codecs.BOM_UTF8 + out.getvalue().encode("utf-8")


@dataclass(frozen=True, slots=True)
class Sheet:
    """One sheet to write: a bold, frozen header row, then rows of text or numbers."""

    name: str
    header: Sequence[str]
    rows: Iterable[Sequence[str | int | float | Decimal]]
    widths: Sequence[int] = ()
    text_columns: frozenset[int] = frozenset()  # formatted as text, so 01234 stays 01234


def write_xlsx(sheets: Sequence[Sheet]) -> bytes:
    """An XLSX workbook; strings are never turned into formulas or numbers, and escaped."""
    out = io.BytesIO()
    workbook = xlsxwriter.Workbook(
        out,
        {
            "in_memory": True,
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
        },
    )
    bold = workbook.add_format({"bold": True})
    text = workbook.add_format({"num_format": "@"})
    for sheet in sheets:
        ws = workbook.add_worksheet(sheet.name)
        for col in range(len(sheet.header)):
            width = sheet.widths[col] if col < len(sheet.widths) else 16
            ws.set_column(col, col, width, text if col in sheet.text_columns else None)
        for col, name in enumerate(sheet.header):
            ws.write_string(0, col, escape_cell(name), bold)
        ws.freeze_panes(1, 0)
        for r, row in enumerate(sheet.rows, start=1):
            for col, cell in enumerate(row):
                if isinstance(cell, str):
                    ws.write_string(r, col, escape_cell(cell))
                else:
                    ws.write_number(r, col, float(cell))
    workbook.close()
    return out.getvalue()
