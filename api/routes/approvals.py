"""Approvers: decide at their level, send orders back for changes, and their inbox."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from api.deps import ApprovalsDep, allow
from api.routes.orders import ERRORS, STILL_RUNNING, CommandKey, OrderId, answer
from api.schemas import AmendRequest, ApproveRequest, RejectRequest, RequestChangesRequest
from domain.order import CustomerTier
from services.auth import Principal, Role, Scope
from services.views import InboxPage, OrderDetail

router = APIRouter(tags=["approvals"], responses=ERRORS)
# Decisions are not limited to the caller's own orders: orders:own keys may not decide.
Approver = Annotated[
    Principal, Depends(allow(Role.APPROVER, scope=Scope.APPROVALS_DECIDE, own=False))
]
Sales = Annotated[Principal, Depends(allow(Role.SYSTEM, Role.SUPPORT, scope=Scope.ORDERS_AMEND))]


@router.post("/orders/{order_id}/approve", response_model=OrderDetail, responses=STILL_RUNNING)
async def approve_order(
    order_id: OrderId,
    body: ApproveRequest,
    principal: Approver,
    approvals: ApprovalsDep,
    response: Response,
    key: CommandKey = None,
) -> OrderDetail:
    """Approve at the caller's current level (or `level`)."""
    outcome = await approvals.approve(order_id, principal, body.comment, body.level, key)
    return answer(outcome, response)


@router.post("/orders/{order_id}/reject", response_model=OrderDetail, responses=STILL_RUNNING)
async def reject_order(
    order_id: OrderId,
    body: RejectRequest,
    principal: Approver,
    approvals: ApprovalsDep,
    response: Response,
    key: CommandKey = None,
) -> OrderDetail:
    """Reject at the caller's level; stock is released, nothing is charged."""
    outcome = await approvals.reject(order_id, principal, body.reason, body.level, key)
    return answer(outcome, response)


@router.post(
    "/orders/{order_id}/request-changes", response_model=OrderDetail, responses=STILL_RUNNING
)
async def request_changes(
    order_id: OrderId,
    body: RequestChangesRequest,
    principal: Approver,
    approvals: ApprovalsDep,
    response: Response,
    key: CommandKey = None,
) -> OrderDetail:
    """Send the order back to sales to amend."""
    outcome = await approvals.request_changes(order_id, principal, body.reason, body.level, key)
    return answer(outcome, response)


@router.post("/orders/{order_id}/amend", response_model=OrderDetail, responses=STILL_RUNNING)
async def amend_order(
    order_id: OrderId,
    body: AmendRequest,
    principal: Sales,
    approvals: ApprovalsDep,
    response: Response,
    key: CommandKey = None,
) -> OrderDetail:
    """Amend lines or address of an order sent back for changes; approval starts again."""
    outcome = await approvals.amend(order_id, principal, body.lines, body.shipping_address, key)
    return answer(outcome, response)


@router.get("/approvals/inbox", response_model=InboxPage)
async def approval_inbox(
    principal: Approver,
    approvals: ApprovalsDep,
    level: Annotated[int | None, Query(ge=1, le=9)] = None,
    tier: CustomerTier | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> InboxPage:
    """Orders waiting on a level the caller may decide, oldest first (from the read model)."""
    return await approvals.inbox(principal, level=level, tier=tier, limit=limit, cursor=cursor)
