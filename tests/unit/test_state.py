"""domain.state: the state of a freshly received order, and what the state model offers."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from domain import events as ev
from domain.state import (
    ApprovalInfo,
    LevelState,
    LevelStatus,
    LineView,
    LoggedEvent,
    OrderState,
    Parcel,
    ParcelStatus,
    apply,
    fold,
)
from domain.status import Action, OrderStatus, RefundState
from domain.timeline import event_data
from tests.unit.builders import line, spec
from tests.unit.orders import TRACKING, booked, fulfilling_order, scan

AT = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)
ORDER_ID = "SO-20260314-7K2QF"


def _state(**overrides: object) -> OrderState:
    order = spec(**overrides)
    received = ev.Received(
        seq=1, at=AT, actor="clerk@example.com", order_id=ORDER_ID, spec=order, total=order.total()
    )
    return apply(None, received)


def test_identity_and_timestamps() -> None:
    state = _state()
    assert state.id == ORDER_ID
    assert state.created_by == "clerk@example.com"
    assert state.created_at == AT
    assert state.updated_at == AT
    assert state.seq == 1


def test_status_received_and_only_cancel_allowed() -> None:
    state = _state()
    assert state.status is OrderStatus.RECEIVED
    assert state.allowed_actions == [Action.CANCEL]


def test_no_decisions_yet() -> None:
    state = _state()
    assert state.credit is None
    assert state.closure is None
    assert state.attention is None
    assert state.revision == 0
    assert state.approval == ApprovalInfo()
    assert state.approval.required is False
    assert state.approval.decision is None
    assert state.payment.prepay is False
    assert state.payment.captured == 0
    assert state.payment.refunded == 0
    assert state.payment.refund_state is RefundState.NONE
    assert state.parcels == []
    assert state.cancel_pending is False
    assert state.payment_pending is False
    assert state.delivery_overdue is False


@pytest.mark.parametrize(
    ("currency", "lines", "line_totals", "total"),
    [
        ("EUR", [line(quantity=2, unit_price="19.99")], ["39.98"], "39.98"),
        (
            "EUR",
            [line("A", 3, "1.10"), line("B", 1, "0.01"), line("C", 10, "0")],
            ["3.30", "0.01", "0"],
            "3.31",
        ),
        ("JPY", [line("A", 4, "250"), line("B", 1, "99")], ["1000", "99"], "1099"),
        ("KWD", [line("A", 2, "1.125")], ["2.250"], "2.250"),
    ],
)
def test_line_totals_and_total(
    currency: str, lines: list[dict[str, object]], line_totals: list[str], total: str
) -> None:
    state = _state(currency=currency, lines=lines)
    assert [lv.line_total for lv in state.lines] == [Decimal(t) for t in line_totals]
    assert state.total == Decimal(total)
    assert state.total == sum((lv.line_total for lv in state.lines), Decimal(0))
    assert state.currency == currency


def test_total_is_taken_from_the_event() -> None:
    order = spec()
    state = apply(None, ev.Received(order_id=ORDER_ID, spec=order, total=Decimal("1.00")))
    assert state.total == Decimal("1.00")


def test_lines_keep_sku_quantity_and_price() -> None:
    state = _state(lines=[line("SKU-1", 5, "2.00"), line("SKU-2", 1, "7.50")])
    assert all(isinstance(lv, LineView) for lv in state.lines)
    assert [(lv.sku, lv.quantity, lv.unit_price) for lv in state.lines] == [
        ("SKU-1", 5, Decimal("2.00")),
        ("SKU-2", 1, Decimal("7.50")),
    ]


def test_copies_customer_address_payment_and_references() -> None:
    order = spec(payment_method={"type": "bank_transfer"})
    state = apply(None, ev.Received(at=AT, order_id=ORDER_ID, spec=order, total=order.total()))
    assert state.customer == order.customer
    assert state.shipping_address == order.shipping_address
    assert state.payment_method == order.payment_method
    assert state.sales_rep == "rep-jane"
    assert state.external_reference == "ESHOP-1"


def test_payment_method_is_the_events_masked_one() -> None:
    order = spec(payment_method={"type": "card", "token": "tok_4242424242424242"})
    masked = order.model_copy(update={"payment_method": order.payment_method.masked()})
    state = apply(None, ev.Received(order_id=ORDER_ID, spec=masked, total=order.total()))
    assert state.payment_method.token == "****4242"
    assert "tok_4242424242424242" not in state.model_dump_json()


def test_optional_references_default_to_none() -> None:
    state = _state(sales_rep=None, external_reference=None)
    assert state.sales_rep is None
    assert state.external_reference is None


def test_states_do_not_share_mutable_defaults() -> None:
    first, second = _state(), _state()
    first.allowed_actions.append(Action.PAY)
    first.payment.prepay = True
    first.approval.levels.append(LevelState(level=1, name="x", quorum=1, eligible_levels=[1]))
    first.parcels.append(Parcel(parcel=1, carrier="c", tracking_number="t", lines=[]))
    assert second.allowed_actions == [Action.CANCEL]
    assert second.payment.prepay is False
    assert second.approval.levels == []
    assert second.parcels == []


def test_an_event_without_seq_or_time_is_received_as_seq_1() -> None:
    order = spec()
    state = apply(None, ev.Received(order_id=ORDER_ID, spec=order, total=order.total()))
    assert state.seq == 1
    assert state.created_at == ev.UNSET
    assert state.created_by == ev.SYSTEM


def test_fold_of_received_equals_apply() -> None:
    order = spec()
    received = ev.Received(seq=1, at=AT, order_id=ORDER_ID, spec=order, total=order.total())
    assert fold([received]) == apply(None, received)


def test_state_round_trips_through_json() -> None:
    state = fulfilling_order().add(scan("in_transit", location="Hub 7")).state
    assert OrderState.model_validate_json(state.model_dump_json()) == state


# --- lookups -------------------------------------------------------------------------------------


def test_parcel_lookups() -> None:
    order = fulfilling_order().add(
        ev.ShipmentCancelled(parcel=1, tracking_number=TRACKING), booked(2, "SIM-0002")
    )
    state = order.state
    assert state.parcel(1).status is ParcelStatus.CANCELLED
    assert state.parcel(2).tracking_number == "SIM-0002"
    assert [p.parcel for p in state.active_parcels()] == [2]
    assert state.parcel_by_tracking(TRACKING) is None  # cancelled parcels are not tracked
    assert state.parcel_by_tracking("SIM-0002") is state.parcel(2)
    assert state.parcel_by_tracking("NOPE") is None
    with pytest.raises(StopIteration):
        state.parcel(9)


@pytest.mark.parametrize(
    ("status", "active", "moved"),
    [
        (ParcelStatus.BOOKED, True, False),
        (ParcelStatus.PICKED_UP, True, True),
        (ParcelStatus.IN_TRANSIT, True, True),
        (ParcelStatus.EXCEPTION, True, True),
        (ParcelStatus.DELIVERED, True, True),
        (ParcelStatus.CANCELLED, False, False),
    ],
)
def test_parcel_active_and_moved(status: ParcelStatus, active: bool, moved: bool) -> None:
    parcel = Parcel(parcel=1, carrier="simex", tracking_number="T", lines=[], status=status)
    assert parcel.active is active
    assert parcel.moved is moved


def test_approval_waiting_is_the_current_waiting_level() -> None:
    first = LevelState(level=1, name="a", quorum=1, eligible_levels=[1])
    second = LevelState(level=2, name="b", quorum=1, eligible_levels=[2])
    info = ApprovalInfo(levels=[first, second])
    assert info.level(2) is second
    assert info.waiting() is None
    second.status = LevelStatus.WAITING
    assert info.waiting() is None  # not the current level
    info.current_level = 2
    assert info.waiting() is second
    second.status = LevelStatus.APPROVED
    assert info.waiting() is None


def test_logged_event_keeps_the_status_after_it_and_parses_its_event() -> None:
    logged = LoggedEvent.model_validate(
        {"status": "cancelled", "event": {"type": "cancelled", "seq": 9, "reason": "r"}}
    )
    assert logged.status is OrderStatus.CANCELLED
    assert isinstance(logged.event, ev.Cancelled)
    assert logged.event.seq == 9


def test_event_data_is_the_events_own_fields() -> None:
    event = scan("exception", note="address unclear").model_copy(update={"seq": 4, "at": AT})
    assert event_data(event) == {
        "parcel": 1,
        "tracking_number": TRACKING,
        "scan": "exception",
        "location": None,
        "note": "address unclear",
        "occurred_at": None,
    }
