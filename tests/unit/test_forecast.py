"""Weekly demand forecast: method choice, known answers, intervals, backtest, weekly series."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
import pytest

from domain.forecast import (
    Forecast,
    WeeklySeries,
    forecast,
    forecast_many,
    week_start,
    weekly_series,
)

MONDAY = date(2022, 1, 3)
WEEK = timedelta(days=7)


def series(
    quantities: Sequence[float] | npt.NDArray[np.float64], start: date = MONDAY
) -> WeeklySeries:
    return WeeklySeries(
        tuple(start + i * WEEK for i in range(len(quantities))),
        tuple(float(q) for q in quantities),
    )


def seasonal(t: np.ndarray) -> np.ndarray:
    return 100 + 40 * np.sin(2 * np.pi * t / 52)


def noisy_seasonal(n: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return seasonal(np.arange(n)) + rng.normal(0, 3, n)


def smape(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(
        100 * np.mean(2 * np.abs(predicted - actual) / (np.abs(actual) + np.abs(predicted)))
    )


def quantities(f: Forecast) -> list[float]:
    return [p.quantity for p in f.points]


def assert_sane_intervals(f: Forecast) -> None:
    for p in f.points:
        assert 0 <= p.lower <= p.quantity <= p.upper
        assert all(math.isfinite(v) for v in (p.quantity, p.lower, p.upper))


# --- method choice and known answers ------------------------------------------------------------


def test_three_seasons_use_holt_winters_and_follow_the_season() -> None:
    history = noisy_seasonal(156)
    f = forecast(series(history), horizon=12, backtest_weeks=12)

    assert f.method == "holt_winters"
    assert f.history_weeks == 156
    assert f.backtest_weeks == 12
    truth = seasonal(np.arange(156, 168))
    # The noise is 3 units on a level of 60..140: a good fit is within a few percent.
    assert smape(truth, np.array(quantities(f))) < 5
    assert f.backtest_smape is not None
    assert f.backtest_smape < 10
    assert [p.week for p in f.points] == [MONDAY + (156 + i) * WEEK for i in range(12)]
    assert_sane_intervals(f)
    # The 80% band around the forecast holds most of the true continuation.
    inside = sum(p.lower <= a <= p.upper for p, a in zip(f.points, truth, strict=True))
    assert inside >= 9


def test_a_trending_seasonal_series_is_followed() -> None:
    t = np.arange(156)
    history = noisy_seasonal(156, seed=3) + 0.5 * t
    f = forecast(series(history), horizon=12, backtest_weeks=12)

    assert f.method == "holt_winters"
    truth = seasonal(np.arange(156, 168)) + 0.5 * np.arange(156, 168)
    assert smape(truth, np.array(quantities(f))) < 10


def test_one_to_two_years_use_last_years_same_weeks() -> None:
    history = noisy_seasonal(60)
    f = forecast(series(history), horizon=12, backtest_weeks=12)

    assert f.method == "seasonal_naive"
    assert f.history_weeks == 60
    # Week 60 + h is forecast as week 60 + h - 52.
    assert quantities(f) == pytest.approx(list(history[8:20]))
    assert f.backtest_smape is not None  # 60 >= 12 + 4: the backtest fits a naive on 48 weeks
    assert_sane_intervals(f)


def test_seasonal_naive_repeats_last_year_past_a_year_ahead() -> None:
    history = noisy_seasonal(80)
    f = forecast(series(history), horizon=60, backtest_weeks=0)

    last_year = list(history[-52:])
    assert quantities(f) == pytest.approx(last_year + last_year[:8])
    # Widths: one season ahead for the first 52 weeks, then sqrt(2) as wide.
    width = [p.upper - p.quantity for p in f.points]
    assert width[0] == pytest.approx(width[51])
    assert width[52] == pytest.approx(width[0] * math.sqrt(2))


def test_intermittent_demand_never_uses_holt_winters() -> None:
    quantities_ = [5.0 if i % 4 == 0 else 0.0 for i in range(156)]  # sales in 1 week in 4
    f = forecast(series(quantities_), horizon=4, backtest_weeks=12)

    assert f.method == "seasonal_naive"
    assert_sane_intervals(f)


def test_short_history_uses_the_mean_of_the_last_four_weeks() -> None:
    f = forecast(series([3, 9, 1, 2, 8, 4, 6, 2, 10, 6]), horizon=5, backtest_weeks=12)

    assert f.method == "naive"
    assert f.history_weeks == 10
    assert quantities(f) == pytest.approx([6.0] * 5)
    assert f.backtest_smape is None  # 10 weeks cannot hold out 12 and keep 4 to fit on
    assert_sane_intervals(f)
    widths = [p.upper - p.quantity for p in f.points]
    assert widths[0] > 0
    assert widths[3] == pytest.approx(2 * widths[0])  # sqrt(4) steps ahead


def test_leading_zeros_are_not_history() -> None:
    history = [0.0] * 100 + list(noisy_seasonal(60))
    f = forecast(series(history), horizon=4, backtest_weeks=12)

    assert f.method == "seasonal_naive"
    assert f.history_weeks == 60


def test_all_zero_history_forecasts_zero() -> None:
    f = forecast(series([0.0] * 30), horizon=3, backtest_weeks=12)

    assert f.method == "naive"
    assert f.history_weeks == 0
    assert f.backtest_smape is None
    assert [(p.quantity, p.lower, p.upper) for p in f.points] == [(0.0, 0.0, 0.0)] * 3
    assert [p.week for p in f.points] == [MONDAY + (30 + i) * WEEK for i in range(3)]


def test_an_empty_series_has_no_forecast() -> None:
    f = forecast(WeeklySeries((), ()), horizon=12, backtest_weeks=12)

    assert f == Forecast("none", 0, 12, None, [])


def test_no_forecast_goes_below_zero() -> None:
    # A steep fall: Holt-Winters' trend would run below zero.
    t = np.arange(156)
    history = np.maximum(0.0, 300 - 2.2 * t + 10 * np.sin(2 * np.pi * t / 52))
    f = forecast(series(history), horizon=52, backtest_weeks=12)

    assert all(q >= 0 for q in quantities(f))
    assert_sane_intervals(f)


def test_a_higher_level_gives_wider_intervals() -> None:
    s = series(noisy_seasonal(70))
    narrow = forecast(s, horizon=4, backtest_weeks=0, level=0.5)
    wide = forecast(s, horizon=4, backtest_weeks=0, level=0.95)

    for n, w in zip(narrow.points, wide.points, strict=True):
        assert w.quantity == n.quantity
        assert w.upper - w.lower > n.upper - n.lower


def test_horizon_zero_gives_no_points() -> None:
    assert forecast(series(noisy_seasonal(156)), horizon=0, backtest_weeks=12).points == []


@pytest.mark.parametrize(
    ("horizon", "backtest_weeks", "level", "message"),
    [
        (-1, 0, 0.8, "horizon"),
        (1, -1, 0.8, "backtest_weeks"),
        (1, 0, 0, "level"),
        (1, 0, 1, "level"),
    ],
)
def test_bad_arguments_are_refused(
    horizon: int, backtest_weeks: int, level: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        forecast(series([1, 2]), horizon=horizon, backtest_weeks=backtest_weeks, level=level)


# --- backtest -----------------------------------------------------------------------------------


def test_backtest_smape_known_answer() -> None:
    # Fit on eight weeks of 10 (naive: 10), held out [20, 0]:
    # terms 2*10/30 and 2*10/10 -> mean(2/3, 2) = 4/3 -> 133.33%.
    f = forecast(series([10] * 8 + [20, 0]), horizon=1, backtest_weeks=2)

    assert f.backtest_smape == pytest.approx(400 / 3)


def test_backtest_counts_zero_over_zero_as_no_error() -> None:
    # Fit on [5, 0, 0, 0, 0] (naive: mean of the last four = 0), held out [0, 0].
    f = forecast(series([5, 0, 0, 0, 0, 0, 0]), horizon=1, backtest_weeks=2)

    assert f.backtest_smape == 0.0


def test_backtest_needs_four_weeks_left_to_fit_on() -> None:
    assert forecast(series([1] * 7), horizon=1, backtest_weeks=4).backtest_smape is None
    assert forecast(series([1] * 8), horizon=1, backtest_weeks=4).backtest_smape == 0.0
    assert forecast(series([1] * 8), horizon=1, backtest_weeks=0).backtest_smape is None


def test_forecast_many_keeps_the_keys() -> None:
    out = forecast_many(
        {"A": series([1, 2, 3]), "B": WeeklySeries((), ())}, horizon=2, backtest_weeks=1
    )

    assert set(out) == {"A", "B"}
    assert out["A"].method == "naive"
    assert out["B"].method == "none"


# --- weeks and series ---------------------------------------------------------------------------


def test_week_start_is_the_monday() -> None:
    assert week_start(date(2024, 5, 13)) == date(2024, 5, 13)  # a Monday
    assert week_start(date(2024, 5, 19)) == date(2024, 5, 13)  # the Sunday after
    assert week_start(date(2024, 1, 3)) == date(2024, 1, 1)


def test_weekly_series_aligns_to_mondays_sums_per_week_and_fills_gaps() -> None:
    points = {
        date(2024, 1, 2): 3.0,  # Tuesday of the week of 1 Jan
        date(2024, 1, 7): 2.0,  # Sunday of the same week
        date(2024, 1, 24): 5.0,  # the week of 22 Jan; the weeks of 8 and 15 Jan have nothing
        date(2023, 12, 31): 99.0,  # before start's week: ignored
        date(2024, 2, 5): 99.0,  # after end's week: ignored
    }
    s = weekly_series(points, start=date(2024, 1, 4), end=date(2024, 1, 28))

    assert s.weeks == (date(2024, 1, 1), date(2024, 1, 8), date(2024, 1, 15), date(2024, 1, 22))
    assert s.quantities == (5.0, 0.0, 0.0, 5.0)


def test_weekly_series_with_end_before_start_is_empty() -> None:
    assert len(weekly_series({}, start=date(2024, 2, 1), end=date(2024, 1, 1))) == 0


def test_weekly_series_feeds_the_forecast() -> None:
    s = weekly_series({date(2024, 1, 3): 4}, start=date(2024, 1, 1), end=date(2024, 1, 29))
    f = forecast(s, horizon=1, backtest_weeks=0)

    assert f.points[0].week == date(2024, 2, 5)
    assert f.points[0].quantity == pytest.approx(0.0)  # the last four weeks sold nothing


@pytest.mark.parametrize(
    ("weeks", "values", "message"),
    [
        ((date(2024, 1, 2),), (1.0,), "Mondays"),  # a Tuesday
        ((date(2024, 1, 1), date(2024, 1, 15)), (1.0, 2.0), "consecutive"),  # a gap
        ((date(2024, 1, 1),), (1.0, 2.0), "length"),
        ((date(2024, 1, 1),), (-1.0,), "non-negative"),
        ((date(2024, 1, 1),), (math.nan,), "finite"),
    ],
)
def test_weekly_series_refuses_malformed_input(
    weeks: tuple[date, ...], values: tuple[float, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        WeeklySeries(weeks, values)
