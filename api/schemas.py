"""Request and response bodies of the HTTP API (the order itself is ``domain.order.OrderSpec``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from domain.events import ParcelLine
from domain.order import MAX_LINES, Address, OrderLine
from workflows.contracts import MAX_PARCELS, CarrierEventType, Comment, Reason


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


Level = Annotated[
    int,
    Field(
        ge=1,
        le=9,
        description="Level to decide; needed only when the "
        "caller holds several and means one that is not current.",
    ),
]


class ApproveRequest(_Body):
    comment: Comment | None = None
    level: Level | None = None


class RejectRequest(_Body):
    reason: Reason
    level: Level | None = None


class RequestChangesRequest(_Body):
    reason: Reason
    level: Level | None = None


class AmendRequest(_Body):
    """New lines and/or shipping address; totals are re-computed, credit re-checked if higher."""

    lines: list[OrderLine] | None = Field(default=None, min_length=1, max_length=MAX_LINES)
    shipping_address: Address | None = None


class CancelRequest(_Body):
    reason: Reason


class SplitShipmentRequest(_Body):
    """Every unit of the order in exactly one parcel; two parcels or more."""

    parcels: list[list[ParcelLine]] = Field(min_length=2, max_length=MAX_PARCELS)


class ResolveRequest(_Body):
    note: Reason = Field(description="How the refused step was settled, e.g. 'refunded by bank'.")


class PaymentRequest(_Body):
    amount: Decimal = Field(gt=0, max_digits=18, description="Must equal the order total.")
    token: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)
    ] = Field(description="Card token or bank-transfer reference from the payment provider.")


class ShipmentEventRequest(_Body):
    event: CarrierEventType
    tracking_number: Annotated[str, StringConstraints(max_length=64)] | None = None
    location: Comment | None = None
    note: Comment | None = None
    occurred_at: datetime | None = None


class ShipmentEventAccepted(BaseModel):
    order_id: str
    event: CarrierEventType
    accepted: Literal[True] = True


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    api: str
    temporal: str
    database: str
