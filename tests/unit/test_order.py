"""OrderSpec validation and totals computed from lines."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from domain.order import MAX_LINES, MAX_QUANTITY, OrderSpec, PaymentType
from tests.unit.builders import line, payload, spec


def _errors(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        OrderSpec.model_validate(data)
    return str(info.value)


def test_valid_payload_is_accepted() -> None:
    order = spec()
    assert order.currency == "EUR"
    assert order.customer.name == "Ada Lovelace"
    assert order.lines[0].quantity == 2
    assert order.lines[0].unit_price == Decimal("19.99")
    assert order.payment_method.type is PaymentType.CARD


def test_spec_is_frozen() -> None:
    order = spec()
    with pytest.raises(ValidationError):
        order.currency = "USD"  # type: ignore[misc]


@pytest.mark.parametrize("quantity", [0, -1, -100])
def test_quantity_must_be_positive(quantity: int) -> None:
    message = _errors(payload(lines=[line(quantity=quantity)]))
    assert "lines.0.quantity" in message
    assert "greater than 0" in message


def test_quantity_upper_bound() -> None:
    assert spec(lines=[line(quantity=MAX_QUANTITY)]).lines[0].quantity == MAX_QUANTITY
    assert "lines.0.quantity" in _errors(payload(lines=[line(quantity=MAX_QUANTITY + 1)]))


def test_fractional_quantity_rejected() -> None:
    assert "lines.0.quantity" in _errors(payload(lines=[line(quantity=1.5)]))  # type: ignore[arg-type]


@pytest.mark.parametrize("price", ["-0.01", "-1", "-1000.00"])
def test_negative_unit_price_rejected(price: str) -> None:
    message = _errors(payload(lines=[line(unit_price=price)]))
    assert "lines.0.unit_price" in message
    assert "greater than or equal to 0" in message


def test_zero_unit_price_allowed() -> None:
    assert spec(lines=[line(unit_price="0")]).total() == Decimal("0.00")


@pytest.mark.parametrize("price", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_unit_price_rejected(price: str) -> None:
    assert "lines.0.unit_price" in _errors(payload(lines=[line(unit_price=price)]))


@pytest.mark.parametrize(
    ("currency", "price", "places"),
    [("EUR", "1.001", 2), ("USD", "19.999", 2), ("JPY", "100.5", 0), ("KWD", "1.2345", 3)],
)
def test_too_many_decimals_for_currency(currency: str, price: str, places: int) -> None:
    message = _errors(payload(currency=currency, lines=[line(unit_price=price)]))
    assert f"lines[0].unit_price: {currency} allows at most {places} decimal places" in message


def test_too_many_decimals_names_the_offending_line() -> None:
    lines = [line(unit_price="1.00"), line(unit_price="2.50"), line(unit_price="3.333")]
    message = _errors(payload(lines=lines))
    assert "lines[2].unit_price" in message
    assert "lines[0].unit_price" not in message


@pytest.mark.parametrize(
    ("currency", "price"),
    [("EUR", "1.23"), ("JPY", "1500"), ("JPY", "1500.00"), ("KWD", "1.234"), ("BHD", "0.005")],
)
def test_decimals_within_currency_accepted(currency: str, price: str) -> None:
    assert spec(currency=currency, lines=[line(unit_price=price)]).currency == currency


@pytest.mark.parametrize("currency", ["XYZ", "BTC", "ABC"])
def test_unknown_currency_rejected(currency: str) -> None:
    assert "unknown or unsupported ISO 4217 currency" in _errors(payload(currency=currency))


@pytest.mark.parametrize("currency", ["eur", "Eur", "usd", "EURO", "EU", " EUR", ""])
def test_malformed_currency_rejected(currency: str) -> None:
    message = _errors(payload(currency=currency))
    assert "currency" in message
    assert "pattern" in message


@pytest.mark.parametrize("token", [None, "", "   "])
def test_card_requires_token(token: str | None) -> None:
    method: dict[str, str] = {"type": "card"}
    if token is not None:
        method["token"] = token
    assert "token is required for card payments" in _errors(payload(payment_method=method))


@pytest.mark.parametrize(
    "method", [{"type": "bank_transfer"}, {"type": "bank_transfer", "token": ""}]
)
def test_bank_transfer_needs_no_token(method: dict[str, str]) -> None:
    order = spec(payment_method=method)
    assert order.payment_method.type is PaymentType.BANK_TRANSFER
    assert order.payment_method.token == ""


def test_unknown_payment_type_rejected() -> None:
    assert "payment_method.type" in _errors(payload(payment_method={"type": "cash"}))


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ((), "total"),
        ((), "discount"),
        (("customer",), "credit_limit"),
        (("shipping_address",), "line3"),
        (("payment_method",), "cvv"),
    ],
)
def test_extra_fields_rejected(path: tuple[str, ...], field: str) -> None:
    data = payload()
    target = data
    for key in path:
        target = target[key]
    target[field] = "1"
    message = _errors(data)
    assert ".".join((*path, field)) in message
    assert "Extra inputs are not permitted" in message


def test_line_total_from_client_rejected() -> None:
    data = payload(lines=[{**line(), "total": "0.01"}])
    message = _errors(data)
    assert "lines.0.total" in message
    assert "Extra inputs are not permitted" in message


CONTROL_CHARS = ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\t", "\n", "\r"]
TEXT_FIELDS = [
    ("customer", "id"),
    ("customer", "name"),
    ("customer", "region"),
    ("shipping_address", "name"),
    ("shipping_address", "line1"),
    ("shipping_address", "line2"),
    ("shipping_address", "city"),
    ("shipping_address", "postal_code"),
    ("payment_method", "token"),
    ("sales_rep",),
    ("external_reference",),
]


@pytest.mark.parametrize("char", CONTROL_CHARS, ids=repr)
@pytest.mark.parametrize("path", TEXT_FIELDS, ids=".".join)
def test_control_characters_rejected(path: tuple[str, ...], char: str) -> None:
    data = payload()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = f"ab{char}cd"
    assert "must not contain control character" in _errors(data)


@pytest.mark.parametrize(
    "name", ["José Müller", "山田太郎", "Владимир Набоков", "Zoë O'Brien-Łukasz", "Ada 🚀"]
)
def test_unicode_names_accepted(name: str) -> None:
    customer = {**payload()["customer"], "name": name}
    address = {**payload()["shipping_address"], "name": name, "city": "Zürich"}
    order = spec(customer=customer, shipping_address=address)
    assert order.customer.name == name
    assert order.shipping_address.name == name
    assert order.shipping_address.city == "Zürich"


def test_surrounding_whitespace_is_stripped() -> None:
    customer = {**payload()["customer"], "name": "  Ada  "}
    assert spec(customer=customer).customer.name == "Ada"


def test_blank_name_rejected() -> None:
    customer = {**payload()["customer"], "name": "   "}
    assert "customer.name" in _errors(payload(customer=customer))


def test_invalid_email_rejected() -> None:
    customer = {**payload()["customer"], "email": "not-an-email"}
    assert "customer.email" in _errors(payload(customer=customer))


@pytest.mark.parametrize("country", ["gb", "GBR", "G", ""])
def test_country_must_be_alpha2_uppercase(country: str) -> None:
    address = {**payload()["shipping_address"], "country": country}
    assert "shipping_address.country" in _errors(payload(shipping_address=address))


@pytest.mark.parametrize("sku", ["", "-WIDGET", "WID GET", "W" * 65, "WIDGET#1"])
def test_bad_sku_rejected(sku: str) -> None:
    assert "lines.0.sku" in _errors(payload(lines=[line(sku=sku)]))


def test_empty_lines_rejected() -> None:
    message = _errors(payload(lines=[]))
    assert "lines" in message
    assert "at least 1 item" in message


def test_max_lines_accepted() -> None:
    lines = [line(sku=f"SKU-{i}", unit_price="1.00") for i in range(MAX_LINES)]
    order = spec(lines=lines)
    assert len(order.lines) == MAX_LINES == 500
    assert order.total() == Decimal("500.00")


def test_more_than_max_lines_rejected() -> None:
    lines = [line(sku=f"SKU-{i}") for i in range(MAX_LINES + 1)]
    message = _errors(payload(lines=lines))
    assert "lines" in message
    assert "at most 500 items" in message


@pytest.mark.parametrize(
    ("currency", "lines", "total", "minor"),
    [
        ("EUR", [line(quantity=2, unit_price="19.99")], "39.98", 3998),
        ("EUR", [line(quantity=3, unit_price="1.1")], "3.30", 330),
        (
            "USD",
            [line(quantity=1, unit_price="0.01"), line(quantity=10, unit_price="9.99")],
            "99.91",
            9991,
        ),
        (
            "JPY",
            [line(quantity=7, unit_price="150"), line(quantity=1, unit_price="1")],
            "1051",
            1051,
        ),
        ("KWD", [line(quantity=3, unit_price="0.333")], "0.999", 999),
    ],
)
def test_total_computed_from_lines(
    currency: str, lines: list[dict[str, Any]], total: str, minor: int
) -> None:
    order = spec(currency=currency, lines=lines)
    assert order.total() == Decimal(total)
    assert str(order.total()) == total
    assert order.total_minor() == minor


def test_line_total_is_quantity_times_price() -> None:
    order = spec(lines=[line(quantity=4, unit_price="2.50")])
    assert order.lines[0].total() == Decimal("10.00")


@pytest.mark.parametrize("char", ["\u202e", "\u2066", "\u2028", "\u2029"])
def test_bidi_overrides_and_line_separators_rejected(char: str) -> None:
    data = payload()
    data["customer"]["name"] = f"Ada{char}Lovelace"
    assert "must not contain control character" in _errors(data)


@pytest.mark.parametrize("quantity", [True, "2", 2.0])
def test_quantity_must_be_a_json_integer(quantity: object) -> None:
    message = _errors(payload(lines=[line(quantity=quantity)]))
    assert "lines.0.quantity" in message


# --- PaymentMethod.masked -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "masked"),
    [
        ("tok_4242424242424242", "****4242"),
        ("abcdefgh1234", "****1234"),  # 12 characters: long enough to keep the last four
        ("abcdefg1234", "****"),  # 11: too short, nothing kept
        ("tok_visa", "****"),
        ("x", "****"),
        ("a" * 124 + "WXYZ", "****WXYZ"),
    ],
)
def test_masked_card_token(token: str, masked: str) -> None:
    method = spec(payment_method={"type": "card", "token": token}).payment_method
    result = method.masked()
    assert result.token == masked
    assert result.type is PaymentType.CARD
    assert token not in result.model_dump_json()
    assert method.token == token  # the original is left as it was


def test_masked_keeps_a_bank_transfer_without_token_as_it_is() -> None:
    method = spec(payment_method={"type": "bank_transfer"}).payment_method
    assert method.masked() == method
    assert method.masked().token == ""


def test_masked_bank_transfer_with_a_reference_token() -> None:
    method = spec(payment_method={"type": "bank_transfer", "token": "IBAN-REF-00998877"})
    result = method.payment_method.masked()
    assert result.token == "****8877"
    assert result.type is PaymentType.BANK_TRANSFER


def test_masked_method_is_still_a_valid_card_payment() -> None:
    masked = spec(payment_method={"type": "card", "token": "tok_visa"}).payment_method.masked()
    data = payload(payment_method=masked.model_dump(mode="json"))
    assert OrderSpec.model_validate(data).payment_method.token == "****"
