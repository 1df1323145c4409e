"""Record the histories the replay test guards: ``python -m tests.replay.record``.

Run it when a workflow change is *meant* to be incompatible (and version the workflow), or to
add a scenario. It starts its own dev server and a throwaway SQLite database.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from db.models import Base
from db.session import make_engine, make_sessionmaker
from domain.order import OrderLine
from domain.status import OrderStatus
from domain.view import OrderView
from tests.conftest import Stack, binary, make_settings, seeded_stack
from tests.factories import order_spec
from tests.helpers import deliver, start_order, wait_status
from worker import build_worker
from workflows.contracts import (
    AmendInput,
    ApproveInput,
    CancelInput,
    PaymentInput,
    RejectInput,
    RequestChangesInput,
)
from workflows.order import OrderWorkflow

HISTORIES = Path(__file__).parent / "histories"
Handle = WorkflowHandle[OrderWorkflow, OrderView]
BIG = [{"sku": "WIDGET-1", "quantity": 100, "unit_price": "60.00"}]


async def happy_path(stack: Stack) -> Handle:
    handle = await start_order(stack)
    await wait_status(handle, OrderStatus.FULFILLING)
    await deliver(handle)
    return handle


async def approved_then_cancelled(stack: Stack) -> Handle:
    handle = await start_order(stack, order_spec(lines=BIG))
    await wait_status(handle, OrderStatus.AWAITING_APPROVAL)
    await handle.execute_update(
        OrderWorkflow.approve, ApproveInput(actor="lead-1", actor_levels=[1])
    )
    await wait_status(handle, OrderStatus.FULFILLING)
    await handle.execute_update(OrderWorkflow.cancel, CancelInput(actor="support", reason="r"))
    return handle


async def rejected(stack: Stack) -> Handle:
    handle = await start_order(stack, order_spec(lines=BIG))
    await wait_status(handle, OrderStatus.AWAITING_APPROVAL)
    await handle.execute_update(
        OrderWorkflow.reject, RejectInput(actor="lead-1", actor_levels=[1], reason="no")
    )
    return handle


async def prepay_declined_then_paid(stack: Stack) -> Handle:
    handle = await start_order(stack, order_spec(payment={"type": "bank_transfer"}))
    await wait_status(handle, OrderStatus.AWAITING_PAYMENT)
    for token in ("tok_decline", "tr_ok"):
        pay = PaymentInput(actor="bank", amount=Decimal("39.98"), token=token)
        await handle.execute_update(OrderWorkflow.pay, pay)
    await wait_status(handle, OrderStatus.FULFILLING)
    await deliver(handle)
    return handle


async def three_levels_changes_amended(stack: Stack) -> Handle:
    lines = [{"sku": "WIDGET-1", "quantity": 200, "unit_price": "600.00"}]  # 120,000: 3 levels
    await stack.bureau.set_profile("C-BIG", score=900, credit_limit=Decimal(1_000_000))
    handle = await start_order(stack, order_spec(customer_id="C-BIG", lines=lines))
    await wait_status(handle, OrderStatus.AWAITING_APPROVAL)
    await handle.execute_update(
        OrderWorkflow.approve, ApproveInput(actor="lead-1", actor_levels=[1])
    )
    await handle.execute_update(
        OrderWorkflow.request_changes,
        RequestChangesInput(actor="manager-1", actor_levels=[2], reason="too big"),
    )
    smaller = [OrderLine(sku="WIDGET-1", quantity=100, unit_price=Decimal("600.00"))]
    await handle.execute_update(OrderWorkflow.amend, AmendInput(actor="eshop", lines=smaller))
    await handle.execute_update(
        OrderWorkflow.approve, ApproveInput(actor="manager-1", actor_levels=[2])
    )
    await wait_status(handle, OrderStatus.FULFILLING)
    await deliver(handle)
    return handle


SCENARIOS: dict[str, Callable[[Stack], Awaitable[Handle]]] = {
    "happy_path": happy_path,
    "approved_then_cancelled": approved_then_cancelled,
    "rejected": rejected,
    "prepay_declined_then_paid": prepay_declined_then_paid,
    "three_levels_changes_amended": three_levels_changes_amended,
}


async def record() -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"), data_converter=pydantic_data_converter
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/replay.db"
        engine = make_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        sessions = make_sessionmaker(engine)
        settings = make_settings(url)
        stack = await seeded_stack(env.client, settings, sessions)
        async with build_worker(env.client, settings, sessions):
            for name, scenario in SCENARIOS.items():
                handle = await scenario(stack)
                await handle.result()
                history = await handle.fetch_history()
                (HISTORIES / f"{name}.json").write_text(history.to_json())
                print(f"recorded {name}: {len(history.events)} events")  # noqa: T201
        await engine.dispose()
    await env.shutdown()


if __name__ == "__main__":
    asyncio.run(record())
    os._exit(0)
