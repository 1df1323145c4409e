"""The manager's dashboard figures, read from the read model (``orders``) and the event log
(``order_events``): orders and revenue per day, by region and tier, approval lead times per
level, and on-time delivery.

Every figure is over the orders **created** in the period (the last ``days`` UTC days, today
included). Money is kept per currency and never summed across currencies. Days are grouped in
Python, so the same queries run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from db.models import OrderEventRow, OrderRow
from domain.status import OrderStatus
from services.auth import Principal, Role
from services.context import Services
from services.errors import Kind, ServiceError, invalid

RANGES = (7, 30, 90)
DEFAULT_DAYS = 30
S = OrderStatus
# Orders whose value does not count as revenue: they ended without being sold (or are on
# their way there: a refused compensation happens while an order is being cancelled).
NOT_REVENUE = frozenset({S.CANCELLED, S.REJECTED, S.FAILED, S.NEEDS_ATTENTION})
_EVENT_TYPES = (
    "approval_chain_decided",
    "approval_requested",
    "approved",
    "level_rejected",
    "changes_requested",
    "confirmed",
    "delivered",
)


@dataclass(frozen=True)
class DayFigures:
    day: date
    orders: int
    revenue: dict[str, Decimal] = field(default_factory=dict)  # currency -> total


@dataclass(frozen=True)
class GroupFigures:
    name: str
    orders: int
    revenue: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class LeadTime:
    """Time from a level's approval request to its decision (approve with quorum, reject or
    request changes), over the decisions of one level."""

    level: int
    name: str
    decisions: int
    p50_seconds: float
    p90_seconds: float


@dataclass(frozen=True)
class Delivery:
    """Orders due for delivery: delivered within the SLA of confirmation (of creation when
    never confirmed), delivered late, or past the SLA and not delivered yet."""

    on_time: int
    late: int
    overdue: int

    @property
    def due(self) -> int:
        return self.on_time + self.late + self.overdue

    @property
    def rate(self) -> float | None:
        """Share delivered on time (0..1); None when no order was due."""
        return self.on_time / self.due if self.due else None


@dataclass(frozen=True)
class Figures:
    days: int
    start: date
    end: date
    orders: int
    per_day: list[DayFigures]
    by_region: list[GroupFigures]
    by_tier: list[GroupFigures]
    lead_times: list[LeadTime]
    delivery: Delivery
    currencies: list[str]


def check_days(value: str | int | None) -> int:
    """The period length from a query parameter: one of :data:`RANGES` (default 30)."""
    if value is None or value == "":
        return DEFAULT_DAYS
    try:
        days = int(value)
    except ValueError:
        days = -1
    if days not in RANGES:
        raise invalid("days", f"must be one of {', '.join(map(str, RANGES))}")
    return days


def percentile(values: list[float], p: float) -> float:
    """The ``p`` percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class _Order:
    row: Any
    confirmed: datetime | None = None
    delivered: datetime | None = None


class Dashboard:
    """The dashboard's figures, for managers (and admins)."""

    def __init__(self, services: Services) -> None:
        self._sessions = services.sessions
        self._sla = services.settings.delivery_sla

    async def figures(
        self, principal: Principal, days: int = DEFAULT_DAYS, *, now: datetime | None = None
    ) -> Figures:
        if not principal.has_any({Role.MANAGER, Role.ADMIN}):
            raise ServiceError(Kind.FORBIDDEN, "the dashboard needs the role manager")
        now = now or datetime.now(UTC)
        end = now.astimezone(UTC).date()
        start = end - timedelta(days=days - 1)
        since = datetime(start.year, start.month, start.day, tzinfo=UTC)
        in_period = select(OrderRow.id).where(OrderRow.created_at >= since)
        async with self._sessions() as session:
            rows = list(
                await session.execute(
                    select(
                        OrderRow.id,
                        OrderRow.status,
                        OrderRow.created_at,
                        OrderRow.region,
                        OrderRow.customer_tier,
                        OrderRow.currency,
                        OrderRow.total,
                    ).where(OrderRow.created_at >= since)
                )
            )
            events = list(
                await session.execute(
                    select(
                        OrderEventRow.order_id,
                        OrderEventRow.seq,
                        OrderEventRow.type,
                        OrderEventRow.at,
                        OrderEventRow.payload,
                    )
                    .where(OrderEventRow.type.in_(_EVENT_TYPES))
                    .where(OrderEventRow.order_id.in_(in_period))
                    .order_by(OrderEventRow.order_id, OrderEventRow.seq)
                )
            )
        by_order: dict[str, list[Any]] = defaultdict(list)
        for e in events:
            by_order[e.order_id].append(e)
        return Figures(
            days=days,
            start=start,
            end=end,
            orders=len(rows),
            per_day=_per_day(rows, start, days),
            by_region=_grouped(rows, "region"),
            by_tier=_grouped(rows, "customer_tier"),
            lead_times=lead_times_of(by_order.values()),
            delivery=self._delivery(rows, by_order, now),
            currencies=sorted({r.currency for r in rows}),
        )

    def _delivery(self, rows: list[Any], by_order: dict[str, list[Any]], now: datetime) -> Delivery:
        on_time = late = overdue = 0
        for r in rows:
            confirmed = next((e.at for e in by_order[r.id] if e.type == "confirmed"), None)
            delivered = next((e.at for e in by_order[r.id] if e.type == "delivered"), None)
            due = (confirmed or r.created_at) + self._sla
            if delivered is not None:
                if delivered <= due:
                    on_time += 1
                else:
                    late += 1
            elif (
                confirmed is not None
                and not OrderStatus(r.status).is_terminal
                and OrderStatus(r.status) not in NOT_REVENUE
                and now > due
            ):
                overdue += 1
        return Delivery(on_time=on_time, late=late, overdue=overdue)


def _revenue(r: Any) -> bool:
    return OrderStatus(r.status) not in NOT_REVENUE


def _per_day(rows: list[Any], start: date, days: int) -> list[DayFigures]:
    counts: dict[date, int] = defaultdict(int)
    money: dict[date, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for r in rows:
        day = r.created_at.astimezone(UTC).date()
        counts[day] += 1
        if _revenue(r):
            money[day][r.currency] += Decimal(r.total)
    out = []
    for i in range(days):
        day = start + timedelta(days=i)
        out.append(DayFigures(day=day, orders=counts[day], revenue=dict(money.get(day, {}))))
    return out


def _grouped(rows: list[Any], attr: str) -> list[GroupFigures]:
    counts: dict[str, int] = defaultdict(int)
    money: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for r in rows:
        name = str(getattr(r, attr))
        counts[name] += 1
        if _revenue(r):
            money[name][r.currency] += Decimal(r.total)
    return [
        GroupFigures(name=name, orders=counts[name], revenue=dict(money.get(name, {})))
        for name in sorted(counts, key=lambda n: (-counts[n], n))
    ]


def lead_times_of(orders: Any) -> list[LeadTime]:
    """Per level: seconds from each approval request to the decision that ended it."""
    waits: dict[int, list[float]] = defaultdict(list)
    names: dict[int, str] = {}
    for events in orders:
        quorum: dict[int, int] = {}
        opened: dict[int, tuple[datetime, int]] = {}  # level -> (requested at, approvals)
        for e in events:
            data = e.payload if isinstance(e.payload, dict) else {}
            if e.type == "approval_chain_decided":
                for step in data.get("levels", []):
                    quorum[int(step["level"])] = int(step.get("quorum", 1))
                    names.setdefault(int(step["level"]), str(step.get("name", "")))
                continue
            level = data.get("level")
            if not isinstance(level, int):
                continue
            if e.type == "approval_requested":
                opened[level] = (e.at, 0)
            elif level in opened:
                since, count = opened[level]
                if e.type == "approved" and count + 1 < quorum.get(level, 1):
                    opened[level] = (since, count + 1)
                    continue
                waits[level].append((e.at - since).total_seconds())
                del opened[level]
    return [
        LeadTime(
            level=level,
            name=names.get(level, ""),
            decisions=len(values),
            p50_seconds=percentile(values, 50),
            p90_seconds=percentile(values, 90),
        )
        for level, values in sorted(waits.items())
    ]
