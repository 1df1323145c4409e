"""Use cases of approvers and sales: decide at a level, send back, amend, and the inbox."""

from __future__ import annotations

from datetime import UTC, datetime

from db.inbox import inbox
from db.readmodel import BadCursor
from domain.order import Address, CustomerTier, OrderLine
from services.auth import Principal
from services.commands import Commands
from services.context import Services
from services.errors import invalid
from services.orders import Outcome
from services.views import InboxItem, InboxPage
from workflows.contracts import AmendInput, ApproveInput, RejectInput, RequestChangesInput
from workflows.order import OrderWorkflow


class Approvals:
    def __init__(self, services: Services) -> None:
        self._s = services
        self._commands = Commands(services)

    @staticmethod
    def _levels(principal: Principal) -> list[int]:
        return sorted(principal.approval_levels)

    async def approve(
        self, order_id: str, p: Principal, comment: str | None, level: int | None, key: str | None
    ) -> Outcome:
        inp = ApproveInput(actor=p.name, actor_levels=self._levels(p), level=level, comment=comment)
        return await self._commands.command(order_id, OrderWorkflow.approve, inp, key)

    async def reject(
        self, order_id: str, p: Principal, reason: str, level: int | None, key: str | None
    ) -> Outcome:
        inp = RejectInput(actor=p.name, actor_levels=self._levels(p), level=level, reason=reason)
        return await self._commands.command(order_id, OrderWorkflow.reject, inp, key)

    async def request_changes(
        self, order_id: str, p: Principal, reason: str, level: int | None, key: str | None
    ) -> Outcome:
        inp = RequestChangesInput(
            actor=p.name, actor_levels=self._levels(p), level=level, reason=reason
        )
        return await self._commands.command(order_id, OrderWorkflow.request_changes, inp, key)

    async def amend(
        self,
        order_id: str,
        p: Principal,
        lines: list[OrderLine] | None,
        shipping_address: Address | None,
        key: str | None,
    ) -> Outcome:
        inp = AmendInput(actor=p.name, lines=lines, shipping_address=shipping_address)
        return await self._commands.command(order_id, OrderWorkflow.amend, inp, key, p)

    async def inbox(
        self,
        p: Principal,
        *,
        level: int | None,
        tier: CustomerTier | None,
        limit: int,
        cursor: str | None,
    ) -> InboxPage:
        """Orders waiting on a level the caller may decide, oldest first (read model)."""
        try:
            async with self._s.sessions() as session:
                entries, next_cursor = await inbox(
                    session,
                    vault=self._s.vault,
                    actor=p.name,
                    levels=p.approval_levels,
                    level=level,
                    tier=tier.value if tier else None,
                    limit=limit,
                    cursor=cursor,
                )
        except BadCursor as exc:
            raise invalid("cursor", str(exc)) from exc
        now = datetime.now(UTC)
        items = [
            InboxItem(
                **e.model_dump(), waiting_seconds=int((now - e.waiting_since).total_seconds())
            )
            for e in entries
        ]
        return InboxPage(items=items, next_cursor=next_cursor)
