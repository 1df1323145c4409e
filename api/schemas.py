"""Request and response bodies of the HTTP API (the order itself is ``domain.order.OrderSpec``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from domain.order import MAX_LINES, Address, OrderLine
from domain.status import OrderStatus
from domain.view import TimelineEvent
from workflows.contracts import CarrierEventType, Comment, Reason


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


class InboxPage(BaseModel):
    items: list[InboxItem]
    next_cursor: str | None


class InboxItem(BaseModel):
    order_id: str
    level: int
    level_name: str
    customer_id: str
    customer_name: str
    customer_tier: str
    total: Decimal
    currency: str
    waiting_since: datetime
    waiting_seconds: int
    next_deadline: datetime | None
    next_deadline_kind: str | None


class CancelRequest(_Body):
    reason: Reason


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


class OrderSummary(BaseModel):
    id: str
    status: OrderStatus
    customer_id: str
    customer_tier: str
    region: str
    currency: str
    total: Decimal
    created_by: str
    created_at: datetime
    updated_at: datetime


class OrderPage(BaseModel):
    items: list[OrderSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


class Timeline(BaseModel):
    order_id: str
    events: list[TimelineEvent]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    api: str
    temporal: str
    database: str
