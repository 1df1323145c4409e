"""Approvers: decide at their level, send orders back for changes, and their inbox."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from api.auth import Principal, Role
from api.deps import OrdersDep, SessionDep, require
from api.errors import ApiError
from api.routes.orders import ERRORS, STILL_RUNNING, CommandKey, OrderId, command
from api.schemas import (
    AmendRequest,
    ApproveRequest,
    InboxItem,
    InboxPage,
    RejectRequest,
    RequestChangesRequest,
)
from db.inbox import inbox
from db.readmodel import BadCursor
from domain.order import CustomerTier
from domain.view import OrderView
from workflows.contracts import AmendInput, ApproveInput, RejectInput, RequestChangesInput
from workflows.order import OrderWorkflow

router = APIRouter(tags=["approvals"], responses=ERRORS)
Approver = Annotated[Principal, Depends(require(Role.APPROVER))]
Sales = Annotated[Principal, Depends(require(Role.SYSTEM, Role.SUPPORT))]


def _levels(principal: Principal) -> list[int]:
    return sorted(principal.approval_levels)


@router.post("/orders/{order_id}/approve", response_model=OrderView, responses=STILL_RUNNING)
async def approve_order(
    order_id: OrderId,
    body: ApproveRequest,
    principal: Approver,
    orders: OrdersDep,
    response: Response,
    key: CommandKey = None,
) -> OrderView:
    """Approve at the caller's current level (or `level`)."""
    inp = ApproveInput(
        actor=principal.name,
        actor_levels=_levels(principal),
        level=body.level,
        comment=body.comment,
    )
    return await command(orders, order_id, OrderWorkflow.approve, inp, response, key)


@router.post("/orders/{order_id}/reject", response_model=OrderView, responses=STILL_RUNNING)
async def reject_order(
    order_id: OrderId,
    body: RejectRequest,
    principal: Approver,
    orders: OrdersDep,
    response: Response,
    key: CommandKey = None,
) -> OrderView:
    """Reject at the caller's level; stock is released, nothing is charged."""
    inp = RejectInput(
        actor=principal.name, actor_levels=_levels(principal), level=body.level, reason=body.reason
    )
    return await command(orders, order_id, OrderWorkflow.reject, inp, response, key)


@router.post(
    "/orders/{order_id}/request-changes", response_model=OrderView, responses=STILL_RUNNING
)
async def request_changes(
    order_id: OrderId,
    body: RequestChangesRequest,
    principal: Approver,
    orders: OrdersDep,
    response: Response,
    key: CommandKey = None,
) -> OrderView:
    """Send the order back to sales to amend."""
    inp = RequestChangesInput(
        actor=principal.name, actor_levels=_levels(principal), level=body.level, reason=body.reason
    )
    return await command(orders, order_id, OrderWorkflow.request_changes, inp, response, key)


@router.post("/orders/{order_id}/amend", response_model=OrderView, responses=STILL_RUNNING)
async def amend_order(
    order_id: OrderId,
    body: AmendRequest,
    principal: Sales,
    orders: OrdersDep,
    response: Response,
    key: CommandKey = None,
) -> OrderView:
    """Amend lines or address of an order sent back for changes; approval starts again."""
    inp = AmendInput(actor=principal.name, lines=body.lines, shipping_address=body.shipping_address)
    return await command(orders, order_id, OrderWorkflow.amend, inp, response, key)


@router.get("/approvals/inbox", response_model=InboxPage)
async def approval_inbox(
    principal: Approver,
    session: SessionDep,
    level: Annotated[int | None, Query(ge=1, le=9)] = None,
    tier: CustomerTier | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> InboxPage:
    """Orders waiting on a level the caller may decide, oldest first (from the read model)."""
    try:
        entries, next_cursor = await inbox(
            session,
            actor=principal.name,
            levels=principal.approval_levels,
            level=level,
            tier=tier.value if tier else None,
            limit=limit,
            cursor=cursor,
        )
    except BadCursor as exc:
        raise ApiError(
            422, "invalid_input", f"cursor: {exc}", fields=[{"field": "cursor", "reason": str(exc)}]
        ) from exc
    now = datetime.now(UTC)
    items = [
        InboxItem(**e.model_dump(), waiting_seconds=int((now - e.waiting_since).total_seconds()))
        for e in entries
    ]
    return InboxPage(items=items, next_cursor=next_cursor)
