"""What support sees of an order: its live state, allowed actions and timeline."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.order import Address, Customer, OrderLine, OrderSpec, PaymentMethod
from domain.policies import CreditDecision
from domain.status import Action, OrderStatus, RefundState, allowed_actions


class TimelineEvent(BaseModel):
    """One recorded step of an order; ``seq`` is unique per order and never reused."""

    seq: int
    at: datetime
    type: str
    status: OrderStatus = Field(description="Status of the order after this event.")
    actor: str
    message: str
    data: dict[str, str] = Field(default_factory=dict)


class ApprovalDecision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class LevelStatus(StrEnum):
    PENDING = "pending"  # an earlier level decides first
    WAITING = "waiting"
    APPROVED = "approved"
    REJECTED = "rejected"


class Approval(BaseModel):
    by: str
    at: datetime
    comment: str | None = None


class LevelState(BaseModel):
    """One level of an order's approval chain, as support and approvers see it."""

    level: int
    name: str
    quorum: int
    status: LevelStatus = LevelStatus.PENDING
    eligible_levels: list[int] = Field(description="Approvers holding any of these may decide.")
    escalate_to: int | None = None
    escalated: bool = False
    approvals: list[Approval] = Field(default_factory=list)
    waiting_since: datetime | None = None
    remind_at: datetime | None = None
    escalate_at: datetime | None = None
    expire_at: datetime | None = None


class ApprovalInfo(BaseModel):
    required: bool = False
    decision: ApprovalDecision | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str | None = None
    policy_version: str | None = None
    levels: list[LevelState] = Field(default_factory=list)
    current_level: int | None = None
    next_deadline: datetime | None = None
    next_deadline_kind: str | None = Field(default=None, description="reminder|escalation|expiry")
    approved_total: Decimal | None = Field(
        default=None,
        description="Total the standing decisions approved; an amendment above it "
        "restarts the chain.",
    )


class PaymentInfo(BaseModel):
    prepay: bool = False
    due_at: datetime | None = None
    captured: Decimal = Decimal(0)
    refunded: Decimal = Decimal(0)
    refund_state: RefundState = RefundState.NONE
    capture_reference: str | None = None
    refund_reference: str | None = None
    declined_reason: str | None = None


class ShipmentInfo(BaseModel):
    carrier: str | None = None
    tracking_number: str | None = None
    last_event: str | None = None
    delivered_at: datetime | None = None


class Closure(BaseModel):
    """Why an order ended without completing (cancelled, rejected or failed)."""

    reason: str
    by: str
    at: datetime


class LineView(OrderLine):
    line_total: Decimal


class OrderView(BaseModel):
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
    payment_method: PaymentMethod
    sales_rep: str | None = None
    external_reference: str | None = None
    credit: CreditDecision | None = None
    approval: ApprovalInfo = Field(default_factory=ApprovalInfo)
    payment: PaymentInfo = Field(default_factory=PaymentInfo)
    shipment: ShipmentInfo = Field(default_factory=ShipmentInfo)
    closure: Closure | None = None
    allowed_actions: list[Action] = Field(default_factory=list)
    timeline: list[TimelineEvent] = Field(default_factory=list)

    @classmethod
    def new(cls, order_id: str, spec: OrderSpec, created_by: str, at: datetime) -> OrderView:
        """The view of a freshly received order, before any step has run."""
        status = OrderStatus.RECEIVED

        return cls(
            id=order_id,
            status=status,
            created_at=at,
            updated_at=at,
            created_by=created_by,
            customer=spec.customer,
            lines=[LineView(**line.model_dump(), line_total=line.total()) for line in spec.lines],
            currency=spec.currency,
            total=spec.total(),
            shipping_address=spec.shipping_address,
            payment_method=spec.payment_method,
            sales_rep=spec.sales_rep,
            external_reference=spec.external_reference,
            allowed_actions=allowed_actions(status),
        )
