"""Multi-level approval end to end: HTTP API, real dev server, real databases."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from domain.status import OrderStatus
from tests.api.conftest import Api, open_api
from tests.api.flows import carrier, create, get, wait_status
from tests.conftest import Stack
from tests.factories import order_payload
from tests.helpers import eventually
from worker import build_worker

S = OrderStatus


def _order(total_eur: int, **kwargs: Any) -> dict[str, Any]:
    """An order of ``total_eur`` (100 units) for a customer with room on their credit."""
    price = f"{Decimal(total_eur) / 100:.2f}"
    return order_payload(
        lines=[{"sku": "WIDGET-1", "quantity": 100, "unit_price": price}], **kwargs
    )


async def _roomy(api: Api, payload: dict[str, Any]) -> dict[str, Any]:
    await api.stack.bureau.set_profile(
        payload["customer"]["id"], score=900, credit_limit=Decimal(10_000_000)
    )
    return payload


async def _decide(
    api: Api, order_id: str, who: str, action: str = "approve", **body: Any
) -> httpx.Response:
    if action in ("reject", "request-changes"):
        body.setdefault("reason", f"{who} says no")
    return await api.http.post(f"/orders/{order_id}/{action}", json=body, headers=api.auth(who))


async def _waiting_level(api: Api, order_id: str, level: int) -> dict[str, Any]:
    return await eventually(
        lambda: get(api, order_id),
        lambda o: o["status"] == "awaiting_approval" and o["approval"]["current_level"] == level,
        what=f"{order_id} waiting at level {level}",
    )


async def test_three_levels_by_three_approvers_then_completed(api: Api) -> None:
    order = await create(api, await _roomy(api, _order(120_000)))
    waiting = await _waiting_level(api, order["id"], 1)
    assert [lv["level"] for lv in waiting["approval"]["levels"]] == [1, 2, 3]
    assert waiting["approval"]["policy_version"] == "2026-11-25.1"
    assert waiting["approval"]["next_deadline_kind"] == "reminder"

    for who, level in (("lead-1", 1), ("manager-1", 2), ("finance-1", 3)):
        await _waiting_level(api, order["id"], level)
        response = await _decide(api, order["id"], who, comment=f"ok from {who}")
        assert response.status_code == 200, response.text

    confirmed = await wait_status(api, order["id"], S.FULFILLING)
    approval = confirmed["approval"]
    assert approval["decision"] == "approved"
    assert [(lv["status"], lv["approvals"][0]["by"]) for lv in approval["levels"]] == [
        ("approved", "lead-1"),
        ("approved", "manager-1"),
        ("approved", "finance-1"),
    ]
    await carrier(api, order["id"], "picked_up", "delivered")
    done = await wait_status(api, order["id"], S.COMPLETED)
    approvals = [
        (e["actor"], e["data"]["level"]) for e in done["timeline"] if e["type"] == "approved"
    ]
    assert approvals == [("lead-1", 1), ("manager-1", 2), ("finance-1", 3)]

    late = await _decide(api, order["id"], "lead-2")
    assert late.status_code == 409
    assert late.json()["error"]["allowed_actions"] == []


async def test_rejection_at_level_two_releases_stock_and_charges_nothing(api: Api) -> None:
    order = await create(api, await _roomy(api, _order(30_000)))
    await _waiting_level(api, order["id"], 1)
    assert (await _decide(api, order["id"], "lead-1")).status_code == 200
    await _waiting_level(api, order["id"], 2)
    rejected = await _decide(api, order["id"], "manager-1", "reject", reason="margin")
    assert rejected.status_code == 200, rejected.text
    body = rejected.json()
    assert body["status"] == "rejected"
    assert body["closure"]["by"] == "manager-1"
    assert body["approval"]["levels"][1]["status"] == "rejected"
    assert [r.state for r in await api.stack.inventory.reservations(order["id"])] == ["released"]
    assert await api.stack.gateway.entries(order["id"]) == []


async def test_who_may_not_decide_is_refused_and_nothing_changes(api: Api) -> None:
    order = await create(api, await _roomy(api, _order(30_000)))
    await _waiting_level(api, order["id"], 1)

    own = await _decide(api, order["id"], "rep-jane")  # the order's sales rep
    assert own.status_code == 403
    assert "may not approve" in own.json()["error"]["message"]
    wrong_level = await _decide(api, order["id"], "finance-1")
    assert wrong_level.status_code == 403
    out_of_order = await _decide(api, order["id"], "boss", level=2)
    assert out_of_order.status_code == 409
    assert out_of_order.json()["error"]["allowed_actions"] == [
        "approve",
        "reject",
        "request_changes",
        "cancel",
    ]
    not_approver = await _decide(api, order["id"], "eshop")
    assert not_approver.status_code == 403

    assert (await _decide(api, order["id"], "boss")).status_code == 200
    await _waiting_level(api, order["id"], 2)
    second_level = await _decide(api, order["id"], "boss")
    assert second_level.status_code == 403
    assert "another level" in second_level.json()["error"]["message"]

    still = await _waiting_level(api, order["id"], 2)
    assert still["approval"]["levels"][1]["approvals"] == []
    history = await api.stack.client.get_workflow_handle(order["id"]).fetch_history()
    accepted = [
        e
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert len(accepted) == 1  # only boss's level-1 approval entered the history


async def test_request_changes_amend_and_approve_again(api: Api) -> None:
    payload = await _roomy(api, _order(30_000))
    order = await create(api, payload)
    await _waiting_level(api, order["id"], 1)
    assert (await _decide(api, order["id"], "lead-1")).status_code == 200
    await _waiting_level(api, order["id"], 2)

    sent_back = await _decide(api, order["id"], "manager-1", "request-changes", reason="too big")
    assert sent_back.status_code == 200, sent_back.text
    assert sent_back.json()["status"] == "changes_requested"
    assert sent_back.json()["allowed_actions"] == ["amend", "cancel"]
    approve_now = await _decide(api, order["id"], "manager-1")
    assert approve_now.status_code == 409

    by_approver = await api.http.post(
        f"/orders/{order['id']}/amend", json={"lines": []}, headers=api.auth("manager-1")
    )
    assert by_approver.status_code == 403
    empty = await api.http.post(f"/orders/{order['id']}/amend", json={}, headers=api.auth("eshop"))
    assert empty.status_code == 422
    grown = [{"sku": "WIDGET-1", "quantity": 100, "unit_price": "400.00"}]  # 40,000: grew
    amended = await api.http.post(
        f"/orders/{order['id']}/amend", json={"lines": grown}, headers=api.auth("eshop")
    )
    assert amended.status_code == 200, amended.text
    body = amended.json()
    assert Decimal(body["total"]) == Decimal("40000.00")
    assert body["status"] == "awaiting_approval"
    # The total grew: earlier decisions are void, credit is checked again, level 1 decides anew.
    assert body["approval"]["current_level"] == 1
    assert [lv["approvals"] for lv in body["approval"]["levels"]] == [[], []]
    types = [e["type"] for e in body["timeline"]]
    assert types[types.index("amended") :].count("credit_check_started") == 1

    assert (await _decide(api, order["id"], "lead-1")).status_code == 200
    await _waiting_level(api, order["id"], 2)
    assert (await _decide(api, order["id"], "manager-1")).status_code == 200
    await wait_status(api, order["id"], S.FULFILLING)
    reservations = await api.stack.inventory.reservations(order["id"])
    assert [(r.revision, r.state) for r in reservations] == [(0, "released"), (1, "reserved")]


async def test_smaller_amendment_keeps_standing_decisions(api: Api) -> None:
    order = await create(api, await _roomy(api, _order(30_000)))
    await _waiting_level(api, order["id"], 1)
    assert (await _decide(api, order["id"], "lead-1")).status_code == 200
    await _waiting_level(api, order["id"], 2)
    await _decide(api, order["id"], "manager-1", "request-changes")
    smaller = [{"sku": "WIDGET-1", "quantity": 100, "unit_price": "250.00"}]  # 25,000
    amended = await api.http.post(
        f"/orders/{order['id']}/amend", json={"lines": smaller}, headers=api.auth("support-1")
    )
    assert amended.status_code == 200, amended.text
    levels = amended.json()["approval"]["levels"]
    assert [(lv["level"], lv["status"]) for lv in levels] == [(1, "approved"), (2, "waiting")]


async def test_inbox_lists_exactly_what_each_approver_may_decide(api: Api) -> None:
    small = await create(api, await _roomy(api, _order(6_000)))  # level 1
    mid = await create(api, await _roomy(api, _order(30_000)))  # levels 1, 2
    by_lead2 = await create(api, await _roomy(api, _order(7_000, sales_rep="lead-2")))
    vip_order = await _roomy(api, _order(8_000))
    made = await api.http.post(  # VIP relief comes from the customer master, never the body
        "/customers", json={**vip_order["customer"], "tier": "vip"}, headers=api.auth("support-1")
    )
    assert made.status_code == 201, made.text
    vip = await create(api, vip_order)  # relief: none
    for o in (small, mid, by_lead2):
        await _waiting_level(api, o["id"], 1)
    assert (await get(api, vip["id"]))["approval"]["levels"] == []
    assert (await _decide(api, mid["id"], "lead-1")).status_code == 200
    await _waiting_level(api, mid["id"], 2)

    async def inbox(who: str, **params: Any) -> list[str]:
        response = await api.http.get("/approvals/inbox", params=params, headers=api.auth(who))
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert [i["waiting_since"] for i in items] == sorted(i["waiting_since"] for i in items)
        return [i["order_id"] for i in items]

    expected = {
        "lead-1": [small["id"], by_lead2["id"]],
        "lead-2": [small["id"]],  # not the order they sell
        "manager-1": [mid["id"]],
        "finance-1": [],
        "rep-jane": [by_lead2["id"]],  # sells the others
    }
    # Orders wait in the order their workflows reached the level (inbox() checks it is oldest
    # first), which need not be the order they were created in.
    for who, ids in expected.items():
        await eventually(
            lambda who=who: inbox(who),
            lambda got, ids=ids: sorted(got) == sorted(ids),
            what=f"inbox of {who}",
        )
    assert await inbox("boss", level=2) == [mid["id"]]
    first_level = await inbox("boss", level=1)
    assert sorted(first_level) == sorted([small["id"], by_lead2["id"]])
    assert await inbox("boss", tier="vip") == []
    page = (
        await api.http.get("/approvals/inbox", params={"limit": 1}, headers=api.auth("lead-1"))
    ).json()
    assert page["items"][0]["level_name"] == "team_lead"
    assert page["items"][0]["next_deadline_kind"] == "reminder"
    nxt = await api.http.get(
        "/approvals/inbox",
        params={"limit": 1, "cursor": page["next_cursor"]},
        headers=api.auth("lead-1"),
    )
    assert [page["items"][0]["order_id"]] + [i["order_id"] for i in nxt.json()["items"]] == (
        first_level
    )
    assert (await api.http.get("/approvals/inbox", headers=api.auth("eshop"))).status_code == 403


async def test_worker_restart_while_waiting_at_level_two(bare_stack: Stack) -> None:
    stack = bare_stack
    async with open_api(stack) as api:
        async with build_worker(stack.client, stack.settings, stack.sessions):
            order = await create(api, await _roomy(api, _order(30_000)))
            await _waiting_level(api, order["id"], 1)
            assert (await _decide(api, order["id"], "lead-1")).status_code == 200
            await _waiting_level(api, order["id"], 2)
        # No worker now: the order waits durably; a new worker picks it up from history.
        async with build_worker(stack.client, stack.settings, stack.sessions):
            response = await _decide(api, order["id"], "manager-1")
            assert response.status_code == 200, response.text
            await wait_status(api, order["id"], S.FULFILLING)
            await carrier(api, order["id"], "picked_up", "delivered")
            done = await wait_status(api, order["id"], S.COMPLETED)
    assert await stack.gateway.totals(order["id"]) == {"capture": 3_000_000, "refund": 0}
    assert [e["seq"] for e in done["timeline"]] == list(range(1, len(done["timeline"]) + 1))


async def test_retried_command_with_same_key_applies_once(api: Api) -> None:
    order = await create(api, await _roomy(api, _order(30_000)))
    await _waiting_level(api, order["id"], 1)
    headers = {**api.auth("lead-1"), "Idempotency-Key": "approve-once"}
    url = f"/orders/{order['id']}/approve"
    first = await api.http.post(url, json={"comment": "ok"}, headers=headers)
    again = await api.http.post(url, json={"comment": "ok"}, headers=headers)
    assert (first.status_code, again.status_code) == (200, 200), again.text
    body = await _waiting_level(api, order["id"], 2)
    assert [e["type"] for e in body["timeline"]].count("approved") == 1
    other_key = await api.http.post(
        url, json={}, headers={**api.auth("lead-1"), "Idempotency-Key": "x"}
    )
    assert other_key.status_code == 403  # a new command: level 2 waits now, not theirs
