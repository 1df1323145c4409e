"""The order as the business sees it: who buys what, for how much, shipped where."""

from __future__ import annotations

import random
import re
import unicodedata
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

from domain.mail import Language
from domain.money import check_amount, check_currency, to_minor

# Bidi embeddings/overrides/isolates: they let text display differently from what it is.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def no_control_chars(value: str) -> str:
    """Reject control characters (NUL included), line separators and bidi overrides."""
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI_CONTROLS:
            raise ValueError(f"must not contain control character U+{ord(ch):04X}")
    return value


Clean = AfterValidator(no_control_chars)
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Sku = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,63}$")
]
MAX_LINES = 500
MAX_QUANTITY = 1_000_000
MAX_ORDER_TOTAL = Decimal("1000000000000")  # 10^12 in the order's currency


class CustomerTier(StrEnum):
    STANDARD = "standard"
    VIP = "vip"


class OrderSource(StrEnum):
    """Where an order came from; (source, external_reference) identifies it in that system."""

    ESHOP = "eshop"
    ERP = "erp"
    POS = "pos"
    IMPORT = "import"
    CONSOLE = "console"
    API = "api"


class PaymentType(StrEnum):
    CARD = "card"  # captured by the gateway once stock is reserved
    BANK_TRANSFER = "bank_transfer"  # customer pays first; the order waits for the payment


class Strict(BaseModel):
    """Frozen; unknown fields are errors; no string field holds control characters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _printable(self) -> Strict:
        for name, value in self:
            if isinstance(value, str):
                try:
                    no_control_chars(value)
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
        return self


class Customer(Strict):
    id: ShortText
    name: Text
    email: EmailStr
    tier: CustomerTier = CustomerTier.STANDARD
    region: ShortText
    language: Language | None = Field(
        default=None,
        description="Of this order's emails; None: the customer record's (en).",
        exclude_if=lambda v: v is None,  # unset: the order reads back exactly as sent
    )


class Address(Strict):
    name: Text
    line1: Text
    line2: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
    city: Text
    postal_code: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)
    ]
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = Field(
        description="ISO 3166-1 alpha-2 country code"
    )


class PaymentMethod(Strict):
    type: PaymentType
    token: Annotated[str, StringConstraints(strip_whitespace=True, max_length=128)] = Field(
        default="", description="Gateway token of the card; required for card payments."
    )

    @model_validator(mode="after")
    def _token_for_card(self) -> PaymentMethod:
        if self.type is PaymentType.CARD and not self.token:
            raise ValueError("token is required for card payments")
        return self

    def masked(self) -> PaymentMethod:
        """The same method with its token masked (last four characters kept when long enough),
        for everything but the gateway call itself."""
        if not self.token:
            return self
        tail = self.token[-4:] if len(self.token) >= 12 else ""
        return self.model_copy(update={"token": f"****{tail}"})


class OrderLine(Strict):
    sku: Sku
    quantity: int = Field(gt=0, le=MAX_QUANTITY, strict=True)
    unit_price: Decimal = Field(ge=0, max_digits=14, description="Price of one unit, major units.")
    list_price: Decimal | None = Field(
        default=None, ge=0, max_digits=14, description="Catalogue price, when a discount applies."
    )

    def total(self) -> Decimal:
        return self.unit_price * self.quantity

    def discount_pct(self) -> Decimal:
        """Discount off the list price in percent (0 without a list price; negative = markup)."""
        if not self.list_price:
            return Decimal(0)
        return (self.list_price - self.unit_price) / self.list_price * 100


class TemplateRef(Strict):
    """The order template (and its version) an order was built from."""

    id: ShortText
    version: int = Field(ge=1, strict=True)


class OrderSpec(Strict):
    """What a client submits to create an order. Totals are never taken from the client."""

    customer: Customer
    lines: list[OrderLine] = Field(min_length=1, max_length=MAX_LINES)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    shipping_address: Address
    payment_method: PaymentMethod
    sales_rep: ShortText | None = None
    external_reference: ShortText | None = None
    source: OrderSource = Field(
        default=OrderSource.API,
        description="Where the order came from: a second create with the same source and "
        "external_reference answers with the first order (200).",
    )
    template: TemplateRef | None = Field(
        default=None, description="Set by POST /orders/from-template: the template used."
    )

    @model_validator(mode="after")
    def _money_fits_currency(self) -> OrderSpec:
        check_currency(self.currency)
        for i, line in enumerate(self.lines):
            for name in ("unit_price", "list_price"):
                amount = getattr(line, name)
                try:
                    if amount is not None:
                        check_amount(amount, self.currency)
                except ValueError as exc:
                    raise ValueError(f"lines[{i}].{name}: {exc}") from None
        if sum((line.total() for line in self.lines), Decimal(0)) > MAX_ORDER_TOTAL:
            raise ValueError(f"order total exceeds {MAX_ORDER_TOTAL} {self.currency}")
        return self

    def total(self) -> Decimal:
        return check_amount(sum((line.total() for line in self.lines), Decimal(0)), self.currency)

    def total_minor(self) -> int:
        return to_minor(self.total(), self.currency)

    def max_discount_pct(self) -> Decimal:
        return max((line.discount_pct() for line in self.lines), default=Decimal(0))


_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
ORDER_ID_RE = re.compile(r"^SO-\d{8}-[0-9A-HJKMNP-TV-Z]{5}$")


def new_order_id(today: date, rng: random.Random | None = None) -> str:
    """A human-readable order id such as ``SO-20261123-7K2QF`` (32^5 ids per day)."""
    pick = (rng or random.SystemRandom()).choice
    return f"SO-{today:%Y%m%d}-{''.join(pick(_ID_ALPHABET) for _ in range(5))}"
