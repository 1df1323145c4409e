"""One input type per workflow, update, signal and activity, so fields can be added safely."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from domain.approval import ApprovalPolicy
from domain.events import ParcelLine
from domain.order import MAX_LINES, Address, Clean, OrderLine, OrderSpec
from domain.policies import CreditRules
from domain.state import LoggedEvent, OrderState

Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), Clean
]
Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), Clean]
MAX_PARCELS = 20


class _Input(BaseModel):
    model_config = ConfigDict(frozen=True)


class OrderPolicy(_Input):
    """Policy values fixed when the order starts, so a settings change never alters it."""

    payment_deadline: timedelta
    payment_reminder_after: timedelta
    delivery_sla: timedelta
    approval: ApprovalPolicy
    credit_rules: CreditRules = Field(default_factory=CreditRules)
    activity_timeout: timedelta = timedelta(seconds=30)
    activity_heartbeat: timedelta = timedelta(seconds=10)


class StartOrderInput(_Input):
    order_id: str
    spec: OrderSpec
    created_by: str
    created_at: datetime
    policy: OrderPolicy


class DeciderInput(_Input):
    """An approver's command: who, which levels they hold, and optionally the level they decide."""

    actor: str
    actor_levels: list[int] = Field(default_factory=list)
    level: int | None = None


class ApproveInput(DeciderInput):
    comment: Comment | None = None


class RejectInput(DeciderInput):
    reason: Reason


class RequestChangesInput(DeciderInput):
    reason: Reason


class AmendInput(_Input):
    """Sales' amendment of an order sent back by an approver; omitted parts stay as they are."""

    actor: str
    lines: list[OrderLine] | None = Field(default=None, min_length=1, max_length=MAX_LINES)
    shipping_address: Address | None = None


class CancelInput(_Input):
    actor: str
    reason: Reason


class PaymentInput(_Input):
    """A customer's payment towards a prepay order (bank transfer received, card paid)."""

    actor: str
    amount: Decimal = Field(gt=0)
    token: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]


class SplitShipmentInput(_Input):
    """Divide the order's units into parcels, each booked and tracked on its own."""

    actor: str
    parcels: list[list[ParcelLine]] = Field(min_length=2, max_length=MAX_PARCELS)


class RetryCompensationInput(_Input):
    actor: str


class ResolveCompensationInput(_Input):
    actor: str
    note: Reason


class CarrierEventType(StrEnum):
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    EXCEPTION = "exception"


class CarrierEventInput(_Input):
    actor: str
    event: CarrierEventType
    tracking_number: str | None = None
    location: Comment | None = None
    note: Comment | None = None
    occurred_at: datetime | None = None


class OrderRecord(_Input):
    """The order's state and every event so far (the ``record`` query)."""

    state: OrderState
    events: list[LoggedEvent]


# --- activities ---------------------------------------------------------------------------------


class CreditReportRequest(_Input):
    order_id: str
    customer_id: str
    currency: str


class CreditReportResult(_Input):
    score: int
    credit_limit: Decimal
    open_exposure: Decimal


class StockLine(_Input):
    sku: str
    quantity: int


class StockRequest(_Input):
    order_id: str
    lines: list[StockLine] = Field(default_factory=list)
    revision: int = Field(default=0, description="Amendment number: one reservation per revision.")


class CaptureRequest(_Input):
    order_id: str
    step: str = Field(description="Idempotency step name, e.g. 'capture' or 'capture-2'.")
    amount_minor: int
    currency: str
    token: str


class RefundRequest(_Input):
    order_id: str
    step: str
    amount_minor: int
    currency: str


class ChargeResult(_Input):
    reference: str
    amount_minor: int


class ShipmentRequest(_Input):
    order_id: str
    parcel: int = Field(ge=1, description="Parcel number: one booking per order and parcel.")
    country: str
    units: int


class ShipmentResult(_Input):
    carrier: str
    tracking_number: str


class CancelShipmentRequest(_Input):
    order_id: str
    parcel: int


class NotifyRequest(_Input):
    order_id: str
    key: str = Field(description="Idempotency key: order id + step.")
    kind: str
    recipient: str
    subject: str
    body: str


class ProjectRequest(_Input):
    """The order's state and the events not yet projected; ``final`` once it has closed."""

    state: OrderState
    events: list[LoggedEvent]
    final: bool = False
