"""Orders: create, read, list, and the commands approvers, support and systems send."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Response, status

from api.auth import Principal, Role
from api.deps import OrdersDep, PrincipalDep, SessionDep, require
from api.errors import ApiError, ErrorBody
from api.orders import Orders
from api.schemas import (
    CancelRequest,
    OrderPage,
    OrderSummary,
    PaymentRequest,
    ShipmentEventAccepted,
    ShipmentEventRequest,
    Timeline,
)
from db import readmodel
from domain.order import OrderSpec
from domain.status import RESTING, TERMINAL, Action, OrderStatus
from domain.view import OrderView
from workflows.contracts import (
    CancelInput,
    CarrierEventInput,
    PaymentInput,
)
from workflows.order import OrderWorkflow

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422, 503)
}
router = APIRouter(prefix="/orders", tags=["orders"], responses=ERRORS)


Creator = Annotated[Principal, Depends(require(Role.SYSTEM))]
Canceller = Annotated[Principal, Depends(require(Role.SYSTEM, Role.SUPPORT))]
Webhook = Annotated[Principal, Depends(require(Role.SYSTEM))]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Same key and body return the same order; same key, other body: 409.",
    ),
]


OrderId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9-]{1,32}$", description="e.g. SO-20261123-7K2QF")
]


def _utc(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        reason = "date is out of range"
        raise ApiError(
            422, "invalid_input", f"{field}: {reason}", fields=[{"field": field, "reason": reason}]
        ) from exc


STILL_RUNNING: dict[int | str, dict[str, Any]] = {
    202: {"model": OrderView, "description": "Accepted, still running: the current state"}
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderView,
    responses={
        200: {
            "model": OrderView,
            "description": "Same Idempotency-Key and body: the order created before",
        }
    },
)
async def create_order(
    spec: OrderSpec,
    principal: Creator,
    orders: OrdersDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> OrderView:
    """Start an order; totals are computed here, never taken from the request."""
    view, created = await orders.create(spec, principal.name, idempotency_key)
    if not created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/orders/{view.id}"
    return view


@router.get("", response_model=OrderPage)
async def list_orders(
    _: PrincipalDep,
    session: SessionDep,
    status_: Annotated[OrderStatus | None, Query(alias="status")] = None,
    customer_id: Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")] = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> OrderPage:
    """Orders newest first, from the read model, with cursor pagination."""
    flt = readmodel.OrderFilter(
        status=status_,
        customer_id=customer_id,
        created_from=_utc(created_from, "query.created_from"),
        created_to=_utc(created_to, "query.created_to"),
    )
    try:
        rows, next_cursor = await readmodel.list_orders(session, flt, limit=limit, cursor=cursor)
    except readmodel.BadCursor as exc:
        raise ApiError(
            422, "invalid_input", f"cursor: {exc}", fields=[{"field": "cursor", "reason": str(exc)}]
        ) from exc
    items = [
        OrderSummary(
            id=r.id,
            status=OrderStatus(r.status),
            customer_id=r.customer_id,
            customer_tier=r.customer_tier,
            region=r.region,
            currency=r.currency,
            total=r.total,
            created_by=r.created_by,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
        for r in rows
    ]
    return OrderPage(items=items, next_cursor=next_cursor)


WaitFor = Annotated[
    list[OrderStatus] | None,
    Query(
        description="Long poll: answer once the order rests in one of these statuses "
        f"({', '.join(sorted(RESTING))}) or has closed, or when `wait` seconds have passed.",
    ),
]
Wait = Annotated[float, Query(gt=0, le=60, description="Seconds to wait at most with `wait_for`.")]


@router.get("/{order_id}", response_model=OrderView)
async def get_order(
    order_id: OrderId,
    _: PrincipalDep,
    orders: OrdersDep,
    wait_for: WaitFor = None,
    wait: Wait = 20,
) -> OrderView:
    """Live status, allowed actions and timeline of one order.

    With `wait_for`, the answer comes once the order reaches one of those statuses, closes, or
    `wait` runs out: check `status` in the answer. Cheaper than polling for systems that wait.
    """
    if not wait_for:
        return await orders.get(order_id)
    passing = sorted(set(wait_for) - RESTING - TERMINAL)
    if passing:
        reason = (
            f"{', '.join(passing)}: orders pass through without waiting there; "
            f"wait for one of {', '.join(sorted(RESTING | TERMINAL))}"
        )
        raise ApiError(
            422,
            "invalid_input",
            f"query.wait_for: {reason}",
            fields=[{"field": "query.wait_for", "reason": reason}],
        )
    return await orders.wait(order_id, set(wait_for), wait)


@router.get("/{order_id}/timeline", response_model=Timeline)
async def get_timeline(order_id: OrderId, _: PrincipalDep, orders: OrdersDep) -> Timeline:
    """Every recorded step of the order, with actor and time."""
    view = await orders.get(order_id)
    return Timeline(order_id=view.id, events=view.timeline)


CommandKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Retrying a command with the same key never applies it twice.",
    ),
]


async def command(
    orders: Orders,
    order_id: OrderId,
    update: object,
    arg: object,
    response: Response,
    key: str | None = None,
) -> OrderView:
    """Run a command; 202 with the current state if it is still running after the wait."""
    view, finished = await orders.command(order_id, update, arg, key)
    if not finished:
        response.status_code = status.HTTP_202_ACCEPTED
    return view


@router.post("/{order_id}/cancel", response_model=OrderView, responses=STILL_RUNNING)
async def cancel_order(
    order_id: OrderId,
    body: CancelRequest,
    principal: Canceller,
    orders: OrdersDep,
    response: Response,
    key: CommandKey = None,
) -> OrderView:
    """Cancel until shipped: stock is released and captured money refunded."""
    inp = CancelInput(actor=principal.name, reason=body.reason)
    return await command(orders, order_id, OrderWorkflow.cancel, inp, response, key)


@router.post("/{order_id}/payments", response_model=OrderView, responses=STILL_RUNNING)
async def pay_order(
    order_id: OrderId,
    body: PaymentRequest,
    principal: Webhook,
    orders: OrdersDep,
    response: Response,
    key: CommandKey = None,
) -> OrderView:
    """Record the customer's payment of a prepay order (must equal the total)."""
    inp = PaymentInput(actor=principal.name, amount=body.amount, token=body.token)
    return await command(orders, order_id, OrderWorkflow.pay, inp, response, key)


@router.post(
    "/{order_id}/shipment-events",
    response_model=ShipmentEventAccepted,
    status_code=status.HTTP_202_ACCEPTED,
)
async def shipment_event(
    order_id: OrderId, body: ShipmentEventRequest, principal: Webhook, orders: OrdersDep
) -> ShipmentEventAccepted:
    """Carrier webhook: a scan event, delivered to the order asynchronously."""
    view = await orders.last_known(order_id)
    if Action.SHIPMENT_EVENT not in view.allowed_actions:
        view = await orders.get(order_id)  # the read model may be a step behind: ask the order
    if Action.SHIPMENT_EVENT not in view.allowed_actions:
        raise ApiError(
            409,
            "command_not_allowed",
            f"shipment events are not accepted while the order is {view.status}",
            status=view.status.value,
            allowed_actions=[a.value for a in view.allowed_actions],
        )
    if body.tracking_number and body.tracking_number != view.shipment.tracking_number:
        reason = "does not match the order's shipment"
        raise ApiError(
            422,
            "invalid_input",
            f"tracking_number: {reason}",
            fields=[{"field": "tracking_number", "reason": reason}],
        )
    inp = CarrierEventInput(
        actor=principal.name,
        event=body.event,
        tracking_number=body.tracking_number,
        location=body.location,
        note=body.note,
        occurred_at=_utc(body.occurred_at, "occurred_at"),
    )
    await orders.signal(order_id, OrderWorkflow.carrier_event, inp)
    return ShipmentEventAccepted(order_id=order_id, event=body.event)
