"""Report query rules: ranges, dates, dimensions and periods."""

from __future__ import annotations

from datetime import date

import pytest

from domain.reporting import (
    Period,
    QueryError,
    check_day,
    check_group_by,
    check_range,
    period_label,
    period_start,
    periods_between,
    previous_range,
    year_before,
)


def test_ranges_must_run_forward_and_span_at_most_five_years() -> None:
    check_range(date(2026, 1, 1), date(2026, 1, 2))
    with pytest.raises(QueryError) as backwards:
        check_range(date(2026, 2, 1), date(2026, 1, 1))
    assert backwards.value.field == "to"
    with pytest.raises(QueryError, match="5 years"):
        check_range(date(2020, 1, 1), date(2026, 1, 2))


def test_days_outside_1970_to_2999_are_refused_by_name() -> None:
    check_day("from", date(1970, 1, 1))
    check_day("to", None)
    with pytest.raises(QueryError) as exc:
        check_day("to", date(1, 1, 1))
    assert exc.value.field == "to"


def test_year_before_keeps_the_day_or_falls_back_to_28_february() -> None:
    assert year_before(date(2026, 12, 2)) == date(2025, 12, 2)
    assert year_before(date(2028, 2, 29)) == date(2027, 2, 28)


def test_group_by_takes_at_most_two_known_dimensions_that_fit_one_rollup() -> None:
    assert [d.value for d in check_group_by(["region", "sku", "region"])] == ["region", "sku"]
    for bad in (["planet"], ["region", "tier", "sku"], ["sku", "sales_rep"]):
        with pytest.raises(QueryError) as exc:
            check_group_by(bad)
        assert exc.value.field == "group_by"


def test_periods_start_on_mondays_months_and_quarters() -> None:
    day = date(2026, 12, 2)  # a Wednesday
    assert period_start(day, Period.WEEK) == date(2026, 11, 30)
    assert period_start(day, Period.QUARTER) == date(2026, 10, 1)
    assert period_label(date(2026, 11, 30), Period.WEEK) == "2026-W49"
    assert period_label(date(2026, 10, 1), Period.QUARTER) == "2026-Q4"
    assert periods_between(date(2026, 1, 15), date(2026, 4, 1), Period.MONTH) == [
        date(2026, 1, 1),
        date(2026, 2, 1),
        date(2026, 3, 1),
    ]
    assert previous_range(date(2026, 3, 1), date(2026, 4, 1)) == (
        date(2026, 1, 29),
        date(2026, 3, 1),
    )
