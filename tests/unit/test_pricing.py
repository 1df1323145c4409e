"""Pure pricing: price-list periods, discounts to unit prices, a template priced into an order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from domain.order import TemplateRef
from domain.pricing import (
    ListPrice,
    PricingProblems,
    TemplateContent,
    TemplateOverrides,
    TemplateUnusable,
    check_period,
    discounted,
    order_spec,
    overlaps,
    price_at,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
REF = TemplateRef(id="TPL-TEST0001", version=3)


def content(**changes: Any) -> TemplateContent:
    doc: dict[str, Any] = {
        "name": "Weekly restock",
        "customer": {
            "id": "C-1",
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "region": "EU-WEST",
        },
        "currency": "EUR",
        "lines": [
            {"sku": "WIDGET-1", "quantity": 2},
            {"sku": "GADGET-2", "quantity": 1, "discount_pct": "10"},
        ],
        "shipping_address": {
            "name": "Ada Lovelace",
            "line1": "12 Analytical Row",
            "city": "London",
            "postal_code": "N1 9GU",
            "country": "GB",
        },
        "payment_method": {"type": "card", "token": "tok_visa"},
    }
    doc.update(changes)
    return TemplateContent.model_validate(doc)


PRICES = {"WIDGET-1": Decimal("19.99"), "GADGET-2": Decimal("100.00")}


# --- periods ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((T0, T0 + DAY), (T0 + DAY, None), False),  # half-open: touching is not overlapping
        ((T0, T0 + DAY), (T0 + DAY / 2, T0 + 2 * DAY), True),
        ((T0, None), (T0 + 10 * DAY, T0 + 11 * DAY), True),  # open-ended covers the future
        ((T0 + DAY, None), (T0, T0 + DAY), False),
        ((T0, None), (T0 - DAY, None), True),
        ((T0, T0 + DAY), (T0 - DAY, T0), False),
    ],
)
def test_overlaps_is_half_open(
    a: tuple[datetime, datetime | None], b: tuple[datetime, datetime | None], expected: bool
) -> None:
    assert overlaps(*a, *b) is expected
    assert overlaps(*b, *a) is expected


def test_a_period_must_end_after_it_starts() -> None:
    check_period(T0, None)
    check_period(T0, T0 + timedelta(microseconds=1))
    for end in (T0, T0 - DAY):
        with pytest.raises(ValueError, match="must be after valid_from"):
            check_period(T0, end)


def test_price_at_takes_the_row_valid_then() -> None:
    rows = [
        ListPrice("WIDGET-1", "EUR", Decimal("10.00"), T0, T0 + DAY),
        ListPrice("WIDGET-1", "EUR", Decimal("12.00"), T0 + DAY),
        ListPrice("WIDGET-1", "USD", Decimal("11.00"), T0),
    ]
    assert price_at(rows, "WIDGET-1", "EUR", T0 - timedelta(seconds=1)) is None
    found = price_at(rows, "WIDGET-1", "EUR", T0)
    assert found is not None
    assert found.list_price == Decimal("10.00")
    last = price_at(rows, "WIDGET-1", "EUR", T0 + DAY)  # the end is exclusive
    assert last is not None
    assert last.list_price == Decimal("12.00")
    usd = price_at(rows, "WIDGET-1", "USD", T0 + 100 * DAY)
    assert usd is not None
    assert usd.list_price == Decimal("11.00")
    assert price_at(rows, "GADGET-2", "EUR", T0) is None


# --- discounts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("list_price", "pct", "currency", "expected"),
    [
        ("100.00", None, "EUR", "100.00"),
        ("19.99", "10", "EUR", "17.99"),  # 17.991
        ("19.99", "12.5", "EUR", "17.49"),  # 17.49125
        ("0.05", "50", "EUR", "0.03"),  # 0.025: half up
        ("1000", "15", "JPY", "850"),
        ("999", "33.33", "JPY", "666"),  # 666.0333
        ("1.005", "50", "KWD", "0.503"),  # 0.5025: half up, three decimals
        ("50.00", "100", "EUR", "0.00"),
    ],
)
def test_discount_gives_a_unit_price_in_minor_units(
    list_price: str, pct: str | None, currency: str, expected: str
) -> None:
    got = discounted(Decimal(list_price), Decimal(pct) if pct else None, currency)
    assert got == Decimal(expected)
    assert got.as_tuple().exponent == Decimal(expected).as_tuple().exponent


@pytest.mark.parametrize("pct", ["0.00", "-5", "100.01"])
def test_a_discount_outside_0_to_100_is_refused(pct: str) -> None:
    if Decimal(pct) == 0:  # zero means "no discount"
        assert discounted(Decimal("10.00"), Decimal(pct), "EUR") == Decimal("10.00")
        return
    with pytest.raises(ValueError, match="discount"):
        discounted(Decimal("10.00"), Decimal(pct), "EUR")


# --- templates -------------------------------------------------------------------------------


def test_a_template_holds_no_prices() -> None:
    with pytest.raises(ValidationError, match="unit_price"):
        content(lines=[{"sku": "WIDGET-1", "quantity": 1, "unit_price": "1.00"}])
    with pytest.raises(ValidationError, match="list_price"):
        content(list_price="1.00")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"currency": "XXX"}, "currency"),
        ({"lines": []}, "lines"),
        ({"lines": [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 2}]}, "lines[1].sku"),
        ({"lines": [{"sku": "A", "quantity": 0}]}, "quantity"),
        ({"lines": [{"sku": "A", "quantity": 1, "discount_pct": "0"}]}, "discount_pct"),
        ({"lines": [{"sku": "A", "quantity": 1, "discount_pct": "101"}]}, "discount_pct"),
        ({"lines": [{"sku": "A", "quantity": 1, "discount_pct": "1.234"}]}, "discount_pct"),
        (
            {"valid_from": "2026-02-01T00:00:00Z", "valid_until": "2026-02-01T00:00:00Z"},
            "valid_until",
        ),
        ({"notes": "bell\x07"}, "notes"),
        ({"valid_from": "0001-01-01T00:00:00+01:00"}, "date is out of range"),
        ({"name": "a\u202eb"}, "name"),
    ],
)
def test_bad_templates_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        content(**changes)
    assert field in str(caught.value)


def test_notes_may_span_lines_and_times_are_utc() -> None:
    made = content(notes="ring twice\nleave at the back", valid_from="2026-02-01T01:00:00+01:00")
    assert made.notes == "ring twice\nleave at the back"
    assert made.valid_from == datetime(2026, 2, 1, tzinfo=UTC)
    assert content(valid_until="2026-03-01T00:00:00").valid_until == datetime(
        2026, 3, 1, tzinfo=UTC
    )


def test_order_spec_prices_each_line_from_the_list() -> None:
    spec = order_spec(content(), REF, TemplateOverrides(), PRICES, T0)
    assert [(ln.sku, ln.quantity, ln.unit_price, ln.list_price) for ln in spec.lines] == [
        ("WIDGET-1", 2, Decimal("19.99"), Decimal("19.99")),
        ("GADGET-2", 1, Decimal("90.00"), Decimal("100.00")),
    ]
    assert spec.total() == Decimal("129.98")
    assert spec.max_discount_pct() == Decimal(10)
    assert spec.template == REF
    assert spec.customer.id == "C-1"
    assert spec.currency == "EUR"


def test_a_discount_above_the_limit_shows_in_the_spec() -> None:
    template = content(lines=[{"sku": "WIDGET-1", "quantity": 1, "discount_pct": "20"}])
    spec = order_spec(template, REF, TemplateOverrides(), PRICES, T0)
    assert spec.lines[0].unit_price == Decimal("15.99")  # 15.992
    assert spec.max_discount_pct() > Decimal(15)


def test_overrides_change_quantities_drop_lines_and_replace_parties() -> None:
    overrides = TemplateOverrides.model_validate(
        {
            "quantities": {"WIDGET-1": 7, "GADGET-2": 0},
            "customer": {
                "id": "C-2",
                "name": "Grace Hopper",
                "email": "grace@example.com",
                "region": "US-EAST",
            },
            "shipping_address": {
                "name": "Grace Hopper",
                "line1": "1 Navy Yard",
                "city": "Arlington",
                "postal_code": "22202",
                "country": "US",
            },
            "payment_method": {"type": "bank_transfer"},
            "external_reference": "PO-77",
            "source": "erp",
        }
    )
    spec = order_spec(content(), REF, overrides, PRICES, T0)
    assert [(ln.sku, ln.quantity) for ln in spec.lines] == [("WIDGET-1", 7)]
    assert spec.customer.id == "C-2"
    assert spec.shipping_address.city == "Arlington"
    assert spec.payment_method.type == "bank_transfer"
    assert (spec.external_reference, spec.source) == ("PO-77", "erp")
    assert order_spec(content(), REF, TemplateOverrides(), PRICES, T0).source == "api"


def test_missing_prices_and_parties_name_every_field() -> None:
    template = content(customer=None, payment_method=None)
    overrides = TemplateOverrides(quantities={"NOPE-1": 1})
    with pytest.raises(PricingProblems) as caught:
        order_spec(template, REF, overrides, {"WIDGET-1": Decimal("1.00")}, T0)
    assert {(p.field, p.reason) for p in caught.value.problems} == {
        ("quantities.NOPE-1", "not a line of this template"),
        ("lines[1].sku", "no list price in EUR valid now"),
        ("customer", "the template has none: give one in the request"),
        ("payment_method", "the template has none: give one in the request"),
    }


def test_every_line_dropped_is_refused() -> None:
    overrides = TemplateOverrides(quantities={"WIDGET-1": 0, "GADGET-2": 0})
    with pytest.raises(PricingProblems, match="quantities: every line has quantity 0"):
        order_spec(content(), REF, overrides, PRICES, T0)


def test_a_total_beyond_the_order_limit_is_a_problem_not_a_crash() -> None:
    template = content(lines=[{"sku": "WIDGET-1", "quantity": 1_000_000}])
    with pytest.raises(PricingProblems, match="order total exceeds"):
        order_spec(template, REF, TemplateOverrides(), {"WIDGET-1": Decimal("9999999")}, T0)


def test_validity_is_half_open() -> None:
    template = content(valid_from=T0, valid_until=T0 + DAY)
    with pytest.raises(TemplateUnusable, match="valid from"):
        order_spec(template, REF, TemplateOverrides(), PRICES, T0 - timedelta(microseconds=1))
    assert order_spec(template, REF, TemplateOverrides(), PRICES, T0).lines
    with pytest.raises(TemplateUnusable, match="expired"):
        order_spec(template, REF, TemplateOverrides(), PRICES, T0 + DAY)
