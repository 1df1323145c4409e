"""Durable timers on the time-skipping test server: days pass in milliseconds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain.events import OrderEvent
from domain.state import OrderState
from domain.status import OrderStatus
from integrations.inventory import SimulatedInventory
from services.auth import Role, new_key_row
from services.users import Users
from tests.conftest import Stack, binary, make_settings
from tests.factories import order_spec
from tests.helpers import logged_types, start_order, wait_status
from tests.keys import TEST_CONVERTER
from worker import build_worker
from workflows.contracts import ApproveInput, CarrierEventInput, CarrierEventType
from workflows.order import OrderWorkflow

S = OrderStatus


@pytest.fixture
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """One server per test: a workflow left waiting by another test would hold its clock."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"),
        data_converter=TEST_CONVERTER,
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


async def _events(handle: WorkflowHandle[OrderWorkflow, OrderState]) -> list[OrderEvent]:
    """The order's events so far, from the workflow's ``record`` query."""
    record = await handle.query(OrderWorkflow.record)
    return [logged.event for logged in record.events]


def _gap(events: list[OrderEvent], first: str, then: str) -> timedelta:
    at = {e.type: e.at for e in events}
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
    events = await _events(handle)
    gap = _gap(events, "payment_requested", "payment_reminder_sent")
    assert _about(gap, timedelta(days=1)), gap
    gap = _gap(events, "payment_requested", "payment_expired")
    assert _about(gap, timedelta(days=3)), gap
    types = await logged_types(skipping_stack, final.id)
    # The cause, the compensation, then the closure.
    assert types[-3:] == ["payment_expired", "stock_released", "cancelled"]
    assert types.count("payment_reminder_sent") == 1
    mails = await skipping_stack.mailer.sent(final.id)
    assert [m.kind for m in mails] == ["payment_reminder", "cancelled"]
    assert mails[0].recipient == "ada@example.com"
    reservations = await SimulatedInventory(skipping_stack.sessions).reservations(final.id)
    assert [r.state for r in reservations] == ["released"]
    assert await skipping_stack.gateway.entries(final.id) == []


async def test_approval_reminds_escalates_then_expires_with_compensation(
    skipping_stack: Stack, skipping_env: WorkflowEnvironment
) -> None:
    # The approvers who hold the levels, with their addresses (and languages).
    users = Users(skipping_stack.sessions)
    await users.invite("t", "lena", "Lena", ["approver"], [1], "zh", email="lena@example.com")
    await users.invite("t", "max", "Max", ["approver"], [2], email="max@example.com")
    await users.invite("t", "nomail", "No Mail", ["approver"], [1])
    await users.invite("t", "sam", "Sam", ["support"], [], email="sam@example.com")
    _, key = new_key_row("erp-l1", [Role.APPROVER], [1], email="erp-l1@example.com")
    async with skipping_stack.sessions.begin() as session:
        session.add(key)
    spec = order_spec(lines=[{"sku": "WIDGET-1", "quantity": 100, "unit_price": "60.00"}])
    handle = await start_order(skipping_stack, spec)
    waiting = await wait_status(handle, S.AWAITING_APPROVAL)
    level = waiting.approval.levels[0]
    assert (level.level, level.eligible_levels) == (1, [1])
    assert waiting.approval.next_deadline_kind == "reminder"
    assert [r.state for r in await skipping_stack.inventory.reservations(waiting.id)] == [
        "reserved"
    ]

    await skipping_env.sleep(timedelta(hours=7))
    early = await _events(handle)
    assert "approval_requested" in [e.type for e in early]
    assert "approval_reminder_sent" not in [e.type for e in early]

    await skipping_env.sleep(timedelta(hours=2))  # 9 h: reminded, not escalated
    record = await handle.query(OrderWorkflow.record)
    reminded, events = record.state, [logged.event for logged in record.events]
    types = [e.type for e in events]
    assert types.count("approval_reminder_sent") == 1
    assert "approval_escalated" not in types
    assert _about(_gap(events, "approval_requested", "approval_reminder_sent"), timedelta(hours=8))
    assert reminded.approval.next_deadline_kind == "escalation"

    await skipping_env.sleep(timedelta(hours=16))  # 25 h: escalated to level 2
    record = await handle.query(OrderWorkflow.record)
    escalated, events = record.state, [logged.event for logged in record.events]
    assert escalated.approval.levels[0].escalated
    assert escalated.approval.levels[0].eligible_levels == [1, 2]
    assert escalated.approval.next_deadline_kind == "expiry"
    assert _about(_gap(events, "approval_requested", "approval_escalated"), timedelta(hours=24))

    final = await handle.result()  # the clock runs on to the 72 h expiry
    assert final.status is S.REJECTED
    assert final.closure is not None
    assert final.closure.reason == "approval expired"
    events = await _events(handle)
    assert _about(_gap(events, "approval_requested", "approval_expired"), timedelta(hours=72))
    assert [e.type for e in events][-3:] == ["approval_expired", "stock_released", "rejected"]
    mails = await skipping_stack.mailer.sent(final.id)
    assert sorted((m.kind, m.language, m.recipient, m.status) for m in mails) == [
        ("approval_escalated", "en", "max@example.com", "sent"),
        ("approval_reminder", "en", "erp-l1@example.com", "sent"),
        ("approval_reminder", "zh-CN", "lena@example.com", "sent"),
    ]
    zh = next(m for m in mails if m.language == "zh-CN")
    assert zh.subject == f"订单 {final.id} 等待您的审批"
    assert "第 1 级" in zh.body
    assert zh.html is not None
    assert "第 1 级" in zh.html
    assert [r.state for r in await skipping_stack.inventory.reservations(final.id)] == ["released"]
    assert await skipping_stack.gateway.entries(final.id) == []


async def test_vip_orders_are_reminded_twice_as_fast(
    skipping_stack: Stack, skipping_env: WorkflowEnvironment
) -> None:
    # 30,000 EUR needs levels 1 and 2; a VIP below the 50,000 relief needs level 1 only.
    spec = order_spec(
        tier="vip", lines=[{"sku": "WIDGET-1", "quantity": 500, "unit_price": "60.00"}]
    )
    handle = await start_order(skipping_stack, spec)
    waiting = await wait_status(handle, S.AWAITING_APPROVAL)
    assert [lv.level for lv in waiting.approval.levels] == [1]
    await skipping_env.sleep(timedelta(hours=5))
    events = await _events(handle)
    assert _about(_gap(events, "approval_requested", "approval_reminder_sent"), timedelta(hours=4))
    approved = await handle.execute_update(
        OrderWorkflow.approve, ApproveInput(actor="lead-1", actor_levels=[1])
    )
    assert approved.status is not S.AWAITING_APPROVAL
    await handle.cancel()


async def test_delivery_overdue_is_reported_then_delivery_completes(
    skipping_stack: Stack, skipping_env: WorkflowEnvironment
) -> None:
    handle = await start_order(skipping_stack)
    await wait_status(handle, S.FULFILLING)
    await skipping_env.sleep(timedelta(days=8))
    record = await handle.query(OrderWorkflow.record)
    assert [logged.event.type for logged in record.events].count("delivery_overdue") == 1
    assert record.state.delivery_overdue is True
    assert record.state.status is S.FULFILLING
    for event in (CarrierEventType.PICKED_UP, CarrierEventType.DELIVERED):
        await handle.signal(
            OrderWorkflow.carrier_event, CarrierEventInput(actor="carrier", event=event)
        )
    final = await handle.result()
    assert final.status is S.COMPLETED
    kinds = [m.kind for m in await skipping_stack.mailer.sent(final.id)]
    assert kinds == ["delivery_overdue", "delivered"]
    types = await logged_types(skipping_stack, final.id)
    assert types.count("delivery_overdue") == 1
    assert types.index("delivery_overdue") < types.index("shipped") < types.index("delivered")
