"""A worker killed (SIGKILL) in the middle of an import's starts: another worker completes the
import with every order started exactly once: no duplicate, no missing order."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import func, select
from temporalio.client import WorkflowHistory

from db.models import ImportOrderRow, OrderReferenceRow
from db.session import SessionFactory
from services.imports import Imports
from tests.api.conftest import Api
from tests.e2e.conftest import Workers
from tests.import_files import csv_bytes, orders
from workflows.imports import workflow_id

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
BATCH = 40
ORDERS = 120  # three batches


async def status_of(api: Api, import_id: str) -> dict[str, Any]:
    res = await api.http.get(f"/imports/{import_id}", headers=api.auth("eshop"))
    assert res.status_code == 200, res.text
    body: dict[str, Any] = res.json()
    return body


async def test_killed_worker_mid_import_starts_every_order_exactly_once(
    api_without_worker: Api,
    workers: Workers,
    sessions: SessionFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = api_without_worker
    monkeypatch.setattr(Imports, "batch_size", BATCH)
    first = workers.start()
    res = await api.http.post(
        "/imports",
        files={"file": ("crash.csv", csv_bytes(orders(ORDERS, prefix="CRASH")))},
        data={"mode": "all-or-nothing"},
        headers=api.auth("eshop"),
    )
    assert res.status_code == 202, res.text
    import_id = res.json()["id"]

    # Kill the worker once the first batch is through and the next one is under way.
    deadline = time.monotonic() + 120
    while True:
        body = await status_of(api, import_id)
        async with sessions() as session:
            attempted = await session.scalar(
                select(func.count())
                .select_from(ImportOrderRow)
                .where(ImportOrderRow.import_id == import_id)
                .where(ImportOrderRow.attempted_at.is_not(None))
            )
        if body["counts"]["started"] >= BATCH and (attempted or 0) > body["counts"]["started"]:
            break
        assert body["status"] in ("validating", "starting"), f"{body}\n{workers.output()}"
        assert time.monotonic() < deadline, f"no batch in flight: {body}\n{workers.output()}"
        await asyncio.sleep(0.05)
    workers.assert_running(first)
    workers.kill(first)
    killed_at = (await status_of(api, import_id))["counts"]["started"]
    assert killed_at < ORDERS, "the import finished before the kill"
    workers.start()

    deadline = time.monotonic() + 180
    while (body := await status_of(api, import_id))["status"] not in ("completed", "cancelled"):
        assert body["status"] != "failed", body
        assert time.monotonic() < deadline, f"import stuck: {body}\n{workers.output()}"
        await asyncio.sleep(0.2)
    c = body["counts"]
    assert body["status"] == "completed"
    assert c["failed"] == 0
    assert c["cancelled"] == 0
    assert c["started"] + c["existing"] == ORDERS
    assert c["started"] == ORDERS, "orders this import started were counted as someone else's"

    # Exactly one order per order_ref, every one of them started on the engine.
    async with sessions() as session:
        claims = list(
            await session.execute(
                select(OrderReferenceRow.external_reference, OrderReferenceRow.order_id)
                .where(OrderReferenceRow.source == "import")
                .where(OrderReferenceRow.external_reference.like("CRASH-%"))
            )
        )
        recorded = list(
            await session.execute(
                select(ImportOrderRow.order_ref, ImportOrderRow.order_id).where(
                    ImportOrderRow.import_id == import_id
                )
            )
        )
    assert sorted(ref for ref, _ in claims) == sorted(f"CRASH-{i}" for i in range(ORDERS))
    assert dict(claims) == dict(recorded)
    assert len({oid for _, oid in claims}) == ORDERS
    for _, order_id in claims[:: ORDERS // 20]:  # a sample: the engine has each order
        desc = await api.stack.client.get_workflow_handle(order_id).describe()
        assert desc.workflow_type == "Order"

    # The import's history stayed small: no file, no order specs in it.
    history: WorkflowHistory = await api.stack.client.get_workflow_handle(
        workflow_id(import_id)
    ).fetch_history()
    size = sum(len(e.SerializeToString()) for e in history.events)
    assert size < 200_000, f"import history is {size} bytes"
