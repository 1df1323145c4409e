"""Pricing as pure rules: the price list (periods per SKU and currency never overlap), order
templates (which never hold prices), and a template turned into an order priced from the list.

Periods are half-open, ``[valid_from, valid_to)`` in UTC; ``valid_to`` None is open-ended. A
discounted unit price is the list price times ``1 - discount/100``, rounded half up to the
currency's minor unit; the line keeps the list price, so the approval policy sees the discount.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from domain.money import CURRENCY_EXPONENTS, check_currency
from domain.order import (
    MAX_LINES,
    MAX_QUANTITY,
    Address,
    Customer,
    OrderLine,
    OrderSource,
    OrderSpec,
    PaymentMethod,
    ShortText,
    Sku,
    Strict,
    TemplateRef,
    Text,
    no_control_chars,
)

DiscountPct = Annotated[
    Decimal,
    Field(gt=0, le=100, max_digits=5, decimal_places=2, description="Percent off the list price."),
]
_NOTE_BREAKS = str.maketrans("", "", "\n\r\t")


def _note_text(value: str) -> str:
    """Notes may span lines; nothing else is a control character there either."""
    no_control_chars(value.translate(_NOTE_BREAKS))
    return value


Notes = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=2000),
    AfterValidator(_note_text),
]


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime (a naive one is taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- the price list --------------------------------------------------------------------------


@dataclass(frozen=True)
class ListPrice:
    """One price-list row: the list price of ``sku`` in ``currency`` over a period."""

    sku: str
    currency: str
    list_price: Decimal
    valid_from: datetime
    valid_to: datetime | None = None

    def valid_at(self, at: datetime) -> bool:
        return self.valid_from <= at and (self.valid_to is None or at < self.valid_to)


def check_period(valid_from: datetime, valid_to: datetime | None) -> None:
    """Refuse a period that ends before (or when) it starts."""
    if valid_to is not None and valid_to <= valid_from:
        raise ValueError("must be after valid_from (periods are [valid_from, valid_to))")


def overlaps(
    a_from: datetime, a_to: datetime | None, b_from: datetime, b_to: datetime | None
) -> bool:
    """Whether two half-open periods share a moment (None: open-ended)."""
    return (a_to is None or b_from < a_to) and (b_to is None or a_from < b_to)


def price_at(
    prices: Iterable[ListPrice], sku: str, currency: str, at: datetime
) -> ListPrice | None:
    """The row of ``sku`` in ``currency`` valid at ``at``, if any."""
    return next(
        (p for p in prices if p.sku == sku and p.currency == currency and p.valid_at(at)), None
    )


def discounted(list_price: Decimal, discount_pct: Decimal | None, currency: str) -> Decimal:
    """The unit price after ``discount_pct`` percent off, rounded half up to minor units."""
    exponent = CURRENCY_EXPONENTS[check_currency(currency)]
    quantum = Decimal(1).scaleb(-exponent)
    if not discount_pct:
        return list_price.quantize(quantum, rounding=ROUND_HALF_UP)
    if not Decimal(0) < discount_pct <= Decimal(100):
        raise ValueError("discount must be above 0 and at most 100 percent")
    raw = list_price * (Decimal(100) - discount_pct) / Decimal(100)
    return raw.quantize(quantum, rounding=ROUND_HALF_UP)


# --- templates -------------------------------------------------------------------------------


class TemplateLine(Strict):
    sku: Sku
    quantity: int = Field(gt=0, le=MAX_QUANTITY, strict=True)
    discount_pct: DiscountPct | None = None


class TemplateContent(Strict):
    """What an order template holds (one version of it): never prices."""

    name: Text = Field(description="A label for people; no personal data (it is not sealed).")
    customer: Customer | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    lines: list[TemplateLine] = Field(min_length=1, max_length=MAX_LINES)
    shipping_address: Address | None = None
    payment_method: PaymentMethod | None = None
    sales_rep: ShortText | None = None
    notes: Notes = ""
    valid_from: datetime | None = Field(default=None, description="UTC; usable from then on.")
    valid_until: datetime | None = Field(default=None, description="UTC; not usable from then.")

    @field_validator("valid_from", "valid_until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        try:
            return None if value is None else as_utc(value)
        except OverflowError:
            raise ValueError("date is out of range") from None

    @model_validator(mode="after")
    def _printable(self) -> TemplateContent:  # notes may hold line breaks
        for name, value in self:
            if isinstance(value, str) and name != "notes":
                try:
                    no_control_chars(value)
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
        return self

    @model_validator(mode="after")
    def _consistent(self) -> TemplateContent:
        check_currency(self.currency)
        seen: dict[str, int] = {}
        for i, line in enumerate(self.lines):
            if line.sku in seen:
                raise ValueError(
                    f"lines[{i}].sku: {line.sku} is already lines[{seen[line.sku]}]; "
                    "one line per SKU"
                )
            seen[line.sku] = i
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until: must be after valid_from")
        return self


class TemplateOverrides(Strict):
    """What a caller may change when it uses a template."""

    quantities: dict[Sku, Annotated[int, Field(ge=0, le=MAX_QUANTITY, strict=True)]] = Field(
        default_factory=dict, description="Quantity per SKU of the template; 0 drops the line."
    )
    customer: Customer | None = None
    shipping_address: Address | None = None
    payment_method: PaymentMethod | None = None
    external_reference: ShortText | None = None
    source: OrderSource = Field(
        default=OrderSource.API, description="Where the order came from (with the reference)."
    )


def field_path(loc: Iterable[int | str]) -> str:
    """A validation error's location as the API names fields: ``lines[0].quantity``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path or "body"


@dataclass(frozen=True)
class Problem:
    field: str
    reason: str


class TemplateUnusable(ValueError):
    """The template cannot be used at that moment (not valid yet, or expired)."""


class PricingProblems(ValueError):
    """The order cannot be built: one problem per field."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.reason}" for p in problems))
        self.problems = problems


def check_usable(content: TemplateContent, at: datetime) -> None:
    """Raise :class:`TemplateUnusable` outside ``[valid_from, valid_until)``."""
    if content.valid_from is not None and at < content.valid_from:
        raise TemplateUnusable(f"the template is valid from {content.valid_from.isoformat()}")
    if content.valid_until is not None and at >= content.valid_until:
        raise TemplateUnusable(f"the template expired at {content.valid_until.isoformat()}")


def order_spec(
    content: TemplateContent,
    ref: TemplateRef,
    overrides: TemplateOverrides,
    prices: Mapping[str, Decimal],
    at: datetime,
) -> OrderSpec:
    """The order a template makes at ``at`` with ``prices`` (SKU -> list price valid then).

    Raises :class:`TemplateUnusable` outside the template's validity and
    :class:`PricingProblems` naming each field that stops the order."""
    check_usable(content, at)
    problems: list[Problem] = []
    skus = {line.sku for line in content.lines}
    for sku in overrides.quantities:
        if sku not in skus:
            problems.append(Problem(f"quantities.{sku}", "not a line of this template"))
    lines: list[OrderLine] = []
    for i, line in enumerate(content.lines):
        quantity = overrides.quantities.get(line.sku, line.quantity)
        if quantity == 0:
            continue
        list_price = prices.get(line.sku)
        if list_price is None:
            problems.append(
                Problem(f"lines[{i}].sku", f"no list price in {content.currency} valid now")
            )
            continue
        unit_price = discounted(list_price, line.discount_pct, content.currency)
        lines.append(
            OrderLine(
                sku=line.sku,
                quantity=quantity,
                unit_price=unit_price,
                list_price=discounted(list_price, None, content.currency),
            )
        )
    if not lines and not problems:
        problems.append(Problem("quantities", "every line has quantity 0; an order needs one"))
    customer = overrides.customer or content.customer
    address = overrides.shipping_address or content.shipping_address
    payment = overrides.payment_method or content.payment_method
    for field, value in (
        ("customer", customer),
        ("shipping_address", address),
        ("payment_method", payment),
    ):
        if value is None:
            problems.append(Problem(field, "the template has none: give one in the request"))
    if problems or customer is None or address is None or payment is None:
        raise PricingProblems(problems)
    try:
        return OrderSpec(
            customer=customer,
            lines=lines,
            currency=content.currency,
            shipping_address=address,
            payment_method=payment,
            sales_rep=content.sales_rep,
            external_reference=overrides.external_reference,
            source=overrides.source,
            template=ref,
        )
    except ValidationError as exc:
        raise PricingProblems(
            [Problem(field_path(err["loc"]), err["msg"]) for err in exc.errors()]
        ) from exc
