"""Worker processes killed with SIGKILL mid-order: the order completes and pays exactly once.

The API runs in process (no worker in it); every worker is a separate ``python worker.py``
process on the session's Temporal dev server, killed with ``kill -9`` at the worst moments:
while the order waits for approval, and while the gateway is in the middle of the capture.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from config import Settings
from db import readmodel
from db.session import SessionFactory
from domain.status import OrderStatus
from integrations.inventory import SimulatedInventory
from integrations.payment import SimulatedGateway
from tests.api.conftest import Api, open_api
from tests.api.flows import carrier, create, wait_status
from tests.conftest import make_settings, seeded_stack
from tests.factories import big_order
from tests.helpers import completed_attempts, eventually
from tests.keys import TEST_KEYS

ROOT = Path(__file__).resolve().parents[2]
S = OrderStatus
PAYMENT_DELAY = 3  # seconds the simulated gateway takes per capture

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@dataclass
class Workers:
    """``python worker.py`` processes; every one is SIGKILLed at the latest in teardown."""

    env: dict[str, str]
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> subprocess.Popen[bytes]:
        log = self.logs / f"worker-{len(self.procs) + 1}.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, "worker.py"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        """``kill -9``: no shutdown, no goodbye to the server."""
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)

    def kill_all(self) -> None:
        for proc in self.procs:
            self.kill(proc)

    def assert_running(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.poll() is None, f"worker exited with {proc.returncode}\n{self.output()}"

    def output(self) -> str:
        return "\n".join(
            f"--- {log.name} ---\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(self.logs.glob("worker-*.log"))
        )


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The API puts these into the order's policy: 10 s per try, heartbeats every 2 s.
    return make_settings(database_url, activity_heartbeat="PT2S", activity_timeout="PT10S")


@pytest.fixture
def workers(
    temporal_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> Iterator[Workers]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
    env.update(
        ORDERLY_TEMPORAL_TARGET=temporal_env.client.service_client.config.target_host,
        ORDERLY_DATABASE_URL=settings.database_url,
        ORDERLY_TASK_QUEUE=settings.task_queue,
        ORDERLY_SIM_PAYMENT_DELAY=str(PAYMENT_DELAY),
        ORDERLY_ACTIVITY_TIMEOUT="PT10S",
        ORDERLY_ACTIVITY_HEARTBEAT="PT2S",
        ORDERLY_ENCRYPTION_KEYS=json.dumps(TEST_KEYS),
        ORDERLY_ENCRYPTION_KEY_ID="test-1",
        PYTHONUNBUFFERED="1",
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Workers(env=env, logs=logs)
    try:
        yield procs
    finally:
        procs.kill_all()


@pytest.fixture
async def api_without_worker(
    temporal_env: WorkflowEnvironment, settings: Settings, sessions: SessionFactory
) -> AsyncIterator[Api]:
    """The in-process API of tests/api, but no worker: the workers are the processes above."""
    stack = await seeded_stack(temporal_env.client, settings, sessions)
    async with open_api(stack) as api:
        yield api


async def projected_status(sessions: SessionFactory, order_id: str) -> str | None:
    async with sessions() as session:
        row = await readmodel.get_row(session, order_id)
    return None if row is None else row.status


async def capture_in_flight(handle: WorkflowHandle[Any, Any]) -> bool:
    """True once a worker has started the capture_payment activity (first attempt)."""
    desc = await handle.describe()
    return any(
        pa.activity_type.name == "capture_payment"
        and pa.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        for pa in desc.raw_description.pending_activities
    )


async def test_killed_workers_never_lose_the_order_nor_charge_twice(
    api_without_worker: Api, workers: Workers, sessions: SessionFactory
) -> None:
    api = api_without_worker
    gateway = SimulatedGateway(sessions)
    inventory = SimulatedInventory(sessions)
    first = workers.start()

    order = await create(api, big_order(external_reference=f"CRASH-{uuid.uuid4().hex[:6]}"))
    order_id = order["id"]
    handle = api.stack.client.get_workflow_handle(order_id)
    await wait_status(api, order_id, S.AWAITING_APPROVAL, timeout=30)
    # Wait until the workflow task that got there finished (its projection is written).
    await eventually(
        lambda: projected_status(sessions, order_id),
        lambda status: status == S.AWAITING_APPROVAL.value,
        what="awaiting_approval projected",
    )
    workers.assert_running(first)

    # Crash 1: the only worker dies while the order waits for approval.
    workers.kill(first)
    second = workers.start()
    approved = await api.http.post(
        f"/orders/{order_id}/approve", json={"comment": "after crash"}, headers=api.auth("lead-1")
    )
    assert approved.status_code == 200, f"{approved.text}\n{workers.output()}"
    assert approved.json()["approval"]["decided_by"] == "lead-1"

    # Crash 2: the gateway has booked the charge, its 3 s answer has not reached the worker.
    await wait_status(api, order_id, S.CONFIRMED, timeout=30)
    await eventually(
        lambda: inventory.reservations(order_id), bool, what="stock reserved", timeout=30
    )
    await eventually(lambda: capture_in_flight(handle), bool, what="capture started", timeout=30)
    await eventually(lambda: gateway.entries(order_id), bool, what="charge booked", timeout=30)
    workers.assert_running(second)
    assert await capture_in_flight(handle), "the capture reported back before the kill"
    workers.kill(second)
    workers.start()

    fulfilling = await wait_status(api, order_id, S.FULFILLING, timeout=60)
    assert Decimal(fulfilling["payment"]["captured"]) == Decimal("6000.00")
    await carrier(api, order_id, "picked_up", "in_transit", "delivered")
    done = await wait_status(api, order_id, S.COMPLETED, timeout=60)

    # Charged exactly once, for the total; nothing refunded.
    entries = await gateway.entries(order_id)
    assert [(e.kind, e.status, e.amount_minor) for e in entries] == [
        ("capture", "succeeded", 600000)
    ]
    assert entries[0].idempotency_key == f"{order_id}:capture"
    assert await gateway.totals(order_id) == {"capture": 600000, "refund": 0}
    assert Decimal(done["total"]) == Decimal("6000.00")
    assert Decimal(done["payment"]["captured"]) == Decimal("6000.00")
    assert done["payment"]["capture_reference"] == entries[0].reference
    # The capture really was retried after the crash (attempt 2 is the one that completed).
    assert completed_attempts(await handle.fetch_history())["capture_payment"][-1] == 2

    # The timeline: no duplicate seq, one capture, in order, served the same by both reads.
    timeline = (
        await api.http.get(f"/orders/{order_id}/timeline", headers=api.auth("support-1"))
    ).json()["events"]
    seqs = [e["seq"] for e in timeline]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    types = Counter(e["type"] for e in timeline)
    assert types["payment_captured"] == 1, types
    assert types["approved"] == 1, types
    assert [e["seq"] for e in done["timeline"]] == seqs
    assert [r.state for r in await inventory.reservations(order_id)] == ["shipped"]
