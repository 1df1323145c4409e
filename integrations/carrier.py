"""Carrier: books shipments and issues tracking numbers; the simulator keeps them in a table."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from db.models import ShipmentRow
from db.session import SessionFactory


@dataclass(frozen=True)
class Booking:
    carrier: str
    tracking_number: str


class Carrier(Protocol):
    async def book(self, *, order_id: str, parcel: int, country: str, units: int) -> Booking: ...
    async def cancel(self, *, order_id: str, parcel: int) -> bool: ...


class SimulatedCarrier:
    """One booking per order and parcel; booking again returns the same tracking number."""

    name = "SIMEX"

    def __init__(self, sessions: SessionFactory, *, delay: float = 0.0) -> None:
        self._sessions = sessions
        self._delay = delay

    async def book(self, *, order_id: str, parcel: int, country: str, units: int) -> Booking:
        if units < 1:
            raise ValueError("a parcel holds at least one unit")
        if self._delay:
            await asyncio.sleep(self._delay)
        existing = await self.get(order_id, parcel)
        if existing is None:
            tracking = f"SX{country}{secrets.token_hex(5).upper()}"
            try:
                async with self._sessions.begin() as session:
                    session.add(
                        ShipmentRow(
                            order_id=order_id,
                            parcel=parcel,
                            units=units,
                            carrier=self.name,
                            tracking_number=tracking,
                            status="booked",
                            created_at=datetime.now(UTC),
                        )
                    )
            except IntegrityError:
                pass
            existing = await self.get(order_id, parcel)
        assert existing is not None
        return Booking(carrier=existing.carrier, tracking_number=existing.tracking_number)

    async def cancel(self, *, order_id: str, parcel: int) -> bool:
        """Cancel a parcel's booking; True if it is cancelled (now or by an earlier call)."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(ShipmentRow)
                .where(
                    ShipmentRow.order_id == order_id,
                    ShipmentRow.parcel == parcel,
                    ShipmentRow.status == "booked",
                )
                .values(status="cancelled")
            )
            row = await session.get(ShipmentRow, (order_id, parcel))
            return row is not None and row.status == "cancelled"

    async def get(self, order_id: str, parcel: int = 1) -> ShipmentRow | None:
        async with self._sessions() as session:
            return await session.get(ShipmentRow, (order_id, parcel))

    async def bookings(self, order_id: str) -> list[ShipmentRow]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ShipmentRow)
                .where(ShipmentRow.order_id == order_id)
                .order_by(ShipmentRow.parcel)
            )
            return list(rows)
