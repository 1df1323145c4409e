"""Rules for dividing an order's units into parcels."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from domain.events import ParcelLine
from domain.order import OrderLine


def units_by_sku(lines: Iterable[OrderLine | ParcelLine]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in lines:
        counts[line.sku] += line.quantity
    return counts


def split_problem(
    lines: Sequence[OrderLine], parcels: Sequence[Sequence[ParcelLine]]
) -> str | None:
    """Why ``parcels`` is not a division of the order's units, or None if it is: at least two
    parcels, none empty, every unit of every line in exactly one parcel."""
    if len(parcels) < 2:
        return "a split needs at least two parcels"
    for i, parcel in enumerate(parcels):
        if not parcel:
            return f"parcels[{i}] is empty"
    ordered = units_by_sku(lines)
    packed = units_by_sku(line for parcel in parcels for line in parcel)
    for sku in sorted(packed.keys() - ordered.keys()):
        return f"SKU {sku} is not in the order"
    for sku, quantity in sorted(ordered.items()):
        if packed[sku] != quantity:
            return f"SKU {sku}: the order has {quantity} units, the parcels hold {packed[sku]}"
    return None
