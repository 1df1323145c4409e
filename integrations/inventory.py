"""Warehouse stock: reservations per order, and a simulator keeping stock in the database."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ReservationRow, StockItemRow
from db.session import SessionFactory
from db.upsert import insert_for
from integrations.errors import OutOfStock


class Inventory(Protocol):
    async def reserve(
        self, order_id: str, lines: Iterable[tuple[str, int]], revision: int = 0
    ) -> None: ...
    async def release(self, order_id: str) -> int: ...
    async def ship(self, order_id: str) -> int: ...
    async def available(self, skus: Sequence[str]) -> dict[str, int]:
        """Units on hand and not reserved, per SKU asked for (unknown SKUs: 0)."""
        ...


class SimulatedInventory:
    """Stock per SKU in ``sim_stock_items``; one reservation row per (order, SKU).

    Every call is idempotent: reserving the same (order, revision) twice reserves once,
    releasing a released or shipped reservation does nothing. An amended order releases its
    reservation and reserves again under the next revision.
    """

    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    async def set_stock(self, stock: dict[str, int]) -> None:
        """Put SKUs on hand (upsert); used by seeding and tests."""
        async with self._sessions.begin() as session:
            for sku, on_hand in stock.items():
                stmt = insert_for(session, StockItemRow).values(
                    sku=sku, on_hand=on_hand, reserved=0
                )
                await session.execute(
                    stmt.on_conflict_do_update(index_elements=["sku"], set_={"on_hand": on_hand})
                )

    async def reserve(
        self, order_id: str, lines: Iterable[tuple[str, int]], revision: int = 0
    ) -> None:
        wanted = Counter[str]()
        for sku, quantity in lines:
            wanted[sku] += quantity
        try:
            async with self._sessions.begin() as session:
                if await self._reservations(session, order_id, revision):
                    return
                for sku, quantity in sorted(wanted.items()):
                    result = await session.execute(
                        update(StockItemRow)
                        .where(StockItemRow.sku == sku)
                        .where(StockItemRow.on_hand - StockItemRow.reserved >= quantity)
                        .values(reserved=StockItemRow.reserved + quantity)
                    )
                    if result.rowcount != 1:  # type: ignore[attr-defined]
                        raise OutOfStock(f"not enough stock of {sku} for {quantity}")
                    session.add(
                        ReservationRow(
                            order_id=order_id,
                            revision=revision,
                            sku=sku,
                            quantity=quantity,
                            state="reserved",
                        )
                    )
        except IntegrityError:
            # A concurrent retry reserved first; its reservation stands.
            async with self._sessions() as session:
                if not await self._reservations(session, order_id, revision):
                    raise

    async def release(self, order_id: str) -> int:
        """Return reserved units to stock. Returns the units of the order's latest reservation
        that are released, by this call or an earlier one, so a retry answers the same."""
        return await self._settle(order_id, "released")

    async def ship(self, order_id: str) -> int:
        """The goods left the warehouse: reserved units leave the stock on hand."""
        return await self._settle(order_id, "shipped")

    async def _settle(self, order_id: str, new_state: str) -> int:
        async with self._sessions.begin() as session:
            for row in await self._reservations(session, order_id):
                claimed = await session.execute(
                    update(ReservationRow)
                    .where(ReservationRow.order_id == order_id, ReservationRow.sku == row.sku)
                    .where(ReservationRow.revision == row.revision)
                    .where(ReservationRow.state == "reserved")
                    .values(state=new_state)
                )
                if claimed.rowcount != 1:  # type: ignore[attr-defined]
                    continue
                values = {"reserved": StockItemRow.reserved - row.quantity}
                if new_state == "shipped":
                    values["on_hand"] = StockItemRow.on_hand - row.quantity
                await session.execute(
                    update(StockItemRow).where(StockItemRow.sku == row.sku).values(**values)
                )
            rows = await self._reservations(session, order_id)
        latest = max((r.revision for r in rows), default=None)
        return sum(r.quantity for r in rows if r.revision == latest and r.state == new_state)

    @staticmethod
    async def _reservations(
        session: AsyncSession, order_id: str, revision: int | None = None
    ) -> list[ReservationRow]:
        stmt = select(ReservationRow).where(ReservationRow.order_id == order_id)
        if revision is not None:
            stmt = stmt.where(ReservationRow.revision == revision)
        result = await session.scalars(stmt.order_by(ReservationRow.revision, ReservationRow.sku))
        return list(result)

    async def reservations(self, order_id: str) -> list[ReservationRow]:
        async with self._sessions() as session:
            return await self._reservations(session, order_id)

    async def available(self, skus: Sequence[str]) -> dict[str, int]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(StockItemRow.sku, StockItemRow.on_hand - StockItemRow.reserved).where(
                    StockItemRow.sku.in_(sorted(set(skus)))
                )
            )
            found = {row[0]: max(0, int(row[1])) for row in rows}
        return {sku: found.get(sku, 0) for sku in skus}

    async def stock(self, sku: str) -> StockItemRow | None:
        async with self._sessions() as session:
            return await session.get(StockItemRow, sku)
