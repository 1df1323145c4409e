"""The event log: one row per (order, seq), idempotent on retries, replaced when a retried
task recorded another outcome, trimmed by a closed order's final projection; read by cursor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from db import readmodel
from db.models import OrderEventRow
from db.session import SessionFactory
from db.vault import Vault
from domain import events as ev
from domain.state import LoggedEvent, OrderState, apply
from tests.factories import order_spec
from tests.keys import TEST_RING

VAULT = Vault(TEST_RING)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _order(order_id: str, *more: ev.OrderEvent) -> tuple[OrderState, list[LoggedEvent]]:
    spec = order_spec()
    first = ev.Received(
        seq=1, at=T0, actor="eshop", order_id=order_id, spec=spec, total=spec.total()
    )
    state = apply(None, first)
    logged = [LoggedEvent(status=state.status, event=first)]
    for n, e in enumerate(more, start=2):
        stamped = e.model_copy(update={"seq": n, "at": T0 + timedelta(seconds=n)})
        apply(state, stamped)
        logged.append(LoggedEvent(status=state.status, event=stamped))
    return state, logged


async def _rows(sessions: SessionFactory, order_id: str) -> list[tuple[int, int, str]]:
    async with sessions() as session:
        result = await session.execute(
            select(OrderEventRow.id, OrderEventRow.seq, OrderEventRow.type)
            .where(OrderEventRow.order_id == order_id)
            .order_by(OrderEventRow.seq)
        )
        return [tuple(r) for r in result]  # type: ignore[misc]


async def test_projection_is_idempotent_and_replaces_changed_events(
    sessions: SessionFactory,
) -> None:
    state, logged = _order("SO-1", ev.CreditCheckStarted(), ev.CancelRequested(reason="a"))
    for _ in range(2):  # a retried projection writes nothing new
        async with sessions.begin() as session:
            await readmodel.project(session, state, logged, vault=VAULT)
    first = await _rows(sessions, "SO-1")
    assert [(seq, t) for _, seq, t in first] == [
        (1, "received"),
        (2, "credit_check_started"),
        (3, "cancel_requested"),
    ]
    # A retried workflow task recorded another third event: it replaces the row, new id.
    state2, logged2 = _order("SO-1", ev.CreditCheckStarted(), ev.CancelRequested(reason="b"))
    async with sessions.begin() as session:
        await readmodel.project(session, state2, logged2[2:], vault=VAULT)
    second = await _rows(sessions, "SO-1")
    assert second[:2] == first[:2]
    assert second[2][1:] == (3, "cancel_requested")
    assert second[2][0] > max(i for i, _, _ in first)
    async with sessions() as session:
        stored = await readmodel.order_events(session, "SO-1", VAULT)
    assert isinstance(stored[2].event, ev.CancelRequested)
    assert stored[2].event.reason == "b"


async def test_final_projection_removes_events_of_discarded_tasks(sessions: SessionFactory) -> None:
    final, final_log = _order(
        "SO-2", ev.CreditCheckStarted(), ev.CancelRequested(reason="y"), ev.Cancelled(reason="y")
    )
    # A discarded workflow task had logged a 5th event, and another 4th, before the order closed.
    phantom_state, phantom_log = _order(
        "SO-2",
        ev.CreditCheckStarted(),
        ev.CancelRequested(reason="y"),
        ev.StockReleased(units=1),
        ev.StockReleased(units=2),
    )
    async with sessions.begin() as session:
        await readmodel.project(session, phantom_state, phantom_log, vault=VAULT)
    async with sessions.begin() as session:
        await readmodel.project(session, final, final_log, vault=VAULT, final=True)
    rows = await _rows(sessions, "SO-2")
    assert [(seq, t) for _, seq, t in rows] == [
        (1, "received"),
        (2, "credit_check_started"),
        (3, "cancel_requested"),
        (4, "cancelled"),
    ]
    async with sessions() as session:
        stored = await readmodel.get_state(session, "SO-2", VAULT)
    assert stored is not None
    assert stored.status == "cancelled"
    assert stored.total == Decimal("39.98")


async def test_events_after_reads_by_cursor_in_order(sessions: SessionFactory) -> None:
    for oid in ("SO-A", "SO-B"):
        state, logged = _order(oid, ev.CreditCheckStarted())
        async with sessions.begin() as session:
            await readmodel.project(session, state, logged, vault=VAULT)
    async with sessions() as session:
        everything = await readmodel.events_after(session, 0, vault=VAULT, limit=100)
        assert [(e.order_id, e.event.seq) for e in everything] == [
            ("SO-A", 1),
            ("SO-A", 2),
            ("SO-B", 1),
            ("SO-B", 2),
        ]
        ids = [e.id for e in everything]
        assert ids == sorted(ids)
        rest = await readmodel.events_after(session, ids[1], vault=VAULT, limit=100)
        assert [e.id for e in rest] == ids[2:]
        typed = await readmodel.events_after(session, 0, vault=VAULT, limit=100, types=["received"])
        assert [e.order_id for e in typed] == ["SO-A", "SO-B"]
        one = await readmodel.events_after(session, 0, vault=VAULT, limit=1, order_id="SO-B")
        assert [(e.order_id, e.event.type) for e in one] == [("SO-B", "received")]
