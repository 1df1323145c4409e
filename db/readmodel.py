"""The order read model: projection writes and the queries support and reports run on it."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ApprovalConflictRow, ApprovalInboxRow, OrderRow, TimelineRow
from db.upsert import insert_for
from domain.status import TERMINAL, OrderStatus
from domain.view import OrderView, TimelineEvent

OPEN_STATUSES = [s.value for s in OrderStatus if s not in TERMINAL]


def _order_values(view: OrderView, seq: int) -> dict[str, Any]:
    return {
        "id": view.id,
        "status": view.status.value,
        "closed": view.status.is_terminal,
        "customer_id": view.customer.id,
        "customer_tier": view.customer.tier.value,
        "region": view.customer.region,
        "currency": view.currency,
        "total": view.total,
        "created_by": view.created_by,
        "created_at": view.created_at,
        "updated_at": view.updated_at,
        "seq": seq,
        "snapshot": view.model_dump(mode="json", exclude={"timeline"}),
    }


async def project(session: AsyncSession, view: OrderView, events: list[TimelineEvent]) -> None:
    """Upsert the order row and its timeline rows, idempotently on (order id, seq).

    The row is only overwritten by a view with the same or a higher ``seq``, so a late retry of
    an older projection cannot move an order backwards. A repeated seq overwrites: a workflow
    task that was retried records its events again, and the attempt that counts comes last.
    """
    seq = max((e.seq for e in view.timeline), default=0)
    seq = max([seq, *(e.seq for e in events)])
    values = _order_values(view, seq)
    stmt = insert_for(session, OrderRow).values(**values)
    update_cols = {k: stmt.excluded[k] for k in values if k not in ("id", "created_at")}
    # A closed order's projection is final: it wins even over rows a discarded (retried)
    # workflow task wrote with higher sequence numbers, and removes their extra events.
    newer = or_(OrderRow.seq <= stmt.excluded.seq, stmt.excluded.closed)
    applied = await session.execute(
        stmt.on_conflict_do_update(index_elements=["id"], set_=update_cols, where=newer)
    )
    if view.status.is_terminal:
        await session.execute(
            delete(TimelineRow).where(TimelineRow.order_id == view.id, TimelineRow.seq > seq)
        )
    # Orders without a chain never had inbox rows (they leave the inbox before a chain empties).
    if applied.rowcount and view.approval.levels:  # type: ignore[attr-defined]
        await _sync_approvals(session, view)
    if events:
        rows = [
            {
                "order_id": view.id,
                "seq": e.seq,
                "at": e.at,
                "type": e.type,
                "status": e.status.value,
                "actor": e.actor,
                "message": e.message,
                "data": e.data,
            }
            for e in events
        ]
        ins = insert_for(session, TimelineRow).values(rows)
        columns = ("at", "type", "status", "actor", "message", "data")
        await session.execute(
            ins.on_conflict_do_update(
                index_elements=["order_id", "seq"], set_={c: ins.excluded[c] for c in columns}
            )
        )


async def _sync_approvals(session: AsyncSession, view: OrderView) -> None:
    """Keep the approval inbox rows and the approvers' conflicts in step with the order."""
    await session.execute(delete(ApprovalInboxRow).where(ApprovalInboxRow.order_id == view.id))
    approval = view.approval
    waiting = next((lv for lv in approval.levels if lv.level == approval.current_level), None)
    if view.status is OrderStatus.AWAITING_APPROVAL and waiting and waiting.waiting_since:
        session.add_all(
            ApprovalInboxRow(
                order_id=view.id,
                eligible_level=eligible,
                level=waiting.level,
                level_name=waiting.name,
                waiting_since=waiting.waiting_since,
                next_deadline=approval.next_deadline,
                next_deadline_kind=approval.next_deadline_kind,
                customer_id=view.customer.id,
                customer_name=view.customer.name,
                customer_tier=view.customer.tier.value,
                total=view.total,
                currency=view.currency,
            )
            for eligible in sorted(set(waiting.eligible_levels))
        )
    actors = {view.created_by, *(a.by for lv in approval.levels for a in lv.approvals)}
    if view.sales_rep:
        actors.add(view.sales_rep)
    ins = insert_for(session, ApprovalConflictRow).values(
        [{"order_id": view.id, "actor": actor} for actor in sorted(actors)]
    )
    await session.execute(ins.on_conflict_do_nothing(index_elements=["order_id", "actor"]))
    await session.flush()


async def get_order(session: AsyncSession, order_id: str) -> OrderView | None:
    row = await session.get(OrderRow, order_id)
    if row is None:
        return None
    view = OrderView.model_validate(row.snapshot)
    view.timeline = await get_timeline(session, order_id)
    return view


async def get_row(session: AsyncSession, order_id: str) -> OrderRow | None:
    return await session.get(OrderRow, order_id)


async def get_status(session: AsyncSession, order_id: str) -> OrderStatus | None:
    """Only the recorded status: the cheap read a long poll repeats."""
    value = await session.scalar(select(OrderRow.status).where(OrderRow.id == order_id))
    return None if value is None else OrderStatus(value)


async def get_timeline(session: AsyncSession, order_id: str) -> list[TimelineEvent]:
    result = await session.scalars(
        select(TimelineRow).where(TimelineRow.order_id == order_id).order_by(TimelineRow.seq)
    )
    return [
        TimelineEvent(
            seq=r.seq,
            at=r.at,
            type=r.type,
            status=OrderStatus(r.status),
            actor=r.actor,
            message=r.message,
            data=r.data,
        )
        for r in result
    ]


async def open_exposure(
    session: AsyncSession, *, customer_id: str, currency: str, exclude_order: str
) -> Decimal:
    """Total of the customer's open orders in one currency, except the one being checked."""
    total = await session.scalar(
        select(func.coalesce(func.sum(OrderRow.total), 0)).where(
            OrderRow.customer_id == customer_id,
            OrderRow.currency == currency,
            OrderRow.status.in_(OPEN_STATUSES),
            OrderRow.id != exclude_order,
        )
    )
    return Decimal(total or 0)


@dataclass(frozen=True)
class OrderFilter:
    status: OrderStatus | None = None
    customer_id: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


_CURSOR_ID = re.compile(r"^[A-Za-z0-9-]{1,32}$")


class BadCursor(ValueError):
    pass


def encode_cursor(at: datetime, order_id: str) -> str:
    """An opaque keyset cursor for a (time, order id) position."""
    raw = f"{at.isoformat()}|{order_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, order_id = raw.split("|", 1)
        if not _CURSOR_ID.match(order_id):
            raise ValueError("bad order id")
        return datetime.fromisoformat(at), order_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("cursor is not one this API returned") from exc


async def list_orders(
    session: AsyncSession, flt: OrderFilter, *, limit: int, cursor: str | None
) -> tuple[list[OrderRow], str | None]:
    """Newest first, keyset-paginated on (created_at, id); returns rows and the next cursor."""
    stmt = select(OrderRow)
    if flt.status is not None:
        stmt = stmt.where(OrderRow.status == flt.status.value)
    if flt.customer_id is not None:
        stmt = stmt.where(OrderRow.customer_id == flt.customer_id)
    if flt.created_from is not None:
        stmt = stmt.where(OrderRow.created_at >= flt.created_from)
    if flt.created_to is not None:
        stmt = stmt.where(OrderRow.created_at < flt.created_to)
    if cursor:
        at, order_id = decode_cursor(cursor)
        stmt = stmt.where(
            or_(OrderRow.created_at < at, and_(OrderRow.created_at == at, OrderRow.id < order_id))
        )
    stmt = stmt.order_by(OrderRow.created_at.desc(), OrderRow.id.desc()).limit(limit + 1)
    rows = list(await session.scalars(stmt))
    last = rows[limit - 1] if len(rows) > limit else None
    next_cursor = encode_cursor(last.created_at, last.id) if last else None
    return rows[:limit], next_cursor
