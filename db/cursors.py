"""Where each consumer of the event log (``order_events.id``) has read to."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ConsumerCursorRow, OrderEventRow
from db.upsert import insert_for

MAIL = "mail"


async def advance(session: AsyncSession, name: str, position: int) -> None:
    """Move the consumer to ``position``, never back."""
    now = datetime.now(UTC)
    stmt = insert_for(session, ConsumerCursorRow).values(
        name=name, position=position, updated_at=now
    )
    kept = ConsumerCursorRow.position
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"position": case((kept > position, kept), else_=position), "updated_at": now},
        )
    )


async def start_at_end(session: AsyncSession, name: str) -> None:
    """A consumer that never read starts after the events logged so far and ignores orders
    created before now: turning email on for a service with a history (or seeding a demo
    history later, services/demo_seed.py) sends nothing about that history."""
    if await session.get(ConsumerCursorRow, name) is None:
        top = await session.scalar(select(func.max(OrderEventRow.id)))
        now = datetime.now(UTC)
        stmt = insert_for(session, ConsumerCursorRow).values(
            name=name, position=top or 0, since=now, updated_at=now
        )
        await session.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))


async def since(session: AsyncSession, name: str) -> datetime | None:
    return await session.scalar(
        select(ConsumerCursorRow.since).where(ConsumerCursorRow.name == name)
    )
