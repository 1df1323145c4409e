"""End to end through the HTTP API, on a real Temporal dev server and real databases."""

from __future__ import annotations

from decimal import Decimal

from domain.status import OrderStatus
from tests.api.conftest import Api
from tests.api.flows import carrier, create, get, wait_status
from tests.factories import big_order, order_payload

S = OrderStatus


async def test_big_order_approved_shipped_delivered_completed(api: Api) -> None:
    order = await create(api, big_order())
    assert order["status"] == "received"
    assert Decimal(order["total"]) == Decimal("6000.00")
    waiting = await wait_status(api, order["id"], S.AWAITING_APPROVAL)
    assert waiting["allowed_actions"] == ["approve", "reject", "request_changes", "cancel"]

    approved = await api.http.post(
        f"/orders/{order['id']}/approve", json={"comment": "ok by me"}, headers=api.auth("lead-1")
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["approval"]["decided_by"] == "lead-1"

    fulfilling = await wait_status(api, order["id"], S.FULFILLING)
    assert fulfilling["shipment"]["tracking_number"].startswith("SXGB")
    assert Decimal(fulfilling["payment"]["captured"]) == Decimal("6000.00")
    await carrier(api, order["id"], "picked_up", "in_transit", "delivered")
    done = await wait_status(api, order["id"], S.COMPLETED)

    assert await api.stack.gateway.totals(order["id"]) == {"capture": 600000, "refund": 0}
    timeline = (
        await api.http.get(f"/orders/{order['id']}/timeline", headers=api.auth("lead-2"))
    ).json()
    actors = {e["type"]: e["actor"] for e in timeline["events"]}
    assert actors["received"] == "eshop"
    assert actors["approved"] == "lead-1"
    assert actors["shipped"] == "eshop"
    assert [e["type"] for e in timeline["events"]] == [e["type"] for e in done["timeline"]]
    assert [e["seq"] for e in timeline["events"]] == list(range(1, len(timeline["events"]) + 1))
    assert done["allowed_actions"] == []


async def test_cancel_after_capture_refunds_exactly_once(api: Api) -> None:
    order = await create(api, order_payload())
    await wait_status(api, order["id"], S.FULFILLING)
    cancelled = await api.http.post(
        f"/orders/{order['id']}/cancel",
        json={"reason": "changed mind"},
        headers=api.auth("support-1"),
    )
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "cancelled"
    assert body["payment"]["refund_state"] == "full"
    assert body["closure"]["by"] == "support-1"
    again = await api.http.post(
        f"/orders/{order['id']}/cancel", json={"reason": "twice"}, headers=api.auth("support-1")
    )
    assert again.status_code == 409
    assert again.json()["error"]["allowed_actions"] == []
    entries = await api.stack.gateway.entries(order["id"])
    assert [(e.kind, e.amount_minor) for e in entries] == [("capture", 3998), ("refund", 3998)]
    assert [r.state for r in await api.stack.inventory.reservations(order["id"])] == ["released"]


async def test_reject_closes_order_and_records_reason(api: Api) -> None:
    order = await create(api, big_order())
    await wait_status(api, order["id"], S.AWAITING_APPROVAL)
    missing_reason = await api.http.post(
        f"/orders/{order['id']}/reject", json={}, headers=api.auth("lead-1")
    )
    assert missing_reason.status_code == 422
    assert missing_reason.json()["error"]["fields"][0]["field"] == "reason"
    rejected = await api.http.post(
        f"/orders/{order['id']}/reject",
        json={"reason": "margin too thin"},
        headers=api.auth("lead-1"),
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    final = await get(api, order["id"])
    assert final["closure"] == {
        "reason": "margin too thin",
        "by": "lead-1",
        "at": final["closure"]["at"],
    }
    assert await api.stack.gateway.entries(order["id"]) == []


async def test_declined_card_fails_order(api: Api) -> None:
    order = await create(api, order_payload(payment={"type": "card", "token": "tok_decline"}))
    failed = await wait_status(api, order["id"], S.FAILED)
    assert "declined" in failed["closure"]["reason"]
    assert [e["type"] for e in failed["timeline"]][-3:] == [
        "payment_declined",
        "stock_released",
        "failed",
    ]
    assert await api.stack.gateway.totals(order["id"]) == {"capture": 0, "refund": 0}


async def test_prepay_paid_through_api_ships(api: Api) -> None:
    order = await create(api, order_payload(payment={"type": "bank_transfer"}))
    await wait_status(api, order["id"], S.AWAITING_PAYMENT)
    wrong = await api.http.post(
        f"/orders/{order['id']}/payments",
        json={"amount": "1.00", "token": "tr_123"},
        headers=api.auth("eshop"),
    )
    assert wrong.status_code == 422
    assert wrong.json()["error"]["fields"][0]["field"] == "amount"
    paid = await api.http.post(
        f"/orders/{order['id']}/payments",
        json={"amount": "39.98", "token": "tr_123"},
        headers=api.auth("eshop"),
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] in ("paid", "fulfilling")
    assert await api.stack.gateway.totals(order["id"]) == {"capture": 3998, "refund": 0}
