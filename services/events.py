"""The event log as a feed: every event of every order after a cursor, for consumers that
pull (ERPs, reports, the console's live view).

Delivery contract: at least once, in order per order. Each event has a per-order ``seq``
(1, 2, ...) and a global ``id`` (the cursor). Read with ``after=<last id seen>``; store the
last id only after processing; ``next_after`` is that id (with filters, the last matching
event's), so paging with it sees every matching event in log order with no gap, and a
consumer that crashed resumes where it stopped. If a workflow task is retried, an event may
be re-logged under the same (order, seq) with a new id: treat (order_id, seq) as the key and
keep the latest.
"""

from __future__ import annotations

from collections.abc import Collection

from pydantic import BaseModel, Field

from db import readmodel
from domain.events import EVENT_TYPES
from domain.order import OrderSource
from domain.state import LoggedEvent
from services.context import Services
from services.errors import invalid
from services.views import TimelineEntry, timeline_entry


class FeedEvent(TimelineEntry):
    """A timeline entry with the order it belongs to and its global cursor."""

    id: int = Field(description="Global cursor: pass the last one seen as `after`.")
    order_id: str


class EventPage(BaseModel):
    items: list[FeedEvent]
    next_after: int = Field(description="Cursor for the next call (the last id, or `after`).")


async def events_after(
    services: Services,
    after: int,
    *,
    limit: int,
    types: Collection[str] | None = None,
    order_id: str | None = None,
    sources: Collection[OrderSource] | None = None,
) -> EventPage:
    """The page of events after ``after`` (filters: event types, order, order sources)."""
    unknown = sorted(set(types or ()) - EVENT_TYPES)
    if unknown:
        raise invalid("query.type", f"unknown event type {', '.join(unknown)}")
    async with services.sessions() as session:
        stored = await readmodel.events_after(
            session,
            after,
            vault=services.vault,
            limit=limit,
            types=types,
            order_id=order_id,
            sources=[s.value for s in sources or ()],
        )
    items = [
        FeedEvent(
            id=s.id,
            order_id=s.order_id,
            **timeline_entry(LoggedEvent(status=s.status, event=s.event), "").model_dump(),
        )
        for s in stored
    ]
    return EventPage(items=items, next_after=items[-1].id if items else after)


async def last_seq(services: Services, order_id: str) -> int:
    """How far one order's event log goes (its last ``seq``; 0 before any): for live views
    that poll whether an order changed."""
    async with services.sessions() as session:
        return await readmodel.last_seq(session, order_id)
