"""Payment and delivery steps of the order workflow: prepay waits, capture, carrier events."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.money import from_minor, to_minor
    from domain.status import OrderStatus
    from workflows.contracts import (
        CaptureRequest,
        CarrierEventInput,
        CarrierEventType,
        ChargeResult,
        PaymentInput,
        StockRequest,
    )

from workflows.recorder import (
    SYSTEM,
    OrderEnded,
    OrderRecorder,
    StepFailure,
    error_message,
    error_type,
)

S = OrderStatus


class Fulfilment(OrderRecorder):
    """State: payments and carrier events waiting to be processed, money captured so far."""

    _payments: list[PaymentInput]
    _payments_settled: int
    _carrier_events: list[CarrierEventInput]
    _compensations: list[str]
    _captured_minor: int

    async def _await_prepayment(self) -> None:
        view, policy = self._view, self._inp.policy
        started = workflow.now()
        deadline = started + policy.payment_deadline
        view.payment.prepay, view.payment.due_at = True, deadline
        self._move(
            S.AWAITING_PAYMENT,
            "payment_requested",
            f"Waiting for payment of {view.total} {view.currency} by {deadline.isoformat()}",
        )
        reminder_at = started + policy.payment_reminder_after
        reminded = policy.payment_reminder_after >= policy.payment_deadline
        attempt = 0
        while True:
            until = deadline if reminded else reminder_at
            arrived = await self._wait_for(lambda: bool(self._payments), until - workflow.now())
            if arrived:
                payment = self._payments.pop(0)
                attempt += 1
                try:
                    await self._capture(f"capture-{attempt}", payment.token, actor=payment.actor)
                    return
                except OrderEnded as declined:
                    self._event(
                        "payment_declined",
                        f"Payment declined: {declined.reason}",
                        actor=payment.actor,
                    )
                    view.payment.declined_reason = declined.reason
                finally:
                    self._payments_settled += 1
            elif not reminded:
                reminded = True
                await self._notify(
                    "payment_reminder",
                    view.customer.email,
                    f"Payment due for order {view.id}",
                    f"Please pay {view.total} {view.currency} by {deadline.isoformat()}.",
                )
                self._event("payment_reminder_sent", "Customer reminded to pay")
            else:
                raise OrderEnded(S.CANCELLED, "payment_expired", "payment deadline passed", SYSTEM)

    async def _capture(self, step: str, token: str, actor: str = SYSTEM) -> None:
        view = self._view
        amount_minor = to_minor(view.total, view.currency)
        self._before_step()
        try:
            charge = await self._activity(
                "capture_payment",
                CaptureRequest(
                    order_id=view.id,
                    step=step,
                    amount_minor=amount_minor,
                    currency=view.currency,
                    token=token,
                ),
                ChargeResult,
                heartbeat=True,
            )
        except StepFailure as err:
            if error_type(err) == "PaymentDeclined":
                raise OrderEnded(
                    S.FAILED, "payment_declined", error_message(err), "payment-gateway"
                ) from err
            raise
        self._captured_minor += charge.amount_minor
        view.payment.captured = from_minor(self._captured_minor, view.currency)
        view.payment.capture_reference = charge.reference
        view.payment.declined_reason = None
        self._move(
            S.PAID,
            "payment_captured",
            f"Captured {view.payment.captured} {view.currency}",
            actor=actor,
            data={"reference": charge.reference},
        )

    async def _follow_carrier(self) -> None:
        view, policy = self._view, self._inp.policy
        overdue_at = workflow.now() + policy.delivery_sla
        sla_reported = False
        while view.status is not S.DELIVERED:
            timeout = None if sla_reported else overdue_at - workflow.now()
            arrived = await self._wait_for(lambda: bool(self._carrier_events), timeout)
            if not arrived:
                sla_reported = True
                await self._notify(
                    "delivery_overdue",
                    "support@orderly.local",
                    f"Order {view.id} not delivered in time",
                    f"Tracking {view.shipment.tracking_number} is past its SLA.",
                )
                self._event("delivery_overdue", "Delivery SLA passed without delivery")
                continue
            await self._apply_carrier_event(self._carrier_events.pop(0))

    async def _apply_carrier_event(self, ev: CarrierEventInput) -> None:
        view = self._view
        view.shipment.last_event = ev.event.value
        data = {k: v for k, v in {"location": ev.location, "note": ev.note}.items() if v}
        if ev.event in (CarrierEventType.PICKED_UP, CarrierEventType.DELIVERED) and (
            view.status is S.FULFILLING
        ):
            # Status first, so a cancel arriving during the activity is refused.
            self._move(S.SHIPPED, "shipped", "Picked up by the carrier", actor=ev.actor, data=data)
            self._compensations.clear()  # goods left: returns are a separate process
            await self._activity("ship_stock", StockRequest(order_id=view.id), local=True)
        if ev.event is CarrierEventType.DELIVERED:
            view.shipment.delivered_at = ev.occurred_at or workflow.now()
            self._move(
                S.DELIVERED, "delivered", "Delivered to the customer", actor=ev.actor, data=data
            )
        elif ev.event is CarrierEventType.IN_TRANSIT:
            self._event("in_transit", "In transit", actor=ev.actor, data=data)
        elif ev.event is CarrierEventType.EXCEPTION:
            self._event(
                "carrier_exception",
                ev.note or "Carrier reported an exception",
                actor=ev.actor,
                data=data,
            )
