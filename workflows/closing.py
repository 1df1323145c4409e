"""How an order ends without being delivered: compensations unwound in reverse, then closed."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.money import from_minor
    from domain.status import OrderStatus, refund_state
    from domain.view import Closure
    from workflows.contracts import CarrierEventInput, ChargeResult, RefundRequest, StockRequest

from workflows.recorder import COMPENSATION_RETRY, OrderEnded, OrderRecorder

S = OrderStatus


class Closing(OrderRecorder):
    """State: the compensation stack, money captured and refunded, carrier scans not applied."""

    _compensations: list[str]
    _captured_minor: int
    _refunded_minor: int
    _carrier_events: list[CarrierEventInput]

    async def _close(self, end: OrderEnded) -> None:
        view = self._view
        if self._decide_at_task_end and "release_stock" not in self._compensations:
            # A lost workflow task may have reserved stock that this run never asked for.
            self._compensations.insert(0, "release_stock")
        for step in reversed(self._compensations):
            await self._compensate(step)
        self._compensations.clear()
        if end.status is S.CANCELLED:
            await self._notify(
                "cancelled",
                view.customer.email,
                f"Order {view.id} cancelled",
                f"Your order was cancelled: {end.reason}",
            )
        # Terminal only once every side effect is done.
        view.closure = Closure(reason=end.reason, by=end.actor, at=workflow.now())
        self._move(end.status, end.event, f"Order {end.status}: {end.reason}", actor=end.actor)
        if not self._steady:  # steady orders project once more when run() returns
            await self._flush()

    def _drop_carrier_events(self) -> None:
        """Record scans still queued when the order ends without following the carrier."""
        if not self._decide_at_task_end:
            return
        for ev in self._carrier_events:
            self._event(
                "carrier_event_ignored",
                f"Carrier event {ev.event} ignored while {self._view.status}",
                actor=ev.actor,
            )
        self._carrier_events.clear()

    async def _compensate(self, step: str) -> None:
        view = self._view
        opts: dict[str, Any] = {"retry": COMPENSATION_RETRY}
        if step == "release_stock":
            units = await self._activity(
                "release_stock", StockRequest(order_id=view.id), int, local=True, **opts
            )
            if units:
                self._event("stock_released", f"Released {units} reserved units")
        elif step == "refund_payment":
            due = self._captured_minor - self._refunded_minor
            if due <= 0:
                return
            charge = await self._activity(
                "refund_payment",
                RefundRequest(
                    order_id=view.id, step="refund", amount_minor=due, currency=view.currency
                ),
                ChargeResult,
                heartbeat=True,
                **opts,
            )
            self._refunded_minor += charge.amount_minor
            view.payment.refunded = from_minor(self._refunded_minor, view.currency)
            view.payment.refund_reference = charge.reference
            view.payment.refund_state = refund_state(self._captured_minor, self._refunded_minor)
            self._event(
                "payment_refunded",
                f"Refunded {view.payment.refunded} {view.currency}",
                data={"reference": charge.reference},
            )
        elif step == "cancel_shipment":
            if await self._activity(
                "cancel_shipment", StockRequest(order_id=view.id), bool, **opts
            ):
                self._event("shipment_cancelled", "Shipment booking cancelled")
