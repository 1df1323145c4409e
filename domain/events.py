"""The typed events of an order: everything that happens to it, each with an actor and a time.

An order's state is a pure fold of these (:mod:`domain.state`); the event log (``order_events``)
stores them, and every consumer downstream (timeline, webhooks, reports, console) reads them.
Events are facts: they never carry a payment token or anything a consumer may not see.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from domain.order import Address, OrderLine, OrderSpec
from domain.policies import CreditDecision

SYSTEM = "system"
UNSET = datetime(1970, 1, 1, tzinfo=UTC)


class _Event(BaseModel):
    """Common to every event: per-order sequence (from 1), time and who caused it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    seq: int = Field(default=0, ge=0, description="Per-order sequence, set when recorded.")
    at: datetime = Field(default=UNSET, description="When it happened (workflow time).")
    actor: str = SYSTEM


class ParcelLine(BaseModel):
    """Units of one SKU in one parcel."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    sku: str
    quantity: int = Field(gt=0)


class ChainStep(BaseModel):
    """One level an order's approval chain needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    level: int
    name: str
    quorum: int
    escalate_to: int | None = None


# --- intake and credit ---------------------------------------------------------------------------


class Received(_Event):
    type: Literal["received"] = "received"
    order_id: str
    spec: OrderSpec = Field(description="As submitted; the payment token is masked.")
    total: Decimal


class CreditCheckStarted(_Event):
    type: Literal["credit_check_started"] = "credit_check_started"


class CreditChecked(_Event):
    type: Literal["credit_checked"] = "credit_checked"
    decision: CreditDecision


# --- stock ---------------------------------------------------------------------------------------


class StockReserved(_Event):
    type: Literal["stock_reserved"] = "stock_reserved"
    revision: int
    units: int


class OutOfStock(_Event):
    type: Literal["out_of_stock"] = "out_of_stock"
    reason: str


class StockReleased(_Event):
    type: Literal["stock_released"] = "stock_released"
    units: int


# --- approval ------------------------------------------------------------------------------------


class ApprovalChainDecided(_Event):
    """The levels the order needs now; ``kept`` levels keep their earlier approvals."""

    type: Literal["approval_chain_decided"] = "approval_chain_decided"
    policy_version: str
    levels: list[ChainStep]
    kept: list[int] = Field(default_factory=list)


class ApprovalRequested(_Event):
    type: Literal["approval_requested"] = "approval_requested"
    level: int
    remind_at: datetime
    escalate_at: datetime
    expire_at: datetime


class ApprovalReminderSent(_Event):
    type: Literal["approval_reminder_sent"] = "approval_reminder_sent"
    level: int


class ApprovalEscalated(_Event):
    type: Literal["approval_escalated"] = "approval_escalated"
    level: int
    to_level: int


class LevelApproved(_Event):
    type: Literal["approved"] = "approved"
    level: int
    comment: str | None = None


class LevelRejected(_Event):
    type: Literal["level_rejected"] = "level_rejected"
    level: int
    reason: str


class ChangesRequested(_Event):
    type: Literal["changes_requested"] = "changes_requested"
    level: int
    reason: str
    expire_at: datetime


class Amended(_Event):
    type: Literal["amended"] = "amended"
    revision: int
    lines: list[OrderLine]
    shipping_address: Address
    old_total: Decimal
    total: Decimal


class ApprovalExpired(_Event):
    type: Literal["approval_expired"] = "approval_expired"
    level: int | None = None


class Confirmed(_Event):
    type: Literal["confirmed"] = "confirmed"


# --- payment -------------------------------------------------------------------------------------


class PaymentRequested(_Event):
    type: Literal["payment_requested"] = "payment_requested"
    amount: Decimal
    due_at: datetime


class PaymentReminderSent(_Event):
    type: Literal["payment_reminder_sent"] = "payment_reminder_sent"


class PaymentReceived(_Event):
    """A customer's payment arrived and is being captured (its token is not recorded)."""

    type: Literal["payment_received"] = "payment_received"
    amount: Decimal


class PaymentDeclined(_Event):
    type: Literal["payment_declined"] = "payment_declined"
    reason: str


class PaymentCaptured(_Event):
    type: Literal["payment_captured"] = "payment_captured"
    amount: Decimal
    reference: str


class PaymentExpired(_Event):
    type: Literal["payment_expired"] = "payment_expired"


class PaymentRefunded(_Event):
    type: Literal["payment_refunded"] = "payment_refunded"
    amount: Decimal
    reference: str


# --- shipping ------------------------------------------------------------------------------------


class ShipmentBooked(_Event):
    type: Literal["shipment_booked"] = "shipment_booked"
    parcel: int
    carrier: str
    tracking_number: str
    lines: list[ParcelLine]


class ShipmentSplit(_Event):
    """The order's lines divided into parcels; the bookings before are cancelled."""

    type: Literal["shipment_split"] = "shipment_split"
    parcels: list[list[ParcelLine]]


class ShipmentCancelled(_Event):
    type: Literal["shipment_cancelled"] = "shipment_cancelled"
    parcel: int
    tracking_number: str


class CarrierScan(_Event):
    type: Literal["carrier_scan"] = "carrier_scan"
    parcel: int
    tracking_number: str
    scan: Literal["picked_up", "in_transit", "delivered", "exception"]
    location: str | None = None
    note: str | None = None
    occurred_at: datetime | None = None


class CarrierEventIgnored(_Event):
    type: Literal["carrier_event_ignored"] = "carrier_event_ignored"
    scan: str
    tracking_number: str | None = None
    why: str


class Shipped(_Event):
    """The first parcel has left the warehouse: the order can no longer be cancelled."""

    type: Literal["shipped"] = "shipped"
    parcel: int


class Delivered(_Event):
    """Every parcel has been delivered."""

    type: Literal["delivered"] = "delivered"
    delivered_at: datetime


class DeliveryOverdue(_Event):
    type: Literal["delivery_overdue"] = "delivery_overdue"


# --- ending --------------------------------------------------------------------------------------


class CancelRequested(_Event):
    type: Literal["cancel_requested"] = "cancel_requested"
    reason: str


class CompensationFailed(_Event):
    """A compensating step was refused for good: the order waits for support."""

    type: Literal["compensation_failed"] = "compensation_failed"
    step: str
    reason: str


class CompensationRetried(_Event):
    type: Literal["compensation_retried"] = "compensation_retried"
    step: str


class CompensationResolved(_Event):
    """Support settled the refused step by other means (e.g. a manual bank refund)."""

    type: Literal["compensation_resolved"] = "compensation_resolved"
    step: str
    note: str


class Completed(_Event):
    type: Literal["completed"] = "completed"


class Cancelled(_Event):
    type: Literal["cancelled"] = "cancelled"
    reason: str


class Rejected(_Event):
    type: Literal["rejected"] = "rejected"
    reason: str


class Failed(_Event):
    type: Literal["failed"] = "failed"
    reason: str


OrderEvent = Annotated[
    Received
    | CreditCheckStarted
    | CreditChecked
    | StockReserved
    | OutOfStock
    | StockReleased
    | ApprovalChainDecided
    | ApprovalRequested
    | ApprovalReminderSent
    | ApprovalEscalated
    | LevelApproved
    | LevelRejected
    | ChangesRequested
    | Amended
    | ApprovalExpired
    | Confirmed
    | PaymentRequested
    | PaymentReminderSent
    | PaymentReceived
    | PaymentDeclined
    | PaymentCaptured
    | PaymentExpired
    | PaymentRefunded
    | ShipmentBooked
    | ShipmentSplit
    | ShipmentCancelled
    | CarrierScan
    | CarrierEventIgnored
    | Shipped
    | Delivered
    | DeliveryOverdue
    | CancelRequested
    | CompensationFailed
    | CompensationRetried
    | CompensationResolved
    | Completed
    | Cancelled
    | Rejected
    | Failed,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[OrderEvent] = TypeAdapter(OrderEvent)
EVENT_TYPES: frozenset[str] = frozenset(
    cls.model_fields["type"].default for cls in _Event.__subclasses__()
)
# What an order closing without completing records last, by the status it ends in.
CLOSURES: dict[str, type[Cancelled] | type[Rejected] | type[Failed]] = {
    "cancelled": Cancelled,
    "rejected": Rejected,
    "failed": Failed,
}


def parse_event(data: object) -> OrderEvent:
    """An event from its JSON form (the event log's payload column)."""
    return EVENT_ADAPTER.validate_python(data)
