"""External parties that fail transiently: retried with the same key, charged once."""

from __future__ import annotations

import pytest

from domain import events as ev
from domain.state import ParcelStatus
from domain.status import OrderStatus
from tests.conftest import Stack
from tests.helpers import completed_attempts, logged_types, start_order, wait_status
from workflows.contracts import CarrierEventInput, CarrierEventType
from workflows.order import OrderWorkflow

S = OrderStatus


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"sim_payment_transient_failures": 2}


async def test_gateway_timeouts_are_retried_and_capture_once(stack: Stack) -> None:
    handle = await start_order(stack)
    view = await wait_status(handle, S.FULFILLING)
    assert await stack.gateway.totals(view.id) == {"capture": 3998, "refund": 0}
    attempts = completed_attempts(await handle.fetch_history())
    assert attempts["capture_payment"] == [3]  # two simulated timeouts, then success

    # A carrier exception is recorded as a scan with its note (and, the parcel having moved,
    # the order ships).
    await handle.signal(
        OrderWorkflow.carrier_event,
        CarrierEventInput(
            actor="carrier", event=CarrierEventType.EXCEPTION, note="address unclear"
        ),
    )
    for event in (CarrierEventType.PICKED_UP, CarrierEventType.DELIVERED):
        await handle.signal(
            OrderWorkflow.carrier_event, CarrierEventInput(actor="carrier", event=event)
        )
    final = await handle.result()
    assert final.status is S.COMPLETED
    assert final.parcels[0].status is ParcelStatus.DELIVERED
    record = await handle.query(OrderWorkflow.record)
    scans = [e.event for e in record.events if isinstance(e.event, ev.CarrierScan)]
    assert [s.scan for s in scans] == ["exception", "picked_up", "delivered"]
    exception = scans[0]
    assert exception.note == "address unclear"
    assert exception.actor == "carrier"
    types = await logged_types(stack, final.id)
    assert types[types.index("carrier_scan") + 1] == "shipped"  # the exception scan shipped it
    assert types.count("shipped") == 1
    assert await stack.gateway.totals(final.id) == {"capture": 3998, "refund": 0}
