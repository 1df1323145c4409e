"""domain.shipping.split_problem: whether parcels are a division of an order's units."""

from __future__ import annotations

import pytest

from domain.events import ParcelLine
from domain.order import OrderLine
from domain.shipping import split_problem, units_by_sku

LINES = [
    OrderLine(sku="WIDGET-1", quantity=3, unit_price="1.00"),
    OrderLine(sku="GADGET-2", quantity=1, unit_price="2.00"),
]


def p(*units: tuple[str, int]) -> list[ParcelLine]:
    return [ParcelLine(sku=sku, quantity=quantity) for sku, quantity in units]


@pytest.mark.parametrize(
    "parcels",
    [
        [p(("WIDGET-1", 3)), p(("GADGET-2", 1))],
        [p(("WIDGET-1", 1), ("GADGET-2", 1)), p(("WIDGET-1", 2))],
        [p(("WIDGET-1", 1)), p(("WIDGET-1", 1)), p(("WIDGET-1", 1), ("GADGET-2", 1))],
        # one SKU over two lines of the same parcel still counts once per unit
        [p(("WIDGET-1", 1), ("WIDGET-1", 2)), p(("GADGET-2", 1))],
    ],
)
def test_divisions_of_every_unit_are_accepted(parcels: list[list[ParcelLine]]) -> None:
    assert split_problem(LINES, parcels) is None


@pytest.mark.parametrize(
    ("parcels", "problem"),
    [
        ([], "a split needs at least two parcels"),
        ([p(("WIDGET-1", 3), ("GADGET-2", 1))], "a split needs at least two parcels"),
        ([p(("WIDGET-1", 3), ("GADGET-2", 1)), []], "parcels[1] is empty"),
        ([[], p(("WIDGET-1", 3), ("GADGET-2", 1))], "parcels[0] is empty"),
        (
            [p(("WIDGET-1", 3)), p(("GADGET-2", 1), ("RARE-9", 1))],
            "SKU RARE-9 is not in the order",
        ),
        (
            [p(("WIDGET-1", 2)), p(("GADGET-2", 1))],
            "SKU WIDGET-1: the order has 3 units, the parcels hold 2",
        ),
        (
            [p(("WIDGET-1", 3)), p(("WIDGET-1", 1), ("GADGET-2", 1))],
            "SKU WIDGET-1: the order has 3 units, the parcels hold 4",
        ),
        (
            [p(("WIDGET-1", 2)), p(("WIDGET-1", 1))],
            "SKU GADGET-2: the order has 1 units, the parcels hold 0",
        ),
    ],
)
def test_problems_are_named(parcels: list[list[ParcelLine]], problem: str) -> None:
    assert split_problem(LINES, parcels) == problem


def test_unknown_skus_are_named_before_counts_and_in_order() -> None:
    parcels = [p(("ZED-1", 1), ("WIDGET-1", 3)), p(("ALPHA-1", 1))]
    assert split_problem(LINES, parcels) == "SKU ALPHA-1 is not in the order"


def test_counts_are_checked_sku_by_sku_in_order() -> None:
    parcels = [p(("WIDGET-1", 1)), p(("GADGET-2", 2))]
    assert split_problem(LINES, parcels) == (
        "SKU GADGET-2: the order has 1 units, the parcels hold 2"
    )


def test_order_lines_of_one_sku_add_up() -> None:
    lines = [*LINES, OrderLine(sku="WIDGET-1", quantity=2, unit_price="1.00")]
    assert units_by_sku(lines) == {"WIDGET-1": 5, "GADGET-2": 1}
    assert split_problem(lines, [p(("WIDGET-1", 5)), p(("GADGET-2", 1))]) is None
    assert split_problem(lines, [p(("WIDGET-1", 3)), p(("GADGET-2", 1))]) == (
        "SKU WIDGET-1: the order has 5 units, the parcels hold 3"
    )


def test_parcel_lines_need_positive_quantities() -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        ParcelLine(sku="WIDGET-1", quantity=0)
