"""Order spreadsheet import: the columns, the row rules, the template and the report (pure).

A file holds one row per order line; rows with the same ``order_ref`` are the lines of one
order, wherever they stand in the file. ``validate`` checks every row and every field and
returns the valid orders as ``OrderSpec`` (built with the real model, ``external_reference =
order_ref``) and a list of problems (``row``, ``column``, ``value``, ``code``, ``message``).
Reading the file is ``domain.import_formats.read_table``.

Columns (header names are case-insensitive; spaces and hyphens count as ``_``):

==================  ========  =======================================================
name                required  meaning
==================  ========  =======================================================
order_ref           yes       your reference of the order (at most 64 characters); the
                              rows with one order_ref are one order; an order_ref
                              imported before is skipped, never imported twice
customer_id         yes       the customer's id (at most 64 characters); a new id
                              creates the customer from the columns below
customer_name       yes       the customer's name
customer_email      yes       the customer's email; for a known customer it must be the
                              email on record
customer_region     yes       the customer's sales region, e.g. EU-WEST
customer_tier       no        standard or vip (the master record decides for known
                              customers)
sku                 yes       the product's SKU, as in the catalogue
quantity            yes       units, a whole number from 1 to 1,000,000
unit_price          yes       price of one unit, ``.`` as decimal point, no currency
                              sign, at most the currency's decimals (EUR 19.99, JPY 1500);
                              a blank cell takes the price list's price at import time
list_price          no        catalogue price when unit_price is a discount off it; a
                              blank cell takes the price list's, so a unit_price below
                              the list price counts as a discount (approval rule)
currency            yes       ISO 4217 code, e.g. EUR
ship_name           yes       recipient's name
ship_line1          yes       street and number
ship_line2          no        second address line
ship_city           yes       city
ship_postal_code    yes       postal code (format the column as text to keep leading 0s)
ship_country        yes       ISO 3166-1 alpha-2 code, e.g. DE
payment_type        yes       card or bank_transfer
payment_token       no        the gateway's card token; required when payment_type is card
sales_rep           no        the sales rep's id
==================  ========  =======================================================

"yes" means the header must name the column and every order must have a value. The
customer, currency, shipping and payment columns and sales_rep are *order-level*: give them on
one row of the order (the first, say); other rows of the order may repeat the same value or leave
the cell blank, and a different value is an ``order_conflict`` on the later row. sku, quantity,
unit_price and list_price are *line-level*. Codes (currency, country, payment type, tier) are
case-insensitive.

Decisions: a header column the import does not know (``notes``, say) is ignored with a
warning (``unknown_column``), so a sheet with the team's own extra columns still imports; a
missing required column, a duplicated column or a header with no known column at all is a
file-level ``ImportFileError``. The same SKU twice in one order is an error
(``duplicate_line``): in a spreadsheet it is far more often a pasted row than an intent; put
the total quantity on one row. An order_ref already imported (``already_imported``, severity
info: "already imported as SO-…") is skipped without validating its rows again.

Problem codes (severity error unless noted): ``required``, ``too_long``,
``invalid_characters``, ``invalid_email``, ``invalid_country``, ``invalid_choice``,
``invalid_value``, ``invalid_sku``, ``unknown_sku``, ``invalid_quantity``, ``invalid_price``,
``unknown_currency``, ``customer_mismatch``, ``order_conflict``, ``duplicate_line``,
``too_many_lines``, ``order_total``, ``extra_cells``, ``unknown_column`` (warning),
``already_imported`` (info).

Modes (``orders_to_start``): ``all-or-nothing`` starts nothing when there is any error;
``skip-invalid`` starts every valid order. An order with one bad row is invalid as a whole and
never imported in part. Warnings and infos block neither mode.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from domain.import_formats import (
    ImportFileError,
    Row,
    Table,
)
from domain.money import CURRENCY_EXPONENTS, check_amount
from domain.order import (
    MAX_LINES,
    MAX_QUANTITY,
    Address,
    Customer,
    OrderLine,
    OrderSource,
    OrderSpec,
    PaymentMethod,
    Sku,
    no_control_chars,
)

M = TypeVar("M", bound=BaseModel)
_SKU: TypeAdapter[str] = TypeAdapter(Sku)

Severity = Literal["error", "warning", "info"]
CustomerCheck = Literal["known", "new", "mismatch"]
IsKnownCustomer = Callable[[str, str], CustomerCheck]
AlreadyImported = Callable[[str], str | None]
Progress = Callable[[int], None]  # rows validated so far
ListPrice = Callable[[str, str], Decimal | None]  # (sku, currency) -> the price list's price
PROGRESS_EVERY = 1000


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    required: bool
    level: Literal["order", "line"]
    format: str
    example: tuple[str, str]  # the template's two rows
    meaning: str


COLUMNS: tuple[Column, ...] = (
    Column("order_ref", True, "order", "text, at most 64", ("PO-1001", "PO-1001"),
           "Your reference of the order; rows with the same order_ref are one order; "
           "an order_ref imported before is skipped."),
    Column("customer_id", True, "order", "text, at most 64", ("C-1001", ""),
           "The customer's id; a new id creates the customer from the customer columns."),
    Column("customer_name", True, "order", "text", ("Ada Lovelace", ""),
           "The customer's name."),
    Column("customer_email", True, "order", "email", ("ada@example.com", ""),
           "The customer's email; for a known customer, the email on record."),
    Column("customer_region", True, "order", "text, at most 64", ("EU-WEST", ""),
           "The customer's sales region."),
    Column("customer_tier", False, "order", "standard | vip", ("standard", ""),
           "The customer's tier; the master record decides for known customers."),
    Column("sku", True, "line", "SKU", ("WIDGET-1", "GADGET-2"),
           "The product's SKU, as in the catalogue."),
    Column("quantity", True, "line", "whole number 1-1000000", ("2", "1"),
           "Units ordered."),
    Column("unit_price", True, "line", "decimal, . as point", ("19.99", "5.50"),
           "Price of one unit in the order's currency, at most the currency's decimals; "
           "leave blank to use the price list's price at import time."),
    Column("list_price", False, "line", "decimal, . as point", ("", "6.00"),
           "Catalogue price, when unit_price is a discount off it; blank: the price list's."),
    Column("currency", True, "order", "ISO 4217", ("EUR", "EUR"), "The order's currency."),
    Column("ship_name", True, "order", "text", ("Ada Lovelace", ""), "Recipient's name."),
    Column("ship_line1", True, "order", "text", ("12 Analytical Row", ""), "Street and number."),
    Column("ship_line2", False, "order", "text", ("Flat 3", ""), "Second address line."),
    Column("ship_city", True, "order", "text", ("London", ""), "City."),
    Column("ship_postal_code", True, "order", "text, at most 20", ("N1 9GU", ""),
           "Postal code (keep the column formatted as text for leading zeros)."),
    Column("ship_country", True, "order", "ISO 3166-1 alpha-2", ("GB", ""), "Country code."),
    Column("payment_type", True, "order", "card | bank_transfer", ("card", ""),
           "How the customer pays."),
    Column("payment_token", False, "order", "text, at most 128", ("tok_visa", ""),
           "The payment gateway's card token; required when payment_type is card."),
    Column("sales_rep", False, "order", "text, at most 64", ("rep-jane", ""),
           "The sales rep's id."),
)  # fmt: skip
COLUMN_NAMES = tuple(c.name for c in COLUMNS)
REQUIRED = tuple(c.name for c in COLUMNS if c.required)
ORDER_LEVEL = tuple(c.name for c in COLUMNS if c.level == "order" and c.name != "order_ref")
_UPPER = frozenset({"currency", "ship_country"})
_LOWER = frozenset({"payment_type", "customer_tier"})
_CASELESS = frozenset({"customer_email"})


class ImportMode(StrEnum):
    ALL_OR_NOTHING = "all-or-nothing"
    SKIP_INVALID = "skip-invalid"


@dataclass(frozen=True, slots=True)
class Problem:
    row: int | None  # 1-based row in the file; None for the file as a whole
    column: str | None
    value: str
    code: str
    message: str
    severity: Severity = "error"
    order_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Counts:
    rows: int
    rows_invalid: int  # rows with at least one error
    orders: int
    orders_valid: int
    orders_invalid: int
    orders_skipped: int  # already imported
    errors: int
    warnings: int


@dataclass(frozen=True)
class Validation:
    orders: dict[str, OrderSpec]  # the valid orders by order_ref, in file order
    problems: tuple[Problem, ...]  # by row, then column
    counts: Counts
    skipped: dict[str, str] = field(default_factory=dict)  # order_ref -> existing order id
    invalid: tuple[str, ...] = ()  # order_refs of invalid orders, in file order
    order_rows: dict[str, tuple[int, ...]] = field(default_factory=dict)  # every order's rows

    @property
    def has_errors(self) -> bool:
        return self.counts.errors > 0


def orders_to_start(validation: Validation, mode: ImportMode) -> list[tuple[str, OrderSpec]]:
    """The orders to start: none in all-or-nothing mode when any row has an error; else the
    valid orders (whole orders: an order with a bad row is not among them)."""
    if mode is ImportMode.ALL_OR_NOTHING and validation.has_errors:
        return []
    return list(validation.orders.items())


def blocked(validation: Validation, mode: ImportMode) -> bool:
    """True when the mode starts nothing because of errors."""
    return mode is ImportMode.ALL_OR_NOTHING and validation.has_errors


# --- header ------------------------------------------------------------------------------------


def normalize_header(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower()).strip("_")


def map_header(table: Table) -> tuple[dict[str, int], list[Problem]]:
    """Column name -> index, and warnings for the columns ignored. Raises ``ImportFileError``
    for a header naming no known column, a missing required column or a duplicated one."""
    index: dict[str, int] = {}
    warnings: list[Problem] = []
    known = set(COLUMN_NAMES)
    for i, raw in enumerate(table.header):
        name = normalize_header(raw)
        if not name:
            continue
        if name in index:
            raise ImportFileError(
                "duplicate_columns",
                f"the header (row {table.header_row}) names column {name!r} twice",
            )
        if name in known:
            index[name] = i
        else:
            warnings.append(
                Problem(
                    table.header_row,
                    raw,
                    raw,
                    "unknown_column",
                    f"column {raw!r} is not an import column and is ignored",
                    "warning",
                )
            )
    if not index:
        found = ", ".join(repr(c) for c in table.header[:5])
        raise ImportFileError(
            "missing_header",
            f"the first row (row {table.header_row}) must name the columns ({', '.join(REQUIRED)}"
            f"); it holds {found}. Download the template to see the header",
        )
    missing = [name for name in REQUIRED if name not in index]
    if missing:
        raise ImportFileError(
            "missing_columns",
            f"the header (row {table.header_row}) lacks the required column(s) "
            f"{', '.join(missing)}",
        )
    return index, warnings


# --- validation --------------------------------------------------------------------------------

_QUANTITY_RE = re.compile(r"^\+?[0-9]+$")
_PRICE_RE = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
_ORDER_COLUMN = {  # model field -> column, per model
    "Customer": {
        "id": "customer_id",
        "name": "customer_name",
        "email": "customer_email",
        "region": "customer_region",
        "tier": "customer_tier",
    },
    "Address": {
        "name": "ship_name",
        "line1": "ship_line1",
        "line2": "ship_line2",
        "city": "ship_city",
        "postal_code": "ship_postal_code",
        "country": "ship_country",
    },
    "PaymentMethod": {"type": "payment_type", "token": "payment_token"},
    "OrderLine": {
        "sku": "sku",
        "quantity": "quantity",
        "unit_price": "unit_price",
        "list_price": "list_price",
    },
}


def _normal(column: str, text: str) -> str:
    value = text.strip()
    if column in _UPPER:
        return value.upper()
    if column in _LOWER:
        return re.sub(r"[\s\-]+", "_", value.lower())
    return value


class _Order:
    """The rows of one order_ref as validation walks them."""

    __slots__ = ("errors", "ref", "rows")

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.rows: list[Row] = []
        self.errors = False


class _Validator:
    def __init__(
        self,
        table: Table,
        index: dict[str, int],
        known_skus: Collection[str],
        is_known_customer: IsKnownCustomer | None,
        already_imported: AlreadyImported | None,
        progress: Progress | None = None,
        list_price: ListPrice | None = None,
    ) -> None:
        self.table = table
        self.progress = progress
        self.list_price = list_price
        self.index = index
        self.known_skus = known_skus
        self.is_known_customer = is_known_customer
        self.already_imported = already_imported
        self.problems: list[Problem] = []
        self.bad_rows: set[int] = set()
        self.customers: dict[tuple[str, str], CustomerCheck] = {}

    def cell(self, row: Row, column: str) -> str:
        i = self.index.get(column)
        return row.get(i) if i is not None else ""

    def problem(
        self,
        order: _Order | None,
        row: Row,
        column: str | None,
        code: str,
        message: str,
        severity: Severity = "error",
        value: str | None = None,
    ) -> None:
        if value is None:
            value = self.cell(row, column) if column else ""
        ref = order.ref if order else None
        self.problems.append(Problem(row.number, column, value, code, message, severity, ref))
        if severity == "error":
            self.bad_rows.add(row.number)
            if order is not None:
                order.errors = True

    # -- the walk --

    def run(self) -> Validation:
        width = len(self.table.header)
        orders: dict[str, _Order] = {}
        for row in self.table.rows:
            ref_text = self.cell(row, "order_ref").strip()
            order = orders.get(ref_text) if ref_text else None
            if ref_text and order is None:
                order = orders[ref_text] = _Order(ref_text)
            if len(row.cells) > width:
                extra = next(i for i in range(width, len(row.cells)) if row.cells[i].strip())
                self.problem(
                    order,
                    row,
                    None,
                    "extra_cells",
                    f"row {row.number} has a value in column {extra + 1}, right of the last "
                    f"named column ({width}); name the column or clear the cell",
                    value=row.cells[extra],
                )
            if order is None:
                self.problem(None, row, "order_ref", "required", "order_ref is required")
                continue
            order.rows.append(row)

        valid: dict[str, OrderSpec] = {}
        skipped: dict[str, str] = {}
        invalid: list[str] = []
        done = reported = len(self.table.rows) - sum(len(o.rows) for o in orders.values())
        for ref, order in orders.items():
            done += len(order.rows)
            if self.progress is not None and done - reported >= PROGRESS_EVERY:
                self.progress(done)
                reported = done
            spec = self.order(order, skipped)
            if spec is not None:
                valid[ref] = spec
            elif ref not in skipped:
                invalid.append(ref)

        order_of = {c: i for i, c in enumerate(COLUMN_NAMES)}
        problems = sorted(
            self.problems,
            key=lambda p: (p.row or 0, order_of.get(p.column or "", len(order_of))),
        )
        if self.progress is not None:
            self.progress(len(self.table.rows))
        counts = Counts(
            rows=len(self.table.rows),
            rows_invalid=len(self.bad_rows),
            orders=len(orders),
            orders_valid=len(valid),
            orders_invalid=len(invalid),
            orders_skipped=len(skipped),
            errors=sum(p.severity == "error" for p in problems),
            warnings=sum(p.severity == "warning" for p in problems),
        )
        return Validation(
            orders=valid,
            problems=tuple(problems),
            counts=counts,
            skipped=skipped,
            invalid=tuple(invalid),
            order_rows={ref: tuple(r.number for r in o.rows) for ref, o in orders.items()},
        )

    def order(self, order: _Order, skipped: dict[str, str]) -> OrderSpec | None:
        first = order.rows[0]
        if not self.order_ref_ok(order, first):
            return None
        if self.already_imported is not None:
            existing = self.already_imported(order.ref)
            if existing is not None:
                skipped[order.ref] = existing
                self.problem(
                    order,
                    first,
                    "order_ref",
                    "already_imported",
                    f"already imported as {existing}; this order is skipped",
                    "info",
                )
                return None
        fields, source = self.merge(order)
        customer = self.model(order, Customer, fields, source, first)
        if customer is not None:
            self.check_customer(order, customer, source.get("customer_email", first))
        address = self.model(order, Address, fields, source, first)
        payment = self.model(order, PaymentMethod, fields, source, first)
        currency = fields.get("currency", "")
        currency_row = source.get("currency", first)
        if not currency:
            self.problem(order, currency_row, "currency", "required", "currency is required")
        elif currency not in CURRENCY_EXPONENTS:
            self.problem(
                order,
                currency_row,
                "currency",
                "unknown_currency",
                f"currency {currency!r} is not an ISO 4217 code we accept "
                f"({', '.join(sorted(CURRENCY_EXPONENTS))})",
            )
            currency = ""
        sales_rep = fields.get("sales_rep") or None
        if sales_rep is not None and len(sales_rep) > 64:
            self.problem(
                order,
                source["sales_rep"],
                "sales_rep",
                "too_long",
                "sales_rep: at most 64 characters",
            )
        lines = self.lines(order, currency)
        if order.errors or customer is None or address is None or payment is None:
            return None
        try:
            return OrderSpec(
                customer=customer,
                lines=lines,
                currency=currency,
                shipping_address=address,
                payment_method=payment,
                sales_rep=sales_rep,
                external_reference=order.ref,
                source=OrderSource.IMPORT,
            )
        except ValidationError as exc:
            for error in exc.errors():
                message = str(error["msg"]).removeprefix("Value error, ")
                code = "order_total" if "order total" in message else _code(error, "")
                column = "sales_rep" if error["loc"][:1] == ("sales_rep",) else None
                self.problem(order, first, column, code, message)
            return None

    def order_ref_ok(self, order: _Order, first: Row) -> bool:
        try:
            no_control_chars(order.ref)
        except ValueError as exc:
            self.problem(order, first, "order_ref", "invalid_characters", f"order_ref {exc}")
            return False
        if len(order.ref) > 64:
            self.problem(order, first, "order_ref", "too_long", "order_ref: at most 64 characters")
            return False
        return True

    def merge(self, order: _Order) -> tuple[dict[str, str], dict[str, Row]]:
        """Each order-level column's value (the first non-blank one) and the row it came from;
        a later row with another non-blank value is an order_conflict."""
        fields: dict[str, str] = {}
        source: dict[str, Row] = {}
        for column in ORDER_LEVEL:
            if column not in self.index:
                continue
            for row in order.rows:
                value = _normal(column, self.cell(row, column))
                if not value:
                    continue
                if column not in fields:
                    fields[column], source[column] = value, row
                    continue
                same = (
                    value.casefold() == fields[column].casefold()
                    if column in _CASELESS
                    else value == fields[column]
                )
                if not same:
                    self.problem(
                        order,
                        row,
                        column,
                        "order_conflict",
                        f"order {order.ref} has {column} {fields[column]!r} on row "
                        f"{source[column].number}; the rows of one order must agree (leave the "
                        "cell blank, or use another order_ref for another order)",
                    )
        return fields, source

    def model(
        self,
        order: _Order,
        model: type[M],
        fields: Mapping[str, str],
        source: Mapping[str, Row],
        first: Row,
    ) -> M | None:
        columns = _ORDER_COLUMN[model.__name__]
        data = {name: fields[col] for name, col in columns.items() if fields.get(col)}
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            self.report(order, exc, columns, lambda col: source.get(col, first))
            return None

    def report(
        self,
        order: _Order,
        exc: ValidationError,
        columns: Mapping[str, str],
        row_of: Callable[[str], Row],
    ) -> None:
        """Turn a model's ValidationError into problems on the columns it names."""
        fallback = next(iter(columns.values()))
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            name = str(error["loc"][0]) if error["loc"] else ""
            if not name:  # a model validator: "<field>: reason" or a whole-model rule
                head, sep, rest = message.partition(": ")
                if sep and head in columns:
                    name, message = head, rest
                elif "token" in message and "token" in columns:
                    name = "token"
            column = columns.get(name, fallback)
            code = _code(error, column)
            if code == "required":
                message = f"{column} is required" + (
                    " for card payments" if column == "payment_token" else ""
                )
            else:
                message = f"{column}: {message}"
            self.problem(order, row_of(column), column, code, message)

    def check_customer(self, order: _Order, customer: Customer, row: Row) -> None:
        if self.is_known_customer is None:
            return
        key = (customer.id, str(customer.email).casefold())
        if key not in self.customers:
            self.customers[key] = self.is_known_customer(customer.id, str(customer.email))
        if self.customers[key] == "mismatch":
            self.problem(
                order,
                row,
                "customer_email",
                "customer_mismatch",
                f"customer {customer.id} is on record with another email address; give the "
                "email on record (support changes it), or a new customer_id for a new customer",
            )

    def lines(self, order: _Order, currency: str) -> list[OrderLine]:
        lines: list[OrderLine] = []
        seen: dict[str, int] = {}
        for position, row in enumerate(order.rows):
            if position == MAX_LINES:
                self.problem(
                    order,
                    row,
                    "order_ref",
                    "too_many_lines",
                    f"order {order.ref} has {len(order.rows)} lines; at most {MAX_LINES}",
                )
            line = self.line(order, row, currency)
            if line is None:
                continue
            if line.sku in seen:
                self.problem(
                    order,
                    row,
                    "sku",
                    "duplicate_line",
                    f"SKU {line.sku} is already a line of order {order.ref} (row "
                    f"{seen[line.sku]}); put the whole quantity on one row",
                )
                continue
            seen[line.sku] = row.number
            lines.append(line)
        return lines

    def line(self, order: _Order, row: Row, currency: str) -> OrderLine | None:
        sku = self.sku(order, row)
        quantity = self.quantity(order, row)
        priced = self.list_price is not None
        unit_ok, unit_price = self.price(order, row, "unit_price", currency, required=not priced)
        list_ok, list_price = self.price(order, row, "list_price", currency, required=False)
        if sku is None or quantity is None or not unit_ok or not list_ok:
            return None
        listed = self.list_price(sku, currency) if self.list_price and currency else None
        if list_price is None:
            list_price = listed
        if unit_price is None:
            if listed is None:
                reason = f"SKU {sku} has no {currency} price in the price list" if currency else ""
                self.problem(
                    order, row, "unit_price", "required",
                    f"unit_price is required{': ' + reason if reason else ''}",
                )  # fmt: skip
                return None
            unit_price = listed
        data: dict[str, Any] = {"sku": sku, "quantity": quantity, "unit_price": unit_price}
        if list_price is not None:
            data["list_price"] = list_price
        try:
            return OrderLine.model_validate(data)
        except ValidationError as exc:  # the checks above are meant to leave nothing here
            self.report(order, exc, _ORDER_COLUMN["OrderLine"], lambda _col: row)
            return None

    def sku(self, order: _Order, row: Row) -> str | None:
        text = self.cell(row, "sku").strip()
        if not text:
            self.problem(order, row, "sku", "required", "sku is required")
            return None
        try:
            sku = _SKU.validate_python(text)
        except ValidationError:
            self.problem(
                order,
                row,
                "sku",
                "invalid_sku",
                "sku must be 1 to 64 letters, digits and . _ - / (starting with a letter or digit)",
            )
            return None
        if sku not in self.known_skus:
            self.problem(order, row, "sku", "unknown_sku", f"SKU {sku!r} is not in the catalogue")
            return None
        return sku

    def quantity(self, order: _Order, row: Row) -> int | None:
        text = self.cell(row, "quantity").strip()
        if not text:
            self.problem(order, row, "quantity", "required", "quantity is required")
            return None
        if not _QUANTITY_RE.match(text):
            reason = (
                "must be greater than 0" if text.startswith("-") and _PRICE_RE.match(text)
                else "must be a whole number of units"
            )  # fmt: skip
            self.problem(order, row, "quantity", "invalid_quantity", f"quantity {reason}")
            return None
        quantity = int(text)
        if not 0 < quantity <= MAX_QUANTITY:
            self.problem(
                order,
                row,
                "quantity",
                "invalid_quantity",
                f"quantity must be from 1 to {MAX_QUANTITY:,}",
            )
            return None
        return quantity

    def price(
        self, order: _Order, row: Row, column: str, currency: str, *, required: bool
    ) -> tuple[bool, Decimal | None]:
        """(ok, the price or None when blank); not ok after reporting a problem."""
        text = self.cell(row, column).strip()
        if not text:
            if required:
                self.problem(order, row, column, "required", f"{column} is required")
            return not required, None
        if not _PRICE_RE.match(text):
            hint = (
                "use a point as decimal separator and no thousands separator (1234.50)"
                if "," in text
                else "write a plain number such as 19.99, without currency sign"
            )
            self.problem(order, row, column, "invalid_price", f"{column} is not a number: {hint}")
            return False, None
        try:
            amount = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            self.problem(order, row, column, "invalid_price", f"{column} is not a number")
            return False, None
        if amount < 0:
            self.problem(order, row, column, "invalid_price", f"{column} must not be negative")
            return False, None
        if len(amount.as_tuple().digits) > 14:
            self.problem(order, row, column, "invalid_price", f"{column} is too large")
            return False, None
        if currency:
            try:
                check_amount(amount, currency)
            except ValueError as exc:
                self.problem(order, row, column, "invalid_price", f"{column}: {exc}")
                return False, None
        return True, amount


def _code(error: Any, column: str) -> str:
    kind = str(error.get("type", ""))
    message = str(error.get("msg", ""))
    if kind in ("missing", "string_too_short"):
        return "required"
    if kind == "string_too_long":
        return "too_long"
    if "control character" in message:
        return "invalid_characters"
    if column == "customer_email":
        return "invalid_email"
    if column == "ship_country":
        return "invalid_country"
    if column == "sku":
        return "invalid_sku"
    if kind == "enum":
        return "invalid_choice"
    if column == "payment_token" and "required" in message:
        return "required"
    return "invalid_value"


def validate(
    table: Table,
    *,
    known_skus: Collection[str],
    is_known_customer: IsKnownCustomer | None = None,
    already_imported: AlreadyImported | None = None,
    progress: Progress | None = None,
    list_price: ListPrice | None = None,
) -> Validation:
    """Check every row and every field of an import table; see the module docstring.

    ``known_skus`` should be a set (membership is tested per row). ``is_known_customer(id,
    email)`` answers from the customer master ("mismatch": the id is on record with another
    email); it is asked once per distinct pair. ``already_imported(order_ref)`` returns the id of
    the order an earlier import created for that reference, or None; it is asked once per order.
    ``progress(rows)`` is called every ``PROGRESS_EVERY`` rows and at the end (from the
    validating thread). ``list_price(sku, currency)`` is the price list's price now (or None):
    it fills blank unit_price and list_price cells; without it unit_price is required.
    Raises ``ImportFileError`` for a header problem (no known column, a required one missing).
    """
    index, warnings = map_header(table)
    validator = _Validator(
        table, index, known_skus, is_known_customer, already_imported, progress, list_price
    )
    validator.problems.extend(warnings)
    return validator.run()
