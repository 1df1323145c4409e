"""Order core v1 through the API: split shipments, refused compensations, decisions that race,
scans that mean the parcel left, and payment tokens never shown."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from db.models import OrderEventRow
from domain.status import OrderStatus
from tests.api.conftest import Api, open_api
from tests.api.flows import create, get, wait_status
from tests.conftest import Stack
from tests.factories import big_order, order_payload
from worker import build_worker

S = OrderStatus
TWO_LINES = [
    {"sku": "WIDGET-1", "quantity": 3, "unit_price": "10.00"},
    {"sku": "GADGET-2", "quantity": 1, "unit_price": "20.00"},
]


async def _post(api: Api, path: str, body: dict[str, Any], who: str) -> Any:
    return await api.http.post(path, json=body, headers=api.auth(who))


async def _scan(api: Api, order_id: str, event: str, tracking: str | None = None) -> Any:
    body = {"event": event} | ({"tracking_number": tracking} if tracking else {})
    return await _post(api, f"/orders/{order_id}/shipment-events", body, "eshop")


async def test_split_shipment_books_tracks_and_delivers_each_parcel(api: Api) -> None:
    order = await create(api, order_payload(lines=TWO_LINES))
    await wait_status(api, order["id"], S.FULFILLING)
    url = f"/orders/{order['id']}/split-shipment"

    wrong = await _post(api, url, {"parcels": [[{"sku": "WIDGET-1", "quantity": 3}]]}, "eshop")
    assert wrong.status_code == 422
    assert wrong.json()["error"]["fields"][0]["field"] == "parcels"
    short = {
        "parcels": [[{"sku": "WIDGET-1", "quantity": 2}], [{"sku": "GADGET-2", "quantity": 1}]]
    }
    refused = await _post(api, url, short, "eshop")
    assert refused.status_code == 422
    assert "WIDGET-1" in refused.json()["error"]["message"]

    parcels = {
        "parcels": [
            [{"sku": "WIDGET-1", "quantity": 2}],
            [{"sku": "WIDGET-1", "quantity": 1}, {"sku": "GADGET-2", "quantity": 1}],
        ]
    }
    split = await _post(api, url, parcels, "support-1")
    assert split.status_code == 200, split.text
    body = split.json()
    assert [(p["parcel"], p["status"]) for p in body["parcels"]] == [
        (1, "cancelled"),
        (2, "booked"),
        (3, "booked"),
    ]
    bookings = await api.stack.carrier.bookings(order["id"])
    assert [(b.parcel, b.status, b.units) for b in bookings] == [
        (1, "cancelled", 4),
        (2, "booked", 2),
        (3, "booked", 2),
    ]
    second, third = (p["tracking_number"] for p in body["parcels"][1:])

    ambiguous = await _scan(api, order["id"], "picked_up")
    assert ambiguous.status_code == 422
    assert ambiguous.json()["error"]["fields"][0]["field"] == "tracking_number"
    assert (await _scan(api, order["id"], "picked_up", second)).status_code == 202
    shipped = await wait_status(api, order["id"], S.SHIPPED)
    assert "split_shipment" not in shipped["allowed_actions"]
    again = await _post(api, url, parcels, "support-1")
    assert again.status_code == 409
    assert (await _scan(api, order["id"], "delivered", second)).status_code == 202
    assert (await _scan(api, order["id"], "picked_up", third)).status_code == 202
    part = await wait_status(api, order["id"], S.SHIPPED)
    assert (await _scan(api, order["id"], "delivered", third)).status_code == 202
    done = await wait_status(api, order["id"], S.COMPLETED)
    assert part["status"] == "shipped"
    assert [p["status"] for p in done["parcels"]] == ["cancelled", "delivered", "delivered"]
    types = [e["type"] for e in done["timeline"]]
    assert types.count("shipment_booked") == 3
    assert types.count("delivered") == 1
    assert (
        types.index("shipment_split") < types.index("shipment_cancelled") < types.index("shipped")
    )


async def test_refused_refund_needs_attention_until_support_resolves(api: Api) -> None:
    payload = order_payload(payment={"type": "card", "token": "tok_refund_refused"})
    order = await create(api, payload)
    await wait_status(api, order["id"], S.FULFILLING)
    cancel = await _post(api, f"/orders/{order['id']}/cancel", {"reason": "customer"}, "eshop")
    assert cancel.status_code in (200, 202), cancel.text
    stuck = await wait_status(api, order["id"], S.NEEDS_ATTENTION)
    assert stuck["attention"]["step"] == "refund_payment"
    assert "refused" in stuck["attention"]["reason"]
    assert stuck["allowed_actions"] == ["retry_compensation", "resolve_compensation"]
    assert "compensation_failed" in [e["type"] for e in stuck["timeline"]]
    mail = await api.stack.mailer.sent(order["id"], waiting_for="compensation_failed")
    [alert] = [m for m in mail if m.kind == "compensation_failed"]
    assert alert.recipient == "support@orderly.local"
    # Staff get the console's page of the order, never the customer's tracking link.
    assert f"/console/orders/{order['id']}" in alert.body
    assert "/track/" not in alert.body
    assert "refund_payment" in alert.body

    base = f"/orders/{order['id']}/compensations"
    forbidden = await _post(api, f"{base}/resolve", {"note": "done"}, "eshop")
    assert forbidden.status_code == 403
    retried = await _post(api, f"{base}/retry", {}, "support-1")
    assert retried.status_code == 200, retried.text
    again = await wait_status(api, order["id"], S.NEEDS_ATTENTION)
    assert [e["type"] for e in again["timeline"]].count("compensation_failed") == 2
    resolved = await _post(api, f"{base}/resolve", {"note": "refunded by bank"}, "support-1")
    assert resolved.status_code == 200, resolved.text
    closed = await wait_status(api, order["id"], S.CANCELLED)
    assert closed["closure"]["reason"] == "customer"
    assert closed["attention"] is None
    assert await api.stack.gateway.totals(order["id"]) == {"capture": 3998, "refund": 0}
    listed = await api.http.get("/orders?status=cancelled", headers=api.auth("support-1"))
    assert order["id"] in [o["id"] for o in listed.json()["items"]]


@pytest.mark.parametrize("scan", ["in_transit", "exception"])
async def test_any_scan_after_booking_means_the_parcel_left(api: Api, scan: str) -> None:
    order = await create(api, order_payload())
    await wait_status(api, order["id"], S.FULFILLING)
    assert (await _scan(api, order["id"], scan)).status_code == 202
    shipped = await wait_status(api, order["id"], S.SHIPPED)
    assert "cancel" not in shipped["allowed_actions"]
    cancel = await _post(api, f"/orders/{order['id']}/cancel", {"reason": "late"}, "support-1")
    assert cancel.status_code == 409
    assert cancel.json()["error"]["status"] == "shipped"


@pytest.fixture
async def paused(bare_stack: Stack) -> AsyncIterator[Api]:
    """The API over a stack whose worker the test starts and stops itself."""
    async with open_api(bare_stack) as opened:
        yield opened


async def test_two_decisions_in_one_task_first_wins_other_409(paused: Api) -> None:
    api, stack = paused, paused.stack
    async with build_worker(stack.client, stack.settings, stack.sessions):
        order = await create(api, big_order())
        await wait_status(api, order["id"], S.AWAITING_APPROVAL)
    # No worker now: both decisions wait at the server and reach the next worker together.
    url = f"/orders/{order['id']}"
    approve = asyncio.create_task(_post(api, f"{url}/approve", {}, "lead-1"))
    reject = asyncio.create_task(_post(api, f"{url}/reject", {"reason": "no"}, "lead-2"))
    await asyncio.sleep(1.0)
    async with build_worker(stack.client, stack.settings, stack.sessions):
        answers = await asyncio.gather(approve, reject)
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 409], [a.text for a in answers]
        refused = next(a for a in answers if a.status_code == 409).json()["error"]
        assert refused["code"] == "command_not_allowed"
        body = await get(api, order["id"])
        won = next(a for a in answers if a.status_code == 200).request.url.path
        level = body["approval"]["levels"][0]
        if won.endswith("/approve"):
            assert level["status"] == "approved"
            assert [a["by"] for a in level["approvals"]] == ["lead-1"]
        else:
            assert level["status"] == "rejected"
            assert body["status"] == "rejected"
        types = [e["type"] for e in body["timeline"]]
        assert types.count("approved") + types.count("level_rejected") == 1
        history = await stack.client.get_workflow_handle(order["id"]).fetch_history()
        accepted = [
            e
            for e in history.events
            if e.HasField("workflow_execution_update_accepted_event_attributes")
        ]
        assert len(accepted) == 2  # both passed validation in the same task


async def test_payment_token_is_never_shown_or_logged(api: Api) -> None:
    token = "tok_visa_4242424242"
    order = await create(api, order_payload(payment={"type": "card", "token": token}))
    assert order["payment_method"]["token"] == "****4242"
    done = await wait_status(api, order["id"], S.FULFILLING)
    assert token not in json.dumps(done)
    timeline = await api.http.get(f"/orders/{order['id']}/timeline", headers=api.auth("lead-1"))
    assert token not in timeline.text
    async with api.stack.sessions() as session:
        payloads = (
            await session.scalars(
                select(OrderEventRow.payload).where(OrderEventRow.order_id == order["id"])
            )
        ).all()
    assert payloads
    assert token not in json.dumps(payloads)
    captured = await api.stack.gateway.entries(order["id"])
    assert [e.kind for e in captured] == ["capture"]  # the gateway still got the real token


async def test_order_not_projected_yet_is_served_as_received_when_no_worker_answers(
    paused: Api,
) -> None:
    """No worker has run the order yet and the read model has no row: GET answers from the
    workflow's own input (no second writer of the read model), never 503."""
    order = await create(paused, order_payload())
    got = await paused.http.get(f"/orders/{order['id']}", headers=paused.auth("support-1"))
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["id"], body["status"]) == (order["id"], "received")
    assert [e["type"] for e in body["timeline"]] == ["received"]
    assert body["payment_method"]["token"] == "****"
    listed = await paused.http.get("/orders", headers=paused.auth("support-1"))
    assert order["id"] not in [o["id"] for o in listed.json()["items"]]  # nothing projected
