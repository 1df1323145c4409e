"""The approvers' inbox: orders waiting on a level the caller may decide, oldest first."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel
from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ApprovalConflictRow, ApprovalInboxRow
from db.readmodel import decode_cursor, encode_cursor
from db.vault import Vault


class InboxEntry(BaseModel):
    order_id: str
    level: int
    level_name: str
    waiting_since: datetime
    next_deadline: datetime | None
    next_deadline_kind: str | None
    customer_id: str
    customer_name: str
    customer_tier: str
    total: Decimal
    currency: str


async def inbox(
    session: AsyncSession,
    *,
    vault: Vault,
    actor: str,
    levels: Collection[int],
    level: int | None = None,
    tier: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[InboxEntry], str | None]:
    """Orders ``actor`` may decide now: an eligible level held, and no conflict of interest."""
    if not levels:
        return [], None
    row = ApprovalInboxRow
    columns = [
        row.order_id,
        row.level,
        row.level_name,
        row.waiting_since,
        row.next_deadline,
        row.next_deadline_kind,
        row.customer_id,
        row.customer_name,
        row.customer_tier,
        row.total,
        row.currency,
    ]
    conflicted = exists().where(
        ApprovalConflictRow.order_id == row.order_id, ApprovalConflictRow.actor == actor
    )
    stmt = select(*columns).where(row.eligible_level.in_(list(levels)), ~conflicted).distinct()
    if level is not None:
        stmt = stmt.where(row.level == level)
    if tier is not None:
        stmt = stmt.where(row.customer_tier == tier)
    if cursor:
        at, order_id = decode_cursor(cursor)
        stmt = stmt.where(
            or_(row.waiting_since > at, and_(row.waiting_since == at, row.order_id > order_id))
        )
    stmt = stmt.order_by(row.waiting_since, row.order_id).limit(limit + 1)
    rows = [r._asdict() for r in await session.execute(stmt)]
    names = await vault.open_texts(session, [(r["customer_id"], r["customer_name"]) for r in rows])
    entries = [
        InboxEntry.model_validate({**r, "customer_name": name})
        for r, name in zip(rows, names, strict=True)
    ]
    last = entries[limit - 1] if len(entries) > limit else None
    next_cursor = encode_cursor(last.waiting_since, last.order_id) if last else None
    return entries[:limit], next_cursor
