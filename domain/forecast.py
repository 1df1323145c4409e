"""Weekly demand forecast per SKU (pure: no I/O).

A SKU's history is a series of weekly quantities, one per Monday-starting week, with a week
without sales counted as zero (:func:`weekly_series` builds one from sparse points). Weeks before
the first week with demand are dropped: the SKU was not on sale yet, and a year of leading zeros
would make last year's "same week" zero. ``history_weeks`` counts the weeks from that first week.

Method, chosen from the (trimmed) history:

* ``"holt_winters"``: at least 104 weeks (two full seasons) and demand in at least half of them.
  statsmodels' ``ExponentialSmoothing`` with additive seasonality (52 weeks), fitted twice, with
  no trend and with a damped additive trend, keeping the fit with the lower AICc. Initial states
  come from the "heuristic" initialisation and the smoothing parameters from one L-BFGS-B run
  without the brute-force start (``use_brute=False``), which keeps a fit at a few milliseconds.
  A fit that fails (or has no finite AICc, e.g. a constant series) falls back to the next rule.
* ``"seasonal_naive"``: at least 52 weeks: each week's forecast is the quantity of the same week
  a year earlier (repeated year on year past a horizon of 52).
* ``"naive"``: fewer weeks, or a history that is all zeros: the mean of the last 4 weeks, flat.
* ``"none"``: an empty series (no weeks at all): no points, since there is no week to go on from.

Prediction interval at ``level``: ``q`` is the ``level`` quantile of the absolute one-step
in-sample errors of the chosen method (Holt-Winters' fitted residuals; ``y[t] - y[t-52]`` for the
seasonal naive; ``y[t]`` minus the mean of the 4 weeks before it for the naive). The point ``h``
weeks ahead gets ``F ± q * sqrt(h)``, except for the seasonal naive, whose forecasts up to 52
weeks ahead are all one season ahead: ``F ± q * sqrt(ceil(h / 52))``. Quantities and bounds are
clipped at zero, so ``0 <= lower <= quantity <= upper`` always holds.

Backtest: the last ``backtest_weeks`` weeks are held out, the rest is forecast with the same
method-choice rule (so the backtest's method may be simpler than the final one), and
``backtest_smape`` is ``100 * mean(2|F - A| / (|A| + |F|))`` with 0/0 terms counted as 0. It is
None when the history has fewer than ``backtest_weeks + 4`` weeks or ``backtest_weeks`` is 0.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt
from statsmodels.tools.sm_exceptions import ConvergenceWarning  # type: ignore[import-untyped]
from statsmodels.tsa.holtwinters import ExponentialSmoothing  # type: ignore[import-untyped]

K = TypeVar("K")
Array = npt.NDArray[np.float64]

SEASON: Final = 52  # weeks in a season (a year)
HW_MIN_WEEKS: Final = 2 * SEASON
HW_MIN_NONZERO_SHARE: Final = 0.5  # "non-trivial demand": sales in at least half the weeks
NAIVE_WINDOW: Final = 4  # the naive forecast is the mean of the last 4 weeks
MIN_FIT_WEEKS: Final = 4  # a backtest needs this many weeks left to fit on
WEEK: Final = timedelta(days=7)

HOLT_WINTERS: Final = "holt_winters"
SEASONAL_NAIVE: Final = "seasonal_naive"
NAIVE: Final = "naive"
NONE: Final = "none"


def week_start(d: date) -> date:
    """The Monday of the week holding ``d``."""
    return d - timedelta(days=d.weekday())


@dataclass(frozen=True)
class WeeklySeries:
    """Quantities of consecutive weeks; ``weeks`` are Mondays, 7 days apart, oldest first."""

    weeks: tuple[date, ...]
    quantities: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.weeks) != len(self.quantities):
            raise ValueError("weeks and quantities differ in length")
        if any(w.weekday() != 0 for w in self.weeks):
            raise ValueError("weeks must be Mondays (use week_start)")
        if any(b - a != WEEK for a, b in zip(self.weeks, self.weeks[1:], strict=False)):
            raise ValueError("weeks must be consecutive (use weekly_series to fill gaps)")
        if any(not math.isfinite(q) or q < 0 for q in self.quantities):
            raise ValueError("quantities must be finite and non-negative")

    def __len__(self) -> int:
        return len(self.weeks)


def weekly_series(points: Mapping[date, float], *, start: date, end: date) -> WeeklySeries:
    """The weeks from ``start``'s week to ``end``'s week (both included), each holding the sum of
    the points dated in it (any day of the week), 0 where none are. Points outside are ignored."""
    first, last = week_start(start), week_start(end)
    if last < first:
        return WeeklySeries((), ())
    count = (last - first).days // 7 + 1
    totals = [0.0] * count
    for day, quantity in points.items():
        index = (week_start(day) - first).days // 7
        if 0 <= index < count:
            totals[index] += float(quantity)
    return WeeklySeries(tuple(first + i * WEEK for i in range(count)), tuple(totals))


@dataclass(frozen=True)
class ForecastPoint:
    week: date  # the Monday
    quantity: float
    lower: float
    upper: float


@dataclass(frozen=True)
class Forecast:
    method: str  # holt_winters | seasonal_naive | naive | none
    history_weeks: int  # weeks from the first week with demand to the end of the series
    backtest_weeks: int
    backtest_smape: float | None  # percent (0..200); None when there was no backtest
    points: list[ForecastPoint]


@dataclass(frozen=True)
class _Fit:
    method: str
    predict: Callable[[int], Array]  # h -> the next h quantities (unclipped)
    residuals: Array  # one-step in-sample errors
    seasonal_steps: bool  # interval widens per season, not per week


def forecast(
    series: WeeklySeries, *, horizon: int, backtest_weeks: int, level: float = 0.8
) -> Forecast:
    """Forecast the ``horizon`` weeks after the series (see the module docstring)."""
    if horizon < 0 or backtest_weeks < 0:
        raise ValueError("horizon and backtest_weeks must be >= 0")
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    if not series.weeks:
        return Forecast(NONE, 0, backtest_weeks, None, [])
    y = np.asarray(series.quantities, dtype=np.float64)
    nonzero = np.flatnonzero(y)
    y = y[nonzero[0] :] if nonzero.size else y[:0]

    smape = None
    if backtest_weeks and len(y) >= backtest_weeks + MIN_FIT_WEEKS:
        held_out = y[-backtest_weeks:]
        predicted = np.maximum(_fit(y[:-backtest_weeks]).predict(backtest_weeks), 0.0)
        smape = _smape(held_out, predicted)

    fit = _fit(y)
    values = np.maximum(fit.predict(horizon), 0.0)
    q = float(np.quantile(np.abs(fit.residuals), level)) if fit.residuals.size else 0.0
    points = []
    for h in range(1, horizon + 1):
        steps = math.ceil(h / SEASON) if fit.seasonal_steps else h
        value = float(values[h - 1])
        width = q * math.sqrt(steps)
        points.append(
            ForecastPoint(
                week=series.weeks[-1] + h * WEEK,
                quantity=value,
                lower=max(0.0, value - width),
                upper=value + width,
            )
        )
    return Forecast(fit.method, len(y), backtest_weeks, smape, points)


def forecast_many(
    series_by_key: Mapping[K, WeeklySeries],
    *,
    horizon: int,
    backtest_weeks: int,
    level: float = 0.8,
) -> dict[K, Forecast]:
    return {
        key: forecast(s, horizon=horizon, backtest_weeks=backtest_weeks, level=level)
        for key, s in series_by_key.items()
    }


def _smape(actual: Array, predicted: Array) -> float:
    denominator = np.abs(actual) + np.abs(predicted)
    terms = np.divide(
        2 * np.abs(predicted - actual),
        denominator,
        out=np.zeros_like(denominator),
        where=denominator > 0,
    )
    return float(100 * terms.mean())


def _fit(y: Array) -> _Fit:
    """The method-choice rule applied to a trimmed history ``y`` (possibly empty or all zero)."""
    if len(y) >= HW_MIN_WEEKS and np.count_nonzero(y) >= HW_MIN_NONZERO_SHARE * len(y):
        fitted = _holt_winters(y)
        if fitted is not None:
            return fitted
    if len(y) >= SEASON:
        last_year = y[-SEASON:]
        return _Fit(
            SEASONAL_NAIVE,
            lambda h: np.resize(last_year, h),  # repeats the last season
            y[SEASON:] - y[:-SEASON],
            seasonal_steps=True,
        )
    level = float(y[-NAIVE_WINDOW:].mean()) if len(y) else 0.0
    errors = np.array(
        [y[t] - y[max(0, t - NAIVE_WINDOW) : t].mean() for t in range(1, len(y))],
        dtype=np.float64,
    )
    return _Fit(NAIVE, lambda h: np.full(h, level), errors, seasonal_steps=False)


def _holt_winters(y: Array) -> _Fit | None:
    best = None
    best_aicc = math.inf
    for trend in (None, "add"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", RuntimeWarning)  # overflow while optimising
                result = ExponentialSmoothing(
                    y,
                    trend=trend,
                    damped_trend=trend is not None,
                    seasonal="add",
                    seasonal_periods=SEASON,
                    initialization_method="heuristic",
                ).fit(optimized=True, use_brute=False)
        except (ValueError, np.linalg.LinAlgError):
            continue
        aicc = float(result.aicc)
        if math.isfinite(aicc) and aicc < best_aicc:
            best, best_aicc = result, aicc
    if best is None:
        return None
    model = best
    residuals = np.asarray(y - model.fittedvalues, dtype=np.float64)
    if not np.isfinite(residuals).all():
        return None

    def predict(h: int) -> Array:
        return np.asarray(model.forecast(h), dtype=np.float64) if h else np.zeros(0)

    return _Fit(
        HOLT_WINTERS,
        predict,
        residuals,
        seasonal_steps=False,
    )
