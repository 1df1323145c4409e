"""External parties that fail transiently: retried with the same key, charged once."""

from __future__ import annotations

import pytest

from domain.status import OrderStatus
from tests.conftest import Stack
from tests.helpers import completed_attempts, start_order, wait_status
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

    # A carrier exception is recorded in the timeline with its note.
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
    exception = next(e for e in final.timeline if e.type == "carrier_exception")
    assert exception.message == "address unclear"
    assert exception.actor == "carrier"
