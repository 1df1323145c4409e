"""Money rules: ISO 4217 currencies we accept and their minor-unit exponents."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

# ISO 4217 code -> number of decimal places. Extend as markets open.
CURRENCY_EXPONENTS: dict[str, int] = {
    "AUD": 2,
    "BRL": 2,
    "CAD": 2,
    "CHF": 2,
    "CNY": 2,
    "CZK": 2,
    "DKK": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "HUF": 2,
    "INR": 2,
    "JPY": 0,
    "KRW": 0,
    "MXN": 2,
    "NOK": 2,
    "NZD": 2,
    "PLN": 2,
    "SEK": 2,
    "SGD": 2,
    "USD": 2,
    "ZAR": 2,
    "KWD": 3,
    "BHD": 3,
}


def check_currency(code: str) -> str:
    """Return the code if it is a currency we accept, else raise ValueError."""
    if code not in CURRENCY_EXPONENTS:
        raise ValueError(f"unknown or unsupported ISO 4217 currency {code!r}")
    return code


def check_amount(amount: Decimal, currency: str) -> Decimal:
    """Validate that ``amount`` fits the currency's minor unit; return it quantized."""
    exponent = CURRENCY_EXPONENTS[check_currency(currency)]
    if not amount.is_finite():
        raise ValueError("amount must be a finite number")
    if amount < 0:
        raise ValueError("amount must not be negative")
    quantum = Decimal(1).scaleb(-exponent)
    try:
        quantized = amount.quantize(quantum, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:
        raise ValueError(f"amount is too large for {currency}") from None
    if quantized != amount:
        raise ValueError(f"{currency} allows at most {exponent} decimal places")
    return quantized


def to_minor(amount: Decimal, currency: str) -> int:
    """Amount in the currency's minor units (cents), as payment gateways expect."""
    return int(check_amount(amount, currency).scaleb(CURRENCY_EXPONENTS[currency]))


def from_minor(minor: int, currency: str) -> Decimal:
    exponent = CURRENCY_EXPONENTS[check_currency(currency)]
    return Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))
