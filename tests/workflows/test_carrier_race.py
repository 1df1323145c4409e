"""A carrier scan that races the step before it is kept, whichever reaches the workflow first."""

from __future__ import annotations

import pytest

from domain.status import OrderStatus
from tests.conftest import Stack
from tests.helpers import start_order, wait_status
from workflows.contracts import CancelInput, CarrierEventInput, CarrierEventType
from workflows.order import OrderWorkflow

S = OrderStatus


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"sim_carrier_delay": 1.5}  # booking the shipment takes a while


async def test_scan_sent_while_the_shipment_is_being_booked_is_applied_after(
    stack: Stack,
) -> None:
    handle = await start_order(stack)
    await wait_status(handle, S.PAID)  # book_shipment is running
    await handle.signal(
        OrderWorkflow.carrier_event,
        CarrierEventInput(actor="carrier", event=CarrierEventType.PICKED_UP, location="Hub 7"),
    )
    shipped = await wait_status(handle, S.SHIPPED)
    assert [e.type for e in shipped.timeline if e.type.startswith("carrier")] == []
    assert [r.state for r in await stack.inventory.reservations(shipped.id)] == ["shipped"]

    await handle.signal(
        OrderWorkflow.carrier_event,
        CarrierEventInput(actor="carrier", event=CarrierEventType.DELIVERED),
    )
    done = await handle.result()
    assert done.status is S.COMPLETED
    types = [e.type for e in done.timeline]
    assert types.index("shipment_booked") < types.index("shipped") < types.index("delivered")


async def test_scan_queued_when_the_order_is_cancelled_is_recorded_as_ignored(
    stack: Stack,
) -> None:
    handle = await start_order(stack)
    await wait_status(handle, S.PAID)  # book_shipment is running
    await handle.signal(
        OrderWorkflow.carrier_event,
        CarrierEventInput(actor="carrier", event=CarrierEventType.PICKED_UP),
    )
    await handle.execute_update(
        OrderWorkflow.cancel, CancelInput(actor="support", reason="customer called")
    )
    done = await handle.result()
    assert done.status is S.CANCELLED
    ignored = [e for e in done.timeline if e.type == "carrier_event_ignored"]
    assert [(e.actor, e.message) for e in ignored] == [
        ("carrier", "Carrier event picked_up ignored while cancelled")
    ]
    assert "shipped" not in [e.type for e in done.timeline]
    assert await stack.gateway.totals(done.id) == {"capture": 3998, "refund": 3998}
