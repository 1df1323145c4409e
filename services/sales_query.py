"""A sales report's query, checked from the API's parameters, and the figures it sums
(services.reports assembles the report, services.sales_sql reads the rollups)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, NamedTuple

from config import Settings
from domain.reporting import (
    LINE_DIMENSIONS,
    ORDER_DIMENSIONS,
    Dimension,
    Period,
    QueryError,
    check_day,
    check_group_by,
    check_range,
    year_before,
)
from services.errors import invalid

Basis = Literal["rollup", "raw"]
MAX_TOP = 1000


@dataclass(frozen=True)
class SalesQuery:
    """A sales report query, checked (``check``) before it runs. ``to`` is exclusive."""

    start: date
    end: date
    period: Period = Period.MONTH
    group_by: tuple[Dimension, ...] = ()
    filters: dict[Dimension, tuple[str, ...]] = field(default_factory=dict)
    currency: tuple[str, ...] = ()
    convert_to: str | None = None
    compare: bool = False
    top: int | None = None

    @property
    def by_line(self) -> bool:
        return bool(LINE_DIMENSIONS & {*self.group_by, *self.filters})

    def params(self) -> dict[str, Any]:
        """The query as JSON (stored with a background export or a subscription)."""
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "period": self.period.value,
            "group_by": [d.value for d in self.group_by],
            "filters": {d.value: list(v) for d, v in self.filters.items()},
            "currency": list(self.currency),
            "convert_to": self.convert_to,
            "compare": self.compare,
            "top": self.top,
        }


def parse_sales_query(
    *,
    start: date | None,
    end: date | None,
    period: str | None = None,
    group_by: Sequence[str] = (),
    filters: dict[str, Sequence[str]] | None = None,
    currency: Sequence[str] = (),
    convert_to: str | None = None,
    compare: bool = False,
    top: int | None = None,
    settings: Settings,
    today: date | None = None,
) -> SalesQuery:
    """Check a query from the API (422 naming the parameter); defaults: the last 12 months
    by month."""
    today = today or datetime.now(UTC).date()
    try:
        check_day("from", start)
        check_day("to", end)
        end = end or today + timedelta(days=1)
        start = start or year_before(end)
        check_range(start, end)
        dims = check_group_by(_split(group_by))
        chosen_period = Period(period or "month")
    except QueryError as exc:
        raise invalid(exc.field, str(exc)) from None
    except ValueError:
        raise invalid("period", "one of day, week, month, quarter") from None
    flt: dict[Dimension, tuple[str, ...]] = {}
    for name, values in (filters or {}).items():
        items = tuple(v for v in _split(values) if v)
        if not items:
            continue
        try:
            flt[Dimension(name)] = items
        except ValueError:
            raise invalid(name, "not a report dimension") from None
    used = {*flt, *dims}
    if LINE_DIMENSIONS & used and ORDER_DIMENSIONS & used:
        raise invalid("sku", "sku/category cannot be combined with sales_rep/source")
    if top is not None and not 1 <= top <= MAX_TOP:
        raise invalid("top", f"must be between 1 and {MAX_TOP}")
    if top is not None and not dims:
        raise invalid("top", "needs a group_by dimension to rank")
    currencies = tuple(c.upper() for c in _split(currency))
    if convert_to is not None:
        convert_to = convert_to.upper()
        known = {settings.report_rate_base, *settings.report_rates}
        if not settings.report_rates:
            raise invalid("convert_to", "no rate table is configured (ORDERLY_REPORT_RATES)")
        if convert_to not in known:
            raise invalid("convert_to", f"no rate for {convert_to}")
    return SalesQuery(
        start=start,
        end=end,
        period=chosen_period,
        group_by=dims,
        filters=flt,
        currency=currencies,
        convert_to=convert_to,
        compare=compare,
        top=top,
    )


def _split(values: Sequence[str] | str) -> list[str]:
    """Repeated parameters and comma-separated lists alike."""
    if isinstance(values, str):
        values = [values]
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


class Totals(NamedTuple):
    """Figures of one report cell (a named tuple: a report holds thousands of them)."""

    orders: int = 0
    units: int = 0
    revenue: Decimal = Decimal(0)
    refunds: Decimal = Decimal(0)

    def plus(self, orders: int, units: int, revenue: Decimal, refunds: Decimal) -> Totals:
        return Totals(
            self.orders + orders,
            self.units + units,
            self.revenue + revenue,
            self.refunds + refunds,
        )

    @property
    def net(self) -> Decimal:
        return self.revenue - self.refunds

    @property
    def average_order_value(self) -> Decimal | None:
        return (self.revenue / self.orders).quantize(Decimal("0.01")) if self.orders else None
