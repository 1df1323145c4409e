"""What clients see of an order: response models of their own, built from the order's state
and events (so changing an answer never changes a workflow payload)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from domain.events import OrderEvent, ParcelLine
from domain.order import Address, Customer, OrderSource, PaymentMethod, TemplateRef
from domain.policies import CreditDecision
from domain.state import (
    ApprovalInfo,
    Attention,
    Closure,
    LineView,
    LoggedEvent,
    OrderState,
    PaymentInfo,
)
from domain.status import Action, OrderStatus
from domain.timeline import describe, event_data


class TimelineEntry(BaseModel):
    """One recorded event of an order; ``seq`` is unique per order and never reused."""

    seq: int
    at: datetime
    type: str
    status: OrderStatus = Field(description="Status of the order after this event.")
    actor: str
    message: str
    data: dict[str, Any] = Field(default_factory=dict, description="The event's own fields.")


class ParcelView(BaseModel):
    parcel: int
    carrier: str
    tracking_number: str
    status: str
    lines: list[ParcelLine]
    last_event: str | None = None
    delivered_at: datetime | None = None


class ShipmentSummary(BaseModel):
    """The order's shipment at a glance (its first active parcel; ``parcels`` has them all)."""

    carrier: str | None = None
    tracking_number: str | None = None
    last_event: str | None = None
    delivered_at: datetime | None = None


class OrderDetail(BaseModel):
    id: str
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    created_by: str
    customer: Customer
    lines: list[LineView]
    currency: str
    total: Decimal
    shipping_address: Address
    payment_method: PaymentMethod = Field(description="The token is masked.")
    sales_rep: str | None = None
    external_reference: str | None = None
    source: OrderSource = Field(
        default=OrderSource.API, description="Where the order came from (eshop, erp, ...)."
    )
    template: TemplateRef | None = Field(
        default=None, description="The order template (id, version) it was created from."
    )
    credit: CreditDecision | None = None
    approval: ApprovalInfo
    payment: PaymentInfo
    shipment: ShipmentSummary
    parcels: list[ParcelView]
    closure: Closure | None = None
    attention: Attention | None = Field(
        default=None, description="Set in needs_attention: the refused compensation."
    )
    allowed_actions: list[Action]
    timeline: list[TimelineEntry]


def timeline_entry(logged: LoggedEvent, currency: str) -> TimelineEntry:
    e: OrderEvent = logged.event
    return TimelineEntry(
        seq=e.seq,
        at=e.at,
        type=e.type,
        status=logged.status,
        actor=e.actor,
        message=describe(e, currency),
        data=event_data(e),
    )


def order_detail(state: OrderState, events: Iterable[LoggedEvent]) -> OrderDetail:
    active = state.active_parcels()
    first = active[0] if active else None
    last_delivery = max((p.delivered_at for p in active if p.delivered_at), default=None)
    return OrderDetail(
        **state.model_dump(
            include={
                "id",
                "status",
                "created_at",
                "updated_at",
                "created_by",
                "customer",
                "lines",
                "currency",
                "total",
                "shipping_address",
                "payment_method",
                "sales_rep",
                "external_reference",
                "source",
                "template",
                "credit",
                "approval",
                "payment",
                "closure",
                "attention",
                "allowed_actions",
            }
        ),
        shipment=ShipmentSummary(
            carrier=first.carrier if first else None,
            tracking_number=first.tracking_number if first else None,
            last_event=first.last_event if first else None,
            delivered_at=last_delivery if active and all(p.delivered_at for p in active) else None,
        ),
        parcels=[ParcelView.model_validate(p.model_dump()) for p in state.parcels],
        timeline=[timeline_entry(logged, state.currency) for logged in events],
    )


class Timeline(BaseModel):
    order_id: str
    events: list[TimelineEntry]


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
    source: OrderSource = OrderSource.API
    external_reference: str | None = None


class OrderPage(BaseModel):
    items: list[OrderSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


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


class InboxPage(BaseModel):
    items: list[InboxItem]
    next_cursor: str | None
