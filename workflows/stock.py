"""Stock of an order: reserve per revision, release (idempotent), ship."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.inventory import InventoryActivities
    from domain import events as ev
    from domain.order import OrderSpec
    from domain.status import OrderStatus
    from workflows.contracts import StockLine, StockRequest

from workflows.recorder import (
    COMPENSATION_RETRY,
    OrderEnded,
    Recorder,
    StepFailure,
    error_message,
    error_type,
)


class Stock:
    def __init__(self, rec: Recorder) -> None:
        self._rec = rec

    async def reserve(self, spec: OrderSpec) -> None:
        """Reserve the spec's lines under the order's current revision; out of stock fails it."""
        rec = self._rec
        lines = [StockLine(sku=ln.sku, quantity=ln.quantity) for ln in spec.lines]
        request = StockRequest(order_id=rec.order_id, lines=lines, revision=rec.state.revision)
        try:
            await rec.call(InventoryActivities.reserve_stock, request, local=True)
        except StepFailure as err:
            if error_type(err) == "OutOfStock":
                rec.emit(ev.OutOfStock(actor="inventory", reason=error_message(err)))
                raise OrderEnded(OrderStatus.FAILED, error_message(err), "inventory") from err
            raise
        rec.emit(
            ev.StockReserved(revision=rec.state.revision, units=sum(ln.quantity for ln in lines))
        )

    async def release(self) -> None:
        """Release whatever the order holds (0 units if nothing): also a compensation."""
        rec = self._rec
        units = await rec.call(
            InventoryActivities.release_stock,
            StockRequest(order_id=rec.order_id),
            local=True,
            retry=COMPENSATION_RETRY,
        )
        if units:
            rec.emit(ev.StockReleased(units=units))

    async def ship(self) -> None:
        rec = self._rec
        await rec.call(
            InventoryActivities.ship_stock, StockRequest(order_id=rec.order_id), local=True
        )
