"""``orderly seed-demo`` (services.demo_seed): a finished, self-consistent and deterministic
history in the read model, on both databases. Every snapshot is the fold of its logged events,
the rollups equal a rebuild and the sales report's two bases agree, a planted co-purchase shows
up; a second run refuses, ``--replace`` seeds the same again and leaves other orders alone; a
seeded order loads through the read service the API uses."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import func, select
from temporalio.client import Client
from typer.testing import CliRunner

from cli.main import app
from config import Settings, load_policy
from db import readmodel, rollup
from db.models import (
    Base,
    OrderEventRow,
    OrderLineRow,
    OrderRow,
    ProductRow,
    SalesDailyRow,
    SalesDailySkuRow,
)
from db.session import SessionFactory, make_engine, make_sessionmaker
from db.vault import Vault
from domain.events import Received, parse_event
from domain.order import ORDER_ID_RE, OrderSource, OrderSpec
from domain.state import LoggedEvent, OrderState, apply, fold
from domain.status import TERMINAL, OrderStatus, RefundState
from services.auth import Principal, Role
from services.context import Services
from services.demo_seed import (
    CATALOGUE,
    PER_DAY,
    REGIONS,
    SEED_ACTOR,
    SeededDataExists,
    SeedError,
    SeedOptions,
    SeedResult,
    order_ids,
    seed_demo,
)
from services.orders import Orders
from services.reports import Reports, parse_sales_query
from tests.factories import order_spec
from tests.keys import TEST_RING
from workflows.client import order_policy

NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
TODAY = datetime(2026, 12, 2, tzinfo=UTC)
ORDERS = 500
MANAGER = Principal(name="mgr", roles=frozenset({Role.MANAGER}))
SEEDED = OrderRow.created_by == SEED_ACTOR
REAL_ID = "SO-20261130-ZZ001"  # a real order whose id looks seeded: never taken, never touched
# What the order workflow logs for a card order without approval (tests/workflows).
CARD_ORDER = [
    "received", "credit_check_started", "credit_checked", "stock_reserved", "confirmed",
    "payment_captured", "shipment_booked", "carrier_scan", "shipped", "carrier_scan",
    "carrier_scan", "delivered", "completed",
]  # fmt: skip


def _settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


async def _seed(
    sessions: SessionFactory, database_url: str, *, seed: int = 7, replace: bool = False
) -> SeedResult:
    settings = _settings(database_url)
    policy = order_policy(settings, load_policy(settings.approval_policy_file))
    progress: list[tuple[int, int]] = []
    result = await seed_demo(
        sessions,
        SeedOptions(orders=ORDERS, months=6, seed=seed, replace=replace, chunk=200),
        policy,
        now=NOW,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert progress == [(0, ORDERS), (200, ORDERS), (400, ORDERS), (ORDERS, ORDERS)]
    return result


async def _real_order(sessions: SessionFactory) -> None:
    """An order the projection wrote (open, created by eshop), on a day the seeding covers."""
    spec = order_spec(customer_id="C-REAL")
    at = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    received = Received(
        seq=1, at=at, actor="eshop", order_id=REAL_ID, spec=spec, total=spec.total()
    )
    state = apply(None, received)
    logged = [LoggedEvent(status=state.status, event=received)]
    async with sessions.begin() as session:
        await readmodel.project(session, state, logged, vault=Vault(TEST_RING))


async def _real_rows(sessions: SessionFactory) -> tuple[Any, ...]:
    async with sessions() as session:
        order = await session.execute(select(OrderRow.__table__).where(OrderRow.id == REAL_ID))
        lines = await session.execute(
            select(OrderLineRow.__table__).where(OrderLineRow.order_id == REAL_ID)
        )
        events = await session.execute(
            select(OrderEventRow.__table__).where(OrderEventRow.order_id == REAL_ID)
        )
        return tuple(order), tuple(lines), tuple(events)


async def _rollups(sessions: SessionFactory) -> list[set[tuple[Any, ...]]]:
    out = []
    async with sessions() as session:
        for model in (SalesDailyRow, SalesDailySkuRow):
            rows = await session.execute(select(model.__table__))
            out.append({tuple(r) for r in rows if r.orders or r.units or r.revenue or r.refunds})
    return out


async def _assert_rollups_equal_a_rebuild(sessions: SessionFactory) -> None:
    kept = await _rollups(sessions)
    assert all(kept)
    async with sessions.begin() as session:
        await rollup.rebuild(session)
    assert await _rollups(sessions) == kept


async def _digest(sessions: SessionFactory) -> list[Any]:
    """Everything seeded, comparable across runs (event ids aside: they are the log's)."""
    async with sessions() as session:
        seeded = select(OrderRow.id).where(OrderRow.created_by == SEED_ACTOR)
        orders = [
            (r.id, r.status, r.total, r.created_at, r.closed_at, json.dumps(r.snapshot))
            for r in await session.scalars(select(OrderRow).where(OrderRow.id.in_(seeded)))
        ]
        lines = [
            tuple(r)
            for r in await session.execute(
                select(OrderLineRow.__table__).where(OrderLineRow.order_id.in_(seeded))
            )
        ]
        events = [
            (r.order_id, r.seq, r.type, r.at, r.status, json.dumps(r.payload))
            for r in await session.scalars(
                select(OrderEventRow).where(OrderEventRow.order_id.in_(seeded))
            )
        ]
    return sorted(orders) + sorted(lines) + sorted(events)


async def test_seeded_history_is_finished_consistent_and_reported(
    sessions: SessionFactory, database_url: str
) -> None:
    await _real_order(sessions)
    real = await _real_rows(sessions)
    result = await _seed(sessions, database_url)
    assert (result.orders, result.customers, result.products) == (ORDERS, 20, len(CATALOGUE))
    assert (result.start, result.end) == (date(2026, 6, 2), date(2026, 12, 2))

    async with sessions() as session:
        rows = list(
            await session.scalars(select(OrderRow).where(OrderRow.created_by == SEED_ACTOR))
        )
        lines: dict[str, list[OrderLineRow]] = defaultdict(list)
        for line in await session.scalars(select(OrderLineRow).order_by(OrderLineRow.line_no)):
            lines[line.order_id].append(line)
        events: dict[str, list[OrderEventRow]] = defaultdict(list)
        for e in await session.scalars(select(OrderEventRow).order_by(OrderEventRow.seq)):
            events[e.order_id].append(e)
        products = {p.sku: p.category for p in await session.scalars(select(ProductRow))}
    assert len(rows) == ORDERS == result.orders
    assert sum(len(v) for k, v in lines.items() if k != REAL_ID) == result.lines
    assert sum(len(v) for k, v in events.items() if k != REAL_ID) == result.events
    assert REAL_ID not in {r.id for r in rows}
    assert await _real_rows(sessions) == real

    for row in rows:
        assert ORDER_ID_RE.fullmatch(row.id), row.id
        assert row.id.startswith(f"SO-{row.created_at:%Y%m%d}-ZZ")
        assert row.closed
        assert OrderStatus(row.status) in TERMINAL
        assert (row.close_reason is None) == (row.status == "completed")
        times = [row.created_at, row.confirmed_at, row.shipped_at, row.delivered_at, row.closed_at]
        known = [t for t in times if t is not None]
        assert known == sorted(known), row.id
        assert row.closed_at is not None
        assert row.created_at < TODAY
        assert row.closed_at <= NOW
        assert row.updated_at == row.closed_at
        if row.status == "completed":
            assert None not in times
        # The snapshot is a valid state, the fold of the logged events, and the row's columns.
        state = OrderState.model_validate(row.snapshot)
        logged = [parse_event(e.payload) for e in events[row.id]]
        assert [e.seq for e in logged] == list(range(1, row.seq + 1))
        assert fold(logged).model_dump(mode="json") == row.snapshot
        assert events[row.id][-1].status == row.status
        assert {e.source for e in events[row.id]} == {row.source}
        assert isinstance(logged[0], Received)
        OrderSpec.model_validate(logged[0].spec.model_dump())  # as a client could have sent it
        assert (
            state.status.value,
            state.total,
            state.currency,
            state.customer.id,
            state.customer.region,
            state.customer.tier.value,
            state.source.value,
            state.sales_rep,
            state.payment.refunded,
        ) == (
            row.status,
            row.total,
            row.currency,
            row.customer_id,
            row.region,
            row.customer_tier,
            row.source,
            row.sales_rep,
            row.refunded,
        )
        assert 1 <= len(lines[row.id]) <= 6
        assert sum(line.line_total for line in lines[row.id]) == row.total
        assert all(line.category == products[line.sku] for line in lines[row.id])

    statuses = Counter(r.status for r in rows)
    assert set(statuses) == {"completed", "cancelled", "rejected", "failed"}
    assert statuses["completed"] > 0.75 * ORDERS
    reasons = Counter(r.close_reason for r in rows if r.close_reason)
    assert {"requested", "payment_expired", "credit", "out_of_stock"} <= set(reasons)
    refunded = [r for r in rows if r.refunded > 0]
    assert refunded
    assert all(r.status == "cancelled" and r.refunded == r.total for r in refunded)
    assert {r.region for r in rows} <= set(REGIONS)
    assert {r.source for r in rows} <= {s.value for s in OrderSource}
    currencies = Counter(r.currency for r in rows)
    assert set(currencies) <= {"EUR", "USD", "GBP"}
    assert currencies.most_common(1)[0][0] == "EUR"
    per_customer = Counter(r.customer_id for r in rows)
    assert len(per_customer) == result.customers
    assert min(per_customer.values()) == 1  # one-off buyers
    assert max(per_customer.values()) >= 20  # and a frequent one
    assert set(products) >= {p.sku for p in CATALOGUE}

    # A planted co-purchase: laser printer orders often hold its toner, far beyond chance.
    skus = {r.id: {line.sku for line in lines[r.id]} for r in rows}
    printer = sum("PRN-LASER-M200" in s for s in skus.values())
    toner = sum("TNR-M200-BK" in s for s in skus.values())
    both = sum({"PRN-LASER-M200", "TNR-M200-BK"} <= s for s in skus.values())
    assert both * ORDERS / (printer * toner) > 2, (printer, toner, both)

    await _assert_rollups_equal_a_rebuild(sessions)
    settings = _settings(database_url)
    reports = Reports(sessions, settings)
    for group_by, period, currency in (("region", "month", []), ("sku", "week", ["EUR"])):
        query = parse_sales_query(
            start=date(2026, 6, 1),
            end=date(2026, 12, 3),
            group_by=[group_by],
            period=period,
            currency=currency,
            settings=settings,
        )
        from_rollup = await reports.sales(MANAGER, query)
        raw = await reports.sales(MANAGER, query, basis="raw")
        assert from_rollup.rows
        got = [(r.period, r.groups, r.currency, r.figures) for r in from_rollup.rows]
        assert got == [(r.period, r.groups, r.currency, r.figures) for r in raw.rows]


async def test_a_second_run_refuses_and_replace_seeds_the_same_again(
    sessions: SessionFactory, database_url: str
) -> None:
    await _real_order(sessions)
    real = await _real_rows(sessions)
    await _seed(sessions, database_url)
    first = await _digest(sessions)

    with pytest.raises(SeededDataExists, match="--replace"):
        await _seed(sessions, database_url)
    assert await _digest(sessions) == first

    again = await _seed(sessions, database_url, replace=True)
    assert (again.replaced, again.orders) == (ORDERS, ORDERS)
    assert await _digest(sessions) == first  # the same seed and time: the same history
    assert await _real_rows(sessions) == real
    await _assert_rollups_equal_a_rebuild(sessions)

    other = await _seed(sessions, database_url, seed=8, replace=True)
    assert other.orders == ORDERS
    assert await _digest(sessions) != first
    async with sessions() as session:
        count = await session.scalar(select(func.count()).select_from(OrderRow))
        events = await session.scalar(select(func.count()).select_from(OrderEventRow))
    assert count == ORDERS + 1
    assert events == other.events + len(real[2])
    assert await _real_rows(sessions) == real
    await _assert_rollups_equal_a_rebuild(sessions)


async def test_a_seeded_order_loads_through_the_read_service(
    sessions: SessionFactory, database_url: str
) -> None:
    await _seed(sessions, database_url)
    async with sessions() as session:
        rows = list(
            await session.scalars(select(OrderRow).where(OrderRow.created_by == SEED_ACTOR))
        )
    card = next(
        r
        for r in rows
        if r.status == "completed"
        and r.snapshot["payment_method"]["type"] == "card"
        and not r.snapshot["approval"]["levels"]
        and not r.snapshot["delivery_overdue"]
    )
    refunded = next(r for r in rows if r.refunded > 0)
    settings = _settings(database_url)
    services = Services(
        settings=settings,
        client=cast(Client, None),  # closed orders come from the read model alone
        sessions=sessions,
        approval_policy=load_policy(settings.approval_policy_file),
        keyring=TEST_RING,
    )
    orders = Orders(services)

    order = await orders.get(card.id)
    assert order.status is OrderStatus.COMPLETED
    assert [e.type for e in order.timeline] == CARD_ORDER
    assert order.total == card.total
    assert order.payment.captured == order.total
    assert order.shipment.tracking_number
    assert order.shipment.delivered_at == card.delivered_at
    assert order.customer.id.startswith("C-DEMO-")
    assert order.allowed_actions == []
    assert (await orders.timeline(card.id)).events == order.timeline

    cancelled = await orders.get(refunded.id)
    assert cancelled.status is OrderStatus.CANCELLED
    assert cancelled.payment.refund_state is RefundState.FULL
    assert cancelled.payment.refunded == refunded.total == cancelled.total
    assert cancelled.closure is not None
    assert [e.type for e in cancelled.timeline][-4:] == [
        "shipment_cancelled",
        "payment_refunded",
        "stock_released",
        "cancelled",
    ]


async def _create_schema(url: str) -> int:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with make_sessionmaker(engine)() as session:
            return int(await session.scalar(select(func.count()).select_from(OrderRow)) or 0)
    finally:
        await engine.dispose()


def test_cli_seeds_refuses_a_second_time_and_replaces(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    asyncio.run(_create_schema(url))
    env = {"ORDERLY_DATABASE_URL": url, "COLUMNS": "200"}
    args = ["seed-demo", "--orders", "120", "--months", "3", "--seed", "5"]
    runner = CliRunner()

    first = runner.invoke(app, args, env=env)
    assert first.exit_code == 0, first.output
    assert "Seeded 120 orders" in first.output
    assert "completed" in first.output

    refused = runner.invoke(app, args, env=env)
    assert refused.exit_code == 1, refused.output
    assert "120 seeded demo orders already" in refused.output
    assert "--replace" in refused.output

    replaced = runner.invoke(app, [*args, "--replace"], env=env)
    assert replaced.exit_code == 0, replaced.output
    assert "replacing 120" in replaced.output
    assert asyncio.run(_create_schema(url)) == 120

    bad = runner.invoke(app, ["seed-demo", "--orders", "0"], env=env)
    assert bad.exit_code == 2


def test_order_ids_are_numbered_per_day_around_real_ones_and_a_full_day_is_refused() -> None:
    day = datetime(2026, 3, 1, 8, tzinfo=UTC)
    ids = order_ids([day, day, day.replace(day=2)], {"SO-20260301-ZZ001"})
    assert ids == ["SO-20260301-ZZ000", "SO-20260301-ZZ002", "SO-20260302-ZZ000"]
    assert all(ORDER_ID_RE.fullmatch(i) for i in ids)
    assert order_ids([day] * PER_DAY, set())[-1] == "SO-20260301-ZZZZZ"
    with pytest.raises(SeedError, match="more than 32768 orders on 2026-03-01"):
        order_ids([day] * (PER_DAY + 1), set())
