"""Orders: create, read, list, and the commands support and systems send."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Response, status

from api.deps import ANY_ROLE, CommandsDep, OrdersDep, allow
from api.errors import ApiError, ErrorBody
from api.schemas import (
    CancelRequest,
    PaymentRequest,
    ResolveRequest,
    ShipmentEventAccepted,
    ShipmentEventRequest,
    SplitShipmentRequest,
)
from domain.order import OrderSource, OrderSpec
from domain.status import RESTING, OrderStatus
from services.auth import Principal, Role, Scope
from services.orders import OrderFilter, Outcome
from services.views import OrderDetail, OrderPage, Timeline

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422, 503)
}
router = APIRouter(prefix="/orders", tags=["orders"], responses=ERRORS)


# One access rule per route (api.deps.allow): roles are the outer bound, scopes narrow keys.
Creator = Annotated[Principal, Depends(allow(Role.SYSTEM, scope=Scope.ORDERS_CREATE))]
Reader = Annotated[Principal, Depends(allow(*ANY_ROLE, scope=Scope.ORDERS_READ))]
Canceller = Annotated[
    Principal, Depends(allow(Role.SYSTEM, Role.SUPPORT, scope=Scope.ORDERS_CANCEL))
]
Payer = Annotated[Principal, Depends(allow(Role.SYSTEM, scope=Scope.PAYMENTS_WRITE))]
Carrier = Annotated[Principal, Depends(allow(Role.SYSTEM, scope=Scope.SHIPMENTS_WRITE))]
Support = Annotated[Principal, Depends(allow(Role.SUPPORT, scope=Scope.COMPENSATIONS_WRITE))]
Shipper = Annotated[
    Principal, Depends(allow(Role.SYSTEM, Role.SUPPORT, scope=Scope.SHIPMENTS_WRITE))
]
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
OrderId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9-]{1,32}$", description="e.g. SO-20261123-7K2QF")
]
STILL_RUNNING: dict[int | str, dict[str, Any]] = {
    202: {"model": OrderDetail, "description": "Accepted, still running: the current state"}
}


def utc(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        reason = "date is out of range"
        raise ApiError(
            422, "invalid_input", f"{field}: {reason}", fields=[{"field": field, "reason": reason}]
        ) from exc


def answer(outcome: Outcome, response: Response) -> OrderDetail:
    """200 with the order once the command is done; 202 if it is still running."""
    if not outcome.finished:
        response.status_code = status.HTTP_202_ACCEPTED
    return outcome.order


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderDetail,
    responses={
        200: {
            "model": OrderDetail,
            "description": "Same Idempotency-Key and body, or same source and "
            "external_reference (any caller, any body): the order created before",
        }
    },
)
async def create_order(
    spec: OrderSpec,
    principal: Creator,
    orders: OrdersDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> OrderDetail:
    """Start an order; totals are computed here, never taken from the request."""
    if spec.template is not None:  # only POST /orders/from-template/{id} may say so
        raise ApiError(
            422,
            "invalid_input",
            "template: set by POST /orders/from-template/{id}, not by the client",
            fields=[{"field": "template", "reason": "set only when an order is made from one"}],
        )
    order, created = await orders.create(spec, principal, idempotency_key)
    if not created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/orders/{order.id}"
    return order


@router.get("", response_model=OrderPage)
async def list_orders(
    principal: Reader,
    orders: OrdersDep,
    status_: Annotated[OrderStatus | None, Query(alias="status")] = None,
    customer_id: Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")] = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    external_reference: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=r"^[^\x00-\x1f\x7f]+$",
            description="Exact: the source system's own reference.",
        ),
    ] = None,
    source: Annotated[OrderSource | None, Query(description="Where orders came from.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> OrderPage:
    """Orders newest first, from the read model, with cursor pagination."""
    flt = OrderFilter(
        status=status_,
        customer_id=customer_id,
        created_from=utc(created_from, "query.created_from"),
        created_to=utc(created_to, "query.created_to"),
        external_reference=external_reference,
        source=source,
    )
    return await orders.list(flt, limit=limit, cursor=cursor, principal=principal)


WaitFor = Annotated[
    list[OrderStatus] | None,
    Query(
        description="Long poll: answer once the order rests in one of these statuses "
        f"({', '.join(sorted(RESTING))}) or has closed, or when `wait` seconds have passed.",
    ),
]
Wait = Annotated[float, Query(gt=0, le=60, description="Seconds to wait at most with `wait_for`.")]


@router.get("/{order_id}", response_model=OrderDetail)
async def get_order(
    order_id: OrderId,
    principal: Reader,
    orders: OrdersDep,
    wait_for: WaitFor = None,
    wait: Wait = 20,
) -> OrderDetail:
    """Live status, allowed actions and timeline of one order.

    With `wait_for`, the answer comes once the order reaches one of those statuses, closes, or
    `wait` runs out: check `status` in the answer. Cheaper than polling for systems that wait.
    """
    if not wait_for:
        return await orders.get(order_id, principal)
    return await orders.wait(order_id, set(wait_for), wait, principal)


@router.get("/{order_id}/timeline", response_model=Timeline)
async def get_timeline(order_id: OrderId, principal: Reader, orders: OrdersDep) -> Timeline:
    """Every recorded event of the order, with actor and time."""
    return await orders.timeline(order_id, principal)


@router.post("/{order_id}/cancel", response_model=OrderDetail, responses=STILL_RUNNING)
async def cancel_order(
    order_id: OrderId,
    body: CancelRequest,
    principal: Canceller,
    commands: CommandsDep,
    response: Response,
    key: CommandKey = None,
) -> OrderDetail:
    """Cancel until shipped: stock is released and captured money refunded."""
    return answer(await commands.cancel(order_id, principal, body.reason, key), response)


@router.post("/{order_id}/payments", response_model=OrderDetail, responses=STILL_RUNNING)
async def pay_order(
    order_id: OrderId,
    body: PaymentRequest,
    principal: Payer,
    commands: CommandsDep,
    response: Response,
    key: CommandKey = None,
) -> OrderDetail:
    """Record the customer's payment of a prepay order (must equal the total)."""
    outcome = await commands.pay(order_id, principal, body.amount, body.token, key)
    return answer(outcome, response)


@router.post("/{order_id}/split-shipment", response_model=OrderDetail, responses=STILL_RUNNING)
async def split_shipment(
    order_id: OrderId,
    body: SplitShipmentRequest,
    principal: Shipper,
    commands: CommandsDep,
    response: Response,
    key: CommandKey = None,
) -> OrderDetail:
    """Before pickup: divide the order's units into parcels, each booked and tracked alone."""
    return answer(await commands.split_shipment(order_id, principal, body.parcels, key), response)


@router.post("/{order_id}/compensations/retry", response_model=OrderDetail, responses=STILL_RUNNING)
async def retry_compensation(
    order_id: OrderId,
    principal: Support,
    commands: CommandsDep,
    response: Response,
    key: CommandKey = None,
) -> OrderDetail:
    """A `needs_attention` order: run the refused compensation again."""
    return answer(await commands.retry_compensation(order_id, principal, key), response)


@router.post(
    "/{order_id}/compensations/resolve", response_model=OrderDetail, responses=STILL_RUNNING
)
async def resolve_compensation(
    order_id: OrderId,
    body: ResolveRequest,
    principal: Support,
    commands: CommandsDep,
    response: Response,
    key: CommandKey = None,
) -> OrderDetail:
    """A `needs_attention` order: the refused step was settled by hand; the order closes."""
    outcome = await commands.resolve_compensation(order_id, principal, body.note, key)
    return answer(outcome, response)


@router.post(
    "/{order_id}/shipment-events",
    response_model=ShipmentEventAccepted,
    status_code=status.HTTP_202_ACCEPTED,
)
async def shipment_event(
    order_id: OrderId, body: ShipmentEventRequest, principal: Carrier, commands: CommandsDep
) -> ShipmentEventAccepted:
    """Carrier webhook: a scan of a parcel (by tracking number), delivered asynchronously."""
    await commands.carrier_event(
        order_id,
        principal,
        body.event,
        tracking_number=body.tracking_number,
        location=body.location,
        note=body.note,
        occurred_at=utc(body.occurred_at, "occurred_at"),
    )
    return ShipmentEventAccepted(order_id=order_id, event=body.event)
