"""Order statuses, the transitions between them and the actions each status allows."""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    RECEIVED = "received"
    CREDIT_CHECK = "credit_check"
    AWAITING_APPROVAL = "awaiting_approval"
    CHANGES_REQUESTED = "changes_requested"  # an approver sent it back to sales to amend
    CONFIRMED = "confirmed"  # credit and approval passed; stock and payment being secured
    AWAITING_PAYMENT = "awaiting_payment"  # prepay: waiting for the customer's payment
    PAID = "paid"
    FULFILLING = "fulfilling"  # shipment booked, waiting for the carrier to pick up
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


class Action(StrEnum):
    """Commands a caller may send to an order."""

    APPROVE = "approve"
    REJECT = "reject"
    REQUEST_CHANGES = "request_changes"
    AMEND = "amend"
    CANCEL = "cancel"
    PAY = "pay"
    SHIPMENT_EVENT = "shipment_event"


class RefundState(StrEnum):
    NONE = "none"
    PARTIAL = "partial"
    FULL = "full"


S = OrderStatus
TERMINAL: frozenset[OrderStatus] = frozenset({S.COMPLETED, S.CANCELLED, S.REJECTED, S.FAILED})
# Where an order waits for someone (approver, sales, customer, carrier): the read model always
# records these; the others are passed through on the way, often within one workflow task.
RESTING: frozenset[OrderStatus] = frozenset(
    {S.AWAITING_APPROVAL, S.CHANGES_REQUESTED, S.AWAITING_PAYMENT, S.FULFILLING, S.SHIPPED}
)

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.RECEIVED: frozenset({S.CREDIT_CHECK, S.CANCELLED}),
    S.CREDIT_CHECK: frozenset(
        {S.AWAITING_APPROVAL, S.CONFIRMED, S.REJECTED, S.CANCELLED, S.FAILED}
    ),
    S.AWAITING_APPROVAL: frozenset({S.CONFIRMED, S.REJECTED, S.CANCELLED, S.CHANGES_REQUESTED}),
    S.CHANGES_REQUESTED: frozenset(
        {S.CREDIT_CHECK, S.AWAITING_APPROVAL, S.CONFIRMED, S.REJECTED, S.CANCELLED, S.FAILED}
    ),
    S.CONFIRMED: frozenset({S.AWAITING_PAYMENT, S.PAID, S.CANCELLED, S.FAILED}),
    S.AWAITING_PAYMENT: frozenset({S.PAID, S.CANCELLED, S.FAILED}),
    S.PAID: frozenset({S.FULFILLING, S.CANCELLED, S.FAILED}),
    S.FULFILLING: frozenset({S.SHIPPED, S.CANCELLED, S.FAILED}),
    S.SHIPPED: frozenset({S.DELIVERED}),
    S.DELIVERED: frozenset({S.COMPLETED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.FAILED: frozenset(),
}

# Cancellation is allowed until the goods leave the warehouse.
CANCELLABLE: frozenset[OrderStatus] = frozenset(
    {
        S.RECEIVED,
        S.CREDIT_CHECK,
        S.AWAITING_APPROVAL,
        S.CHANGES_REQUESTED,
        S.CONFIRMED,
        S.AWAITING_PAYMENT,
        S.PAID,
        S.FULFILLING,
    }
)

ALLOWED_ACTIONS: dict[OrderStatus, tuple[Action, ...]] = {
    S.RECEIVED: (Action.CANCEL,),
    S.CREDIT_CHECK: (Action.CANCEL,),
    S.AWAITING_APPROVAL: (Action.APPROVE, Action.REJECT, Action.REQUEST_CHANGES, Action.CANCEL),
    S.CHANGES_REQUESTED: (Action.AMEND, Action.CANCEL),
    S.CONFIRMED: (Action.CANCEL,),
    S.AWAITING_PAYMENT: (Action.PAY, Action.CANCEL),
    S.PAID: (Action.CANCEL,),
    S.FULFILLING: (Action.CANCEL, Action.SHIPMENT_EVENT),
    S.SHIPPED: (Action.SHIPMENT_EVENT,),
    S.DELIVERED: (),
    S.COMPLETED: (),
    S.CANCELLED: (),
    S.REJECTED: (),
    S.FAILED: (),
}


class InvalidTransition(ValueError):
    pass


def allowed_actions(status: OrderStatus, *, cancel_pending: bool = False) -> list[Action]:
    """Actions a caller may take now. Once a cancellation is under way nothing else is allowed."""
    if cancel_pending:
        return []
    return list(ALLOWED_ACTIONS[status])


def check_transition(current: OrderStatus, new: OrderStatus) -> OrderStatus:
    """Return ``new`` if the table allows ``current -> new``, else raise InvalidTransition."""
    if new not in TRANSITIONS[current]:
        raise InvalidTransition(f"order cannot go from {current} to {new}")
    return new


def refund_state(captured: int, refunded: int) -> RefundState:
    """Refund state from captured and refunded minor units."""
    if refunded <= 0:
        return RefundState.NONE
    return RefundState.FULL if refunded >= captured else RefundState.PARTIAL
