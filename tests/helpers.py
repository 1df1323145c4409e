"""Helpers for driving orders in tests."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowHistory

from config import load_policy
from db import readmodel
from domain.order import OrderSpec, new_order_id
from domain.state import OrderState
from domain.status import OrderStatus
from tests.conftest import Stack
from tests.factories import order_spec
from workflows.client import order_policy
from workflows.contracts import CarrierEventInput, CarrierEventType, StartOrderInput
from workflows.order import OrderWorkflow

T = TypeVar("T")


async def start_order(
    stack: Stack, spec: OrderSpec | None = None, *, created_by: str = "eshop"
) -> WorkflowHandle[OrderWorkflow, OrderState]:
    order_id = new_order_id(datetime.now(UTC).date(), random.Random())
    inp = StartOrderInput(
        order_id=order_id,
        spec=spec or order_spec(),
        created_by=created_by,
        created_at=datetime.now(UTC),
        policy=order_policy(stack.settings, load_policy(stack.settings.approval_policy_file)),
    )
    return await stack.client.start_workflow(
        OrderWorkflow.run, inp, id=order_id, task_queue=stack.settings.task_queue
    )


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    timeout: float = 30.0,
    what: str = "condition",
) -> T:
    """Poll ``probe`` until ``accept`` holds; fail with the last value seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value: {value!r}")
        await asyncio.sleep(0.05)


async def wait_status(
    handle: WorkflowHandle[OrderWorkflow, OrderState], *statuses: OrderStatus, timeout: float = 30
) -> OrderState:
    return await eventually(
        lambda: handle.query(OrderWorkflow.state),
        lambda view: view.status in statuses,
        timeout=timeout,
        what=f"status in {[s.value for s in statuses]}",
    )


async def deliver(handle: WorkflowHandle[OrderWorkflow, OrderState]) -> None:
    """The carrier picks the parcel up, moves it, delivers it."""
    for event in (
        CarrierEventType.PICKED_UP,
        CarrierEventType.IN_TRANSIT,
        CarrierEventType.DELIVERED,
    ):
        await handle.signal(
            OrderWorkflow.carrier_event, CarrierEventInput(actor="carrier-simex", event=event)
        )


async def logged_types(stack: Stack, order_id: str) -> list[str]:
    """The event types of an order as the event log holds them, in sequence."""
    async with stack.sessions() as session:
        return [e.event.type for e in await readmodel.order_events(session, order_id, stack.vault)]


def completed_attempts(history: WorkflowHistory) -> dict[str, list[int]]:
    """Activity type -> the attempt number of each completed run, regular or local.

    Regular activities record it on their started event; local ones in their marker's data.
    """
    scheduled: dict[int, str] = {}
    attempts: dict[str, list[int]] = {}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = attrs.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            attempts.setdefault(scheduled[started.scheduled_event_id], []).append(started.attempt)
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == "core_local_activity":
                data = json.loads(marker.details["data"].payloads[0].data)
                attempts.setdefault(data["activity_type"], []).append(data["attempt"])
    return attempts
