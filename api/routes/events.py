"""The event log as a feed (see :mod:`services.events` for the delivery contract)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import ServicesDep, allow
from api.routes.orders import ERRORS
from domain.order import OrderSource
from services.auth import Principal, Role, Scope
from services.events import EventPage, events_after

router = APIRouter(prefix="/events", tags=["events"], responses=ERRORS)
# The feed holds every order's events: keys limited to their own orders may not read it.
Reader = Annotated[
    Principal, Depends(allow(Role.SYSTEM, Role.SUPPORT, scope=Scope.EVENTS_READ, own=False))
]


@router.get("", response_model=EventPage)
async def list_events(
    _: Reader,
    services: ServicesDep,
    after: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="Last event id seen; 0 from the start.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    type_: Annotated[list[str] | None, Query(alias="type", max_length=50)] = None,
    order_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9-]{1,32}$")] = None,
    source: Annotated[
        list[OrderSource] | None,
        Query(max_length=len(OrderSource), description="Only orders from these sources."),
    ] = None,
) -> EventPage:
    """Every event after the cursor, oldest first: at least once, ordered per order."""
    return await events_after(
        services, after, limit=limit, types=type_, order_id=order_id, sources=source
    )
