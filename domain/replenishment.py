"""Low-stock replenishment from the demand forecast (pure: no I/O).

A SKU needs reordering when the stock available (on hand, not reserved) does not cover the
forecast's upper bound over the next ``weeks`` (the cover a planner wants until a delivery
arrives): the suggested quantity is that shortfall, rounded up. Planning on the upper bound of
the prediction interval is the safety stock: a forecast that proved poor (a high backtest
sMAPE) has a wide interval, and so asks for more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class WeekDemand:
    quantity: float
    upper: float


@dataclass(frozen=True)
class Replenishment:
    sku: str
    available: int
    demand: float  # forecast units over the weeks
    demand_upper: float  # upper bound of the interval, summed over the weeks
    weeks_of_cover: float | None  # available / forecast weekly demand (None: no demand)
    reorder: int  # units to order now (0: enough)

    @property
    def low(self) -> bool:
        return self.reorder > 0


def replenishment(
    sku: str, available: int, weeks: Sequence[WeekDemand], *, cover_weeks: int
) -> Replenishment:
    """The suggestion for one SKU over its first ``cover_weeks`` forecast weeks."""
    if cover_weeks < 1:
        raise ValueError("cover_weeks must be at least 1")
    ahead = list(weeks[:cover_weeks])
    demand = sum(w.quantity for w in ahead)
    upper = sum(w.upper for w in ahead)
    weekly = demand / len(ahead) if ahead else 0.0
    return Replenishment(
        sku=sku,
        available=available,
        demand=round(demand, 2),
        demand_upper=round(upper, 2),
        weeks_of_cover=round(available / weekly, 1) if weekly > 0 else None,
        reorder=max(0, math.ceil(upper - available - 1e-9)),
    )
