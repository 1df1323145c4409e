"""The projection keeps order_lines, the report dimensions and both daily rollups in step with
each order, incrementally: the rollups always equal a full recomputation from the orders."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select

from db import readmodel, rollup
from db.models import (
    OrderLineRow,
    OrderRow,
    ProductRow,
    SalesDailyRow,
    SalesDailySkuRow,
    SalesMonthlySkuRow,
    SalesWeeklySkuRow,
)
from db.session import SessionFactory
from db.vault import Vault
from domain import events as ev
from domain.reporting import Figures
from domain.state import Closure, LineView, LoggedEvent, OrderState, apply
from domain.status import OrderStatus
from tests.factories import order_spec
from tests.keys import TEST_RING

VAULT = Vault(TEST_RING)
T0 = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # a Monday, late: the day is the UTC day
LINES = [
    {"sku": "WIDGET-1", "quantity": 2, "unit_price": "10.00"},
    {"sku": "GADGET-9", "quantity": 1, "unit_price": "30.00"},
]


def _received(order_id: str, **spec: Any) -> tuple[OrderState, list[LoggedEvent]]:
    s = order_spec(lines=spec.pop("lines", LINES), **spec)
    first = ev.Received(seq=1, at=T0, actor="eshop", order_id=order_id, spec=s, total=s.total())
    state = apply(None, first)
    return state, [LoggedEvent(status=state.status, event=first)]


def _step(state: OrderState, status: OrderStatus, *events: ev.OrderEvent, **change: Any) -> list:
    """Move the state on by hand (the rollups read only the state and the events' times)."""
    logged = []
    for e in events:
        state.seq += 1
        stamped = e.model_copy(update={"seq": state.seq, "at": T0 + timedelta(hours=state.seq)})
        logged.append(LoggedEvent(status=status, event=stamped))
    state.status = status
    for key, value in change.items():
        setattr(state, key, value)
    return logged


async def _project(sessions: SessionFactory, state: OrderState, logged: list) -> None:
    async with sessions.begin() as session:
        await readmodel.project(session, state, logged, vault=VAULT, final=state.status.is_terminal)


async def _rollups(sessions: SessionFactory) -> tuple[set[tuple], set[tuple]]:
    async with sessions() as session:
        orders = {
            tuple(r)
            for r in await session.execute(select(SalesDailyRow.__table__))
            if r.orders or r.units or r.revenue or r.refunds
        }
        daily = {
            tuple(r): Figures(*r[-4:])
            for r in await session.execute(select(SalesDailySkuRow.__table__))
            if r.orders or r.units or r.revenue or r.refunds
        }
        months = {
            tuple(r[:-4]): Figures(*r[-4:])
            for r in await session.execute(select(SalesMonthlySkuRow.__table__))
            if r.orders or r.units or r.revenue or r.refunds
        }
        weeks = {
            tuple(r[:-4]): Figures(*r[-4:])
            for r in await session.execute(select(SalesWeeklySkuRow.__table__))
            if r.orders or r.units or r.revenue or r.refunds
        }
    # The monthly and weekly per-SKU rollups are always the daily one summed per month / week.
    assert months == rollup.monthly({k[:-4]: f for k, f in daily.items()})
    assert weeks == rollup.weekly({k[:-4]: f for k, f in daily.items()})
    return orders, set(daily)


async def _assert_equals_rebuild(sessions: SessionFactory) -> None:
    incremental = await _rollups(sessions)
    async with sessions.begin() as session:
        assert await rollup.rebuild(session) >= 1
    assert await _rollups(sessions) == incremental


async def test_an_order_moves_through_the_rollups_as_its_status_changes(
    sessions: SessionFactory,
) -> None:
    async with sessions.begin() as session:
        session.add(ProductRow(sku="WIDGET-1", name="Widget", category="tools", updated_at=T0))
    state, logged = _received("SO-R1", customer_id="C-R1")
    await _project(sessions, state, logged)
    async with sessions() as session:
        lines = list(await session.scalars(select(OrderLineRow).order_by(OrderLineRow.line_no)))
    assert [(x.sku, x.category, x.quantity, x.line_total) for x in lines] == [
        ("WIDGET-1", "tools", 2, Decimal("20.00")),
        ("GADGET-9", "uncategorised", 1, Decimal("30.00")),
    ]
    day = date(2026, 11, 30)
    orders, skus = await _rollups(sessions)
    assert orders == {
        (day, "EU-WEST", "standard", "received", "api", "rep-jane", "EUR", 1, 3, Decimal("50"), 0)
    }
    assert len(skus) == 2

    # Retried projection: nothing moves twice.
    await _project(sessions, state, logged)
    assert await _rollups(sessions) == (orders, skus)

    await _project(sessions, state, _step(state, OrderStatus.CONFIRMED, ev.Confirmed()))
    await _project(sessions, state, _step(state, OrderStatus.SHIPPED, ev.Shipped(parcel=1)))
    orders, skus = await _rollups(sessions)
    assert {(r[3], r[7]) for r in orders} == {("shipped", 1)}  # moved, not copied
    assert {r[3] for r in skus} == {"shipped"}

    state.payment.refunded = Decimal("10.00")
    await _project(sessions, state, _step(state, OrderStatus.COMPLETED))
    orders, skus = await _rollups(sessions)
    assert [(r[3], r[9], r[10]) for r in orders] == [("completed", Decimal("50"), Decimal("10"))]
    # The refund is shared over the lines by value: 20/50 and 30/50 of it.
    assert sorted((r[4], r[10]) for r in skus) == [
        ("GADGET-9", Decimal("6")),
        ("WIDGET-1", Decimal("4")),
    ]
    async with sessions() as session:
        row = await session.get(OrderRow, "SO-R1")
    assert row is not None
    assert row.confirmed_at == T0 + timedelta(hours=2)
    assert row.shipped_at == T0 + timedelta(hours=3)
    assert row.closed_at is not None
    assert row.sales_rep == "rep-jane"
    assert row.refunded == Decimal("10.00")
    await _assert_equals_rebuild(sessions)


async def test_amended_lines_replace_the_old_ones_and_cancellations_get_a_reason_code(
    sessions: SessionFactory,
) -> None:
    state, logged = _received("SO-R2", customer_id="C-R2")
    await _project(sessions, state, logged)
    other, other_logged = _received("SO-R3", customer_id="C-R3", lines=[LINES[0]])
    await _project(sessions, other, other_logged)

    state.lines = [
        LineView(sku="BOLT-3", quantity=5, unit_price=Decimal(4), line_total=Decimal(20))
    ]
    state.total = Decimal(20)
    state.revision = 1
    await _project(sessions, state, _step(state, OrderStatus.AWAITING_APPROVAL))
    async with sessions() as session:
        skus = set(
            await session.scalars(select(OrderLineRow.sku).where(OrderLineRow.order_id == "SO-R2"))
        )
    assert skus == {"BOLT-3"}
    _, sku_rows = await _rollups(sessions)
    assert {(r[4], r[3], r[8]) for r in sku_rows} == {
        ("BOLT-3", "awaiting_approval", 5),
        ("WIDGET-1", "received", 2),  # SO-R3's line, untouched
    }

    cancelled = _step(state, OrderStatus.CANCELLED, ev.Cancelled(reason="customer changed mind"))
    state.closure = Closure(
        reason="customer changed mind", by="support-1", at=T0 + timedelta(days=1)
    )
    await _project(sessions, state, cancelled)
    async with sessions() as session:
        row = await session.get(OrderRow, "SO-R2")
    assert row is not None
    assert row.close_reason == "requested"
    assert row.closed_at == T0 + timedelta(days=1)
    await _assert_equals_rebuild(sessions)

    # A rebuild also restores rollups lost altogether.
    async with sessions.begin() as session:
        await session.execute(delete(SalesDailyRow))
        await rollup.rebuild(session)
    orders, _ = await _rollups(sessions)
    assert {(r[3], r[7]) for r in orders} == {("cancelled", 1), ("received", 1)}
