"""Listing, pagination, filters, closed orders from the read model, and health."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.worker import Worker

from api.app import create_app
from db import readmodel
from domain.order import OrderSpec, new_order_id
from domain.status import OrderStatus
from services.context import Services
from tests.api.conftest import Api, services_for
from tests.api.flows import create, wait_status
from tests.factories import big_order, order_payload
from tests.keys import TEST_CONVERTER
from workflows.client import order_policy
from workflows.contracts import StartOrderInput
from workflows.recorder import Recorder

S = OrderStatus


async def test_list_filters_and_cursor_pagination(api: Api) -> None:
    ids = [(await create(api, order_payload(customer_id="C-PAGE")))["id"] for _ in range(5)]
    other = await create(api, big_order(customer_id="C-OTHER"))
    await wait_status(api, other["id"], S.AWAITING_APPROVAL)
    for order_id in ids:
        await wait_status(api, order_id, S.FULFILLING)

    seen: list[str] = []
    cursor = None
    while True:
        params = {"customer_id": "C-PAGE", "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await api.http.get("/orders", params=params, headers=api.auth("support-1"))).json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen))

    waiting = await api.http.get(
        "/orders", params={"status": "awaiting_approval"}, headers=api.auth("lead-1")
    )
    assert [i["id"] for i in waiting.json()["items"]] == [other["id"]]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    none = await api.http.get(
        "/orders", params={"created_from": future}, headers=api.auth("lead-1")
    )
    assert none.json()["items"] == []
    bad = await api.http.get("/orders", params={"cursor": "!!!"}, headers=api.auth("lead-1"))
    assert bad.status_code == 422
    bad_status = await api.http.get(
        "/orders", params={"status": "lost"}, headers=api.auth("lead-1")
    )
    assert bad_status.status_code == 422
    assert bad_status.json()["error"]["fields"][0]["field"] == "query.status"


async def test_closed_order_is_served_from_read_model(api: Api) -> None:
    order = await create(api, order_payload(payment={"type": "card", "token": "tok_decline"}))
    failed = await wait_status(api, order["id"], S.FAILED)
    await api.stack.client.get_workflow_handle(order["id"]).result()
    # An API whose engine knows nothing of this order (another namespace) still answers:
    # closed orders come from the read model alone.
    blind = Client(
        api.stack.client.service_client,
        namespace="no-such-namespace",
        data_converter=TEST_CONVERTER,
    )
    services = Services(
        settings=api.stack.settings,
        client=blind,
        sessions=api.stack.sessions,
        approval_policy=services_for(api.stack).approval_policy,
    )
    app = create_app(api.stack.settings, services=services)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        got = await http.get(f"/orders/{order['id']}", headers=api.auth("support-1"))
        assert got.status_code == 200
        assert got.json() == failed
        timeline = await http.get(f"/orders/{order['id']}/timeline", headers=api.auth("lead-1"))
        assert timeline.json()["events"] == failed["timeline"]
        late = await http.post(
            f"/orders/{order['id']}/cancel", json={"reason": "late"}, headers=api.auth("support-1")
        )
        assert late.status_code == 409
        assert late.json()["error"]["status"] == "failed"


async def test_healthz_reports_components(api: Api) -> None:
    response = await api.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "api": "ok", "temporal": "ok", "database": "ok"}


# A slow capture: the long poll must wait through statuses the order only passes.
@pytest.mark.parametrize("settings_overrides", [{"sim_payment_delay": 1.0}])
async def test_get_waits_for_a_resting_status(api: Api) -> None:
    small = await create(api, order_payload())

    # One call instead of a polling loop: it answers once the order rests in the status.
    response = await api.http.get(
        f"/orders/{small['id']}",
        params={"wait_for": ["awaiting_approval", "fulfilling"], "wait": 30},
        headers=api.auth("support-1"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "fulfilling"
    assert response.json()["shipment"]["tracking_number"]


async def test_get_wait_times_out_live_and_answers_closed_orders_at_once(api: Api) -> None:
    big = await create(api, big_order())

    # Never reached within the wait: the current live state, still 200.
    waiting = await wait_status(api, big["id"], S.AWAITING_APPROVAL)
    timed_out = await api.http.get(
        f"/orders/{big['id']}",
        params={"wait_for": "completed", "wait": 0.3},
        headers=api.auth("support-1"),
    )
    assert timed_out.status_code == 200
    assert timed_out.json()["status"] == "awaiting_approval"
    assert timed_out.json()["timeline"] == waiting["timeline"]

    # A closed order answers at once, whatever was waited for.
    await api.http.post(
        f"/orders/{big['id']}/reject", json={"reason": "no"}, headers=api.auth("lead-1")
    )
    closed = await api.http.get(
        f"/orders/{big['id']}",
        params={"wait_for": "fulfilling", "wait": 30},
        headers=api.auth("support-1"),
    )
    assert closed.json()["status"] == "rejected"


async def test_get_wait_for_refuses_statuses_orders_pass_through(api: Api) -> None:
    order = await create(api, order_payload())
    for params, field in (
        ({"wait_for": "paid"}, "query.wait_for"),
        ({"wait_for": "lost"}, "query.wait_for"),
        ({"wait_for": "fulfilling", "wait": "0"}, "query.wait"),
        ({"wait_for": "fulfilling", "wait": "61"}, "query.wait"),
    ):
        response = await api.http.get(
            f"/orders/{order['id']}", params=params, headers=api.auth("support-1")
        )
        assert response.status_code == 422, (params, response.text)
        error = response.json()["error"]
        assert error["fields"][0]["field"].startswith(field), (params, error)
    paid = await api.http.get(
        f"/orders/{order['id']}", params={"wait_for": "paid"}, headers=api.auth("support-1")
    )
    assert "wait for one of" in paid.json()["error"]["message"]
    missing = await api.http.get(
        "/orders/SO-20260101-NONE1",
        params={"wait_for": "fulfilling", "wait": 1},
        headers=api.auth("support-1"),
    )
    assert missing.status_code == 404


@workflow.defn(name="Order", sandboxed=False)
class _OrderWithoutQueries:
    """Stands in for an order whose worker cannot answer (e.g. its replay fails)."""

    @workflow.run
    async def run(self, _: dict[str, Any]) -> None:
        await workflow.wait_condition(lambda: False)


async def test_order_whose_query_fails_is_served_from_the_read_model(api: Api) -> None:
    order_id = new_order_id(datetime.now(UTC).date())
    queue = f"no-queries-{uuid.uuid4().hex[:8]}"
    spec = OrderSpec.model_validate(order_payload())
    record = Recorder(
        StartOrderInput(
            order_id=order_id,
            spec=spec,
            created_by="eshop",
            created_at=datetime.now(UTC),
            policy=order_policy(api.stack.settings, services_for(api.stack).approval_policy),
        )
    ).record()
    async with api.stack.sessions.begin() as session:
        await readmodel.project(session, record.state, record.events, vault=api.stack.vault)
    async with Worker(api.stack.client, task_queue=queue, workflows=[_OrderWithoutQueries]):
        handle = await api.stack.client.start_workflow(
            "Order", {"order_id": order_id}, id=order_id, task_queue=queue
        )
        try:
            with pytest.raises(WorkflowQueryFailedError):  # what the API meets
                await handle.query("state")
            got = await api.http.get(f"/orders/{order_id}", headers=api.auth("support-1"))
            assert got.status_code == 200, got.text
            assert got.json()["id"] == order_id
            assert got.json()["status"] == "received"
        finally:
            await handle.terminate()
