"""The order read model and the event log: projection writes, and the queries support,
reports and event consumers run on them."""

from __future__ import annotations

import base64
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db import rollup
from db.models import ApprovalConflictRow, ApprovalInboxRow, OrderEventRow, OrderRow
from db.upsert import insert_for
from db.vault import Vault
from domain.events import OrderEvent, parse_event
from domain.reporting import close_reason_code
from domain.state import LoggedEvent, OrderState
from domain.status import TERMINAL, OrderStatus

OPEN_STATUSES = [s.value for s in OrderStatus if s not in TERMINAL]
# Serialises event-log inserts on PostgreSQL so global ids commit in order: a consumer that read
# up to id N never misses a row committed later with a smaller id. (SQLite serialises writers.)
EVENT_LOG_LOCK = 0x0E7E


def _order_values(state: OrderState, snapshot: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": state.id,
        "status": state.status.value,
        "closed": state.status.is_terminal,
        "customer_id": state.customer.id,
        "customer_tier": state.customer.tier.value,
        "region": state.customer.region,
        "currency": state.currency,
        "total": state.total,
        "created_by": state.created_by,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "seq": state.seq,
        "snapshot": snapshot,
        "external_reference": state.external_reference,
        "source": state.source.value,
        "sales_rep": state.sales_rep,
        "revision": state.revision,
        "refunded": state.payment.refunded,
        "closed_at": _closed_at(state),
        "close_reason": (
            close_reason_code(state.status, state.closure.by, state.closure.reason)
            if state.closure
            else None
        ),
    }


def _closed_at(state: OrderState) -> datetime | None:
    if not state.status.is_terminal:
        return None
    return state.closure.at if state.closure else state.updated_at


async def project(
    session: AsyncSession,
    state: OrderState,
    events: Sequence[LoggedEvent],
    *,
    vault: Vault,
    final: bool = False,
) -> None:
    """Upsert the order's row and append its events to the log, idempotently on (order, seq).

    The row is only overwritten by a state with the same or a higher ``seq``, so a late retry
    of an older projection cannot move an order backwards. An event already logged under the
    same seq is kept if identical; if different (a retried workflow task recorded another
    outcome) it is replaced under a new global id, so cursor readers see the replacement. A
    closed order's (``final``) projection is the truth: it wins over rows a discarded task
    wrote with higher seqs, and removes their extra events. Customer PII in the snapshot and
    the events is sealed with ``vault`` under the customer's data key.
    """
    customer_id = state.customer.id
    values = _order_values(
        state, await vault.seal(session, customer_id, state.model_dump(mode="json"))
    )
    before = await rollup.read_before(session, state.id)
    times = rollup.event_times(events)
    stmt = insert_for(session, OrderRow).values(**values, **times)
    update_cols = {k: stmt.excluded[k] for k in values if k not in ("id", "created_at")}
    for column in times:  # the first time an order got there stays
        update_cols[column] = func.coalesce(getattr(OrderRow, column), stmt.excluded[column])
    newer = or_(OrderRow.seq <= stmt.excluded.seq, stmt.excluded.closed)
    applied = await session.execute(
        stmt.on_conflict_do_update(index_elements=["id"], set_=update_cols, where=newer)
    )
    if applied.rowcount:  # type: ignore[attr-defined]
        await rollup.apply(session, state, values, before)
    if final:
        await session.execute(
            delete(OrderEventRow).where(
                OrderEventRow.order_id == state.id, OrderEventRow.seq > state.seq
            )
        )
    if applied.rowcount and state.approval.levels:  # type: ignore[attr-defined]
        await _sync_approvals(session, state, vault)
    if events:
        await _log_events(session, state, events, vault)


async def _log_events(
    session: AsyncSession, state: OrderState, events: Sequence[LoggedEvent], vault: Vault
) -> None:
    """Insert the events; only seqs that are logged already (a retried projection or task) are
    compared (unsealed), and replaced if different. Each row carries the order's source, so
    the feed filters on it in one indexed range read."""
    order_id, customer_id = state.id, state.customer.id
    plain = {logged.event.seq: logged.event.model_dump(mode="json") for logged in events}
    rows = {
        logged.event.seq: {
            "order_id": order_id,
            "seq": logged.event.seq,
            "type": logged.event.type,
            "actor": logged.event.actor,
            "at": logged.event.at,
            "status": logged.status.value,
            "payload": await vault.seal(session, customer_id, plain[logged.event.seq]),
            "source": state.source.value,
        }
        for logged in events
    }
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(EVENT_LOG_LOCK)))
    stmt = insert_for(session, OrderEventRow).values([rows[seq] for seq in sorted(rows)])
    inserted = set(
        await session.scalars(
            stmt.on_conflict_do_nothing(index_elements=["order_id", "seq"]).returning(
                OrderEventRow.seq
            )
        )
    )
    taken = [seq for seq in rows if seq not in inserted]
    if not taken:
        return
    logged_rows = list(
        await session.execute(
            select(OrderEventRow.seq, OrderEventRow.status, OrderEventRow.payload).where(
                OrderEventRow.order_id == order_id, OrderEventRow.seq.in_(taken)
            )
        )
    )
    opened = await vault.open_many(session, [r.payload for r in logged_rows])
    existing = {r.seq: (r.status, p) for r, p in zip(logged_rows, opened, strict=True)}
    changed = sorted(s for s in taken if existing.get(s) != (rows[s]["status"], plain[s]))
    if changed:
        await session.execute(
            delete(OrderEventRow).where(
                OrderEventRow.order_id == order_id, OrderEventRow.seq.in_(changed)
            )
        )
        await session.execute(insert(OrderEventRow), [rows[seq] for seq in changed])


async def _sync_approvals(session: AsyncSession, state: OrderState, vault: Vault) -> None:
    """Keep the approval inbox rows and the approvers' conflicts in step with the order."""
    await session.execute(delete(ApprovalInboxRow).where(ApprovalInboxRow.order_id == state.id))
    approval = state.approval
    waiting = approval.waiting()
    if state.status is OrderStatus.AWAITING_APPROVAL and waiting and waiting.waiting_since:
        name = await vault.seal_text(session, state.customer.id, state.customer.name)
        session.add_all(
            ApprovalInboxRow(
                order_id=state.id,
                eligible_level=eligible,
                level=waiting.level,
                level_name=waiting.name,
                waiting_since=waiting.waiting_since,
                next_deadline=approval.next_deadline,
                next_deadline_kind=approval.next_deadline_kind,
                customer_id=state.customer.id,
                customer_name=name,
                customer_tier=state.customer.tier.value,
                total=state.total,
                currency=state.currency,
            )
            for eligible in sorted(set(waiting.eligible_levels))
        )
    actors = {state.created_by, *(a.by for lv in approval.levels for a in lv.approvals)}
    if state.sales_rep:
        actors.add(state.sales_rep)
    ins = insert_for(session, ApprovalConflictRow).values(
        [{"order_id": state.id, "actor": actor} for actor in sorted(actors)]
    )
    await session.execute(ins.on_conflict_do_nothing(index_elements=["order_id", "actor"]))
    await session.flush()


async def get_state(session: AsyncSession, order_id: str, vault: Vault) -> OrderState | None:
    """The stored state with its PII opened (placeholders where the customer was erased)."""
    row = await session.get(OrderRow, order_id)
    if row is None:
        return None
    return OrderState.model_validate(await vault.open(session, row.snapshot))


async def get_row(session: AsyncSession, order_id: str) -> OrderRow | None:
    return await session.get(OrderRow, order_id)


async def get_status(session: AsyncSession, order_id: str) -> OrderStatus | None:
    """Only the recorded status: the cheap read a long poll repeats."""
    value = await session.scalar(select(OrderRow.status).where(OrderRow.id == order_id))
    return None if value is None else OrderStatus(value)


@dataclass(frozen=True)
class StoredEvent:
    """An event as the log holds it: global id (the cursor), status after it, the event."""

    id: int
    order_id: str
    status: OrderStatus
    event: OrderEvent


async def _stored(
    session: AsyncSession, rows: Sequence[OrderEventRow], vault: Vault
) -> list[StoredEvent]:
    payloads = await vault.open_many(session, [r.payload for r in rows])
    return [
        StoredEvent(
            id=row.id,
            order_id=row.order_id,
            status=OrderStatus(row.status),
            event=parse_event(payload),
        )
        for row, payload in zip(rows, payloads, strict=True)
    ]


async def order_events(session: AsyncSession, order_id: str, vault: Vault) -> list[StoredEvent]:
    """Every logged event of one order, in sequence, PII opened."""
    rows = await session.scalars(
        select(OrderEventRow).where(OrderEventRow.order_id == order_id).order_by(OrderEventRow.seq)
    )
    return await _stored(session, list(rows), vault)


async def last_seq(session: AsyncSession, order_id: str) -> int:
    """The highest logged ``seq`` of one order (0 before its first event): a cheap poll."""
    found = await session.scalar(
        select(func.max(OrderEventRow.seq)).where(OrderEventRow.order_id == order_id)
    )
    return int(found or 0)


async def events_after(
    session: AsyncSession,
    after: int,
    *,
    vault: Vault,
    limit: int,
    types: Collection[str] | None = None,
    order_id: str | None = None,
    sources: Collection[str] | None = None,
) -> list[StoredEvent]:
    """Events with a global id above ``after``, oldest first: one indexed range read."""
    stmt = select(OrderEventRow).where(OrderEventRow.id > after)
    if types:
        stmt = stmt.where(OrderEventRow.type.in_(list(types)))
    if sources:
        stmt = stmt.where(OrderEventRow.source.in_(list(sources)))
    if order_id is not None:
        stmt = stmt.where(OrderEventRow.order_id == order_id)
    rows = await session.scalars(stmt.order_by(OrderEventRow.id).limit(limit))
    return await _stored(session, list(rows), vault)


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
    created_by: str | None = None
    order_id: str | None = None
    external_reference: str | None = None
    source: str | None = None


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
    if flt.created_by is not None:
        stmt = stmt.where(OrderRow.created_by == flt.created_by)
    if flt.order_id is not None:
        stmt = stmt.where(OrderRow.id == flt.order_id)
    if flt.external_reference is not None:
        stmt = stmt.where(OrderRow.external_reference == flt.external_reference)
    if flt.source is not None:
        stmt = stmt.where(OrderRow.source == flt.source)
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
