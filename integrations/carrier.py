"""Carrier: books shipments and issues tracking numbers; the simulator keeps them in a table."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from db.models import ShipmentRow
from db.session import SessionFactory


@dataclass(frozen=True)
class Booking:
    carrier: str
    tracking_number: str


class Carrier(Protocol):
    async def book(self, *, order_id: str, country: str, parcels: int) -> Booking: ...
    async def cancel(self, *, order_id: str) -> bool: ...


class SimulatedCarrier:
    """One booking per order id; booking again returns the same tracking number."""

    name = "SIMEX"

    def __init__(self, sessions: SessionFactory, *, delay: float = 0.0) -> None:
        self._sessions = sessions
        self._delay = delay

    async def book(self, *, order_id: str, country: str, parcels: int) -> Booking:
        if parcels < 1:
            raise ValueError("a shipment has at least one parcel")
        if self._delay:
            await asyncio.sleep(self._delay)
        existing = await self.get(order_id)
        if existing is None:
            tracking = f"SX{country}{secrets.token_hex(5).upper()}"
            try:
                async with self._sessions.begin() as session:
                    session.add(
                        ShipmentRow(
                            order_id=order_id,
                            carrier=self.name,
                            tracking_number=tracking,
                            status="booked",
                            created_at=datetime.now(UTC),
                        )
                    )
            except IntegrityError:
                pass
            existing = await self.get(order_id)
        assert existing is not None
        return Booking(carrier=existing.carrier, tracking_number=existing.tracking_number)

    async def cancel(self, *, order_id: str) -> bool:
        """Cancel the order's booking; True if it is cancelled (now or by an earlier call)."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(ShipmentRow)
                .where(ShipmentRow.order_id == order_id, ShipmentRow.status == "booked")
                .values(status="cancelled")
            )
            row = await session.get(ShipmentRow, order_id)
            return row is not None and row.status == "cancelled"

    async def get(self, order_id: str) -> ShipmentRow | None:
        async with self._sessions() as session:
            return await session.get(ShipmentRow, order_id)
