"""Shipping of an order: parcels booked with the carrier, split on request, followed by scan
until every parcel is delivered. Shipments stay inside the order workflow: see the README
("Shipments") for the measured cost of child workflows."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.shipping import ShippingActivities
    from domain import events as ev
    from domain.shipping import split_problem
    from domain.state import Parcel, ParcelStatus
    from domain.status import Action, OrderStatus
    from workflows.contracts import (
        CancelShipmentRequest,
        CarrierEventInput,
        ShipmentRequest,
        SplitShipmentInput,
    )

from workflows.closing import Compensations
from workflows.recorder import (
    COMPENSATION_RETRY,
    Commands,
    Recorder,
    Ticket,
    invalid,
    not_allowed,
    refuse,
    settle,
)
from workflows.stock import Stock

S = OrderStatus


class Shipping:
    def __init__(self, rec: Recorder, stock: Stock, compensations: Compensations) -> None:
        self._rec, self._stock, self._compensations = rec, stock, compensations
        # Signals with their arrival number, judged by the run loop in order.
        self.scans: list[tuple[int, CarrierEventInput]] = []
        self.splits: Commands[SplitShipmentInput] = Commands()

    async def book_all(self) -> None:
        """One parcel with every line."""
        lines = [ev.ParcelLine(sku=ln.sku, quantity=ln.quantity) for ln in self._rec.state.lines]
        await self._book(lines)

    async def _book(self, lines: list[ev.ParcelLine]) -> None:
        rec, state = self._rec, self._rec.state
        number = len(state.parcels) + 1
        rec.before_step()
        booking = await rec.call(
            ShippingActivities.book_shipment,
            ShipmentRequest(
                order_id=state.id,
                parcel=number,
                country=state.shipping_address.country,
                units=sum(ln.quantity for ln in lines),
            ),
        )
        rec.emit(
            ev.ShipmentBooked(
                parcel=number,
                carrier=booking.carrier,
                tracking_number=booking.tracking_number,
                lines=lines,
            )
        )

    async def cancel_parcels(self) -> None:
        """Cancel every booking not cancelled yet (a compensation; idempotent per parcel)."""
        rec = self._rec
        for parcel in rec.state.active_parcels():
            await self._cancel(parcel)

    async def _cancel(self, parcel: Parcel) -> None:
        rec = self._rec
        await rec.call(
            ShippingActivities.cancel_shipment,
            CancelShipmentRequest(order_id=rec.order_id, parcel=parcel.parcel),
            retry=COMPENSATION_RETRY,
        )
        rec.emit(ev.ShipmentCancelled(parcel=parcel.parcel, tracking_number=parcel.tracking_number))

    # --- following the carrier ----------------------------------------------------------------

    async def follow(self) -> None:
        """Until every parcel is delivered: apply scans and splits; report a missed SLA once."""
        rec = self._rec
        overdue_at = workflow.now() + rec.policy.delivery_sla
        while rec.state.status is not S.DELIVERED:
            timeout = None if rec.state.delivery_overdue else overdue_at - workflow.now()
            if not await rec.wait_for(
                lambda: bool(self.scans or self.splits), timeout, arrived=self._first_arrival
            ):
                state = rec.state
                tracking = ", ".join(p.tracking_number for p in state.active_parcels())
                await rec.notify(
                    "delivery_overdue",
                    "support@orderly.local",
                    f"Order {state.id} not delivered in time",
                    f"Tracking {tracking} is past its SLA.",
                    step="delivery_overdue",
                )
                rec.emit(ev.DeliveryOverdue())
            elif self.scans:
                await self._apply_scan(self.scans.pop(0)[1])
            else:
                await self._split(*self.splits.take())

    def _first_arrival(self) -> int:
        """When the next scan arrived; with none queued, later than any cancel."""
        return self.scans[0][0] if self.scans else 1 << 62

    async def _apply_scan(self, scan: CarrierEventInput) -> None:
        rec, state = self._rec, self._rec.state
        parcel = self._parcel_of(scan)
        if parcel is None or parcel.status is ParcelStatus.DELIVERED:
            why = "unknown tracking number" if parcel is None else "parcel already delivered"
            self.ignore(scan, why)
            return
        rec.emit(
            ev.CarrierScan(
                actor=scan.actor,
                parcel=parcel.parcel,
                tracking_number=parcel.tracking_number,
                scan=scan.event.value,
                location=scan.location,
                note=scan.note,
                occurred_at=scan.occurred_at,
            )
        )
        if state.status is S.FULFILLING:
            # Any scan means the parcel has left: no cancel from here on, returns are separate.
            rec.emit(ev.Shipped(actor=scan.actor, parcel=parcel.parcel))
            self._compensations.clear()
            await self._stock.ship()
        active = state.active_parcels()
        if all(p.status is ParcelStatus.DELIVERED for p in active):
            rec.emit(
                ev.Delivered(actor=scan.actor, delivered_at=scan.occurred_at or workflow.now())
            )

    def _parcel_of(self, scan: CarrierEventInput) -> Parcel | None:
        state = self._rec.state
        if scan.tracking_number:
            return state.parcel_by_tracking(scan.tracking_number)
        active = state.active_parcels()
        return active[0] if len(active) == 1 else None

    def ignore(self, scan: CarrierEventInput, why: str) -> None:
        self._rec.emit(
            ev.CarrierEventIgnored(
                actor=scan.actor,
                scan=scan.event.value,
                tracking_number=scan.tracking_number,
                why=why,
            )
        )

    # --- split --------------------------------------------------------------------------------

    def validate_split(self, inp: SplitShipmentInput) -> None:
        state = self._rec.state
        if Action.SPLIT_SHIPMENT not in state.allowed_actions or self.splits:
            refuse(state, Action.SPLIT_SHIPMENT)
        problem = split_problem(state.lines, inp.parcels)
        if problem is not None:
            raise invalid("parcels", problem)

    async def _split(self, inp: SplitShipmentInput, ticket: Ticket) -> None:
        rec = self._rec
        if Action.SPLIT_SHIPMENT not in rec.state.allowed_actions:  # a scan came first
            settle(ticket, not_allowed(rec.state, "a parcel has left: too late to split"))
            return
        try:
            rec.emit(ev.ShipmentSplit(actor=inp.actor, parcels=inp.parcels))
            for parcel in rec.state.active_parcels():
                await self._cancel(parcel)
            for lines in inp.parcels:
                await self._book(lines)
        finally:
            settle(ticket)
