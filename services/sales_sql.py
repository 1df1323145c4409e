"""The SQL behind the sales report: which rollup table (or raw rows) answers a query over a
range, the grouped figures per period, and the top-N ranking.

Per-order figures come from ``sales_daily``. Per-SKU figures come from ``sales_daily_sku``,
except that whole calendar months come from ``sales_monthly_sku`` (month and quarter periods,
and the ranking) and whole ISO weeks from ``sales_weekly_sku`` (week periods when the query
neither groups nor filters by region or tier); the days at a range's edges always come from
the daily table. ``basis="raw"`` reads ``orders``/``order_lines`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, Integer, and_, cast, func, select, tuple_, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from db.models import (
    OrderLineRow,
    OrderRow,
    SalesDailyRow,
    SalesDailySkuRow,
    SalesMonthlySkuRow,
    SalesWeeklySkuRow,
)
from domain.reporting import SOLD_STATUSES, Dimension, Period, period_start
from services.sales_query import Basis, SalesQuery, Totals

_ORDER_COLUMNS = {
    Dimension.REGION: "region",
    Dimension.TIER: "tier",
    Dimension.STATUS: "status",
    Dimension.SOURCE: "source",
    Dimension.SALES_REP: "sales_rep",
    Dimension.SKU: "sku",
    Dimension.CATEGORY: "category",
}


def period_expr(day: Any, period: Period, dialect: str) -> ColumnElement[Any]:
    """The first day of ``day``'s period, in SQL (ISO weeks start on Monday)."""
    if period is Period.DAY:
        return cast(day, Date) if dialect == "postgresql" else func.date(day, type_=Date)
    if dialect == "postgresql":
        return cast(func.date_trunc(period.value, day), Date)
    if period is Period.WEEK:
        return func.date(day, "weekday 0", "-6 days", type_=Date)
    if period is Period.MONTH:
        return func.date(day, "start of month", type_=Date)
    month = cast(func.strftime("%m", day), Integer)
    offset = func.printf("-%d months", (month - 1) % 3)
    return func.date(day, "start of month", offset, type_=Date)


def month_segments(start: date, end: date) -> list[tuple[date, date, bool]]:
    """``[start, end)`` cut into (from, to, whole months) pieces: the whole calendar months
    inside it, and the days before and after them."""
    return _segments(start, end, lambda d: d.replace(day=1), _next_month)


def week_segments(start: date, end: date) -> list[tuple[date, date, bool]]:
    """``[start, end)`` cut into (from, to, whole ISO weeks) pieces, as ``month_segments``."""
    return _segments(start, end, _monday, lambda d: _monday(d) + timedelta(days=7))


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _segments(
    start: date, end: date, floor: Callable[[date], date], after: Callable[[date], date]
) -> list[tuple[date, date, bool]]:
    first = start if floor(start) == start else after(start)
    last = floor(end)
    if first >= last:
        return [(start, end, False)]
    pieces = [(start, first, False), (first, last, True), (last, end, False)]
    return [(a, b, whole) for a, b, whole in pieces if a < b]


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


_DAY_COLUMN = {
    SalesDailyRow: "day",
    SalesDailySkuRow: "day",
    SalesMonthlySkuRow: "month",
    SalesWeeklySkuRow: "week",
}


@dataclass
class _Source:
    """One table (or join) a sales query reads, with its dimension columns, figures and the
    range, filter and currency conditions already applied."""

    stmt: Any  # select() with its FROM set
    cols: dict[Dimension, Any]
    figures: list[Any]  # orders, units, revenue, refunds
    where: list[Any]
    currency: Any
    day: Any
    dialect: str


def _source(
    session: AsyncSession,
    query: SalesQuery,
    start: date,
    end: date,
    basis: Basis,
    *,
    table: Any = None,
) -> _Source:
    """``table``: the rollup to read (default: the daily one for the query)."""
    dialect = session.get_bind().dialect.name
    if basis == "rollup":
        table = table or (SalesDailySkuRow if query.by_line else SalesDailyRow)
        t = table.__table__.c
        day: Any = t[_DAY_COLUMN[table]]
        cols: dict[Dimension, Any] = {
            d: t[_ORDER_COLUMNS[d]] for d in Dimension if _ORDER_COLUMNS[d] in t
        }
        figures: list[Any] = [
            func.sum(t.orders),
            func.sum(t.units),
            func.sum(t.revenue),
            func.sum(t.refunds),
        ]
        where: list[Any] = [day >= start, day < end]
        currency = t.currency
        stmt = select()
    else:
        o = OrderRow.__table__.c
        since = datetime(start.year, start.month, start.day, tzinfo=UTC)
        until = datetime(end.year, end.month, end.day, tzinfo=UTC)
        day = func.timezone("UTC", o.created_at) if dialect == "postgresql" else o.created_at
        cols = {
            Dimension.REGION: o.region,
            Dimension.TIER: o.customer_tier,
            Dimension.STATUS: o.status,
            Dimension.SOURCE: o.source,
            Dimension.SALES_REP: func.coalesce(o.sales_rep, ""),
        }
        where = [o.created_at >= since, o.created_at < until]
        currency = o.currency
        line = OrderLineRow.__table__.c
        if query.by_line:
            cols |= {Dimension.SKU: line.sku, Dimension.CATEGORY: line.category}
            orders = func.count(func.distinct(line.order_id))  # per (group, SKU) as the rollup
            share = o.refunded * line.line_total / func.nullif(o.total, 0)
            figures = [orders, func.sum(line.quantity), func.sum(line.line_total), func.sum(share)]
            stmt = select().select_from(
                OrderRow.__table__.join(OrderLineRow.__table__, line.order_id == o.id)
            )
        else:
            units = (
                select(line.order_id, func.sum(line.quantity).label("units"))
                .where(
                    line.order_id.in_(
                        select(o.id).where(o.created_at >= since, o.created_at < until)
                    )
                )
                .group_by(line.order_id)
                .subquery()
            )
            figures = [
                func.count(),
                func.sum(units.c.units),
                func.sum(o.total),
                func.sum(o.refunded),
            ]
            stmt = select().select_from(
                OrderRow.__table__.outerjoin(units, units.c.order_id == o.id)
            )
    statuses = query.filters.get(Dimension.STATUS) or SOLD_STATUSES
    for dim, values in {**query.filters, Dimension.STATUS: statuses}.items():
        where.append(cols[dim].in_(list(values)))
    if query.currency:
        where.append(currency.in_(list(query.currency)))
    return _Source(stmt, cols, figures, where, currency, day, dialect)


def _pieces(
    query: SalesQuery, start: date, end: date, basis: Basis, *, rank: bool = False
) -> list[tuple[date, date, Any]]:
    """(from, to, rollup table or None for the default) pieces of ``[start, end)``: per-SKU
    figures over whole months come from ``sales_monthly_sku`` where the periods are months or
    quarters, or for the ranking, whose periods do not matter; over whole ISO weeks from
    ``sales_weekly_sku`` where the periods are weeks and neither region nor tier is asked."""
    if basis != "rollup" or not query.by_line:
        return [(start, end, None)]
    table: Any
    if query.period in (Period.MONTH, Period.QUARTER) or rank:
        cut, table = month_segments, SalesMonthlySkuRow
    elif query.period is Period.WEEK and not _REGIONAL & {*query.group_by, *query.filters}:
        cut, table = week_segments, SalesWeeklySkuRow
    else:
        return [(start, end, None)]
    return [(lo, hi, table if whole else None) for lo, hi, whole in cut(start, end)]


_REGIONAL = {Dimension.REGION, Dimension.TIER}


async def grouped(
    session: AsyncSession,
    query: SalesQuery,
    start: date,
    end: date,
    basis: Basis,
    *,
    only: Sequence[tuple[str, ...]] | None = None,
) -> dict[tuple[Any, ...], Totals]:
    """(period start, group values, currency) -> totals over ``[start, end)``; ``only``: just
    these groups."""
    sums: dict[tuple[Any, ...], list[Any]] = {}  # summed as plain numbers, Totals at the end
    width = len(query.group_by)
    for lo, hi, table in _pieces(query, start, end, basis):
        src = _source(session, query, lo, hi, basis, table=table)
        bucket = period_expr(src.day, query.period, src.dialect).label("bucket")
        group_cols = [src.cols[d] for d in query.group_by]
        keys = list(group_cols)
        if basis == "raw" and query.by_line and Dimension.SKU not in query.group_by:
            keys.append(src.cols[Dimension.SKU])  # 'orders' per SKU, as the rollup counts
        where = list(src.where)
        if only is not None:
            where.append(_among(group_cols, only))
        stmt = src.stmt.add_columns(bucket, *keys, src.currency, *src.figures)
        stmt = stmt.where(and_(*where)).group_by(bucket, *keys, src.currency)
        cur_at = 1 + len(keys)
        starts: dict[Any, date] = {}
        for row in (await session.execute(stmt)).all():
            first = starts.get(row[0])
            if first is None:
                raw = row[0]
                day = raw if isinstance(raw, date) else date.fromisoformat(str(raw)[:10])
                first = starts[row[0]] = period_start(day, query.period)
            n, units, revenue, refunds = row[cur_at + 1 :]
            key = (first, tuple(map(str, row[1 : 1 + width])), row[cur_at])
            got = sums.get(key)
            if got is None:
                sums[key] = [n or 0, units or 0, revenue or 0, refunds or 0]
            else:
                got[0] += n or 0
                got[1] += units or 0
                got[2] += revenue or 0
                got[3] += refunds or 0
    return {
        k: Totals(int(n), int(u), Decimal(r), Decimal(f))
        for k, (n, u, r, f) in sums.items()
        if n or u or r or f
    }


def _among(group_cols: Sequence[Any], only: Sequence[tuple[str, ...]]) -> Any:
    if len(group_cols) > 1:
        return tuple_(*group_cols).in_(only)
    return group_cols[0].in_([g[0] for g in only])


async def ranked(
    session: AsyncSession, query: SalesQuery, start: date, end: date, basis: Basis, top: int
) -> list[tuple[str, ...]]:
    """The ``top`` groups by revenue over ``[start, end)``, ranked in SQL: every piece's
    (group, revenue, units) in one UNION ALL, summed, ordered, limited. For the ranking only,
    amounts in different currencies are added as numbers; a tie goes to units, then the
    group's values (in code point order on both databases)."""
    parts = []
    names = [f"g{i}" for i in range(len(query.group_by))]
    for lo, hi, table in _pieces(query, start, end, basis, rank=True):
        src = _source(session, query, lo, hi, basis, table=table)
        group_cols = [src.cols[d] for d in query.group_by]
        _, units, revenue, _ = src.figures
        labelled = [c.label(n) for c, n in zip(group_cols, names, strict=True)]
        parts.append(
            src.stmt.add_columns(*labelled, revenue.label("revenue"), units.label("units"))
            .where(and_(*src.where))
            .group_by(*group_cols)
        )
    union = parts[0].subquery() if len(parts) == 1 else union_all(*parts).subquery()
    groups = [union.c[n] for n in names]
    pg = session.get_bind().dialect.name == "postgresql"
    ordered = [g.collate("C") if pg else g for g in groups]
    stmt = (
        select(*groups)
        .group_by(*groups)
        .order_by(func.sum(union.c.revenue).desc(), func.sum(union.c.units).desc(), *ordered)
        .limit(top)
    )
    return sorted(tuple(str(v) for v in row) for row in await session.execute(stmt))
