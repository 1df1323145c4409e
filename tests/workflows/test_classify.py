"""Customer classification on the real dev server: the workflow over seeded orders, promotion
applied or suggested per setting, the change rows, continue-as-new, and the schedule."""

from __future__ import annotations

import asyncio
import signal
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from temporalio.client import ScheduleActionStartWorkflow
from temporalio.service import RPCError

from activities.customers import ClassifyInput, ClassifyProgress
from db.models import CustomerChangeRow, CustomerRow, OrderRow
from domain.order import CustomerTier
from tests.conftest import Stack
from tests.helpers import eventually
from worker import build_worker, run_worker
from workflows.classify import SCHEDULE_ID, ClassifyCustomersWorkflow, ensure_schedule

NOW = datetime.now(UTC)
VIP, STD = CustomerTier.VIP, CustomerTier.STANDARD


async def seed(stack: Stack) -> dict[str, str]:
    """Five customers (ids sort in this order) and their orders of the last months."""
    ids = {
        k: f"{n}-{k}-{uuid.uuid4().hex[:4]}"
        for n, k in enumerate(("loyal", "few", "lapsed", "cancelled", "old"))
    }
    tiers = {"lapsed": VIP}
    orders: list[tuple[str, int, str, str]] = []  # customer, days ago, status, total
    orders += [("loyal", 5 + 20 * i, "completed", "5000.00") for i in range(12)]  # 60,000 EUR
    orders += [("few", 3, "completed", "90000.00")]
    orders += [("cancelled", 2 + i, "cancelled", "9000.00") for i in range(12)]
    orders += [("old", 400 + i, "completed", "9000.00") for i in range(12)]  # before the window
    async with stack.sessions.begin() as session:
        for key, customer_id in ids.items():
            session.add(
                CustomerRow(
                    id=customer_id,
                    name="[erased]",
                    email="erased@erased.example",
                    region="EU",
                    tier=tiers.get(key, STD).value,
                    tags=[],
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
        await session.flush()
        for n, (key, days, status, total) in enumerate(orders):
            at = NOW - timedelta(days=days)
            session.add(
                OrderRow(
                    id=f"SO-T-{uuid.uuid4().hex[:8]}-{n}",
                    status=status,
                    closed=True,
                    customer_id=ids[key],
                    customer_tier="standard",
                    region="EU",
                    currency="EUR",
                    total=Decimal(total),
                    created_by="eshop",
                    created_at=at,
                    updated_at=at,
                    seq=1,
                    snapshot={},
                )
            )
    return ids


async def customers(stack: Stack) -> dict[str, tuple[str, str | None]]:
    async with stack.sessions() as session:
        rows = await session.scalars(select(CustomerRow))
        return {r.id: (r.tier, r.suggested_tier) for r in rows}


async def change_log(stack: Stack) -> list[tuple[str, str, str, object]]:
    async with stack.sessions() as session:
        rows = await session.scalars(select(CustomerChangeRow).order_by(CustomerChangeRow.id))
        return [(r.customer_id, r.actor, r.change, r.detail.get("to")) for r in rows]


async def classify(stack: Stack, **inp: object) -> ClassifyProgress:
    workflow_id = f"classify-{uuid.uuid4().hex[:8]}"
    result = await stack.client.execute_workflow(
        ClassifyCustomersWorkflow.run,
        ClassifyInput.model_validate(inp),
        id=workflow_id,
        task_queue=stack.settings.task_queue,
    )
    # The query answers for the latest run (after continue-as-new), from the closed workflow.
    latest = stack.client.get_workflow_handle_for(ClassifyCustomersWorkflow.run, workflow_id)
    assert await latest.query(ClassifyCustomersWorkflow.progress) == result
    return result


async def test_promotion_is_suggested_by_default_and_pages_continue_as_new(stack: Stack) -> None:
    assert stack.settings.rfm_auto_promote is False
    ids = await seed(stack)
    progress = await classify(stack, batch_size=2, batches_per_run=1)
    assert progress == ClassifyProgress(
        total=5, scanned=5, proposals=2, applied=0, suggested=2, withdrawn=0, runs=3, done=True
    )
    assert await customers(stack) == {
        ids["loyal"]: ("standard", "vip"),
        ids["few"]: ("standard", None),  # one big order: not frequent
        ids["lapsed"]: ("vip", "standard"),  # no orders: demotion only suggested
        ids["cancelled"]: ("standard", None),  # cancelled orders are no purchases
        ids["old"]: ("standard", None),  # older than 12 months
    }
    log = await change_log(stack)
    assert log == [
        (ids["loyal"], "classifier", "tier_suggested", "vip"),
        (ids["lapsed"], "classifier", "tier_suggested", "standard"),
    ]
    async with stack.sessions() as session:
        first = await session.scalar(select(CustomerChangeRow).order_by(CustomerChangeRow.id))
    assert first is not None
    assert first.detail["rfm"]["orders"] == 12
    assert first.detail["rfm"]["met"] == ["recency", "frequency", "monetary"]
    assert Decimal(first.detail["rfm"]["spend"]["EUR"]) == Decimal(60000)

    # A second run finds nothing new to say.
    again = await classify(stack)
    assert (again.proposals, again.suggested, again.applied, again.runs) == (2, 0, 0, 1)
    assert len(await change_log(stack)) == 2


async def test_promotion_is_applied_when_the_setting_says_so(bare_stack: Stack) -> None:
    settings = bare_stack.settings.model_copy(update={"rfm_auto_promote": True})
    stack = Stack(**{**bare_stack.__dict__, "settings": settings})
    ids = await seed(stack)
    async with build_worker(stack.client, settings, stack.sessions):
        progress = await classify(stack)
    assert (progress.applied, progress.suggested, progress.scanned) == (1, 1, 5)
    state = await customers(stack)
    assert state[ids["loyal"]] == ("vip", None)
    assert state[ids["lapsed"]] == ("vip", "standard")  # never demoted automatically
    assert (ids["loyal"], "classifier", "tier_changed", "vip") in await change_log(stack)


async def test_schedule_is_created_once_and_updated_when_the_settings_change(
    stack: Stack,
) -> None:
    schedule_id = f"test-classify-{uuid.uuid4().hex[:8]}"
    queue = stack.settings.task_queue
    try:
        made = await ensure_schedule(
            stack.client, task_queue=queue, cron="0 2 * * *", schedule_id=schedule_id
        )
        assert made == "created"
        same = await ensure_schedule(
            stack.client, task_queue=queue, cron="0 2 * * *", schedule_id=schedule_id
        )
        assert same == "unchanged"
        handle = stack.client.get_schedule_handle(schedule_id)
        await handle.pause(note="paused by ops")
        moved = await ensure_schedule(
            stack.client, task_queue=queue, cron="30 3 * * *", schedule_id=schedule_id
        )
        assert moved == "updated"
        desc = await handle.describe()
        assert desc.schedule.state.paused  # a pause stays
        assert desc.schedule.state.note is not None
        assert "30 3 * * *" in desc.schedule.state.note
        action = desc.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == "ClassifyCustomers"
        assert action.task_queue == queue
        # The action runs on this worker: trigger it once.
        await handle.unpause()
        ids = await seed(stack)
        await handle.trigger()
        await eventually(
            lambda: customers(stack),
            lambda state: state[ids["loyal"]] == ("standard", "vip"),
            what="the scheduled run's suggestion",
        )
    finally:
        await stack.client.get_schedule_handle(schedule_id).delete()


async def test_the_worker_creates_the_schedule_when_it_starts(stack: Stack) -> None:
    target = stack.client.service_client.config.target_host
    settings = stack.settings.model_copy(update={"temporal_target": target})
    handle = stack.client.get_schedule_handle(SCHEDULE_ID)

    async def exists() -> bool:
        try:
            await handle.describe()
        except RPCError:
            return False
        return True

    if await exists():  # left by an earlier run against this server
        await handle.delete()
    running = asyncio.create_task(run_worker(settings))
    loop = asyncio.get_running_loop()
    try:
        await eventually(exists, bool, what="the classification schedule")
        desc = await handle.describe()
        assert desc.schedule.state.note is not None
        assert settings.classification_schedule in desc.schedule.state.note
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if await exists():
            await handle.delete()
