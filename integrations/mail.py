"""Outgoing mail: the simulator writes each message to an outbox table, once per key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import select

from db.models import OutboxRow
from db.session import SessionFactory
from db.upsert import insert_for


@dataclass(frozen=True)
class Message:
    key: str
    order_id: str
    kind: str
    recipient: str
    subject: str
    body: str


class Mailer(Protocol):
    async def send(self, message: Message) -> None: ...


class OutboxMailer:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    async def send(self, message: Message) -> None:
        async with self._sessions.begin() as session:
            stmt = insert_for(session, OutboxRow).values(
                key=message.key,
                order_id=message.order_id,
                kind=message.kind,
                recipient=message.recipient,
                subject=message.subject,
                body=message.body,
                created_at=datetime.now(UTC),
            )
            await session.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))

    async def sent(self, order_id: str) -> list[OutboxRow]:
        async with self._sessions() as session:
            result = await session.scalars(
                select(OutboxRow)
                .where(OutboxRow.order_id == order_id)
                .order_by(OutboxRow.created_at)
            )
            return list(result)
