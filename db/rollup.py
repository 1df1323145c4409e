"""The report tables the projection keeps: ``order_lines``, the daily rollups (``sales_daily``,
``sales_daily_sku``) and the per-SKU ones summed per month (``sales_monthly_sku``) and per
week over regions and tiers (``sales_weekly_sku``), moved incrementally
in the projection's transaction by the difference between the order's old and new
contribution (domain.reporting)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    OrderLineRow,
    OrderRow,
    ProductRow,
    SalesDailyRow,
    SalesDailySkuRow,
    SalesMonthlySkuRow,
    SalesWeeklySkuRow,
)
from db.upsert import insert_for
from domain.reporting import (
    UNCATEGORISED,
    Figures,
    LineFacts,
    OrderFacts,
    contributions,
    delta,
    utc_day,
)
from domain.state import OrderState

ORDER_KEY = ("day", "region", "tier", "status", "source", "sales_rep", "currency")
SKU_KEY = ("day", "region", "tier", "status", "sku", "category", "currency")
MONTH_SKU_KEY = ("month", *SKU_KEY[1:])
WEEK_SKU_KEY = ("week", *SKU_KEY[3:])  # no region, no tier
FIGURES = ("orders", "units", "revenue", "refunds")
# The orders columns the rollups depend on: if none changed, the rollups stay as they are.
_FACT_COLUMNS = (
    OrderRow.created_at,
    OrderRow.region,
    OrderRow.customer_tier,
    OrderRow.status,
    OrderRow.source,
    OrderRow.sales_rep,
    OrderRow.currency,
    OrderRow.total,
    OrderRow.refunded,
    OrderRow.revision,
)


@dataclass(frozen=True)
class Before:
    """The order's row as it was before this projection (None: a new order)."""

    facts: tuple[Any, ...]


async def read_before(session: AsyncSession, order_id: str) -> Before | None:
    """The order's rollup facts, row-locked on PostgreSQL so that two projections of one order
    (an activity retried while the first try still runs) move the rollups one after the other."""
    row = (
        await session.execute(
            select(*_FACT_COLUMNS).where(OrderRow.id == order_id).with_for_update()
        )
    ).first()
    return None if row is None else Before(tuple(row))


def facts_of(values: Mapping[str, Any]) -> tuple[Any, ...]:
    """The same facts as ``read_before`` returns, from the values the projection writes."""
    return tuple(values[c.key] for c in _FACT_COLUMNS)


async def categories(session: AsyncSession, skus: Sequence[str]) -> dict[str, str]:
    result = await session.execute(
        select(ProductRow.sku, ProductRow.category).where(ProductRow.sku.in_(sorted(set(skus))))
    )
    found: dict[str, str] = {row[0]: row[1] for row in result}
    return {sku: found.get(sku, UNCATEGORISED) for sku in skus}


async def apply(
    session: AsyncSession, state: OrderState, values: Mapping[str, Any], before: Before | None
) -> None:
    """Bring ``order_lines`` and the rollups in step with the order row just written."""
    new_facts = facts_of(values)
    if before is not None and before.facts == new_facts:
        return
    old_lines = (
        []
        if before is None
        else list(
            await session.scalars(
                select(OrderLineRow)
                .where(OrderLineRow.order_id == state.id)
                .order_by(OrderLineRow.line_no)
            )
        )
    )
    old_revision = None if before is None else before.facts[-1]
    if old_revision != state.revision or not old_lines:
        lines = await _write_lines(session, state, had_lines=bool(old_lines))
    else:
        lines = [LineFacts(r.sku, r.category, r.quantity, r.line_total) for r in old_lines]
    after = _order_facts(new_facts, lines)
    before_orders: dict[Any, Figures] = {}
    before_skus: dict[Any, Figures] = {}
    if before is not None:
        old = [LineFacts(r.sku, r.category, r.quantity, r.line_total) for r in old_lines]
        before_orders, before_skus = contributions(_order_facts(before.facts, old))
    after_orders, after_skus = contributions(after)
    await add(session, SalesDailyRow, ORDER_KEY, delta(before_orders, after_orders))
    sku_changes = delta(before_skus, after_skus)
    await add(session, SalesDailySkuRow, SKU_KEY, sku_changes)
    await add(session, SalesMonthlySkuRow, MONTH_SKU_KEY, monthly(sku_changes))
    await add(session, SalesWeeklySkuRow, WEEK_SKU_KEY, weekly(sku_changes))


def monthly(per_sku: Mapping[Any, Figures]) -> dict[Any, Figures]:
    """``sales_daily_sku`` keys and figures summed into ``sales_monthly_sku`` keys."""
    out: dict[Any, Figures] = {}
    for (day, *rest), f in per_sku.items():
        key = (day.replace(day=1), *rest)
        out[key] = out.get(key, Figures()) + f
    return out


def weekly(per_sku: Mapping[Any, Figures]) -> dict[Any, Figures]:
    """``sales_daily_sku`` keys and figures summed into ``sales_weekly_sku`` keys (the ISO
    week's Monday; region and tier summed away)."""
    out: dict[Any, Figures] = {}
    for (day, _region, _tier, *rest), f in per_sku.items():
        key = (day - timedelta(days=day.weekday()), *rest)
        out[key] = out.get(key, Figures()) + f
    return out


def _order_facts(facts: tuple[Any, ...], lines: Sequence[LineFacts]) -> OrderFacts:
    created_at, region, tier, status, source, rep, currency, total, refunded, _ = facts
    return OrderFacts(
        day=utc_day(created_at),
        region=region,
        tier=tier,
        status=status,
        source=source,
        sales_rep=rep or "",
        currency=currency,
        total=Decimal(total),
        refunded=Decimal(refunded or 0),
        lines=tuple(lines),
    )


def line_rows(state: OrderState, category: Mapping[str, str]) -> list[dict[str, Any]]:
    """The ``order_lines`` rows of ``state`` (``category``: SKU -> its product category)."""
    return [
        {
            "order_id": state.id,
            "line_no": n,
            "sku": line.sku,
            "category": category[line.sku],
            "quantity": line.quantity,
            "unit_price": line.unit_price,
            "line_total": line.line_total,
            "currency": state.currency,
        }
        for n, line in enumerate(state.lines, start=1)
    ]


async def _write_lines(
    session: AsyncSession, state: OrderState, *, had_lines: bool
) -> list[LineFacts]:
    if had_lines:
        await session.execute(delete(OrderLineRow).where(OrderLineRow.order_id == state.id))
    category = await categories(session, [line.sku for line in state.lines])
    rows = line_rows(state, category)
    if rows:
        await session.execute(insert(OrderLineRow), rows)
    return line_facts(state, category)


def line_facts(state: OrderState, category: Mapping[str, str]) -> list[LineFacts]:
    return [
        LineFacts(line.sku, category[line.sku], line.quantity, line.line_total)
        for line in state.lines
    ]


async def add(
    session: AsyncSession, model: Any, key: Sequence[str], changes: Mapping[Any, Figures]
) -> None:
    """Add ``changes`` to the rollup rows, creating missing ones; rows are written in key
    order so concurrent projections lock shared rows in the same order (no deadlock)."""
    if not changes:
        return
    rows = [
        {
            **dict(zip(key, k, strict=True)),
            "orders": f.orders,
            "units": f.units,
            "revenue": f.revenue,
            "refunds": f.refunds,
        }
        for k, f in sorted(changes.items())
    ]
    table = model.__table__
    stmt = insert_for(session, model).values(rows)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=list(key),
            set_={c: table.c[c] + stmt.excluded[c] for c in FIGURES},
        )
    )


async def rebuild(session: AsyncSession, *, chunk: int = 5000) -> int:
    """Recompute the rollups from ``orders`` and ``order_lines`` (after a bulk load, or to
    check the incremental upkeep); returns the number of orders read."""
    await session.execute(delete(SalesDailyRow))
    await session.execute(delete(SalesDailySkuRow))
    await session.execute(delete(SalesMonthlySkuRow))
    await session.execute(delete(SalesWeeklySkuRow))
    per_order: dict[Any, Figures] = {}
    per_sku: dict[Any, Figures] = {}
    count, after = 0, ""
    while True:
        rows = list(
            await session.execute(
                select(OrderRow.id, *_FACT_COLUMNS)
                .where(OrderRow.id > after)
                .order_by(OrderRow.id)
                .limit(chunk)
            )
        )
        if not rows:
            break
        ids = [r[0] for r in rows]
        lines: dict[str, list[LineFacts]] = {}
        for line in await session.scalars(
            select(OrderLineRow)
            .where(OrderLineRow.order_id.in_(ids))
            .order_by(OrderLineRow.order_id, OrderLineRow.line_no)
        ):
            lines.setdefault(line.order_id, []).append(
                LineFacts(line.sku, line.category, line.quantity, line.line_total)
            )
        for row in rows:
            orders, skus = contributions(_order_facts(tuple(row[1:]), lines.get(row[0], [])))
            for k, f in orders.items():
                per_order[k] = per_order.get(k, Figures()) + f
            for k, f in skus.items():
                per_sku[k] = per_sku.get(k, Figures()) + f
        count += len(rows)
        after = ids[-1]
    await _bulk(session, SalesDailyRow, ORDER_KEY, per_order)
    await _bulk(session, SalesDailySkuRow, SKU_KEY, per_sku)
    await _bulk(session, SalesMonthlySkuRow, MONTH_SKU_KEY, monthly(per_sku))
    await _bulk(session, SalesWeeklySkuRow, WEEK_SKU_KEY, weekly(per_sku))
    return count


async def _bulk(
    session: AsyncSession, model: Any, key: Sequence[str], figures: Mapping[Any, Figures]
) -> None:
    rows = [
        {**dict(zip(key, k, strict=True)), **{c: getattr(f, c) for c in FIGURES}}
        for k, f in sorted(figures.items())
        if not f.zero
    ]
    for start in range(0, len(rows), 2000):
        await session.execute(insert(model), rows[start : start + 2000])


def event_times(events: Sequence[Any]) -> dict[str, datetime]:
    """confirmed_at / shipped_at / delivered_at from the events of one projection."""
    out: dict[str, datetime] = {}
    for logged in events:
        event = logged.event
        column = {"confirmed": "confirmed_at", "shipped": "shipped_at"}.get(event.type)
        if event.type == "delivered":
            column = "delivered_at"
        if column and column not in out:
            out[column] = event.at
    return out
