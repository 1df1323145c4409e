"""Report rules: what an order contributes to the daily rollups, its closing-reason code, the
report dimensions and periods, and the checks on a report query.

An order counts on the UTC day it was **created**, under its **current** status: when its
status changes, its contribution moves from the old rollup key to the new one. Revenue is the
order's total (the sum of its lines); refunds are the refunded amount, shared over the lines by
value for the per-SKU rollup. Money is per currency, never summed across currencies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import TypeVar

from domain.status import OrderStatus

S = OrderStatus
UNCATEGORISED = "uncategorised"
CENT = Decimal("0.0001")  # the read model's money scale (Numeric(18, 4))
# Orders whose value is not revenue: they ended (or are ending) without being sold.
NOT_SOLD = frozenset({S.CANCELLED, S.REJECTED, S.FAILED, S.NEEDS_ATTENTION})
SOLD_STATUSES = tuple(s.value for s in OrderStatus if s not in NOT_SOLD)
MAX_RANGE_DAYS = 5 * 366
MAX_GROUP_BY = 2


def close_reason_code(status: OrderStatus, actor: str, reason: str) -> str | None:
    """A short code for why an order ended (None while open or completed), so reports can
    count cancellations by reason without storing the free-text reason (which may hold PII)."""
    text = reason.lower()
    if status is S.CANCELLED:
        if "payment deadline" in text:
            return "payment_expired"
        return "system" if actor == "system" else "requested"
    if status is S.REJECTED:
        if actor == "credit-policy":
            return "credit"
        return "approval_expired" if "approval expired" in text else "approver"
    if status is S.FAILED:
        if actor == "inventory":
            return "out_of_stock"
        return "payment_failed" if actor == "payment-gateway" else "error"
    return None


# --- rollup contributions -----------------------------------------------------------------------


@dataclass(frozen=True)
class LineFacts:
    sku: str
    category: str
    quantity: int
    line_total: Decimal


@dataclass(frozen=True)
class OrderFacts:
    """What the rollups need of one order."""

    day: date
    region: str
    tier: str
    status: str
    source: str
    sales_rep: str  # '' = none
    currency: str
    total: Decimal
    refunded: Decimal
    lines: tuple[LineFacts, ...]


OrderKey = tuple[date, str, str, str, str, str, str]  # day region tier status source rep currency
SkuKey = tuple[date, str, str, str, str, str, str]  # day region tier status sku category currency
K = TypeVar("K")


@dataclass(frozen=True)
class Figures:
    orders: int = 0
    units: int = 0
    revenue: Decimal = Decimal(0)
    refunds: Decimal = Decimal(0)

    def __add__(self, other: Figures) -> Figures:
        return Figures(
            self.orders + other.orders,
            self.units + other.units,
            self.revenue + other.revenue,
            self.refunds + other.refunds,
        )

    def __neg__(self) -> Figures:
        return Figures(-self.orders, -self.units, -self.revenue, -self.refunds)

    @property
    def zero(self) -> bool:
        return not (self.orders or self.units or self.revenue or self.refunds)


def share(amount: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """``amount`` split over ``weights`` proportionally, rounded to the money scale, the
    remainder on the largest weight, so the parts always add up to ``amount`` exactly."""
    if not weights:
        return []
    whole = sum(weights, Decimal(0))
    if not amount or not whole:
        return [Decimal(0)] * len(weights)
    parts = [(amount * w / whole).quantize(CENT, ROUND_HALF_EVEN) for w in weights]
    biggest = max(range(len(weights)), key=lambda i: weights[i])
    parts[biggest] += amount - sum(parts, Decimal(0))
    return parts


def contributions(order: OrderFacts) -> tuple[dict[OrderKey, Figures], dict[SkuKey, Figures]]:
    """The order's rows in the per-order and the per-SKU daily rollups."""
    units = sum(line.quantity for line in order.lines)
    key: OrderKey = (
        order.day,
        order.region,
        order.tier,
        order.status,
        order.source,
        order.sales_rep,
        order.currency,
    )
    per_order = {key: Figures(1, units, order.total, order.refunded)}
    per_sku: dict[SkuKey, Figures] = {}
    refunds = share(order.refunded, [line.line_total for line in order.lines])
    seen: set[SkuKey] = set()
    for line, refund in zip(order.lines, refunds, strict=True):
        sku_key: SkuKey = (
            order.day,
            order.region,
            order.tier,
            order.status,
            line.sku,
            line.category,
            order.currency,
        )
        first = sku_key not in seen  # the same SKU on two lines counts the order once
        seen.add(sku_key)
        figures = Figures(int(first), line.quantity, line.line_total, refund)
        per_sku[sku_key] = per_sku.get(sku_key, Figures()) + figures
    return per_order, per_sku


def delta(before: dict[K, Figures], after: dict[K, Figures]) -> dict[K, Figures]:
    """What to add to the rollup to move from ``before`` to ``after`` (zero changes left out)."""
    out: dict[K, Figures] = {}
    for key in before.keys() | after.keys():
        change = after.get(key, Figures()) + -before.get(key, Figures())
        if not change.zero:
            out[key] = change
    return out


# --- report queries -----------------------------------------------------------------------------


class Dimension(StrEnum):
    REGION = "region"
    TIER = "tier"
    SKU = "sku"
    CATEGORY = "category"
    SALES_REP = "sales_rep"
    SOURCE = "source"
    STATUS = "status"


# Dimensions only the per-SKU rollup has, and only the per-order rollup has.
LINE_DIMENSIONS = frozenset({Dimension.SKU, Dimension.CATEGORY})
ORDER_DIMENSIONS = frozenset({Dimension.SALES_REP, Dimension.SOURCE})


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"


def period_start(day: date, period: Period) -> date:
    """The first day of the period holding ``day`` (weeks start on Monday, ISO)."""
    if period is Period.DAY:
        return day
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())
    if period is Period.MONTH:
        return day.replace(day=1)
    return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)


def period_label(start: date, period: Period) -> str:
    if period is Period.DAY:
        return start.isoformat()
    if period is Period.WEEK:
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    if period is Period.MONTH:
        return f"{start.year}-{start.month:02d}"
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}"


def periods_between(start: date, end: date, period: Period) -> list[date]:
    """Every period start from the one holding ``start`` to the one holding ``end - 1 day``."""
    out: list[date] = []
    current = period_start(start, period)
    while current < end:
        out.append(current)
        current = next_period(current, period)
    return out


def next_period(start: date, period: Period) -> date:
    if period is Period.DAY:
        return start + timedelta(days=1)
    if period is Period.WEEK:
        return start + timedelta(days=7)
    months = 1 if period is Period.MONTH else 3
    month = start.month - 1 + months
    return date(start.year + month // 12, month % 12 + 1, 1)


class QueryError(ValueError):
    """A report query that cannot run; ``field`` names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2999, 12, 31)


def check_day(field: str, day: date | None) -> None:
    """A report date must lie between 1970 and 2999 (so ranges and periods can be computed)."""
    if day is not None and not FIRST_DAY <= day <= LAST_DAY:
        raise QueryError(field, f"must be between {FIRST_DAY} and {LAST_DAY}")


def year_before(day: date) -> date:
    """The same day a year earlier (28 February for 29 February)."""
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)


def check_range(start: date, end: date) -> None:
    """``[start, end)`` must be a forward range of at most 5 years."""
    if end <= start:
        raise QueryError("to", "must be after 'from'")
    if (end - start).days > MAX_RANGE_DAYS:
        raise QueryError("to", "the date range may span at most 5 years")


def check_group_by(values: Iterable[str]) -> tuple[Dimension, ...]:
    dims: list[Dimension] = []
    for value in values:
        try:
            dim = Dimension(value)
        except ValueError:
            allowed = ", ".join(d.value for d in Dimension)
            raise QueryError("group_by", f"unknown dimension {value!r}; one of {allowed}") from None
        if dim not in dims:
            dims.append(dim)
    if len(dims) > MAX_GROUP_BY:
        raise QueryError("group_by", f"at most {MAX_GROUP_BY} dimensions")
    if LINE_DIMENSIONS & set(dims) and ORDER_DIMENSIONS & set(dims):
        raise QueryError(
            "group_by", "sku/category cannot be combined with sales_rep/source in one report"
        )
    return tuple(dims)


def previous_range(start: date, end: date) -> tuple[date, date]:
    """The range of the same length just before ``[start, end)``: the comparison period."""
    length = end - start
    return start - length, start


def utc_day(at: datetime) -> date:
    return at.astimezone(UTC).date()
