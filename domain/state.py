"""An order's state as a pure fold of its events: ``fold(events)``, ``apply(state, event)``.

The order workflow records events and applies them here; the read model stores the result;
the timeline renders the events with :func:`describe`. Nothing else changes an order's state.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from domain import events as ev
from domain.money import to_minor
from domain.order import Address, Customer, OrderLine, OrderSource, PaymentMethod, TemplateRef
from domain.policies import CreditDecision
from domain.status import (
    Action,
    OrderStatus,
    RefundState,
    allowed_actions,
    check_transition,
    refund_state,
)

S = OrderStatus


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
    """One level of an order's approval chain."""

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

    def level(self, level: int) -> LevelState:
        return next(lv for lv in self.levels if lv.level == level)

    def waiting(self) -> LevelState | None:
        """The level deciding now, if any."""
        return next(
            (
                lv
                for lv in self.levels
                if lv.level == self.current_level and lv.status is LevelStatus.WAITING
            ),
            None,
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


class ParcelStatus(StrEnum):
    BOOKED = "booked"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    EXCEPTION = "exception"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class Parcel(BaseModel):
    """One booked parcel of the order's shipment."""

    parcel: int
    carrier: str
    tracking_number: str
    lines: list[ev.ParcelLine]
    status: ParcelStatus = ParcelStatus.BOOKED
    last_event: str | None = None
    delivered_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status is not ParcelStatus.CANCELLED

    @property
    def moved(self) -> bool:
        return self.status not in (ParcelStatus.BOOKED, ParcelStatus.CANCELLED)


class Closure(BaseModel):
    """Why an order ended without completing (cancelled, rejected or failed)."""

    reason: str
    by: str
    at: datetime


class Attention(BaseModel):
    """A compensation refused for good, waiting for support to retry or resolve it."""

    step: str
    reason: str
    since: datetime


class LineView(OrderLine):
    line_total: Decimal


class OrderState(BaseModel):
    """Everything known about an order after its last event (``seq``)."""

    id: str
    seq: int = 0
    status: OrderStatus = S.RECEIVED
    created_at: datetime
    updated_at: datetime
    created_by: str
    customer: Customer
    lines: list[LineView]
    currency: str
    total: Decimal
    shipping_address: Address
    payment_method: PaymentMethod = Field(description="The payment token is masked.")
    sales_rep: str | None = None
    external_reference: str | None = None
    source: OrderSource = OrderSource.API
    template: TemplateRef | None = Field(default=None, description="The template it came from.")
    revision: int = Field(default=0, description="Amendments so far.")
    credit: CreditDecision | None = None
    approval: ApprovalInfo = Field(default_factory=ApprovalInfo)
    payment: PaymentInfo = Field(default_factory=PaymentInfo)
    parcels: list[Parcel] = Field(default_factory=list)
    closure: Closure | None = None
    attention: Attention | None = None
    cancel_pending: bool = False
    payment_pending: bool = False
    delivery_overdue: bool = False
    allowed_actions: list[Action] = Field(default_factory=list)

    def parcel(self, number: int) -> Parcel:
        return next(p for p in self.parcels if p.parcel == number)

    def active_parcels(self) -> list[Parcel]:
        return [p for p in self.parcels if p.active]

    def parcel_by_tracking(self, tracking_number: str) -> Parcel | None:
        return next(
            (p for p in self.active_parcels() if p.tracking_number == tracking_number), None
        )


class LoggedEvent(BaseModel):
    """An event with the order's status after it, as the event log stores it."""

    model_config = ConfigDict(frozen=True)
    status: OrderStatus
    event: ev.OrderEvent


class EventOutOfOrder(ValueError):
    """An event that cannot follow the state it is applied to."""


def _move(state: OrderState, status: OrderStatus) -> None:
    if state.status is not status:
        state.status = check_transition(state.status, status)


def _lines(lines: Iterable[OrderLine]) -> list[LineView]:
    return [LineView(**ln.model_dump(), line_total=ln.total()) for ln in lines]


def _received(e: ev.Received) -> OrderState:
    spec = e.spec
    return OrderState(
        id=e.order_id,
        created_at=e.at,
        updated_at=e.at,
        created_by=e.actor,
        customer=spec.customer,
        lines=_lines(spec.lines),
        currency=spec.currency,
        total=e.total,
        shipping_address=spec.shipping_address,
        payment_method=spec.payment_method,
        sales_rep=spec.sales_rep,
        external_reference=spec.external_reference,
        source=spec.source,
        template=spec.template,
    )


def apply(state: OrderState | None, e: ev.OrderEvent) -> OrderState:
    """The state after ``e``. Updates ``state`` in place (the workflow keeps one) and returns it.

    Raises :class:`EventOutOfOrder` for an event that cannot follow (wrong seq, impossible
    status move, unknown level or parcel).
    """
    if state is None:
        if not isinstance(e, ev.Received):
            raise EventOutOfOrder(f"an order starts with 'received', not {e.type!r}")
        if e.seq not in (0, 1):
            raise EventOutOfOrder(f"'received' is seq 1, not {e.seq}")
        state = _received(e)
    elif isinstance(e, ev.Received):
        raise EventOutOfOrder("an order is received once")
    elif e.seq and e.seq != state.seq + 1:
        raise EventOutOfOrder(f"event seq {e.seq} does not follow {state.seq}")
    else:
        try:
            _apply(state, e)
        except (StopIteration, ValueError) as exc:
            raise EventOutOfOrder(f"{e.type} cannot follow seq {state.seq}: {exc}") from exc
    state.seq += 1
    state.updated_at = e.at
    parcels_moved = any(p.moved for p in state.parcels)
    state.allowed_actions = allowed_actions(
        state.status,
        cancel_pending=state.cancel_pending,
        payment_pending=state.payment_pending,
        splittable=not parcels_moved,
    )
    if state.status is S.NEEDS_ATTENTION and state.attention is None:
        state.allowed_actions = []  # support's decision is being carried out
    return state


def fold(events: Iterable[ev.OrderEvent]) -> OrderState:
    """The state of an order from all its events, in sequence."""
    state: OrderState | None = None
    for e in events:
        state = apply(state, e)
    if state is None:
        raise EventOutOfOrder("no events")
    return state


def _apply(s: OrderState, e: ev.OrderEvent) -> None:
    a = s.approval
    match e:
        case ev.CreditCheckStarted():
            _move(s, S.CREDIT_CHECK)
        case ev.CreditChecked(decision=decision):
            s.credit = decision
        case ev.StockReserved() | ev.OutOfStock() | ev.StockReleased():
            pass
        case ev.ApprovalChainDecided(levels=levels, kept=kept, policy_version=version):
            standing = {lv.level: lv for lv in a.levels if lv.level in kept}
            a.levels = [
                standing.get(c.level)
                or LevelState(
                    level=c.level,
                    name=c.name,
                    quorum=c.quorum,
                    eligible_levels=[c.level],
                    escalate_to=c.escalate_to,
                )
                for c in levels
            ]
            a.required = a.required or bool(levels)
            a.policy_version = version
        case ev.ApprovalRequested(level=level):
            lv = a.level(level)
            _move(s, S.AWAITING_APPROVAL)
            lv.status, lv.waiting_since = LevelStatus.WAITING, e.at
            lv.remind_at, lv.escalate_at, lv.expire_at = e.remind_at, e.escalate_at, e.expire_at
            a.current_level = level
            a.next_deadline, a.next_deadline_kind = e.remind_at, "reminder"
        case ev.ApprovalReminderSent(level=level):
            a.next_deadline, a.next_deadline_kind = a.level(level).escalate_at, "escalation"
        case ev.ApprovalEscalated(level=level, to_level=to_level):
            lv = a.level(level)
            lv.escalated = True
            if to_level not in lv.eligible_levels:
                lv.eligible_levels.append(to_level)
            a.next_deadline, a.next_deadline_kind = lv.expire_at, "expiry"
        case ev.LevelApproved(level=level, comment=comment):
            lv = a.level(level)
            lv.approvals.append(Approval(by=e.actor, at=e.at, comment=comment))
            a.decided_by, a.decided_at, a.comment = e.actor, e.at, comment
            if len(lv.approvals) >= lv.quorum:
                lv.status = LevelStatus.APPROVED
        case ev.LevelRejected(level=level, reason=reason):
            a.level(level).status = LevelStatus.REJECTED
            a.decision = ApprovalDecision.REJECTED
            a.decided_by, a.decided_at, a.comment = e.actor, e.at, reason
        case ev.ChangesRequested(level=level):
            lv = a.level(level)
            _move(s, S.CHANGES_REQUESTED)
            lv.status = LevelStatus.PENDING
            a.current_level = None
            a.next_deadline, a.next_deadline_kind = e.expire_at, "expiry"
        case ev.Amended():
            s.revision = e.revision
            s.lines, s.shipping_address, s.total = _lines(e.lines), e.shipping_address, e.total
        case ev.ApprovalExpired():
            pass
        case ev.Confirmed():
            a.current_level, a.next_deadline, a.next_deadline_kind = None, None, None
            if a.levels:
                a.decision, a.approved_total = ApprovalDecision.APPROVED, s.total
            _move(s, S.CONFIRMED)
        case ev.PaymentRequested(due_at=due_at):
            _move(s, S.AWAITING_PAYMENT)
            s.payment.prepay, s.payment.due_at = True, due_at
        case ev.PaymentReminderSent() | ev.PaymentExpired():
            pass
        case ev.PaymentReceived():
            s.payment_pending = True
        case ev.PaymentDeclined(reason=reason):
            s.payment.declined_reason, s.payment_pending = reason, False
        case ev.PaymentCaptured(amount=amount, reference=reference):
            _move(s, S.PAID)
            s.payment.captured += amount
            s.payment.capture_reference, s.payment.declined_reason = reference, None
            s.payment_pending = False
        case ev.PaymentRefunded(amount=amount, reference=reference):
            s.payment.refunded += amount
            s.payment.refund_reference = reference
            s.payment.refund_state = refund_state(
                to_minor(s.payment.captured, s.currency), to_minor(s.payment.refunded, s.currency)
            )
        case ev.ShipmentBooked():
            if any(p.parcel == e.parcel for p in s.parcels):
                raise ValueError(f"parcel {e.parcel} is booked already")
            s.parcels.append(
                Parcel(
                    parcel=e.parcel,
                    carrier=e.carrier,
                    tracking_number=e.tracking_number,
                    lines=e.lines,
                )
            )
            if s.status is S.PAID:
                _move(s, S.FULFILLING)
        case ev.ShipmentSplit():
            if any(p.moved for p in s.parcels):
                raise ValueError("a parcel has moved: the shipment can no longer be split")
        case ev.ShipmentCancelled(parcel=parcel):
            s.parcel(parcel).status = ParcelStatus.CANCELLED
        case ev.CarrierScan(parcel=parcel, scan=scan):
            p = s.parcel(parcel)
            p.status, p.last_event = ParcelStatus(scan), scan
            if scan == "delivered":
                p.delivered_at = e.occurred_at or e.at
        case ev.CarrierEventIgnored():
            pass
        case ev.Shipped():
            _move(s, S.SHIPPED)
        case ev.Delivered():
            _move(s, S.DELIVERED)
        case ev.DeliveryOverdue():
            s.delivery_overdue = True
        case ev.CancelRequested():
            s.cancel_pending = True
        case ev.CompensationFailed(step=step, reason=reason):
            _move(s, S.NEEDS_ATTENTION)
            s.attention = Attention(step=step, reason=reason, since=e.at)
        case ev.CompensationRetried():
            s.attention = None  # running again; set anew if refused again
        case ev.CompensationResolved():
            s.attention = None
        case ev.Completed():
            _move(s, S.COMPLETED)
        case ev.Cancelled() | ev.Rejected() | ev.Failed():
            _move(s, OrderStatus(e.type))
            s.attention = None
            s.closure = Closure(reason=e.reason, by=e.actor, at=e.at)
        case _:  # pragma: no cover - the union is closed; a new type must get a rule here
            raise ValueError(f"no rule for event type {e.type!r}")
