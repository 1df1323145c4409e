"""Money rules: accepted currencies, amount validation and minor-unit conversion."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.money import CURRENCY_EXPONENTS, check_amount, check_currency, from_minor, to_minor


@pytest.mark.parametrize("code", ["EUR", "USD", "GBP", "JPY", "KRW", "KWD", "BHD", "CHF"])
def test_check_currency_returns_known_code(code: str) -> None:
    assert check_currency(code) == code


@pytest.mark.parametrize("code", ["XYZ", "eur", "Eur", "EURO", "", " EUR", "BTC", "XAU"])
def test_check_currency_rejects_unknown_code(code: str) -> None:
    with pytest.raises(ValueError, match="unknown or unsupported ISO 4217 currency"):
        check_currency(code)


@pytest.mark.parametrize(
    ("code", "exponent"),
    [("EUR", 2), ("USD", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3), ("BHD", 3)],
)
def test_currency_exponents(code: str, exponent: int) -> None:
    assert CURRENCY_EXPONENTS[code] == exponent


def test_every_currency_code_is_three_uppercase_letters() -> None:
    for code, exponent in CURRENCY_EXPONENTS.items():
        assert len(code) == 3
        assert code.isascii()
        assert code.isupper()
        assert exponent in (0, 2, 3)


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("0", "EUR", "0.00"),
        ("1", "EUR", "1.00"),
        ("1.1", "EUR", "1.10"),
        ("19.99", "EUR", "19.99"),
        ("19.990", "EUR", "19.99"),
        ("1E+2", "EUR", "100.00"),
        ("100", "JPY", "100"),
        ("100.00", "JPY", "100"),
        ("1.234", "KWD", "1.234"),
        ("1.2", "KWD", "1.200"),
        ("0.001", "BHD", "0.001"),
    ],
)
def test_check_amount_accepts_and_quantizes(amount: str, currency: str, expected: str) -> None:
    result = check_amount(Decimal(amount), currency)
    assert result == Decimal(expected)
    # Quantized to exactly the currency's exponent, not merely numerically equal.
    assert result.as_tuple().exponent == -CURRENCY_EXPONENTS[currency]
    assert str(result) == expected


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("0.001", "EUR"),
        ("19.999", "EUR"),
        ("1.005", "USD"),
        ("0.1", "JPY"),
        ("100.5", "JPY"),
        ("1.0001", "KWD"),
        ("0.0005", "BHD"),
    ],
)
def test_check_amount_rejects_too_many_decimals(amount: str, currency: str) -> None:
    exponent = CURRENCY_EXPONENTS[currency]
    with pytest.raises(ValueError, match=f"{currency} allows at most {exponent} decimal places"):
        check_amount(Decimal(amount), currency)


@pytest.mark.parametrize("amount", ["1.23", "1.234"])
def test_check_amount_decimals_depend_on_currency(amount: str) -> None:
    """The same number can be fine in one currency and too precise in another."""
    assert check_amount(Decimal(amount), "KWD") == Decimal(amount)
    with pytest.raises(ValueError, match="JPY allows at most 0 decimal places"):
        check_amount(Decimal(amount), "JPY")


def test_check_amount_euro_cents_ok_but_tenth_of_cent_not() -> None:
    assert check_amount(Decimal("1.23"), "EUR") == Decimal("1.23")
    with pytest.raises(ValueError, match="EUR allows at most 2 decimal places"):
        check_amount(Decimal("1.234"), "EUR")


@pytest.mark.parametrize("amount", ["-0.01", "-1", "-100", "-0.001"])
def test_check_amount_rejects_negative(amount: str) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        check_amount(Decimal(amount), "EUR")


def test_check_amount_negative_zero_is_zero() -> None:
    assert check_amount(Decimal("-0"), "EUR") == 0


@pytest.mark.parametrize("amount", ["NaN", "-NaN", "sNaN", "Infinity", "-Infinity"])
def test_check_amount_rejects_non_finite(amount: str) -> None:
    with pytest.raises(ValueError, match="must be a finite number"):
        check_amount(Decimal(amount), "EUR")


def test_check_amount_rejects_unknown_currency() -> None:
    with pytest.raises(ValueError, match="unknown or unsupported"):
        check_amount(Decimal("1.00"), "XYZ")


def test_check_amount_huge_amount_raises_value_error() -> None:
    """DOMAIN BUG (latent): check_amount leaks decimal.InvalidOperation for huge amounts.

    ``quantize`` needs more digits than the default 28-digit context, so it raises
    ``decimal.InvalidOperation`` (an ArithmeticError, not a ValueError). Every other invalid
    amount gives ValueError, which pydantic validators turn into a 422; this one would not.
    OrderSpec's ``max_digits=14`` currently keeps such input away from check_amount.
    """
    with pytest.raises(ValueError, match="EUR"):
        check_amount(Decimal("1E+30"), "EUR")


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("0", "EUR", 0),
        ("0.01", "EUR", 1),
        ("19.99", "EUR", 1999),
        ("1.1", "EUR", 110),
        ("1234567.89", "USD", 123456789),
        ("500", "JPY", 500),
        ("1500", "KRW", 1500),
        ("1.234", "KWD", 1234),
        ("0.001", "BHD", 1),
    ],
)
def test_to_minor(amount: str, currency: str, minor: int) -> None:
    result = to_minor(Decimal(amount), currency)
    assert result == minor
    assert type(result) is int


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        ("0.001", "EUR", "EUR allows at most 2 decimal places"),
        ("-1", "EUR", "must not be negative"),
        ("1.5", "JPY", "JPY allows at most 0 decimal places"),
        ("1", "XYZ", "unknown or unsupported"),
    ],
)
def test_to_minor_validates_amount(amount: str, currency: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_minor(Decimal(amount), currency)


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        (0, "EUR", "0.00"),
        (1, "EUR", "0.01"),
        (1999, "EUR", "19.99"),
        (100, "USD", "1.00"),
        (500, "JPY", "500"),
        (1234, "KWD", "1.234"),
        (1, "BHD", "0.001"),
    ],
)
def test_from_minor(minor: int, currency: str, expected: str) -> None:
    result = from_minor(minor, currency)
    assert str(result) == expected


def test_from_minor_rejects_unknown_currency() -> None:
    with pytest.raises(ValueError, match="unknown or unsupported"):
        from_minor(100, "XYZ")


@pytest.mark.parametrize("currency", sorted(CURRENCY_EXPONENTS))
@pytest.mark.parametrize("minor", [0, 1, 7, 99, 100, 101, 1999, 123456789, 10**15])
def test_minor_round_trip(minor: int, currency: str) -> None:
    assert to_minor(from_minor(minor, currency), currency) == minor


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("0.00", "EUR"), ("19.99", "EUR"), ("42", "JPY"), ("9.876", "KWD"), ("1000000.00", "USD")],
)
def test_major_round_trip(amount: str, currency: str) -> None:
    assert from_minor(to_minor(Decimal(amount), currency), currency) == Decimal(amount)
