from __future__ import annotations

from temporalio import activity

from activities.errors import as_application_errors
from integrations.carrier import Carrier
from workflows.contracts import CancelShipmentRequest, ShipmentRequest, ShipmentResult


class ShippingActivities:
    def __init__(self, carrier: Carrier) -> None:
        self._carrier = carrier

    @activity.defn(name="book_shipment")
    async def book_shipment(self, req: ShipmentRequest) -> ShipmentResult:
        """Book one parcel; booking the same (order, parcel) again returns the same booking."""
        async with as_application_errors():
            booking = await self._carrier.book(
                order_id=req.order_id, parcel=req.parcel, country=req.country, units=req.units
            )
        return ShipmentResult(carrier=booking.carrier, tracking_number=booking.tracking_number)

    @activity.defn(name="cancel_shipment")
    async def cancel_shipment(self, req: CancelShipmentRequest) -> bool:
        async with as_application_errors():
            return await self._carrier.cancel(order_id=req.order_id, parcel=req.parcel)
