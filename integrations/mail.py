"""Outgoing mail: the simulator writes each message to an outbox table, once per key.

Recipient and body are personal data: the outbox keeps them sealed under the order's customer's
data key (db.vault), so erasing the customer shreds them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import OrderRow, OutboxRow
from db.session import SessionFactory
from db.upsert import insert_for
from db.vault import Vault


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
    def __init__(self, sessions: SessionFactory, vault: Vault) -> None:
        self._sessions = sessions
        self._vault = vault

    @staticmethod
    async def _owner(session: AsyncSession, order_id: str) -> str:
        """Whose data key seals the message: the order's customer (an order is projected before
        anything is sent for it); an order not projected yet gets a key of its own."""
        customer = await session.scalar(select(OrderRow.customer_id).where(OrderRow.id == order_id))
        return str(customer) if customer else f"order:{order_id}"

    async def send(self, message: Message) -> None:
        async with self._sessions.begin() as session:
            owner = await self._owner(session, message.order_id)
            stmt = insert_for(session, OutboxRow).values(
                key=message.key,
                order_id=message.order_id,
                kind=message.kind,
                owner=owner,
                recipient=await self._vault.seal_text(session, owner, message.recipient),
                subject=message.subject,
                body=await self._vault.seal_text(session, owner, message.body),
                created_at=datetime.now(UTC),
            )
            await session.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))

    async def sent(self, order_id: str) -> list[Message]:
        """The messages sent for an order, oldest first, opened (erased ones as placeholders)."""
        async with self._sessions() as session:
            rows = list(
                await session.scalars(
                    select(OutboxRow)
                    .where(OutboxRow.order_id == order_id)
                    .order_by(OutboxRow.created_at)
                )
            )
            recipients = await self._vault.open_texts(
                session, [(r.owner, r.recipient) for r in rows], "email"
            )
            bodies = await self._vault.open_texts(session, [(r.owner, r.body) for r in rows])
        return [
            Message(r.key, r.order_id, r.kind, to, r.subject, body)
            for r, to, body in zip(rows, recipients, bodies, strict=True)
        ]
