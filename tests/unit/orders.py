"""Orders built event by event for the fold's unit tests (no Temporal, no database).

``Order`` stamps each event with the next seq and a later time, as the workflow's recorder does,
and folds it with :func:`domain.state.apply`. The ``*_order`` builders reach the statuses the
tests start from with the shortest valid sequence of events.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from domain import events as ev
from domain.policies import CreditDecision, CreditOutcome
from domain.state import OrderState, apply
from tests.unit.builders import spec

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
ORDER_ID = "SO-20260314-7K2QF"
TOTAL = Decimal("39.98")  # the builders' default spec: 2 x 19.99 EUR
REMIND, ESCALATE, EXPIRE = timedelta(hours=8), timedelta(hours=24), timedelta(hours=72)
TRACKING = "SIM-0001"


def at(seq: int) -> datetime:
    """The time ``Order`` stamps on the event with ``seq``."""
    return T0 + timedelta(minutes=seq)


def credit(
    outcome: CreditOutcome = CreditOutcome.ACCEPT, reason: str = "within credit limit"
) -> CreditDecision:
    return CreditDecision(
        outcome=outcome,
        reason=reason,
        score=700,
        credit_limit=Decimal(50000),
        open_exposure=Decimal(0),
    )


def received_event(**spec_overrides: Any) -> ev.Received:
    order = spec(**spec_overrides)
    masked = order.model_copy(update={"payment_method": order.payment_method.masked()})
    return ev.Received(
        seq=1, at=T0, actor="eshop", order_id=ORDER_ID, spec=masked, total=order.total()
    )


class Order:
    """An order's events and the state they fold to."""

    def __init__(self, **spec_overrides: Any) -> None:
        first = received_event(**spec_overrides)
        self.events: list[ev.OrderEvent] = [first]
        self.state: OrderState = apply(None, first)

    def stamp(self, event: ev.OrderEvent) -> ev.OrderEvent:
        seq = self.state.seq + 1
        return event.model_copy(update={"seq": seq, "at": at(seq)})

    def add(self, *events: ev.OrderEvent) -> Order:
        for event in events:
            stamped = self.stamp(event)
            applied = apply(self.state, stamped)
            assert applied is self.state  # in place, as the workflow relies on
            self.events.append(stamped)
        return self

    def snapshot(self) -> OrderState:
        return self.state.model_copy(deep=True)

    @property
    def now(self) -> datetime:
        """The time of the last event."""
        return self.events[-1].at


def chain(
    *levels: tuple[int, str, int] | ev.ChainStep, kept: list[int] | None = None
) -> ev.ApprovalChainDecided:
    steps = [
        lv if isinstance(lv, ev.ChainStep) else ev.ChainStep(level=lv[0], name=lv[1], quorum=lv[2])
        for lv in levels
    ]
    return ev.ApprovalChainDecided(policy_version="2026-03", levels=steps, kept=kept or [])


def requested(order: Order, level: int) -> ev.ApprovalRequested:
    """Level ``level`` to decide, with deadlines from the time of the next event."""
    now = at(order.state.seq + 1)
    return ev.ApprovalRequested(
        level=level, remind_at=now + REMIND, escalate_at=now + ESCALATE, expire_at=now + EXPIRE
    )


def booked(
    parcel: int = 1, tracking: str = TRACKING, lines: list[ev.ParcelLine] | None = None
) -> ev.ShipmentBooked:
    return ev.ShipmentBooked(
        parcel=parcel,
        carrier="simex",
        tracking_number=tracking,
        lines=lines or [ev.ParcelLine(sku="WIDGET-1", quantity=2)],
    )


def scan(kind: str, parcel: int = 1, tracking: str = TRACKING, **extra: Any) -> ev.CarrierScan:
    return ev.CarrierScan(
        actor="carrier", parcel=parcel, tracking_number=tracking, scan=kind, **extra
    )


# --- orders in a given status --------------------------------------------------------------------


def received_order(**spec_overrides: Any) -> Order:
    return Order(**spec_overrides)


def credit_check_order(**spec_overrides: Any) -> Order:
    return Order(**spec_overrides).add(ev.CreditCheckStarted())


def reserved_order(**spec_overrides: Any) -> Order:
    return credit_check_order(**spec_overrides).add(
        ev.CreditChecked(actor="credit-policy", decision=credit()),
        ev.StockReserved(revision=0, units=2),
    )


def chain_order(*levels: tuple[int, str, int]) -> Order:
    """Credit checked, stock reserved, the chain decided, no level asked yet."""
    return reserved_order().add(chain(*(levels or ((1, "sales lead", 1),))))


def awaiting_approval_order(*levels: tuple[int, str, int]) -> Order:
    """Level 1 (of ``levels``; default: one level of quorum 1) is deciding."""
    order = chain_order(*levels)
    return order.add(requested(order, 1))


def changes_requested_order() -> Order:
    order = awaiting_approval_order()
    return order.add(
        ev.ChangesRequested(
            actor="lead-1", level=1, reason="discount too high", expire_at=at(100) + EXPIRE
        )
    )


def confirmed_order(**spec_overrides: Any) -> Order:
    return reserved_order(**spec_overrides).add(ev.Confirmed())


def awaiting_payment_order() -> Order:
    return confirmed_order(payment_method={"type": "bank_transfer"}).add(
        ev.PaymentRequested(amount=TOTAL, due_at=at(5) + timedelta(days=3))
    )


def paid_order() -> Order:
    return confirmed_order().add(ev.PaymentCaptured(amount=TOTAL, reference="CAP-1"))


def fulfilling_order() -> Order:
    return paid_order().add(booked())


def shipped_order() -> Order:
    return fulfilling_order().add(scan("picked_up"), ev.Shipped(actor="carrier", parcel=1))


def delivered_order() -> Order:
    order = shipped_order().add(scan("delivered"))
    return order.add(ev.Delivered(actor="carrier", delivered_at=order.now))


def cancelling_order() -> Order:
    """Paid, then a cancellation was accepted: the compensations run."""
    return paid_order().add(ev.CancelRequested(actor="support", reason="customer called"))


def needs_attention_order() -> Order:
    """The refund of a cancelled order was refused for good."""
    return cancelling_order().add(
        ev.CompensationFailed(step="refund_payment", reason="card account closed")
    )
