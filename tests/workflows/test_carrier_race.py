"""A carrier scan that races the step before it is kept, whichever reaches the workflow first."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.exceptions import ApplicationError

from domain import events as ev
from domain.state import OrderState, ParcelStatus
from domain.status import OrderStatus
from tests.conftest import Stack
from tests.helpers import logged_types, start_order, wait_status
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
    assert shipped.parcels[0].status is ParcelStatus.PICKED_UP
    record = await handle.query(OrderWorkflow.record)
    scans = [e.event for e in record.events if e.event.type.startswith("carrier")]
    assert len(scans) == 1  # kept, not ignored
    [picked_up] = scans
    assert isinstance(picked_up, ev.CarrierScan)
    assert (picked_up.actor, picked_up.scan, picked_up.location) == (
        "carrier",
        "picked_up",
        "Hub 7",
    )
    assert picked_up.tracking_number == shipped.parcels[0].tracking_number
    assert [r.state for r in await stack.inventory.reservations(shipped.id)] == ["shipped"]

    await handle.signal(
        OrderWorkflow.carrier_event,
        CarrierEventInput(actor="carrier", event=CarrierEventType.DELIVERED),
    )
    done = await handle.result()
    assert done.status is S.COMPLETED
    assert done.parcels[0].status is ParcelStatus.DELIVERED
    types = await logged_types(stack, done.id)
    assert types.index("shipment_booked") < types.index("carrier_scan") < types.index("shipped")
    assert types.index("shipped") < types.index("delivered") < types.index("completed")
    assert types.count("carrier_scan") == 2
    assert "carrier_event_ignored" not in types


async def test_scan_that_arrived_before_a_cancel_wins_the_race(stack: Stack) -> None:
    """First come wins: the carrier scanned the parcel before the cancel reached the order,
    so the goods have left and the cancel is refused (409); the scan is applied."""
    handle = await start_order(stack)
    await wait_status(handle, S.PAID)  # book_shipment is running
    await handle.signal(
        OrderWorkflow.carrier_event,
        CarrierEventInput(actor="carrier", event=CarrierEventType.PICKED_UP),
    )
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            OrderWorkflow.cancel, CancelInput(actor="support", reason="customer called")
        )
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "CommandNotAllowed"
    shipped = await wait_status(handle, S.SHIPPED)
    assert shipped.cancel_pending is False
    await handle.signal(
        OrderWorkflow.carrier_event,
        CarrierEventInput(actor="carrier", event=CarrierEventType.DELIVERED),
    )
    done = await handle.result()
    assert done.status is S.COMPLETED
    types = await logged_types(stack, done.id)
    assert "cancel_requested" not in types
    assert types.index("shipment_booked") < types.index("carrier_scan") < types.index("shipped")
    assert await stack.gateway.totals(done.id) == {"capture": 3998, "refund": 0}


async def test_cancel_accepted_before_a_scan_arrives_wins(stack: Stack) -> None:
    handle = await start_order(stack)
    await wait_status(handle, S.PAID)  # book_shipment is running
    cancel = await handle.start_update(
        OrderWorkflow.cancel,
        CancelInput(actor="support", reason="customer called"),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    await handle.signal(
        OrderWorkflow.carrier_event,
        CarrierEventInput(actor="carrier", event=CarrierEventType.PICKED_UP),
    )
    try:
        cancelled = await cancel.result()
    finally:
        await _end(handle)
    assert cancelled.status is S.CANCELLED
    assert (await handle.result()).status is S.CANCELLED
    types = await logged_types(stack, cancelled.id)
    assert "shipped" not in types
    assert types.index("cancel_requested") < types.index("cancelled")
    assert types.count("carrier_event_ignored") == 1
    assert await stack.gateway.totals(cancelled.id) == {"capture": 3998, "refund": 3998}


async def _end(handle: WorkflowHandle[OrderWorkflow, OrderState]) -> None:
    """Leave no order waiting for the carrier when a test fails part way."""
    state = await handle.query(OrderWorkflow.state)
    if not state.status.is_terminal and state.status is not S.NEEDS_ATTENTION:
        await handle.terminate("test over")
