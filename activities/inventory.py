from __future__ import annotations

from temporalio import activity

from activities.errors import as_application_errors
from integrations.inventory import Inventory
from workflows.contracts import StockRequest


class InventoryActivities:
    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory

    @activity.defn(name="reserve_stock")
    async def reserve_stock(self, req: StockRequest) -> None:
        async with as_application_errors():
            await self._inventory.reserve(
                req.order_id, [(ln.sku, ln.quantity) for ln in req.lines], req.revision
            )

    @activity.defn(name="release_stock")
    async def release_stock(self, req: StockRequest) -> int:
        async with as_application_errors():
            return await self._inventory.release(req.order_id)

    @activity.defn(name="ship_stock")
    async def ship_stock(self, req: StockRequest) -> int:
        async with as_application_errors():
            return await self._inventory.ship(req.order_id)
