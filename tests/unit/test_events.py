"""The fold of an order's events, one event type at a time (no Temporal, no database).

Every type in ``domain.events.EVENT_TYPES`` has a case below: it builds the shortest valid
sequence that reaches the state where the event applies, applies the event, and asserts what it
changes and that nothing else changes. A new event type without a case fails
``test_every_event_type_has_a_case``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from domain import events as ev
from domain.policies import CreditOutcome
from domain.state import (
    Approval,
    ApprovalDecision,
    Attention,
    Closure,
    EventOutOfOrder,
    LevelStatus,
    OrderState,
    ParcelStatus,
    apply,
    fold,
)
from domain.status import Action, OrderStatus, RefundState
from domain.timeline import describe
from tests.unit.builders import line
from tests.unit.orders import (
    ESCALATE,
    EXPIRE,
    ORDER_ID,
    REMIND,
    T0,
    TOTAL,
    TRACKING,
    Order,
    at,
    awaiting_approval_order,
    awaiting_payment_order,
    booked,
    cancelling_order,
    chain,
    chain_order,
    changes_requested_order,
    confirmed_order,
    credit,
    credit_check_order,
    delivered_order,
    fulfilling_order,
    needs_attention_order,
    paid_order,
    received_event,
    received_order,
    requested,
    reserved_order,
    scan,
    shipped_order,
)

S = OrderStatus
A = Action
APPROVER_ACTIONS = [A.APPROVE, A.REJECT, A.REQUEST_CHANGES, A.CANCEL]
FULFILLING_ACTIONS = [A.CANCEL, A.SPLIT_SHIPMENT, A.SHIPMENT_EVENT]
SUPPORT_ACTIONS = [A.RETRY_COMPENSATION, A.RESOLVE_COMPENSATION]
# Fields every applied event changes.
BOOKKEEPING = {"seq", "updated_at"}


def changed(before: OrderState, after: OrderState) -> set[str]:
    """Top-level fields of the state that differ, beyond seq and updated_at."""
    old, new = before.model_dump(), after.model_dump()
    return {name for name in new if old[name] != new[name]} - BOOKKEEPING


class Step:
    """Applies the one event a case is about, checks what every event does (seq, time)."""

    def __init__(self, event_type: str) -> None:
        self.type = event_type
        self.event: ev.OrderEvent | None = None

    def _record(self, event: ev.OrderEvent) -> None:
        assert event.type == self.type, f"the case for {self.type!r} applied {event.type!r}"
        assert self.event is None, "a case applies its event once"
        self.event = event

    def start(self, event: ev.Received) -> OrderState:
        """The first event of an order."""
        self._record(event)
        return apply(None, event)

    def __call__(self, order: Order, event: ev.OrderEvent) -> tuple[OrderState, OrderState]:
        """Apply ``event`` to ``order``: (state before, state after)."""
        before = order.snapshot()
        order.add(event)
        self._record(order.events[-1])
        after = order.state
        assert after.seq == before.seq + 1
        assert after.updated_at == at(after.seq) != before.updated_at
        return before, after


CASES: dict[str, Callable[[Step], None]] = {}


def case(event_type: str) -> Callable[[Callable[[Step], None]], Callable[[Step], None]]:
    def register(fn: Callable[[Step], None]) -> Callable[[Step], None]:
        assert event_type not in CASES, f"two cases for {event_type}"
        CASES[event_type] = fn
        return fn

    return register


# --- intake and credit ---------------------------------------------------------------------------


@case("received")
def _received(step: Step) -> None:
    event = received_event()
    state = step.start(event)
    assert state.id == ORDER_ID
    assert (state.seq, state.status) == (1, S.RECEIVED)
    assert state.created_at == state.updated_at == T0
    assert state.created_by == "eshop"
    assert state.total == TOTAL
    assert state.payment_method == event.spec.payment_method
    assert state.allowed_actions == [A.CANCEL]
    assert state.parcels == []
    assert state.closure is state.attention is state.credit is None
    assert not (state.cancel_pending)
    assert not (state.payment_pending)
    assert not state.approval.required


@case("credit_check_started")
def _credit_check_started(step: Step) -> None:
    before, after = step(received_order(), ev.CreditCheckStarted())
    assert (before.status, after.status) == (S.RECEIVED, S.CREDIT_CHECK)
    assert after.allowed_actions == [A.CANCEL]
    assert changed(before, after) == {"status"}


@case("credit_checked")
def _credit_checked(step: Step) -> None:
    decision = credit(CreditOutcome.REVIEW, "exposure above 80% of limit")
    before, after = step(
        credit_check_order(), ev.CreditChecked(actor="credit-policy", decision=decision)
    )
    assert after.credit == decision
    assert after.status is S.CREDIT_CHECK  # the order goes on (or closes) by later events
    assert changed(before, after) == {"credit"}


# --- stock ---------------------------------------------------------------------------------------


@case("stock_reserved")
def _stock_reserved(step: Step) -> None:
    order = credit_check_order().add(ev.CreditChecked(decision=credit()))
    before, after = step(order, ev.StockReserved(revision=0, units=2))
    assert after.status is S.CREDIT_CHECK
    assert changed(before, after) == set()


@case("out_of_stock")
def _out_of_stock(step: Step) -> None:
    order = credit_check_order().add(ev.CreditChecked(decision=credit()))
    before, after = step(order, ev.OutOfStock(actor="inventory", reason="WIDGET-1: 0 left"))
    assert changed(before, after) == set()  # the cause; ``failed`` closes the order
    order.add(ev.Failed(actor="inventory", reason="WIDGET-1: 0 left"))
    assert order.state.status is S.FAILED
    assert order.state.closure == Closure(reason="WIDGET-1: 0 left", by="inventory", at=order.now)


@case("stock_released")
def _stock_released(step: Step) -> None:
    order = cancelling_order()
    before, after = step(order, ev.StockReleased(units=2))
    assert changed(before, after) == set()
    assert after.allowed_actions == []  # still cancelling


# --- approval ------------------------------------------------------------------------------------


@case("approval_chain_decided")
def _approval_chain_decided(step: Step) -> None:
    decided = chain(
        ev.ChainStep(level=1, name="sales lead", quorum=1, escalate_to=2),
        ev.ChainStep(level=3, name="finance", quorum=2),
    )
    before, after = step(reserved_order(), decided)
    approval = after.approval
    assert approval.required is True
    assert approval.policy_version == "2026-03"
    assert [(lv.level, lv.name, lv.quorum, lv.escalate_to) for lv in approval.levels] == [
        (1, "sales lead", 1, 2),
        (3, "finance", 2, None),
    ]
    assert all(lv.status is LevelStatus.PENDING for lv in approval.levels)
    assert [lv.eligible_levels for lv in approval.levels] == [[1], [3]]
    assert approval.current_level is None
    assert approval.waiting() is None
    assert after.status is S.CREDIT_CHECK  # nobody is asked yet
    assert changed(before, after) == {"approval"}


@case("approval_requested")
def _approval_requested(step: Step) -> None:
    order = chain_order((1, "sales lead", 1), (2, "director", 1))
    event = requested(order, 1)
    before, after = step(order, event)
    assert (before.status, after.status) == (S.CREDIT_CHECK, S.AWAITING_APPROVAL)
    level = after.approval.level(1)
    assert level.status is LevelStatus.WAITING
    assert level.waiting_since == order.now
    assert (level.remind_at, level.escalate_at, level.expire_at) == (
        order.now + REMIND,
        order.now + ESCALATE,
        order.now + EXPIRE,
    )
    assert after.approval.level(2).status is LevelStatus.PENDING
    assert after.approval.current_level == 1
    assert after.approval.waiting() is level
    assert (after.approval.next_deadline, after.approval.next_deadline_kind) == (
        event.remind_at,
        "reminder",
    )
    assert after.allowed_actions == APPROVER_ACTIONS
    assert changed(before, after) == {"status", "approval", "allowed_actions"}


@case("approval_reminder_sent")
def _approval_reminder_sent(step: Step) -> None:
    order = awaiting_approval_order()
    before, after = step(order, ev.ApprovalReminderSent(level=1))
    level = after.approval.level(1)
    assert after.approval.next_deadline == level.escalate_at
    assert after.approval.next_deadline_kind == "escalation"
    assert after.status is S.AWAITING_APPROVAL
    assert level.escalated is False
    assert changed(before, after) == {"approval"}


@case("approval_escalated")
def _approval_escalated(step: Step) -> None:
    order = awaiting_approval_order().add(ev.ApprovalReminderSent(level=1))
    before, after = step(order, ev.ApprovalEscalated(level=1, to_level=2))
    level = after.approval.level(1)
    assert level.escalated is True
    assert level.eligible_levels == [1, 2]
    assert after.approval.next_deadline == level.expire_at
    assert after.approval.next_deadline_kind == "expiry"
    assert after.status is S.AWAITING_APPROVAL
    assert after.allowed_actions == APPROVER_ACTIONS
    assert changed(before, after) == {"approval"}


@case("approved")
def _approved(step: Step) -> None:
    order = awaiting_approval_order((1, "sales lead", 1), (2, "director", 1))
    before, after = step(order, ev.LevelApproved(actor="lead-1", level=1, comment="fine"))
    level = after.approval.level(1)
    assert level.approvals == [Approval(by="lead-1", at=order.now, comment="fine")]
    assert level.status is LevelStatus.APPROVED
    assert after.approval.waiting() is None  # level 2 is asked by its own event
    assert after.approval.level(2).status is LevelStatus.PENDING
    assert (after.approval.decided_by, after.approval.decided_at, after.approval.comment) == (
        "lead-1",
        order.now,
        "fine",
    )
    assert after.approval.decision is None  # the order is approved once confirmed
    assert after.status is S.AWAITING_APPROVAL
    assert changed(before, after) == {"approval"}


@case("level_rejected")
def _level_rejected(step: Step) -> None:
    order = awaiting_approval_order()
    before, after = step(order, ev.LevelRejected(actor="lead-1", level=1, reason="too risky"))
    assert after.approval.level(1).status is LevelStatus.REJECTED
    assert after.approval.decision is ApprovalDecision.REJECTED
    assert (after.approval.decided_by, after.approval.comment) == ("lead-1", "too risky")
    assert after.status is S.AWAITING_APPROVAL  # ``rejected`` closes it
    assert changed(before, after) == {"approval"}
    order.add(ev.Rejected(actor="lead-1", reason="too risky"))
    assert order.state.status is S.REJECTED


@case("changes_requested")
def _changes_requested(step: Step) -> None:
    order = awaiting_approval_order()
    expire_at = at(order.state.seq + 1) + EXPIRE
    event = ev.ChangesRequested(actor="lead-1", level=1, reason="discount", expire_at=expire_at)
    before, after = step(order, event)
    assert (before.status, after.status) == (S.AWAITING_APPROVAL, S.CHANGES_REQUESTED)
    assert after.approval.level(1).status is LevelStatus.PENDING
    assert after.approval.current_level is None
    assert after.approval.waiting() is None
    assert (after.approval.next_deadline, after.approval.next_deadline_kind) == (
        expire_at,
        "expiry",
    )
    assert after.allowed_actions == [A.AMEND, A.CANCEL]
    assert changed(before, after) == {"status", "approval", "allowed_actions"}


@case("amended")
def _amended(step: Step) -> None:
    order = changes_requested_order()
    address = order.state.shipping_address.model_copy(update={"city": "Leeds"})
    lines = [line("WIDGET-1", 1, "19.99"), line("GADGET-2", 3, "5.00")]
    event = ev.Amended(
        actor="rep-jane",
        revision=1,
        lines=lines,
        shipping_address=address,
        old_total=TOTAL,
        total=Decimal("34.99"),
    )
    before, after = step(order, event)
    assert after.revision == 1
    assert after.total == Decimal("34.99")
    assert [(lv.sku, lv.quantity, lv.line_total) for lv in after.lines] == [
        ("WIDGET-1", 1, Decimal("19.99")),
        ("GADGET-2", 3, Decimal("15.00")),
    ]
    assert after.shipping_address.city == "Leeds"
    assert after.status is S.CHANGES_REQUESTED  # the chain restarts by later events
    assert changed(before, after) == {"revision", "lines", "shipping_address", "total"}


@case("approval_expired")
def _approval_expired(step: Step) -> None:
    order = awaiting_approval_order()
    before, after = step(order, ev.ApprovalExpired(level=1))
    assert changed(before, after) == set()  # the cause; ``rejected`` closes the order
    order.add(ev.Rejected(reason="approval expired"))
    assert order.state.status is S.REJECTED
    assert order.state.closure == Closure(reason="approval expired", by="system", at=order.now)


@case("confirmed")
def _confirmed(step: Step) -> None:
    order = awaiting_approval_order()
    order.add(ev.LevelApproved(actor="lead-1", level=1))
    before, after = step(order, ev.Confirmed())
    assert (before.status, after.status) == (S.AWAITING_APPROVAL, S.CONFIRMED)
    assert after.approval.decision is ApprovalDecision.APPROVED
    assert after.approval.approved_total == TOTAL
    assert after.approval.current_level is None
    assert after.approval.next_deadline is after.approval.next_deadline_kind is None
    assert after.allowed_actions == [A.CANCEL]
    assert changed(before, after) == {"status", "approval", "allowed_actions"}


# --- payment -------------------------------------------------------------------------------------


@case("payment_requested")
def _payment_requested(step: Step) -> None:
    order = confirmed_order(payment_method={"type": "bank_transfer"})
    due = at(10) + timedelta(days=3)
    before, after = step(order, ev.PaymentRequested(amount=TOTAL, due_at=due))
    assert (before.status, after.status) == (S.CONFIRMED, S.AWAITING_PAYMENT)
    assert after.payment.prepay is True
    assert after.payment.due_at == due
    assert after.allowed_actions == [A.PAY, A.CANCEL]
    assert changed(before, after) == {"status", "payment", "allowed_actions"}


@case("payment_reminder_sent")
def _payment_reminder_sent(step: Step) -> None:
    before, after = step(awaiting_payment_order(), ev.PaymentReminderSent())
    assert after.status is S.AWAITING_PAYMENT
    assert changed(before, after) == set()


@case("payment_received")
def _payment_received(step: Step) -> None:
    before, after = step(
        awaiting_payment_order(), ev.PaymentReceived(actor="customer", amount=TOTAL)
    )
    assert after.payment_pending is True
    assert after.allowed_actions == [A.CANCEL]  # no second payment while this one is captured
    assert after.status is S.AWAITING_PAYMENT
    assert after.payment.captured == 0
    assert changed(before, after) == {"payment_pending", "allowed_actions"}


@case("payment_declined")
def _payment_declined(step: Step) -> None:
    order = awaiting_payment_order().add(ev.PaymentReceived(actor="customer", amount=TOTAL))
    before, after = step(order, ev.PaymentDeclined(actor="customer", reason="insufficient funds"))
    assert after.payment_pending is False
    assert after.payment.declined_reason == "insufficient funds"
    assert after.status is S.AWAITING_PAYMENT  # a prepay customer may pay again
    assert after.allowed_actions == [A.PAY, A.CANCEL]
    assert changed(before, after) == {"payment", "payment_pending", "allowed_actions"}


@case("payment_captured")
def _payment_captured(step: Step) -> None:
    order = awaiting_payment_order().add(
        ev.PaymentReceived(actor="customer", amount=TOTAL),
        ev.PaymentDeclined(actor="customer", reason="insufficient funds"),
        ev.PaymentReceived(actor="customer", amount=TOTAL),
    )
    before, after = step(
        order, ev.PaymentCaptured(actor="customer", amount=TOTAL, reference="CAP-7")
    )
    assert (before.status, after.status) == (S.AWAITING_PAYMENT, S.PAID)
    assert after.payment.captured == TOTAL
    assert after.payment.capture_reference == "CAP-7"
    assert after.payment.declined_reason is None
    assert after.payment.refund_state is RefundState.NONE
    assert after.payment_pending is False
    assert after.allowed_actions == [A.CANCEL]
    assert changed(before, after) == {"status", "payment", "payment_pending"}


@case("payment_expired")
def _payment_expired(step: Step) -> None:
    order = awaiting_payment_order()
    before, after = step(order, ev.PaymentExpired())
    assert changed(before, after) == set()  # the cause; ``cancelled`` closes the order
    order.add(ev.Cancelled(reason="payment deadline passed"))
    assert order.state.status is S.CANCELLED


@case("payment_refunded")
def _payment_refunded(step: Step) -> None:
    order = cancelling_order()
    before, after = step(order, ev.PaymentRefunded(amount=TOTAL, reference="REF-1"))
    assert after.payment.refunded == TOTAL
    assert after.payment.captured == TOTAL
    assert after.payment.refund_reference == "REF-1"
    assert after.payment.refund_state is RefundState.FULL
    assert after.status is S.PAID  # ``cancelled`` closes the order
    assert changed(before, after) == {"payment"}


# --- shipping ------------------------------------------------------------------------------------


@case("shipment_booked")
def _shipment_booked(step: Step) -> None:
    before, after = step(paid_order(), booked())
    assert (before.status, after.status) == (S.PAID, S.FULFILLING)
    [parcel] = after.parcels
    assert (parcel.parcel, parcel.carrier, parcel.tracking_number) == (1, "simex", TRACKING)
    assert parcel.lines == [ev.ParcelLine(sku="WIDGET-1", quantity=2)]
    assert parcel.status is ParcelStatus.BOOKED
    assert parcel.active
    assert not parcel.moved
    assert after.allowed_actions == FULFILLING_ACTIONS
    assert changed(before, after) == {"status", "parcels", "allowed_actions"}


@case("shipment_split")
def _shipment_split(step: Step) -> None:
    halves = [[ev.ParcelLine(sku="WIDGET-1", quantity=1)]] * 2
    before, after = step(fulfilling_order(), ev.ShipmentSplit(actor="support", parcels=halves))
    # The split is recorded; the bookings change by their own events.
    assert after.status is S.FULFILLING
    assert changed(before, after) == set()


@case("shipment_cancelled")
def _shipment_cancelled(step: Step) -> None:
    order = fulfilling_order()
    before, after = step(order, ev.ShipmentCancelled(parcel=1, tracking_number=TRACKING))
    assert after.parcel(1).status is ParcelStatus.CANCELLED
    assert after.active_parcels() == []
    assert after.parcel_by_tracking(TRACKING) is None
    assert after.status is S.FULFILLING
    assert changed(before, after) == {"parcels"}


@case("carrier_scan")
def _carrier_scan(step: Step) -> None:
    before, after = step(fulfilling_order(), scan("picked_up", location="Hub 7"))
    parcel = after.parcel(1)
    assert (parcel.status, parcel.last_event) == (ParcelStatus.PICKED_UP, "picked_up")
    assert parcel.moved
    assert parcel.delivered_at is None
    # Moved: no split any more; ``shipped`` moves the order.
    assert after.allowed_actions == [A.CANCEL, A.SHIPMENT_EVENT]
    assert after.status is S.FULFILLING
    assert changed(before, after) == {"parcels", "allowed_actions"}


@case("carrier_event_ignored")
def _carrier_event_ignored(step: Step) -> None:
    event = ev.CarrierEventIgnored(
        actor="carrier", scan="picked_up", tracking_number="NOPE", why="unknown tracking number"
    )
    before, after = step(fulfilling_order(), event)
    assert changed(before, after) == set()


@case("shipped")
def _shipped(step: Step) -> None:
    order = fulfilling_order().add(scan("picked_up"))
    before, after = step(order, ev.Shipped(actor="carrier", parcel=1))
    assert (before.status, after.status) == (S.FULFILLING, S.SHIPPED)
    assert after.allowed_actions == [A.SHIPMENT_EVENT]  # no cancel once the goods left
    assert changed(before, after) == {"status", "allowed_actions"}


@case("delivered")
def _delivered(step: Step) -> None:
    order = shipped_order().add(scan("delivered"))
    before, after = step(order, ev.Delivered(actor="carrier", delivered_at=order.now))
    assert (before.status, after.status) == (S.SHIPPED, S.DELIVERED)
    assert after.allowed_actions == []
    assert after.parcel(1).delivered_at == at(before.seq)
    assert changed(before, after) == {"status", "allowed_actions"}


@case("delivery_overdue")
def _delivery_overdue(step: Step) -> None:
    before, after = step(fulfilling_order(), ev.DeliveryOverdue())
    assert after.delivery_overdue is True
    assert after.status is S.FULFILLING
    assert changed(before, after) == {"delivery_overdue"}


# --- ending --------------------------------------------------------------------------------------


@case("cancel_requested")
def _cancel_requested(step: Step) -> None:
    before, after = step(paid_order(), ev.CancelRequested(actor="support", reason="changed mind"))
    assert after.cancel_pending is True
    assert after.allowed_actions == []  # nothing else while the cancellation runs
    assert after.status is S.PAID
    assert changed(before, after) == {"cancel_pending", "allowed_actions"}


@case("compensation_failed")
def _compensation_failed(step: Step) -> None:
    order = cancelling_order()
    event = ev.CompensationFailed(step="refund_payment", reason="card account closed")
    before, after = step(order, event)
    assert (before.status, after.status) == (S.PAID, S.NEEDS_ATTENTION)
    assert after.attention == Attention(
        step="refund_payment", reason="card account closed", since=order.now
    )
    # Support decides, although a cancellation is pending.
    assert after.cancel_pending is True
    assert after.allowed_actions == SUPPORT_ACTIONS
    assert changed(before, after) == {"status", "attention", "allowed_actions"}


@case("compensation_retried")
def _compensation_retried(step: Step) -> None:
    order = needs_attention_order()
    before, after = step(order, ev.CompensationRetried(actor="support-1", step="refund_payment"))
    assert after.status is S.NEEDS_ATTENTION
    assert after.attention is None  # running again: set anew if refused again
    assert after.allowed_actions == []  # no second decision while the retry runs
    assert changed(before, after) == {"attention", "allowed_actions"}


@case("compensation_resolved")
def _compensation_resolved(step: Step) -> None:
    order = needs_attention_order()
    event = ev.CompensationResolved(actor="support-1", step="refund_payment", note="bank refund")
    before, after = step(order, event)
    assert after.attention is None
    assert after.status is S.NEEDS_ATTENTION  # ``cancelled`` closes the order
    assert after.allowed_actions == []
    assert changed(before, after) == {"attention", "allowed_actions"}
    order.add(ev.Cancelled(actor="support", reason="customer called"))
    assert order.state.status is S.CANCELLED


@case("completed")
def _completed(step: Step) -> None:
    before, after = step(delivered_order(), ev.Completed())
    assert (before.status, after.status) == (S.DELIVERED, S.COMPLETED)
    assert after.status.is_terminal
    assert after.closure is None
    assert after.allowed_actions == []
    assert changed(before, after) == {"status"}


@case("cancelled")
def _cancelled(step: Step) -> None:
    order = cancelling_order().add(ev.PaymentRefunded(amount=TOTAL, reference="REF-1"))
    before, after = step(order, ev.Cancelled(actor="support", reason="customer called"))
    assert (before.status, after.status) == (S.PAID, S.CANCELLED)
    assert after.closure == Closure(reason="customer called", by="support", at=order.now)
    assert after.allowed_actions == []
    assert changed(before, after) == {"status", "closure"}


@case("rejected")
def _rejected(step: Step) -> None:
    order = credit_check_order().add(
        ev.CreditChecked(decision=credit(CreditOutcome.REJECT, "bureau score 300 below 400"))
    )
    event = ev.Rejected(actor="credit-policy", reason="bureau score 300 below 400")
    before, after = step(order, event)
    assert (before.status, after.status) == (S.CREDIT_CHECK, S.REJECTED)
    assert after.closure == Closure(
        reason="bureau score 300 below 400", by="credit-policy", at=order.now
    )
    assert after.allowed_actions == []
    assert changed(before, after) == {"status", "closure", "allowed_actions"}


@case("failed")
def _failed(step: Step) -> None:
    # After support settled a refused compensation: the order closes and attention clears.
    order = needs_attention_order()
    before, after = step(order, ev.Failed(actor="payment-gateway", reason="declined"))
    assert (before.status, after.status) == (S.NEEDS_ATTENTION, S.FAILED)
    assert after.closure == Closure(reason="declined", by="payment-gateway", at=order.now)
    assert after.attention is None
    assert after.allowed_actions == []
    assert changed(before, after) == {"status", "closure", "attention", "allowed_actions"}


# --- running the cases ---------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", sorted(CASES))
def test_event_changes_the_state_as_it_must(event_type: str) -> None:
    step = Step(event_type)
    CASES[event_type](step)
    assert step.event is not None, f"the case for {event_type} applied no event"


@functools.cache
def _samples() -> dict[str, ev.OrderEvent]:
    """The event each case applied, by type (as stamped)."""
    samples: dict[str, ev.OrderEvent] = {}
    for event_type, run in CASES.items():
        step = Step(event_type)
        run(step)
        assert step.event is not None
        samples[event_type] = step.event
    return samples


def test_every_event_type_has_a_case() -> None:
    assert set(CASES) == set(ev.EVENT_TYPES)
    assert set(_samples()) == set(ev.EVENT_TYPES)


def test_event_types_are_the_union_members() -> None:
    union = {member.model_fields["type"].default for member in ev.OrderEvent.__args__[0].__args__}
    assert union == set(ev.EVENT_TYPES)


@pytest.mark.parametrize("event_type", sorted(ev.EVENT_TYPES))
def test_describe_gives_one_line(event_type: str) -> None:
    event = _samples()[event_type]
    text = describe(event, "EUR")
    assert isinstance(text, str)
    assert text.strip()
    assert "\n" not in text
    assert text != event.type  # a rule of its own, not the fallback


@pytest.mark.parametrize("event_type", sorted(ev.EVENT_TYPES))
def test_event_round_trips_through_json(event_type: str) -> None:
    event = _samples()[event_type]
    data = event.model_dump(mode="json")
    assert data["type"] == event_type
    parsed = ev.parse_event(data)
    assert type(parsed) is type(event)
    assert parsed == event


# --- describe: what the timeline says ------------------------------------------------------------

DESCRIBED = {
    "received": "Order received: 39.98 EUR",
    "credit_checked": "Credit review: exposure above 80% of limit",
    "stock_reserved": "Reserved 2 units",
    "out_of_stock": "Out of stock: WIDGET-1: 0 left",
    "stock_released": "Released 2 reserved units",
    "approval_chain_decided": "Approval levels needed: 1 (sales lead), 3 (finance)",
    "approval_requested": "Level 1 to decide",
    "approval_reminder_sent": "Level 1 approvers reminded",
    "approval_escalated": "Level 1 escalated to level 2",
    "approved": "Level 1 approved: fine",
    "level_rejected": "Level 1 rejected: too risky",
    "changes_requested": "Changes requested: discount",
    "amended": "Amended: total 39.98 -> 34.99 EUR",
    "payment_received": "Payment of 39.98 EUR received",
    "payment_declined": "Payment declined: insufficient funds",
    "payment_captured": "Captured 39.98 EUR",
    "payment_refunded": "Refunded 39.98 EUR",
    "shipment_booked": f"Parcel 1 booked with simex: {TRACKING}",
    "shipment_split": "Shipment split into 2 parcels",
    "shipment_cancelled": f"Parcel 1 booking cancelled ({TRACKING})",
    "carrier_scan": "Parcel 1: picked up",
    "carrier_event_ignored": "Carrier event picked_up ignored: unknown tracking number",
    "shipped": "Shipped: parcel 1 picked up by the carrier",
    "cancel_requested": "Cancellation requested: changed mind",
    "compensation_failed": (
        "Compensation refund_payment refused: card account closed; support must retry or resolve it"
    ),
    "compensation_retried": "Compensation refund_payment retried",
    "compensation_resolved": "Compensation refund_payment resolved by hand: bank refund",
    "cancelled": "Order cancelled: customer called",
    "rejected": "Order rejected: bureau score 300 below 400",
    "failed": "Order failed: declined",
}


@pytest.mark.parametrize("event_type", sorted(DESCRIBED))
def test_describe_names_what_happened(event_type: str) -> None:
    assert describe(_samples()[event_type], "EUR") == DESCRIBED[event_type]


def test_describe_of_a_payment_request_gives_amount_and_deadline() -> None:
    due = at(10) + timedelta(days=3)
    text = describe(ev.PaymentRequested(amount=TOTAL, due_at=due), "EUR")
    assert text == f"Waiting for payment of 39.98 EUR by {due.isoformat()}"


def test_describe_of_a_scan_with_a_note() -> None:
    text = describe(scan("exception", note="address unclear"))
    assert text == "Parcel 1: exception (address unclear)"


# --- out of order --------------------------------------------------------------------------------


def test_an_order_starts_with_received() -> None:
    with pytest.raises(EventOutOfOrder, match="starts with 'received'"):
        apply(None, ev.CreditCheckStarted(seq=1))
    with pytest.raises(EventOutOfOrder, match="no events"):
        fold([])


def test_a_second_received_is_refused() -> None:
    order = credit_check_order()
    with pytest.raises(EventOutOfOrder, match="received once"):
        order.add(received_event())
    with pytest.raises(EventOutOfOrder):
        fold([received_event(), received_event().model_copy(update={"seq": 2})])


@pytest.mark.parametrize("seq", [1, 2, 4, 10])
def test_an_event_with_a_wrong_seq_is_refused(seq: int) -> None:
    order = credit_check_order()  # at seq 2
    event = ev.CreditChecked(seq=seq, at=at(3), decision=credit())
    with pytest.raises(EventOutOfOrder, match=f"event seq {seq} does not follow 2"):
        apply(order.state, event)


def test_an_event_without_a_seq_takes_the_next() -> None:
    order = credit_check_order()
    apply(order.state, ev.CreditChecked(at=at(3), decision=credit()))
    assert order.state.seq == 3


@pytest.mark.parametrize("seq", [1, 2, 4])
def test_an_event_with_a_wrong_seq_leaves_the_state_unchanged(seq: int) -> None:
    order = credit_check_order()  # at seq 2: a valid move with a wrong seq
    before = order.snapshot()
    with pytest.raises(EventOutOfOrder):
        apply(order.state, ev.CreditChecked(seq=seq, at=at(seq), decision=credit()))
    with pytest.raises(EventOutOfOrder):
        apply(order.state, ev.Rejected(seq=seq, at=at(seq), reason="r"))
    assert order.state == before


@pytest.mark.parametrize("seq", [2, 5])
def test_the_first_event_has_seq_1(seq: int) -> None:
    with pytest.raises(EventOutOfOrder, match=f"'received' is seq 1, not {seq}"):
        apply(None, received_event().model_copy(update={"seq": seq}))
    assert apply(None, received_event().model_copy(update={"seq": 0})).seq == 1


IMPOSSIBLE: list[tuple[str, Callable[[], Order], ev.OrderEvent]] = [
    ("confirmed before the credit check", received_order, ev.Confirmed()),
    (
        "paid while awaiting approval",
        awaiting_approval_order,
        ev.PaymentCaptured(amount=TOTAL, reference="C"),
    ),
    (
        "payment requested before confirmed",
        reserved_order,
        ev.PaymentRequested(amount=TOTAL, due_at=T0),
    ),
    ("shipped before a parcel is booked", paid_order, ev.Shipped(parcel=1)),
    ("delivered before shipped", fulfilling_order, ev.Delivered(delivered_at=T0)),
    ("completed before delivered", shipped_order, ev.Completed()),
    ("cancelled once shipped", shipped_order, ev.Cancelled(reason="too late")),
    ("failed once delivered", delivered_order, ev.Failed(reason="late")),
    ("needs attention once shipped", shipped_order, ev.CompensationFailed(step="x", reason="y")),
    ("completed from needs attention", needs_attention_order, ev.Completed()),
    (
        "credit check after cancelled",
        lambda: received_order().add(ev.Cancelled(reason="r")),
        ev.CreditCheckStarted(),
    ),
    (
        "changes requested after confirmed",
        lambda: awaiting_approval_order().add(ev.LevelApproved(level=1), ev.Confirmed()),
        ev.ChangesRequested(level=1, reason="r", expire_at=T0),
    ),
    (
        "approval asked after confirmed",
        lambda: confirmed_order().add(chain((1, "lead", 1))),
        ev.ApprovalRequested(level=1, remind_at=T0, escalate_at=T0, expire_at=T0),
    ),
]


@pytest.mark.parametrize(
    ("order", "event"), [(o, e) for _, o, e in IMPOSSIBLE], ids=[i for i, _, _ in IMPOSSIBLE]
)
def test_an_impossible_status_move_is_refused(order: Callable[[], Order], event: Any) -> None:
    with pytest.raises(EventOutOfOrder, match="cannot go from"):
        order().add(event)


@pytest.mark.parametrize(
    ("order", "event"),
    [pytest.param(o, e, id=i) for i, o, e in IMPOSSIBLE],
)
def test_an_impossible_status_move_leaves_the_state_unchanged(
    order: Callable[[], Order], event: Any
) -> None:
    built = order()
    before = built.snapshot()
    with pytest.raises(EventOutOfOrder):
        built.add(event)
    assert built.state == before


def test_an_unknown_level_is_refused() -> None:
    order = awaiting_approval_order()
    for event in (
        ev.LevelApproved(level=2),
        ev.LevelRejected(level=9, reason="r"),
        ev.ApprovalReminderSent(level=2),
        ev.ApprovalEscalated(level=2, to_level=3),
        ev.ChangesRequested(level=2, reason="r", expire_at=T0),
    ):
        with pytest.raises(EventOutOfOrder):
            order.add(event)
    with pytest.raises(EventOutOfOrder):
        chain_order().add(requested(chain_order(), 2))


def test_an_unknown_parcel_is_refused() -> None:
    for event in (scan("picked_up", parcel=2), ev.ShipmentCancelled(parcel=2, tracking_number="X")):
        with pytest.raises(EventOutOfOrder):
            fulfilling_order().add(event)


def test_a_parcel_is_booked_once() -> None:
    with pytest.raises(EventOutOfOrder, match="parcel 1 is booked already"):
        fulfilling_order().add(booked(1, tracking="SIM-0002"))


def test_no_split_once_a_parcel_moved() -> None:
    halves = [[ev.ParcelLine(sku="WIDGET-1", quantity=1)]] * 2
    with pytest.raises(EventOutOfOrder, match="can no longer be split"):
        fulfilling_order().add(scan("in_transit"), ev.ShipmentSplit(parcels=halves))


# --- more of what the events do ------------------------------------------------------------------


def test_a_level_needs_its_quorum() -> None:
    order = awaiting_approval_order((1, "finance", 2))
    order.add(ev.LevelApproved(actor="fin-1", level=1))
    level = order.state.approval.level(1)
    assert level.status is LevelStatus.WAITING
    assert order.state.allowed_actions == APPROVER_ACTIONS
    order.add(ev.LevelApproved(actor="fin-2", level=1, comment="ok"))
    assert level.status is LevelStatus.APPROVED
    assert [a.by for a in level.approvals] == ["fin-1", "fin-2"]


def test_kept_levels_keep_their_approvals_after_an_amendment() -> None:
    order = awaiting_approval_order((1, "sales lead", 1), (2, "director", 1))
    order.add(ev.LevelApproved(actor="lead-1", level=1))
    order.add(requested(order, 2))
    order.add(ev.ChangesRequested(actor="dir-1", level=2, reason="r", expire_at=at(50)))
    order.add(
        ev.Amended(
            revision=1,
            lines=[line("WIDGET-1", 1, "19.99")],
            shipping_address=order.state.shipping_address,
            old_total=TOTAL,
            total=Decimal("19.99"),
        )
    )
    order.add(chain((1, "sales lead", 1), (2, "director", 1), kept=[1]))
    first, second = order.state.approval.levels
    assert first.status is LevelStatus.APPROVED
    assert [a.by for a in first.approvals] == ["lead-1"]
    assert second.status is LevelStatus.PENDING
    assert second.approvals == []
    order.add(requested(order, 2))
    assert order.state.status is S.AWAITING_APPROVAL
    order.add(ev.LevelApproved(actor="dir-1", level=2), ev.Confirmed())
    assert order.state.approval.approved_total == Decimal("19.99")


def test_a_chain_decided_again_without_kept_levels_starts_over() -> None:
    order = awaiting_approval_order()
    order.add(ev.LevelApproved(actor="lead-1", level=1))
    order.add(chain((1, "sales lead", 1)))
    assert order.state.approval.level(1).status is LevelStatus.PENDING
    assert order.state.approval.level(1).approvals == []


def test_an_amendment_above_the_total_restarts_the_credit_check() -> None:
    order = changes_requested_order()
    order.add(
        ev.Amended(
            revision=1,
            lines=[line("WIDGET-1", 10, "19.99")],
            shipping_address=order.state.shipping_address,
            old_total=TOTAL,
            total=Decimal("199.90"),
        ),
        ev.CreditCheckStarted(),
    )
    assert order.state.status is S.CREDIT_CHECK


def test_confirmed_without_a_chain_is_no_approval() -> None:
    order = confirmed_order()
    assert order.state.approval.required is False
    assert order.state.approval.decision is None
    assert order.state.approval.approved_total is None


def test_card_capture_goes_from_confirmed_to_paid() -> None:
    order = paid_order()
    assert order.state.status is S.PAID
    assert order.state.payment.prepay is False
    assert order.state.payment.captured == TOTAL


def test_a_card_decline_fails_the_order() -> None:
    order = confirmed_order().add(
        ev.PaymentDeclined(actor="payment-gateway", reason="card declined"),
        ev.Failed(actor="payment-gateway", reason="card declined"),
    )
    assert order.state.status is S.FAILED
    assert order.state.payment.declined_reason == "card declined"


@pytest.mark.parametrize(
    ("refunds", "refunded", "state"),
    [
        (["10.00"], "10.00", RefundState.PARTIAL),
        (["10.00", "29.98"], "39.98", RefundState.FULL),
        (["0.01"], "0.01", RefundState.PARTIAL),
    ],
)
def test_refunds_add_up(refunds: list[str], refunded: str, state: RefundState) -> None:
    order = cancelling_order()
    for i, amount in enumerate(refunds):
        order.add(ev.PaymentRefunded(amount=Decimal(amount), reference=f"REF-{i}"))
    assert order.state.payment.refunded == Decimal(refunded)
    assert order.state.payment.refund_state is state
    assert order.state.payment.refund_reference == f"REF-{len(refunds) - 1}"


def test_a_split_rebooks_the_parcels() -> None:
    halves = [[ev.ParcelLine(sku="WIDGET-1", quantity=1)]] * 2
    order = fulfilling_order().add(
        ev.ShipmentSplit(actor="support", parcels=halves),
        ev.ShipmentCancelled(parcel=1, tracking_number=TRACKING),
        booked(2, "SIM-0002", halves[0]),
        booked(3, "SIM-0003", halves[1]),
    )
    state = order.state
    assert state.status is S.FULFILLING
    assert [(p.parcel, p.status) for p in state.parcels] == [
        (1, ParcelStatus.CANCELLED),
        (2, ParcelStatus.BOOKED),
        (3, ParcelStatus.BOOKED),
    ]
    assert [p.parcel for p in state.active_parcels()] == [2, 3]
    assert state.parcel_by_tracking("SIM-0003") is state.parcel(3)
    assert state.allowed_actions == FULFILLING_ACTIONS  # still splittable: nothing moved


@pytest.mark.parametrize("kind", ["picked_up", "in_transit", "exception", "delivered"])
def test_any_scan_while_fulfilling_is_followed_by_shipped(kind: str) -> None:
    order = fulfilling_order().add(scan(kind), ev.Shipped(actor="carrier", parcel=1))
    assert order.state.status is S.SHIPPED
    assert order.state.parcel(1).status is ParcelStatus(kind)
    assert order.state.parcel(1).last_event == kind


def test_a_delivered_scan_stamps_the_parcel_when_it_happened() -> None:
    occurred = T0 + timedelta(days=2)
    order = shipped_order().add(scan("delivered", occurred_at=occurred))
    assert order.state.parcel(1).delivered_at == occurred
    assert order.state.status is S.SHIPPED  # ``delivered`` moves the order


def test_delivered_needs_the_order_shipped_even_if_one_scan_delivered() -> None:
    order = fulfilling_order().add(scan("delivered"))
    with pytest.raises(EventOutOfOrder):
        order.add(ev.Delivered(delivered_at=order.now))
    order = fulfilling_order().add(scan("delivered"), ev.Shipped(parcel=1))
    order.add(ev.Delivered(delivered_at=order.now), ev.Completed())
    assert order.state.status is S.COMPLETED


def test_two_parcels_ship_with_the_first_and_deliver_with_the_last() -> None:
    halves = [[ev.ParcelLine(sku="WIDGET-1", quantity=1)]] * 2
    order = paid_order().add(booked(1, "SIM-A", halves[0]), booked(2, "SIM-B", halves[1]))
    assert order.state.status is S.FULFILLING
    order.add(scan("picked_up", 2, "SIM-B"), ev.Shipped(parcel=2))
    assert order.state.status is S.SHIPPED
    order.add(scan("delivered", 2, "SIM-B"))
    assert [p.status for p in order.state.parcels] == [ParcelStatus.BOOKED, ParcelStatus.DELIVERED]
    order.add(scan("delivered", 1, "SIM-A"), ev.Delivered(delivered_at=order.now))
    assert order.state.status is S.DELIVERED


def test_a_retried_compensation_that_fails_again_stays_in_needs_attention() -> None:
    order = needs_attention_order().add(
        ev.CompensationRetried(actor="support-1", step="refund_payment"),
        ev.CompensationFailed(step="refund_payment", reason="still closed"),
    )
    assert order.state.status is S.NEEDS_ATTENTION
    assert order.state.attention == Attention(
        step="refund_payment", reason="still closed", since=order.now
    )
    order.add(
        ev.CompensationRetried(actor="support-1", step="refund_payment"),
        ev.PaymentRefunded(amount=TOTAL, reference="REF-2"),
        ev.Cancelled(actor="support", reason="customer called"),
    )
    assert order.state.status is S.CANCELLED
    assert order.state.attention is None
    assert order.state.payment.refund_state is RefundState.FULL


@pytest.mark.parametrize("status", [S.CANCELLED, S.REJECTED, S.FAILED])
def test_each_closure_event_ends_in_its_status(status: OrderStatus) -> None:
    closing = ev.CLOSURES[status.value](actor="someone", reason="why")
    order = awaiting_approval_order().add(closing)
    assert order.state.status is status
    assert order.state.closure == Closure(reason="why", by="someone", at=order.now)


def test_fold_equals_applying_one_by_one() -> None:
    order = delivered_order().add(ev.Completed())
    assert fold(order.events) == order.state
    assert fold(list(order.events)).seq == len(order.events)


def test_fold_of_a_stored_log_round_tripped_through_json() -> None:
    order = needs_attention_order()
    stored = [e.model_dump(mode="json") for e in order.events]
    assert fold(ev.parse_event(data) for data in stored) == order.state


# --- the events themselves -----------------------------------------------------------------------


def test_events_are_frozen_and_strict() -> None:
    event = ev.Cancelled(reason="r")
    with pytest.raises(ValidationError):
        event.reason = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        ev.parse_event({"type": "cancelled", "reason": "r", "token": "tok_visa"})
    with pytest.raises(ValidationError):
        ev.parse_event({"type": "no_such_event"})
    with pytest.raises(ValidationError):
        ev.parse_event(
            {"type": "carrier_scan", "parcel": 1, "tracking_number": "T", "scan": "lost"}
        )


def test_event_defaults() -> None:
    event = ev.Confirmed()
    assert (event.seq, event.at, event.actor) == (0, ev.UNSET, ev.SYSTEM)
    with pytest.raises(ValidationError):
        ev.Confirmed(seq=-1)


def test_received_event_carries_no_payment_token() -> None:
    event = received_event(payment_method={"type": "card", "token": "tok_4242424242424242"})
    assert event.spec.payment_method.token == "****4242"
    assert "tok_4242424242424242" not in event.model_dump_json()
