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
    SHIPPED = "shipped"  # at least one parcel has left
    DELIVERED = "delivered"  # every parcel delivered
    COMPLETED = "completed"
    NEEDS_ATTENTION = "needs_attention"  # a compensation was refused for good: support decides
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
    SPLIT_SHIPMENT = "split_shipment"
    SHIPMENT_EVENT = "shipment_event"
    RETRY_COMPENSATION = "retry_compensation"
    RESOLVE_COMPENSATION = "resolve_compensation"


class RefundState(StrEnum):
    NONE = "none"
    PARTIAL = "partial"
    FULL = "full"


S = OrderStatus
TERMINAL: frozenset[OrderStatus] = frozenset({S.COMPLETED, S.CANCELLED, S.REJECTED, S.FAILED})
# Where an order waits for someone (approver, sales, customer, carrier, support): the read model
# always records these; the others are passed through on the way, often within one task.
RESTING: frozenset[OrderStatus] = frozenset(
    {
        S.AWAITING_APPROVAL,
        S.CHANGES_REQUESTED,
        S.AWAITING_PAYMENT,
        S.FULFILLING,
        S.SHIPPED,
        S.NEEDS_ATTENTION,
    }
)
# Ways an order ends without completing, and the statuses it may close from.
CLOSING: frozenset[OrderStatus] = frozenset({S.CANCELLED, S.REJECTED, S.FAILED})
_ENDS = CLOSING | {S.NEEDS_ATTENTION}

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.RECEIVED: frozenset({S.CREDIT_CHECK}) | _ENDS,
    S.CREDIT_CHECK: frozenset({S.AWAITING_APPROVAL, S.CONFIRMED}) | _ENDS,
    S.AWAITING_APPROVAL: frozenset({S.CONFIRMED, S.CHANGES_REQUESTED}) | _ENDS,
    S.CHANGES_REQUESTED: frozenset({S.CREDIT_CHECK, S.AWAITING_APPROVAL, S.CONFIRMED}) | _ENDS,
    S.CONFIRMED: frozenset({S.AWAITING_PAYMENT, S.PAID}) | _ENDS,
    S.AWAITING_PAYMENT: frozenset({S.PAID}) | _ENDS,
    S.PAID: frozenset({S.FULFILLING}) | _ENDS,
    S.FULFILLING: frozenset({S.SHIPPED}) | _ENDS,
    S.SHIPPED: frozenset({S.DELIVERED}),
    S.DELIVERED: frozenset({S.COMPLETED}),
    S.NEEDS_ATTENTION: CLOSING,
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
    S.FULFILLING: (Action.CANCEL, Action.SPLIT_SHIPMENT, Action.SHIPMENT_EVENT),
    S.SHIPPED: (Action.SHIPMENT_EVENT,),
    S.DELIVERED: (),
    S.COMPLETED: (),
    S.NEEDS_ATTENTION: (Action.RETRY_COMPENSATION, Action.RESOLVE_COMPENSATION),
    S.CANCELLED: (),
    S.REJECTED: (),
    S.FAILED: (),
}


class InvalidTransition(ValueError):
    pass


def allowed_actions(
    status: OrderStatus,
    *,
    cancel_pending: bool = False,
    payment_pending: bool = False,
    splittable: bool = True,
) -> list[Action]:
    """Actions a caller may take now. Once a cancellation is under way nothing else is allowed
    (but support's decision on a refused compensation); while a payment is processed no other
    payment; a parcel that moved cannot be re-split."""
    if cancel_pending and status is not OrderStatus.NEEDS_ATTENTION:
        return []
    actions = list(ALLOWED_ACTIONS[status])
    if payment_pending and Action.PAY in actions:
        actions.remove(Action.PAY)
    if not splittable and Action.SPLIT_SHIPMENT in actions:
        actions.remove(Action.SPLIT_SHIPMENT)
    return actions


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
