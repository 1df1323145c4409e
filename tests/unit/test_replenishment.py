"""Replenishment: reorder the shortfall against the forecast's upper bound."""

from __future__ import annotations

import pytest

from domain.replenishment import WeekDemand, replenishment

WEEKS = [WeekDemand(10, 14), WeekDemand(12, 17.5), WeekDemand(8, 11), WeekDemand(10, 15)]


def test_the_shortfall_against_the_upper_bound_is_ordered_rounded_up() -> None:
    r = replenishment("A", 20, WEEKS, cover_weeks=2)
    assert (r.demand, r.demand_upper) == (22, 31.5)
    assert r.reorder == 12  # 31.5 - 20, rounded up
    assert r.low
    assert r.weeks_of_cover == pytest.approx(20 / 11, abs=0.05)


def test_enough_stock_orders_nothing() -> None:
    r = replenishment("A", 100, WEEKS, cover_weeks=4)
    assert r.reorder == 0
    assert not r.low
    assert r.weeks_of_cover == 10.0


def test_no_demand_has_no_cover_figure_and_no_order() -> None:
    r = replenishment("A", 5, [WeekDemand(0, 0)] * 4, cover_weeks=4)
    assert (r.reorder, r.weeks_of_cover) == (0, None)
    with pytest.raises(ValueError, match="cover_weeks"):
        replenishment("A", 5, WEEKS, cover_weeks=0)
