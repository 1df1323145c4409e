"""Stock levels and reorder points (admin): what the warehouse holds per SKU, what open orders
have reserved, and the point below which the SKU should be reordered. Replaces editing the
stock table by hand; reservations stay the order workflow's (activities/inventory.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from db.models import StockItemRow
from db.session import SessionFactory
from db.upsert import insert_for
from services.auth import Principal, Role
from services.errors import Kind, ServiceError, invalid, not_found

MAX_UNITS = 10**12


class StockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on_hand: int = Field(ge=0, le=MAX_UNITS, description="Units in the warehouse.")
    reorder_point: int | None = Field(
        default=None, ge=0, le=MAX_UNITS, description="Reorder when available falls below it."
    )


class StockView(BaseModel):
    sku: str
    on_hand: int
    reserved: int = Field(description="Held by open orders (not shipped yet).")
    available: int = Field(description="on_hand - reserved: what a new order can reserve.")
    reorder_point: int | None
    below_reorder_point: bool


def _view(row: StockItemRow) -> StockView:
    available = row.on_hand - row.reserved
    point = row.reorder_point
    return StockView(
        sku=row.sku,
        on_hand=row.on_hand,
        reserved=row.reserved,
        available=available,
        reorder_point=point,
        below_reorder_point=point is not None and available < point,
    )


class InventoryAdmin:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    @staticmethod
    def allow(principal: Principal) -> None:
        if not principal.has_any({Role.ADMIN}):
            raise ServiceError(Kind.FORBIDDEN, "stock levels are kept by admins")

    async def list(self, principal: Principal, *, below: bool = False) -> list[StockView]:
        """Every SKU by code; ``below``: only those under their reorder point."""
        self.allow(principal)
        async with self._sessions() as session:
            rows = await session.scalars(select(StockItemRow).order_by(StockItemRow.sku))
            views = [_view(r) for r in rows]
        return [v for v in views if v.below_reorder_point] if below else views

    async def get(self, principal: Principal, sku: str) -> StockView:
        self.allow(principal)
        async with self._sessions() as session:
            row = await session.get(StockItemRow, sku)
        if row is None:
            raise not_found(f"stock of {sku}")
        return _view(row)

    async def put(self, principal: Principal, sku: str, body: StockIn) -> StockView:
        """Set the units on hand and the reorder point; never below what orders reserved."""
        self.allow(principal)
        async with self._sessions.begin() as session:
            row = await session.get(StockItemRow, sku, with_for_update=True)
            if row is not None and body.on_hand < row.reserved:
                raise invalid(
                    "on_hand",
                    f"{row.reserved} units of {sku} are reserved by open orders: "
                    "on hand cannot be less",
                )
            stmt = insert_for(session, StockItemRow).values(
                sku=sku, on_hand=body.on_hand, reserved=0, reorder_point=body.reorder_point
            )
            await session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["sku"],
                    set_={"on_hand": body.on_hand, "reorder_point": body.reorder_point},
                )
            )
        async with self._sessions() as session:
            stored = await session.get(StockItemRow, sku)
        assert stored is not None
        return _view(stored)
