"""Signed inbound webhooks from carriers and payment providers (see :mod:`services.inbound`).

These routes take no API key: the Standard Webhooks signature of the configured sender is the
authentication. The body is read raw, verified, and only then parsed, so an unsigned request
gets 401 whatever it holds.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, StringConstraints, ValidationError

from api.deps import ServicesDep, public
from api.errors import ApiError, ErrorBody
from api.routes.orders import utc
from api.schemas import PaymentRequest, ShipmentEventRequest
from services.inbound import Delivery, Inbound, Receipt, SenderKind, SignatureRefused

MAX_BODY = 64 * 1024
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 404, 409, 413, 422, 503)
}
router = APIRouter(
    prefix="/inbound", tags=["inbound"], responses=ERRORS, dependencies=[Depends(public)]
)
Sender = Annotated[
    str,
    Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="As configured (inbound_webhooks)."),
]
M = TypeVar("M", bound=BaseModel)
OrderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,32}$")]


class CarrierWebhook(ShipmentEventRequest):
    """A scan of the order's parcel: the body of ``POST /orders/{id}/shipment-events``, plus
    the order."""

    order_id: OrderId


class PaymentWebhook(PaymentRequest):
    """A payment of the order: the body of ``POST /orders/{id}/payments``, plus the order."""

    order_id: OrderId


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """The model's JSON schema with its ``$defs`` inlined (for ``openapi_extra``)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _signed_body(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "parameters": [
            {
                "name": header,
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
                "description": description,
            }
            for header, description in (
                ("webhook-id", "The delivery's id: the same id again is a duplicate."),
                ("webhook-timestamp", "Unix seconds; at most 5 minutes off."),
                ("webhook-signature", "v1,<base64 HMAC-SHA256 of id.timestamp.body> ..."),
            )
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline(model.model_json_schema())}},
        },
    }


async def _verified(
    request: Request, inbound: Inbound, kind: SenderKind, sender: str, model: type[M]
) -> tuple[Delivery, M]:
    inbound.sender(kind, sender)  # 404 before reading anything
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ApiError(413, "too_large", f"body: at most {MAX_BODY} bytes")
    try:
        delivery = inbound.verify(kind, sender, body, request.headers)
    except SignatureRefused as exc:
        raise ApiError(401, "unauthorized", exc.message) from None
    request.state.principal = delivery.principal  # for the audit trail
    try:
        parsed = model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False)) from None
    return delivery, parsed


@router.post(
    "/carriers/{sender}",
    response_model=Receipt,
    openapi_extra=_signed_body(CarrierWebhook),
)
async def carrier_webhook(sender: Sender, request: Request, services: ServicesDep) -> Receipt:
    """A carrier's signed scan: the order moves as with a shipment event."""
    inbound = Inbound(services)
    delivery, body = await _verified(request, inbound, SenderKind.CARRIER, sender, CarrierWebhook)
    return await inbound.carrier_event(
        delivery,
        body.order_id,
        body.event,
        tracking_number=body.tracking_number,
        location=body.location,
        note=body.note,
        occurred_at=utc(body.occurred_at, "occurred_at"),
    )


@router.post(
    "/payments/{sender}",
    response_model=Receipt,
    openapi_extra=_signed_body(PaymentWebhook),
)
async def payment_webhook(sender: Sender, request: Request, services: ServicesDep) -> Receipt:
    """A payment provider's signed notice: the order's payment, as with POST /payments."""
    inbound = Inbound(services)
    delivery, body = await _verified(request, inbound, SenderKind.PAYMENT, sender, PaymentWebhook)
    return await inbound.payment(delivery, body.order_id, body.amount, body.token)
