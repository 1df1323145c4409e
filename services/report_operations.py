"""The operations and customers reports: how fast orders move, how many end badly, which
orders are stuck; who buys, how often and how recently.

Both read the read model (``orders``, and ``order_events`` for approval lead times) over the
orders **created** in ``[start, end)``. Stage times come from the order's timestamps
(created → confirmed → shipped → delivered), which the projection keeps. Customers are named by
id only: a report never carries personal data.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from config import Settings
from db.models import OrderEventRow, OrderRow
from domain.reporting import NOT_SOLD, SOLD_STATUSES, QueryError, check_day, check_range
from domain.status import OrderStatus
from services.auth import Principal
from services.dashboard import LeadTime, lead_times_of, percentile
from services.errors import invalid
from services.reports import Reports

S = OrderStatus
MAX_TOP_CUSTOMERS = 500
# Stage name -> (from column, to column) on ``orders``.
STAGES: dict[str, tuple[str, str]] = {
    "approval": ("created_at", "confirmed_at"),
    "fulfilment": ("confirmed_at", "shipped_at"),
    "transit": ("shipped_at", "delivered_at"),
    "cycle": ("created_at", "delivered_at"),
}
STAGE_LABELS = {
    "approval": "Created → confirmed (credit, approval)",
    "fulfilment": "Confirmed → shipped (stock, payment, pick-up)",
    "transit": "Shipped → delivered",
    "cycle": "Created → delivered (order cycle)",
}
_APPROVAL_EVENTS = (
    "approval_chain_decided",
    "approval_requested",
    "approved",
    "rejected",
    "changes_requested",
)
# Frequency bands (orders in the range) and recency bands (days since the last order, at the
# range's end): the RFM view of domain.customers' classification.
FREQUENCY_BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("1 order", 1, 1),
    ("2-3 orders", 2, 3),
    ("4-11 orders", 4, 11),
    ("12+ orders", 12, None),
)
RECENCY_BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("≤ 30 days", 0, 30),
    ("31-90 days", 31, 90),
    ("91-180 days", 91, 180),
    ("> 180 days", 181, None),
)


@dataclass(frozen=True)
class Range:
    start: date
    end: date  # exclusive

    @property
    def since(self) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    @property
    def until(self) -> datetime:
        return datetime(self.end.year, self.end.month, self.end.day, tzinfo=UTC)

    def params(self) -> dict[str, Any]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat()}


def parse_range(start: date | None, end: date | None, *, today: date | None = None) -> Range:
    """The report's range (default: the last 90 days up to today); 422 naming the parameter."""
    today = today or datetime.now(UTC).date()
    try:
        check_day("from", start)
        check_day("to", end)
        end = end or today + timedelta(days=1)
        start = start or end - timedelta(days=90)
        check_range(start, end)
    except QueryError as exc:
        raise invalid(exc.field, str(exc)) from None
    return Range(start, end)


# --- operations -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageTime:
    stage: str
    label: str
    orders: int
    p50_hours: float | None
    p90_hours: float | None


@dataclass(frozen=True)
class ReasonCount:
    status: str
    reason: str
    orders: int
    rate_pct: float


@dataclass(frozen=True)
class StuckCount:
    status: str
    orders: int
    oldest_hours: float


@dataclass(frozen=True)
class OperationsReport:
    range: Range
    orders: int
    stages: list[StageTime]
    approval_levels: list[LeadTime]
    delivered: int
    on_time: int
    late: int
    on_time_rate_pct: float | None
    closures: list[ReasonCount]  # cancelled / rejected / failed, by reason code
    cancellation_rate_pct: float | None
    refunded_orders: int
    refund_rate_pct: float | None
    stuck: list[StuckCount]
    stuck_after_hours: float
    notes: list[str]


def _pct(part: int, whole: int) -> float | None:
    return round(part * 100 / whole, 2) if whole else None


def _hours(values: list[float], p: float) -> float | None:
    return round(percentile(values, p) / 3600, 2) if values else None


class OperationsReports:
    """The operations and customers reports (managers and admins, as every report)."""

    def __init__(self, sessions: Any, settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings

    async def operations(
        self, principal: Principal, rng: Range, *, now: datetime | None = None
    ) -> OperationsReport:
        Reports.allow(principal)
        now = now or datetime.now(UTC)
        o = OrderRow
        in_range = (o.created_at >= rng.since, o.created_at < rng.until)
        async with self._sessions() as session:
            rows = list(
                await session.execute(
                    select(
                        o.status,
                        o.close_reason,
                        o.created_at,
                        o.confirmed_at,
                        o.shipped_at,
                        o.delivered_at,
                        o.refunded,
                    ).where(*in_range)
                )
            )
            events = list(
                await session.execute(
                    select(
                        OrderEventRow.order_id,
                        OrderEventRow.type,
                        OrderEventRow.at,
                        OrderEventRow.payload,
                    )
                    .where(OrderEventRow.type.in_(_APPROVAL_EVENTS))
                    .where(OrderEventRow.order_id.in_(select(o.id).where(*in_range)))
                    .order_by(OrderEventRow.order_id, OrderEventRow.seq)
                )
            )
            stuck = await self._stuck(session, now)
        by_order: dict[str, list[Any]] = defaultdict(list)
        for e in events:
            by_order[e.order_id].append(e)

        waits: dict[str, list[float]] = {name: [] for name in STAGES}
        sla = self._settings.delivery_sla
        on_time = late = refunded = 0
        closures: Counter[tuple[str, str]] = Counter()
        for r in rows:
            values = r._mapping
            for name, (a, b) in STAGES.items():
                if values[a] is not None and values[b] is not None:
                    waits[name].append((values[b] - values[a]).total_seconds())
            if r.delivered_at is not None:
                due = (r.confirmed_at or r.created_at) + sla
                if r.delivered_at <= due:
                    on_time += 1
                else:
                    late += 1
            if S(r.status) in NOT_SOLD - {S.NEEDS_ATTENTION}:
                closures[(r.status, r.close_reason or "unknown")] += 1
            if r.refunded and Decimal(r.refunded) > 0:
                refunded += 1
        total = len(rows)
        cancelled = sum(n for (status, _), n in closures.items() if status == S.CANCELLED)
        return OperationsReport(
            range=rng,
            orders=total,
            stages=[
                StageTime(
                    stage=name,
                    label=STAGE_LABELS[name],
                    orders=len(values),
                    p50_hours=_hours(values, 50),
                    p90_hours=_hours(values, 90),
                )
                for name, values in waits.items()
            ],
            approval_levels=lead_times_of(by_order.values()),
            delivered=on_time + late,
            on_time=on_time,
            late=late,
            on_time_rate_pct=_pct(on_time, on_time + late),
            closures=[
                ReasonCount(status, reason, n, _pct(n, total) or 0.0)
                for (status, reason), n in sorted(closures.items(), key=lambda i: (-i[1], i[0]))
            ],
            cancellation_rate_pct=_pct(cancelled, total),
            refunded_orders=refunded,
            refund_rate_pct=_pct(refunded, total),
            stuck=stuck,
            stuck_after_hours=self._settings.report_stuck_after.total_seconds() / 3600,
            notes=[
                "Orders created in the range; stage times in hours from the order's timestamps "
                "(an order counts in a stage once it has left it).",
                f"On time: delivered within {_duration(sla)} of confirmation "
                "(of creation when never confirmed).",
                "Rates are shares of the orders created in the range; returns are counted as "
                "refunded orders until returns are recorded on their own.",
                "Stuck: open orders (any creation date) whose last change is older than "
                f"{_duration(self._settings.report_stuck_after)}, now.",
            ],
        )

    async def _stuck(self, session: Any, now: datetime) -> list[StuckCount]:
        cutoff = now - self._settings.report_stuck_after
        result = await session.execute(
            select(OrderRow.status, func.count(), func.min(OrderRow.updated_at))
            .where(OrderRow.closed.is_(False), OrderRow.updated_at < cutoff)
            .group_by(OrderRow.status)
        )
        out = []
        for status, n, oldest in result:
            hours = round((now - _aware(oldest)).total_seconds() / 3600, 1)
            out.append(StuckCount(status=status, orders=int(n), oldest_hours=hours))
        return sorted(out, key=lambda s: (-s.orders, s.status))

    async def customers(
        self, principal: Principal, rng: Range, *, top: int = 20
    ) -> CustomersReport:
        Reports.allow(principal)
        if not 1 <= top <= MAX_TOP_CUSTOMERS:
            raise invalid("top", f"must be between 1 and {MAX_TOP_CUSTOMERS}")
        o = OrderRow
        sold = o.status.in_(SOLD_STATUSES)
        async with self._sessions() as session:
            per_customer = list(
                await session.execute(
                    select(
                        o.customer_id,
                        o.currency,
                        func.count(),
                        func.sum(o.total),
                        func.max(o.created_at),
                    )
                    .where(o.created_at >= rng.since, o.created_at < rng.until, sold)
                    .group_by(o.customer_id, o.currency)
                )
            )
            result = await session.execute(
                select(o.customer_id, func.min(o.created_at))
                .where(sold)
                .where(
                    o.customer_id.in_(
                        select(o.customer_id).where(
                            o.created_at >= rng.since, o.created_at < rng.until, sold
                        )
                    )
                )
                .group_by(o.customer_id)
            )
            firsts = {row[0]: row[1] for row in result}
        return _customers_report(rng, per_customer, firsts, top)


def _duration(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours >= 48 else f"{hours:g} hours"


# --- customers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopCustomer:
    customer_id: str
    currency: str
    orders: int
    revenue: Decimal
    last_order: datetime


@dataclass(frozen=True)
class BandCount:
    recency: str
    frequency: str
    customers: int


@dataclass(frozen=True)
class CustomersReport:
    range: Range
    customers: int
    new_customers: int
    returning_customers: int
    top: list[TopCustomer]  # per currency, by revenue
    frequency: list[tuple[str, int]]  # band -> customers
    bands: list[BandCount]  # recency x frequency
    notes: list[str]


def _aware(at: Any) -> datetime:
    value = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _band(value: int, bands: Sequence[tuple[str, int, int | None]]) -> str:
    for name, low, high in bands:
        if value >= low and (high is None or value <= high):
            return name
    return bands[-1][0]


def _customers_report(
    rng: Range, per_customer: list[Any], firsts: dict[str, Any], top: int
) -> CustomersReport:
    orders: Counter[str] = Counter()
    last: dict[str, datetime] = {}
    tops: dict[str, list[TopCustomer]] = defaultdict(list)
    for customer_id, currency, n, revenue, latest in per_customer:
        latest_at = _aware(latest)
        orders[customer_id] += int(n)
        last[customer_id] = max(last.get(customer_id, latest_at), latest_at)
        tops[currency].append(
            TopCustomer(customer_id, currency, int(n), Decimal(revenue or 0), latest_at)
        )
    new = sum(1 for c in orders if c in firsts and _aware(firsts[c]) >= rng.since)
    freq = Counter(_band(n, FREQUENCY_BANDS) for n in orders.values())
    cells: Counter[tuple[str, str]] = Counter()
    for customer_id, n in orders.items():
        days = max(0, (rng.until - last[customer_id]).days)
        cells[(_band(days, RECENCY_BANDS), _band(n, FREQUENCY_BANDS))] += 1
    ranked = [
        customer
        for currency in sorted(tops)
        for customer in sorted(
            tops[currency], key=lambda t: (-t.revenue, -t.orders, t.customer_id)
        )[:top]
    ]
    return CustomersReport(
        range=rng,
        customers=len(orders),
        new_customers=new,
        returning_customers=len(orders) - new,
        top=ranked,
        frequency=[(name, freq.get(name, 0)) for name, _, _ in FREQUENCY_BANDS],
        bands=[
            BandCount(r, f, cells.get((r, f), 0))
            for r, _, _ in RECENCY_BANDS
            for f, _, _ in FREQUENCY_BANDS
        ],
        notes=[
            "Customers with a sold order (not cancelled, rejected, failed) created in the range; "
            "named by id only.",
            "New: the customer's first sold order ever falls in the range; returning otherwise.",
            "Top customers per currency by revenue (money is never summed across currencies).",
            "Recency: days from the customer's last order in the range to the range's end.",
        ],
    )
