"""The sales report: revenue, orders, units and average order value per period and by up to
two dimensions, with filters and the previous period for comparison.

It reads the daily rollups (``sales_daily`` per order, ``sales_daily_sku`` per order line, and
``sales_monthly_sku`` for per-SKU figures over whole months), so its cost grows with days x
dimension values, not with orders. ``basis="raw"`` runs the same
query on ``orders``/``order_lines`` instead (the benchmark's comparison, and the tests' proof
that both agree). Money is per currency unless the query converts it with the configured rate
table, which the report then states.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Date, Integer, and_, cast, func, select, tuple_, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from config import Settings
from db.models import (
    OrderLineRow,
    OrderRow,
    SalesDailyRow,
    SalesDailySkuRow,
    SalesMonthlySkuRow,
)
from domain.reporting import (
    LINE_DIMENSIONS,
    ORDER_DIMENSIONS,
    SOLD_STATUSES,
    Dimension,
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
from services.auth import Principal, Role
from services.errors import Kind, ServiceError, invalid

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


@dataclass(frozen=True)
class Totals:
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


@dataclass(frozen=True)
class SalesRow:
    period: str
    period_start: date
    groups: dict[str, str]
    currency: str
    figures: Totals
    previous: Totals | None = None

    @property
    def change_pct(self) -> float | None:
        """Revenue change against the previous period in percent (None without one)."""
        if self.previous is None or not self.previous.revenue:
            return None
        return float((self.figures.revenue - self.previous.revenue) / self.previous.revenue * 100)


@dataclass(frozen=True)
class SalesReport:
    query: SalesQuery
    rows: list[SalesRow]
    totals: dict[str, Totals]  # per currency
    notes: list[str]
    basis: Basis = "rollup"


class Reports:
    """Report queries, for managers and admins."""

    def __init__(self, sessions: Any, settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings

    @staticmethod
    def allow(principal: Principal) -> None:
        if not principal.has_any({Role.MANAGER, Role.ADMIN}):
            raise ServiceError(Kind.FORBIDDEN, "reports need the role manager")

    async def sales(
        self, principal: Principal, query: SalesQuery, *, basis: Basis = "rollup"
    ) -> SalesReport:
        self.allow(principal)
        async with self._sessions() as session:
            only = None
            if query.top and not query.convert_to:
                # Rank the groups in SQL first, then fetch per period only the top ones.
                only = await _ranked(session, query, query.start, query.end, basis, query.top)
            current = await _grouped(session, query, query.start, query.end, basis, only=only)
            previous: dict[tuple[Any, ...], Totals] = {}
            if query.compare:
                p_start, p_end = previous_range(query.start, query.end)
                previous = await _grouped(session, query, p_start, p_end, basis, only=only)
        return self._assemble(query, current, previous, basis)

    def _assemble(
        self,
        query: SalesQuery,
        current: dict[tuple[Any, ...], Totals],
        previous: dict[tuple[Any, ...], Totals],
        basis: Basis,
    ) -> SalesReport:
        notes = _notes(query, self._settings)
        if query.convert_to:
            current = self._convert(current, query.convert_to)
            previous = self._convert(previous, query.convert_to)
        keep = _top_groups(current, query.top) if query.top else None
        periods = periods_between(query.start, query.end, query.period)
        index = {p: i for i, p in enumerate(periods)}
        prev_periods = []
        if query.compare:
            p_start, p_end = previous_range(query.start, query.end)
            prev_periods = periods_between(p_start, p_end, query.period)
        prev_by_slot: dict[tuple[Any, ...], Totals] = {}
        for (start, groups, currency), prev_totals in previous.items():
            slot = prev_periods.index(start) if start in prev_periods else None
            if slot is not None:
                prev_by_slot[(slot, groups, currency)] = prev_totals
        rows: list[SalesRow] = []
        totals: dict[str, Totals] = defaultdict(Totals)
        for (start, groups, currency), figures in sorted(current.items(), key=_order):
            if keep is not None and groups not in keep:
                continue
            slot = index.get(start)
            prev = prev_by_slot.get((slot, groups, currency), Totals()) if query.compare else None
            rows.append(
                SalesRow(
                    period=period_label(start, query.period),
                    period_start=start,
                    groups=dict(zip((d.value for d in query.group_by), groups, strict=True)),
                    currency=currency,
                    figures=figures,
                    previous=prev,
                )
            )
            t = totals[currency]
            totals[currency] = t.plus(
                figures.orders, figures.units, figures.revenue, figures.refunds
            )
        return SalesReport(query=query, rows=rows, totals=dict(totals), notes=notes, basis=basis)

    def _convert(
        self, figures: dict[tuple[Any, ...], Totals], target: str
    ) -> dict[tuple[Any, ...], Totals]:
        rates = {**self._settings.report_rates, self._settings.report_rate_base: Decimal(1)}
        out: dict[tuple[Any, ...], Totals] = defaultdict(Totals)
        for (start, groups, currency), t in figures.items():
            if currency not in rates:
                raise invalid("convert_to", f"no rate for {currency}, which the report holds")
            factor = rates[currency] / rates[target]
            key = (start, groups, target)
            out[key] = out[key].plus(t.orders, t.units, t.revenue * factor, t.refunds * factor)
        return dict(out)


def _order(item: tuple[tuple[Any, ...], Totals]) -> tuple[Any, ...]:
    (start, groups, currency), _ = item
    return (start, groups, currency)


def _top_groups(figures: dict[tuple[Any, ...], Totals], top: int) -> set[tuple[str, ...]]:
    """The ``top`` groups by revenue over the whole range (for the ranking only, amounts in
    different currencies are added as numbers; a tie goes to units, then the group's name)."""
    revenue: dict[tuple[str, ...], tuple[Decimal, int]] = {}
    for (_, groups, _), t in figures.items():
        r, u = revenue.get(groups, (Decimal(0), 0))
        revenue[groups] = (r + t.revenue, u + t.units)
    ranked = sorted(revenue, key=lambda g: (-revenue[g][0], -revenue[g][1], g))
    return set(ranked[:top])


def _notes(query: SalesQuery, settings: Settings) -> list[str]:
    notes = [
        "Orders count on the UTC day they were created, under their current status.",
        "Statuses: "
        + (
            ", ".join(query.filters[Dimension.STATUS])
            if Dimension.STATUS in query.filters
            else "sold orders only (cancelled, rejected, failed and needs-attention left out)"
        )
        + ".",
    ]
    if query.convert_to:
        as_of = f" as of {settings.report_rates_as_of}" if settings.report_rates_as_of else ""
        rates = ", ".join(f"{c} {r}" for c, r in sorted(settings.report_rates.items()))
        notes.append(
            f"Money converted to {query.convert_to} with the configured rates{as_of} "
            f"({settings.report_rate_base} per unit: {rates})."
        )
    else:
        notes.append("Money is per currency; never summed across currencies.")
    if query.by_line:
        notes.append(
            "Per-SKU figures: 'orders' counts the orders holding the SKU (an order with two "
            "SKUs counts under each); refunds are shared over an order's lines by value."
        )
    return notes


# --- the queries ----------------------------------------------------------------------------------

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
    first = start if start.day == 1 else _next_month(start)
    last = end.replace(day=1)
    if first >= last:
        return [(start, end, False)]
    pieces = [(start, first, False), (first, last, True), (last, end, False)]
    return [(a, b, whole) for a, b, whole in pieces if a < b]


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


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
    monthly: bool = False,
) -> _Source:
    dialect = session.get_bind().dialect.name
    if basis == "rollup":
        table = (
            SalesMonthlySkuRow if monthly else SalesDailySkuRow if query.by_line else SalesDailyRow
        )
        t = table.__table__.c
        day: Any = t.month if monthly else t.day
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
) -> list[tuple[date, date, bool]]:
    """(from, to, from the monthly table) pieces of ``[start, end)``: per-SKU figures over
    whole months come from ``sales_monthly_sku`` where the periods are months or quarters, or
    for the ranking, whose periods do not matter."""
    months = query.period in (Period.MONTH, Period.QUARTER) or rank
    if basis != "rollup" or not query.by_line or not months:
        return [(start, end, False)]
    return month_segments(start, end)


async def _grouped(
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
    out: dict[tuple[Any, ...], Totals] = {}
    width = len(query.group_by)
    for lo, hi, monthly in _pieces(query, start, end, basis):
        src = _source(session, query, lo, hi, basis, monthly=monthly)
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
        for row in await session.execute(stmt):
            first = starts.get(row[0])
            if first is None:
                raw = row[0]
                day = raw if isinstance(raw, date) else date.fromisoformat(str(raw)[:10])
                first = starts[row[0]] = period_start(day, query.period)
            n, units, revenue, refunds = row[cur_at + 1 :]
            key = (first, tuple(str(v) for v in row[1 : 1 + width]), row[cur_at])
            figures = (int(n or 0), int(units or 0), Decimal(revenue or 0), Decimal(refunds or 0))
            t = out.get(key)
            out[key] = Totals(*figures) if t is None else t.plus(*figures)
    return {k: v for k, v in out.items() if v.orders or v.units or v.revenue or v.refunds}


def _among(group_cols: Sequence[Any], only: Sequence[tuple[str, ...]]) -> Any:
    if len(group_cols) > 1:
        return tuple_(*group_cols).in_(only)
    return group_cols[0].in_([g[0] for g in only])


async def _ranked(
    session: AsyncSession, query: SalesQuery, start: date, end: date, basis: Basis, top: int
) -> list[tuple[str, ...]]:
    """The ``top`` groups by revenue over ``[start, end)``, ranked in SQL: every piece's
    (group, revenue, units) in one UNION ALL, summed, ordered, limited. For the ranking only,
    amounts in different currencies are added as numbers; a tie goes to units, then the
    group's values (in code point order on both databases)."""
    parts = []
    names = [f"g{i}" for i in range(len(query.group_by))]
    for lo, hi, monthly in _pieces(query, start, end, basis, rank=True):
        src = _source(session, query, lo, hi, basis, monthly=monthly)
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
