"""Durable timers on the time-skipping test server: days pass in milliseconds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain.status import OrderStatus
from domain.view import TimelineEvent
from integrations.inventory import SimulatedInventory
from integrations.mail import OutboxMailer
from tests.conftest import Stack, binary, make_settings
from tests.factories import order_spec
from tests.helpers import start_order, wait_status
from worker import build_worker
from workflows.contracts import ApproveInput, CarrierEventInput, CarrierEventType
from workflows.order import OrderWorkflow

S = OrderStatus


@pytest.fixture
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """One server per test: a workflow left waiting by another test would hold its clock."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    yield env
    await env.shutdown()


@pytest.fixture
async def skipping_stack(
    skipping_env: WorkflowEnvironment, stack: Stack, database_url: str
) -> AsyncIterator[Stack]:
    """Same simulators and database as ``stack``, but a worker on the time-skipping server."""
    settings = make_settings(database_url)
    async with build_worker(skipping_env.client, settings, stack.sessions):
        yield Stack(**{**stack.__dict__, "client": skipping_env.client, "settings": settings})


def _gap(timeline: list[TimelineEvent], first: str, then: str) -> timedelta:
    at = {e.type: e.at for e in timeline}
    return at[then] - at[first]


def _about(actual: timedelta, expected: timedelta) -> bool:
    """Timer fired at ``expected``; the event is stamped after the step that follows it."""
    return expected <= actual < expected + timedelta(minutes=1)


async def test_prepay_reminder_then_auto_cancel_after_three_days(skipping_stack: Stack) -> None:
    handle = await start_order(skipping_stack, order_spec(payment={"type": "bank_transfer"}))
    final = await handle.result()

    assert final.status is S.CANCELLED
    assert final.closure is not None
    assert final.closure.reason == "payment deadline passed"
    gap = _gap(final.timeline, "payment_requested", "payment_reminder_sent")
    assert _about(gap, timedelta(days=1)), gap
    gap = _gap(final.timeline, "payment_requested", "payment_expired")
    assert _about(gap, timedelta(days=3)), gap
    mails = await OutboxMailer(skipping_stack.sessions).sent(final.id)
    assert [m.kind for m in mails] == ["payment_reminder", "cancelled"]
    assert mails[0].recipient == "ada@example.com"
    reservations = await SimulatedInventory(skipping_stack.sessions).reservations(final.id)
    assert [r.state for r in reservations] == ["released"]
    assert await skipping_stack.gateway.entries(final.id) == []


async def test_approval_reminder_fires_once_after_eight_hours(
    skipping_stack: Stack, skipping_env: WorkflowEnvironment
) -> None:
    spec = order_spec(lines=[{"sku": "WIDGET-1", "quantity": 100, "unit_price": "60.00"}])
    handle = await start_order(skipping_stack, spec)
    await wait_status(handle, S.AWAITING_APPROVAL)
    await skipping_env.sleep(timedelta(hours=7))
    early = await handle.query(OrderWorkflow.state)
    assert "approval_reminder_sent" not in [e.type for e in early.timeline]
    await skipping_env.sleep(timedelta(hours=30))
    later = await handle.query(OrderWorkflow.state)
    types = [e.type for e in later.timeline]
    assert types.count("approval_reminder_sent") == 1
    gap = _gap(later.timeline, "approval_requested", "approval_reminder_sent")
    assert _about(gap, timedelta(hours=8)), gap
    assert [m.kind for m in await skipping_stack.mailer.sent(later.id)] == ["approval_reminder"]

    approved = await handle.execute_update(OrderWorkflow.approve, ApproveInput(actor="lead-1"))
    assert approved.status is not S.AWAITING_APPROVAL
    await handle.cancel()


async def test_delivery_overdue_is_reported_then_delivery_completes(
    skipping_stack: Stack, skipping_env: WorkflowEnvironment
) -> None:
    handle = await start_order(skipping_stack)
    await wait_status(handle, S.FULFILLING)
    await skipping_env.sleep(timedelta(days=8))
    late = await handle.query(OrderWorkflow.state)
    assert [e.type for e in late.timeline].count("delivery_overdue") == 1
    for event in (CarrierEventType.PICKED_UP, CarrierEventType.DELIVERED):
        await handle.signal(
            OrderWorkflow.carrier_event, CarrierEventInput(actor="carrier", event=event)
        )
    final = await handle.result()
    assert final.status is S.COMPLETED
    kinds = [m.kind for m in await skipping_stack.mailer.sent(final.id)]
    assert kinds == ["delivery_overdue", "delivered"]
