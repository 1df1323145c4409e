from __future__ import annotations

from temporalio import activity

from activities.errors import as_application_errors
from integrations.carrier import Carrier
from workflows.contracts import ShipmentRequest, ShipmentResult, StockRequest


class ShippingActivities:
    def __init__(self, carrier: Carrier) -> None:
        self._carrier = carrier

    @activity.defn(name="book_shipment")
    async def book_shipment(self, req: ShipmentRequest) -> ShipmentResult:
        async with as_application_errors():
            booking = await self._carrier.book(
                order_id=req.order_id, country=req.country, parcels=req.parcels
            )
        return ShipmentResult(carrier=booking.carrier, tracking_number=booking.tracking_number)

    @activity.defn(name="cancel_shipment")
    async def cancel_shipment(self, req: StockRequest) -> bool:
        async with as_application_errors():
            return await self._carrier.cancel(order_id=req.order_id)
