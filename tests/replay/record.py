"""Record the histories the replay test guards: ``python -m tests.replay.record``.

Run it when a workflow change is *meant* to be incompatible (and version the workflow), or to
add a scenario. It starts its own dev server and a throwaway SQLite database.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle, WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment

from activities.reports import AnalyticsInput
from db.models import Base
from db.session import make_engine, make_sessionmaker
from domain.events import ParcelLine
from domain.imports import ImportMode
from domain.order import OrderLine
from domain.state import OrderState
from domain.status import OrderStatus
from services.auth import Principal, Role
from services.imports import Imports
from services.report_exports import ReportExports, export_workflow_id
from tests.api.conftest import services_for
from tests.conftest import Stack, binary, make_settings, seeded_stack
from tests.factories import order_spec
from tests.helpers import deliver, start_order, wait_status
from tests.import_files import csv_bytes, orders
from tests.keys import TEST_CONVERTER
from worker import build_worker
from workflows.contracts import (
    AmendInput,
    ApproveInput,
    CancelInput,
    CarrierEventInput,
    CarrierEventType,
    PaymentInput,
    RejectInput,
    RequestChangesInput,
    ResolveCompensationInput,
    RetryCompensationInput,
    SplitShipmentInput,
)
from workflows.imports import workflow_id
from workflows.order import OrderWorkflow
from workflows.reports import AnalyticsWorkflow

HISTORIES = Path(__file__).parent / "histories"
Handle = WorkflowHandle[OrderWorkflow, OrderState]
AnyHandle = WorkflowHandle[Any, Any]
BIG = [{"sku": "WIDGET-1", "quantity": 100, "unit_price": "60.00"}]  # 6,000: level 1
THREE_LEVELS = [{"sku": "WIDGET-1", "quantity": 200, "unit_price": "600.00"}]  # 120,000


async def _import(stack: Stack, n: int, *, batches_per_run: int) -> AnyHandle:
    imports = Imports(services_for(stack))
    imports.batch_size, imports.batches_per_run = 100, batches_per_run
    principal = Principal(name="eshop", roles=frozenset({Role.SYSTEM}))
    data = csv_bytes(orders(n, prefix=f"REPLAY-{uuid.uuid4().hex[:6]}", lines=2))
    started = await imports.submit(data, "replay.csv", principal, mode=ImportMode.SKIP_INVALID)
    return stack.client.get_workflow_handle(workflow_id(started.id))


async def import_small(stack: Stack) -> AnyHandle:
    """Validate, one batch, finish."""
    return await _import(stack, 3, batches_per_run=100)


async def import_continued(stack: Stack) -> AnyHandle:
    """The first run of an import that continues as new after each batch of 100."""
    return await _import(stack, 150, batches_per_run=1)


async def _approve(handle: Handle, actor: str, level: int) -> None:
    await handle.execute_update(
        OrderWorkflow.approve, ApproveInput(actor=actor, actor_levels=[level])
    )


async def small_order(stack: Stack) -> Handle:
    handle = await start_order(stack)
    await wait_status(handle, OrderStatus.FULFILLING)
    await deliver(handle)
    return handle


async def three_level_approval(stack: Stack) -> Handle:
    await stack.bureau.set_profile("C-BIG", score=900, credit_limit=Decimal(1_000_000))
    handle = await start_order(stack, order_spec(customer_id="C-BIG", lines=THREE_LEVELS))
    for actor, level in (("lead-1", 1), ("manager-1", 2), ("finance-1", 3)):
        await wait_status(handle, OrderStatus.AWAITING_APPROVAL)
        await _approve(handle, actor, level)
    await wait_status(handle, OrderStatus.FULFILLING)
    await deliver(handle)
    return handle


async def rejected(stack: Stack) -> Handle:
    handle = await start_order(stack, order_spec(lines=BIG))
    await wait_status(handle, OrderStatus.AWAITING_APPROVAL)
    await handle.execute_update(
        OrderWorkflow.reject, RejectInput(actor="lead-1", actor_levels=[1], reason="no")
    )
    return handle


async def changes_amended(stack: Stack) -> Handle:
    await stack.bureau.set_profile("C-BIG", score=900, credit_limit=Decimal(1_000_000))
    handle = await start_order(stack, order_spec(customer_id="C-BIG", lines=THREE_LEVELS))
    await wait_status(handle, OrderStatus.AWAITING_APPROVAL)
    await _approve(handle, "lead-1", 1)
    await handle.execute_update(
        OrderWorkflow.request_changes,
        RequestChangesInput(actor="manager-1", actor_levels=[2], reason="too big"),
    )
    smaller = [OrderLine(sku="WIDGET-1", quantity=100, unit_price=Decimal("600.00"))]
    await handle.execute_update(OrderWorkflow.amend, AmendInput(actor="eshop", lines=smaller))
    await _approve(handle, "manager-1", 2)
    await wait_status(handle, OrderStatus.FULFILLING)
    await deliver(handle)
    return handle


async def approval_expired(stack: Stack) -> Handle:
    """Time-skipping server: the level waits past reminder, escalation and expiry."""
    return await start_order(stack, order_spec(lines=BIG))


async def prepay_declined_then_paid(stack: Stack) -> Handle:
    handle = await start_order(stack, order_spec(payment={"type": "bank_transfer"}))
    await wait_status(handle, OrderStatus.AWAITING_PAYMENT)
    for token in ("tok_decline", "tr_ok"):
        pay = PaymentInput(actor="bank", amount=Decimal("39.98"), token=token)
        await handle.execute_update(OrderWorkflow.pay, pay)
    await wait_status(handle, OrderStatus.FULFILLING)
    await deliver(handle)
    return handle


async def prepay_expired(stack: Stack) -> Handle:
    """Time-skipping server: reminded, then cancelled at the deadline."""
    return await start_order(stack, order_spec(payment={"type": "bank_transfer"}))


async def cancel_before_capture(stack: Stack) -> Handle:
    handle = await start_order(stack, order_spec(lines=BIG))
    await wait_status(handle, OrderStatus.AWAITING_APPROVAL)
    await handle.execute_update(OrderWorkflow.cancel, CancelInput(actor="support", reason="r"))
    return handle


async def cancel_after_capture(stack: Stack) -> Handle:
    handle = await start_order(stack, order_spec(lines=BIG))
    await wait_status(handle, OrderStatus.AWAITING_APPROVAL)
    await _approve(handle, "lead-1", 1)
    await wait_status(handle, OrderStatus.FULFILLING)
    await handle.execute_update(OrderWorkflow.cancel, CancelInput(actor="support", reason="r"))
    return handle


async def payment_declined(stack: Stack) -> Handle:
    return await start_order(stack, order_spec(payment={"type": "card", "token": "tok_decline"}))


async def out_of_stock(stack: Stack) -> Handle:
    lines = [{"sku": "RARE-9", "quantity": 5, "unit_price": "10.00"}]
    return await start_order(stack, order_spec(lines=lines))


async def carrier_exception(stack: Stack) -> Handle:
    handle = await start_order(stack)
    await wait_status(handle, OrderStatus.FULFILLING)
    for event in (CarrierEventType.EXCEPTION, CarrierEventType.IN_TRANSIT):
        await handle.signal(
            OrderWorkflow.carrier_event, CarrierEventInput(actor="carrier", event=event)
        )
    await wait_status(handle, OrderStatus.SHIPPED)
    await deliver(handle)
    return handle


async def split_shipment(stack: Stack) -> Handle:
    lines = [
        {"sku": "WIDGET-1", "quantity": 3, "unit_price": "10.00"},
        {"sku": "GADGET-2", "quantity": 1, "unit_price": "20.00"},
    ]
    handle = await start_order(stack, order_spec(lines=lines))
    await wait_status(handle, OrderStatus.FULFILLING)
    parcels = [
        [ParcelLine(sku="WIDGET-1", quantity=2)],
        [ParcelLine(sku="WIDGET-1", quantity=1), ParcelLine(sku="GADGET-2", quantity=1)],
    ]
    state = await handle.execute_update(
        OrderWorkflow.split_shipment, SplitShipmentInput(actor="support", parcels=parcels)
    )
    for parcel in state.active_parcels():
        for event in (CarrierEventType.PICKED_UP, CarrierEventType.DELIVERED):
            await handle.signal(
                OrderWorkflow.carrier_event,
                CarrierEventInput(
                    actor="carrier", event=event, tracking_number=parcel.tracking_number
                ),
            )
    return handle


async def refund_refused_resolved(stack: Stack) -> Handle:
    spec = order_spec(payment={"type": "card", "token": "tok_refund_refused"})
    handle = await start_order(stack, spec)
    await wait_status(handle, OrderStatus.FULFILLING)
    await handle.start_update(
        OrderWorkflow.cancel,
        CancelInput(actor="support", reason="r"),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    await wait_status(handle, OrderStatus.NEEDS_ATTENTION)
    await handle.execute_update(
        OrderWorkflow.retry_compensation, RetryCompensationInput(actor="support")
    )
    await wait_status(handle, OrderStatus.NEEDS_ATTENTION)
    await handle.execute_update(
        OrderWorkflow.resolve_compensation,
        ResolveCompensationInput(actor="support", note="refunded by bank transfer"),
    )
    return handle


async def report_export(stack: Stack) -> AnyHandle:
    """A background sales export (an empty report: the history is the same)."""
    exports = ReportExports(stack.sessions, stack.settings, stack.client)
    manager = Principal(name="manager", roles=frozenset({Role.MANAGER}))
    view = await exports.request(manager, "sales", "csv", {"group_by": ["region"]})
    return stack.client.get_workflow_handle(export_workflow_id(view.id))


async def analytics(stack: Stack) -> AnyHandle:
    """Rules, then forecasts."""
    return await stack.client.start_workflow(
        AnalyticsWorkflow.run,
        AnalyticsInput(),
        id=f"replay-analytics-{uuid.uuid4().hex[:6]}",
        task_queue=stack.settings.task_queue,
    )


async def webhook_delivery(stack: Stack) -> AnyHandle:
    """An endpoint receives a small order's events (one 500 first, then 204s), then is
    disabled: the delivery workflow ends."""
    from sqlalchemy import select
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from config import load_keyring
    from db.models import WebhookDeliveryRow
    from services.webhooks import WebhookIn, WebhookPatch, Webhooks
    from tests.helpers import eventually
    from tests.http_servers import serve
    from tests.test_devproxy import upstream
    from workflows.webhooks import workflow_id as webhook_workflow_id

    answered: list[int] = []

    async def hook(_request: Request) -> Response:
        answered.append(500 if not answered else 204)
        return Response(status_code=answered[-1])

    admin = Principal(name="root", roles=frozenset({Role.ADMIN}))
    webhooks = Webhooks(stack.sessions, stack.settings, load_keyring(stack.settings), stack.client)
    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve(upstream(app)) as base:
        endpoint = await webhooks.create(admin, WebhookIn(url=f"{base}/hook"))
        await small_order(stack)

        async def states() -> list[str]:
            async with stack.sessions() as session:
                return list(
                    await session.scalars(
                        select(WebhookDeliveryRow.status).where(
                            WebhookDeliveryRow.endpoint_id == endpoint.id
                        )
                    )
                )

        await eventually(
            states, lambda got: len(got) >= 5 and set(got) == {"delivered"}, what="delivered"
        )
        await webhooks.patch(admin, endpoint.id, WebhookPatch(enabled=False))
    return stack.client.get_workflow_handle(webhook_workflow_id(endpoint.id))


async def mail_dispatch(stack: Stack) -> AnyHandle:
    """The mail consumer's rounds while a small order completes (its email composed, sent)."""
    from workflows.mail import MailDispatchWorkflow, MailInput

    handle = await stack.client.start_workflow(
        MailDispatchWorkflow.run,
        MailInput(round_seconds=0.5, rounds=3),
        id=f"mail-{stack.settings.task_queue}",
        task_queue=stack.settings.task_queue,
    )
    await small_order(stack)
    return handle


SCENARIOS: dict[str, Callable[[Stack], Awaitable[AnyHandle]]] = {
    "small_order": small_order,
    "three_level_approval": three_level_approval,
    "rejected": rejected,
    "changes_amended": changes_amended,
    "prepay_declined_then_paid": prepay_declined_then_paid,
    "cancel_before_capture": cancel_before_capture,
    "cancel_after_capture": cancel_after_capture,
    "payment_declined": payment_declined,
    "out_of_stock": out_of_stock,
    "carrier_exception": carrier_exception,
    "split_shipment": split_shipment,
    "refund_refused_resolved": refund_refused_resolved,
    "import_small": import_small,
    "import_continued": import_continued,
    "report_export": report_export,
    "analytics": analytics,
    "webhook_delivery": webhook_delivery,
    "mail_dispatch": mail_dispatch,
    # since the mail-from-event-log patch (the ones above: orders from before it)
    "mail_patched_order": small_order,
}
# Recorded on the time-skipping server: their timers take days.
TIMED: dict[str, Callable[[Stack], Awaitable[AnyHandle]]] = {
    "approval_expired": approval_expired,
    "prepay_expired": prepay_expired,
    "mail_patched_approval_expired": approval_expired,
}
ALL = {**SCENARIOS, **TIMED}


async def _run(stack: Stack, scenarios: dict[str, Callable[[Stack], Awaitable[AnyHandle]]]) -> None:
    async with build_worker(stack.client, stack.settings, stack.sessions):
        for name, scenario in scenarios.items():
            handle = await scenario(stack)
            await handle.result()  # follows continue-as-new; the history kept is the first run's
            started = (await handle.fetch_history()).events[0]
            first = started.workflow_execution_started_event_attributes.first_execution_run_id
            history = await stack.client.get_workflow_handle(
                handle.id, run_id=first
            ).fetch_history()
            (HISTORIES / f"{name}.json").write_text(history.to_json())
            print(f"recorded {name}: {len(history.events)} events")  # noqa: T201


async def record(only: set[str] | None = None) -> None:
    """Record every scenario, or those named in ``only``."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"), data_converter=TEST_CONVERTER
    )
    skipping = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"),
        data_converter=TEST_CONVERTER,
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/replay.db"
        engine = make_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        sessions = make_sessionmaker(engine)
        for client, group in ((env.client, SCENARIOS), (skipping.client, TIMED)):
            wanted = {k: v for k, v in group.items() if only is None or k in only}
            if wanted:
                settings = make_settings(
                    url,
                    webhook_allow_private=True,  # the webhook scenario's receiver is on loopback
                    webhook_retry_schedule=[0.2],
                    webhook_poll=0.05,
                )
                await _run(await seeded_stack(client, settings, sessions), wanted)
        await engine.dispose()
    await skipping.shutdown()
    await env.shutdown()


if __name__ == "__main__":
    asyncio.run(record(set(sys.argv[1:]) or None))
    os._exit(0)
