"""Worker processes killed with SIGKILL mid-order: the order completes and pays exactly once.

The API runs in process (no worker in it); every worker is a separate ``python worker.py``
process on the session's Temporal dev server, killed with ``kill -9`` at the worst moments:
while the order waits for approval, and while the gateway is in the middle of the capture.
"""

from __future__ import annotations

import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import WorkflowHandle

from db import readmodel
from db.session import SessionFactory
from domain.status import OrderStatus
from integrations.inventory import SimulatedInventory
from integrations.payment import SimulatedGateway
from tests.api.conftest import Api
from tests.api.flows import carrier, create, wait_status
from tests.e2e.conftest import Workers
from tests.factories import big_order
from tests.helpers import completed_attempts, eventually

S = OrderStatus

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


async def projected_status(sessions: SessionFactory, order_id: str) -> str | None:
    async with sessions() as session:
        row = await readmodel.get_row(session, order_id)
    return None if row is None else row.status


async def capture_in_flight(handle: WorkflowHandle[Any, Any]) -> bool:
    """True once a worker has started the capture_payment activity (first attempt)."""
    desc = await handle.describe()
    return any(
        pa.activity_type.name == "capture_payment"
        and pa.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        for pa in desc.raw_description.pending_activities
    )


async def test_killed_workers_never_lose_the_order_nor_charge_twice(
    api_without_worker: Api, workers: Workers, sessions: SessionFactory
) -> None:
    api = api_without_worker
    gateway = SimulatedGateway(sessions)
    inventory = SimulatedInventory(sessions)
    first = workers.start()

    order = await create(api, big_order(external_reference=f"CRASH-{uuid.uuid4().hex[:6]}"))
    order_id = order["id"]
    handle = api.stack.client.get_workflow_handle(order_id)
    await wait_status(api, order_id, S.AWAITING_APPROVAL, timeout=30)
    # Wait until the workflow task that got there finished (its projection is written).
    await eventually(
        lambda: projected_status(sessions, order_id),
        lambda status: status == S.AWAITING_APPROVAL.value,
        what="awaiting_approval projected",
    )
    workers.assert_running(first)

    # Crash 1: the only worker dies while the order waits for approval.
    workers.kill(first)
    second = workers.start()
    approved = await api.http.post(
        f"/orders/{order_id}/approve", json={"comment": "after crash"}, headers=api.auth("lead-1")
    )
    assert approved.status_code == 200, f"{approved.text}\n{workers.output()}"
    assert approved.json()["approval"]["decided_by"] == "lead-1"

    # Crash 2: the gateway has booked the charge, its 3 s answer has not reached the worker.
    await wait_status(api, order_id, S.CONFIRMED, timeout=30)
    await eventually(
        lambda: inventory.reservations(order_id), bool, what="stock reserved", timeout=30
    )
    await eventually(lambda: capture_in_flight(handle), bool, what="capture started", timeout=30)
    await eventually(lambda: gateway.entries(order_id), bool, what="charge booked", timeout=30)
    workers.assert_running(second)
    assert await capture_in_flight(handle), "the capture reported back before the kill"
    workers.kill(second)
    workers.start()

    fulfilling = await wait_status(api, order_id, S.FULFILLING, timeout=60)
    assert Decimal(fulfilling["payment"]["captured"]) == Decimal("6000.00")
    await carrier(api, order_id, "picked_up", "in_transit", "delivered")
    done = await wait_status(api, order_id, S.COMPLETED, timeout=60)

    # Charged exactly once, for the total; nothing refunded.
    entries = await gateway.entries(order_id)
    assert [(e.kind, e.status, e.amount_minor) for e in entries] == [
        ("capture", "succeeded", 600000)
    ]
    assert entries[0].idempotency_key == f"{order_id}:capture"
    assert await gateway.totals(order_id) == {"capture": 600000, "refund": 0}
    assert Decimal(done["total"]) == Decimal("6000.00")
    assert Decimal(done["payment"]["captured"]) == Decimal("6000.00")
    assert done["payment"]["capture_reference"] == entries[0].reference
    # The capture really was retried after the crash (attempt 2 is the one that completed).
    assert completed_attempts(await handle.fetch_history())["capture_payment"][-1] == 2

    # The timeline: no duplicate seq, one capture, in order, served the same by both reads.
    timeline = (
        await api.http.get(f"/orders/{order_id}/timeline", headers=api.auth("support-1"))
    ).json()["events"]
    seqs = [e["seq"] for e in timeline]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    types = Counter(e["type"] for e in timeline)
    assert types["payment_captured"] == 1, types
    assert types["approved"] == 1, types
    assert [e["seq"] for e in done["timeline"]] == seqs
    assert [r.state for r in await inventory.reservations(order_id)] == ["shipped"]
