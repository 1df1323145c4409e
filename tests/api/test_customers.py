"""The customer master through the HTTP API: CRUD, bulk upsert, orders taking tier, region and
credit limit from it, and PII erasure."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, String, select
from temporalio.service import RPCError, RPCStatusCode

from db.models import Base
from db.session import SessionFactory
from db.vault import ERASED
from domain.status import OrderStatus
from tests.api.conftest import Api
from tests.api.flows import carrier, create, get, wait_status
from tests.factories import big_order, order_payload
from tests.helpers import eventually

S = OrderStatus


def cid() -> str:
    return f"C-{uuid.uuid4().hex[:8]}"


def customer(customer_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": customer_id,
        "name": "Grace Hopper",
        "email": "grace@navy.example",
        "region": "US-EAST",
        **extra,
    }


async def post_customer(api: Api, body: dict[str, Any], who: str = "support-1") -> dict[str, Any]:
    response = await api.http.post("/customers", json=body, headers=api.auth(who))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def changes(api: Api, customer_id: str) -> list[dict[str, Any]]:
    response = await api.http.get(f"/customers/{customer_id}/changes", headers=api.auth("root"))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def text_dump(sessions: SessionFactory) -> str:
    """Every text and JSON column of every table, as one text."""
    parts: list[str] = []
    async with sessions() as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | JSON)]
            if not columns:
                continue
            for row in await session.execute(select(*columns)):
                parts.extend(json.dumps(v) if isinstance(v, dict | list) else str(v) for v in row)
    return "\n".join(parts)


# --- CRUD ----------------------------------------------------------------------------------------


async def test_support_creates_reads_lists_and_patches_customers(api: Api) -> None:
    a, b = "C-A-" + uuid.uuid4().hex[:6], "C-B-" + uuid.uuid4().hex[:6]
    made = await post_customer(api, customer(a, tags=["wholesale"], credit_limit="2500.50"))
    assert made | {"created_at": None, "updated_at": None} == {
        "id": a,
        "name": "Grace Hopper",
        "email": "grace@navy.example",
        "phone": None,
        "region": "US-EAST",
        "tier": "standard",
        "credit_limit": "2500.50",
        "tags": ["wholesale"],
        "language": "en",
        "suggested_tier": None,
        "erased_at": None,
        "created_at": None,
        "updated_at": None,
    }
    await post_customer(api, customer(b, region="EU-WEST", tier="vip"), who="root")
    got = await api.http.get(f"/customers/{a}", headers=api.auth("support-1"))
    assert got.status_code == 200
    assert got.json()["email"] == "grace@navy.example"

    async def ids(**params: Any) -> list[str]:
        response = await api.http.get("/customers", params=params, headers=api.auth("support-1"))
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["items"]]

    assert await ids(region="US-EAST") == [a]
    assert await ids(tier="vip") == [b]
    assert await ids(tag="wholesale") == [a]
    assert await ids(tag="retail") == []
    page = await api.http.get("/customers", params={"limit": 1}, headers=api.auth("support-1"))
    nxt = await api.http.get(
        "/customers",
        params={"limit": 1, "cursor": page.json()["next_cursor"]},
        headers=api.auth("support-1"),
    )
    assert [c["id"] for c in page.json()["items"] + nxt.json()["items"]] == [a, b]
    assert nxt.json()["next_cursor"] is None

    patched = await api.http.patch(
        f"/customers/{a}",
        json={
            "tier": "vip",
            "email": "g.hopper@navy.example",
            "credit_limit": None,
            "language": "zh-CN",
        },
        headers=api.auth("support-1"),
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["tier"], body["email"], body["credit_limit"], body["language"]) == (
        "vip",
        "g.hopper@navy.example",
        None,
        "zh-CN",
    )
    log = await changes(api, a)
    assert [(c["change"], c["actor"]) for c in log] == [
        ("created", "support-1"),
        ("updated", "support-1"),
        ("tier_changed", "support-1"),
    ]
    assert log[1]["detail"] == {
        "fields": ["email", "credit_limit", "language"],
        "credit_limit": {"from": "2500.5000", "to": None},
        "language": {"from": "en", "to": "zh-CN"},
    }
    assert log[2]["detail"] == {"from": "standard", "to": "vip", "suggestion_applied": False}
    assert "navy" not in json.dumps(log)  # no PII in the change log
    dump = await text_dump(api.stack.sessions)
    assert "Grace Hopper" not in dump
    assert "navy.example" not in dump


async def test_bad_customer_input_and_refusals(api: Api) -> None:
    c = cid()
    bad_tier = await api.http.post(
        "/customers", json=customer(c, tier="gold"), headers=api.auth("support-1")
    )
    assert bad_tier.status_code == 422
    assert [f["field"] for f in bad_tier.json()["error"]["fields"]] == ["tier"]
    await post_customer(api, customer(c))
    again = await api.http.post("/customers", json=customer(c), headers=api.auth("support-1"))
    assert again.status_code == 409
    assert "exists" in again.json()["error"]["message"]
    bad_patch = await api.http.patch(
        f"/customers/{c}", json={"tier": "platinum"}, headers=api.auth("support-1")
    )
    assert bad_patch.status_code == 422
    assert bad_patch.json()["error"]["fields"][0]["field"] == "tier"
    bad_language = await api.http.patch(
        f"/customers/{c}", json={"language": "fr"}, headers=api.auth("support-1")
    )
    assert bad_language.status_code == 422
    assert bad_language.json()["error"]["fields"][0]["field"] == "language"
    for method, path in [
        ("GET", "/customers/C-NOPE"),
        ("PATCH", "/customers/C-NOPE"),
        ("DELETE", "/customers/C-NOPE/pii"),
        ("GET", "/customers/C-NOPE/changes"),
    ]:
        body = {"region": "X"} if method == "PATCH" else None
        response = await api.http.request(method, path, json=body, headers=api.auth("root"))
        assert response.status_code == 404, (method, path, response.text)
    # Systems only upsert in bulk; approvers see no customer data.
    assert (await api.http.get(f"/customers/{c}", headers=api.auth("eshop"))).status_code == 403
    refused = await api.http.post("/customers", json=customer(cid()), headers=api.auth("eshop"))
    assert refused.status_code == 403
    assert (await api.http.get("/customers", headers=api.auth("lead-1"))).status_code == 403
    bulk = await api.http.post(
        "/customers/bulk", json={"items": [customer(cid())]}, headers=api.auth("support-1")
    )
    assert bulk.status_code == 403


async def test_bulk_upsert_answers_per_row_and_keeps_the_valid_ones(api: Api) -> None:
    known, vip = cid(), cid()
    await post_customer(api, customer(known, tags=["a"]))
    await post_customer(api, customer(vip, tier="vip"))
    new1, new2 = cid(), cid()
    rows: list[Any] = [
        customer(new1, tags=["erp"]),
        customer(known, region="EU-NORTH"),  # updated
        customer(new2, tier="gold"),  # invalid: unknown tier
        customer(new1),  # invalid: twice in one call
        "not an object",
        customer(cid(), tier="vip"),  # a system may not grant VIP
        customer(vip, tier="vip"),  # ... but may state the tier the master has
        customer(cid(), email="nope"),
    ]
    response = await api.http.post(
        "/customers/bulk", json={"items": rows}, headers=api.auth("eshop")
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["created"], result["updated"], result["unchanged"], result["invalid"]) == (
        1,
        1,
        1,
        5,
    )
    outcome = {
        r["index"]: (r["result"], [f["field"] for f in r["fields"]]) for r in result["items"]
    }
    assert outcome == {
        0: ("created", []),
        1: ("updated", []),
        2: ("invalid", ["tier"]),
        3: ("invalid", ["id"]),
        4: ("invalid", ["row"]),
        5: ("invalid", ["tier"]),
        6: ("unchanged", []),
        7: ("invalid", ["email"]),
    }
    assert (await get_customer(api, known))["region"] == "EU-NORTH"
    assert (await get_customer(api, known))["tags"] == ["a"]  # not named in the row: kept
    assert (await get_customer(api, new1))["tags"] == ["erp"]
    missing = await api.http.get(f"/customers/{new2}", headers=api.auth("root"))
    assert missing.status_code == 404
    by_bulk = await changes(api, new1)
    assert [(c["change"], c["actor"], c["detail"]["source"]) for c in by_bulk] == [
        ("created", "eshop", "bulk")
    ]
    too_many = await api.http.post(
        "/customers/bulk",
        json={"items": [customer(f"C-{i}") for i in range(1001)]},
        headers=api.auth("eshop"),
    )
    assert too_many.status_code == 422
    assert too_many.json()["error"]["fields"][0]["field"] == "items"


async def get_customer(api: Api, customer_id: str) -> dict[str, Any]:
    response = await api.http.get(f"/customers/{customer_id}", headers=api.auth("support-1"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- orders take tier, region and credit limit from the master --------------------------------


async def test_a_system_stating_vip_for_a_standard_customer_gets_the_standard_chain(
    api: Api,
) -> None:
    c = cid()
    await post_customer(api, customer(c, region="EU-WEST", email="ada@example.com"))
    # 6,000 EUR: a VIP (relief below 50,000) would need no approval, a standard customer level 1.
    order = await create(api, big_order(customer_id=c, tier="vip"), who="eshop")
    assert order["customer"]["tier"] == "standard"
    waiting = await wait_status(api, order["id"], S.AWAITING_APPROVAL)
    assert [lv["level"] for lv in waiting["approval"]["levels"]] == [1]
    received = waiting["timeline"][0]
    assert received["type"] == "received"
    assert received["data"]["spec"]["customer"]["tier"] == "standard"
    listed = await api.http.get("/orders", params={"customer_id": c}, headers=api.auth("root"))
    assert [o["customer_tier"] for o in listed.json()["items"]] == ["standard"]
    assert [e["change"] for e in await changes(api, c)] == ["created"]  # the order changed nothing


async def test_an_unknown_customer_is_created_standard_from_the_order(api: Api) -> None:
    c = cid()
    order = await create(api, big_order(customer_id=c, tier="vip"))
    await wait_status(api, order["id"], S.AWAITING_APPROVAL)
    master = await get_customer(api, c)
    assert (master["tier"], master["region"], master["name"], master["email"]) == (
        "standard",
        "EU-WEST",
        "Ada Lovelace",
        "ada@example.com",
    )
    [created] = await changes(api, c)
    assert (created["change"], created["actor"]) == ("created", "eshop")
    assert created["detail"] == {
        "source": "order",
        "tier": "standard",
        "region": "EU-WEST",
        "stated_tier": "vip",
    }
    # The next order of the same customer finds the record and creates nothing.
    await create(api, order_payload(customer_id=c))
    assert len(await changes(api, c)) == 1


async def test_a_vip_in_the_master_is_vip_whatever_the_body_says(api: Api) -> None:
    c = cid()
    await post_customer(api, customer(c, region="APAC"))
    patched = await api.http.patch(
        f"/customers/{c}", json={"tier": "vip"}, headers=api.auth("support-1")
    )
    assert patched.status_code == 200
    body = big_order(customer_id=c, tier="standard")
    body["customer"]["email"] = "grace@navy.example"  # the master's: it is this customer
    order = await create(api, body)
    assert (order["customer"]["tier"], order["customer"]["region"]) == ("vip", "APAC")
    done = await wait_status(api, order["id"], S.FULFILLING)
    assert done["approval"]["levels"] == []


async def test_the_masters_credit_limit_overrides_the_bureau(api: Api) -> None:
    c = cid()
    await post_customer(api, customer(c, credit_limit="10"))
    body = order_payload(customer_id=c)
    body["customer"]["email"] = "grace@navy.example"
    order = await create(api, body)  # 39.98 > 10: pay first
    waiting = await wait_status(api, order["id"], S.AWAITING_PAYMENT)
    assert waiting["credit"]["outcome"] == "prepay"
    assert Decimal(waiting["credit"]["credit_limit"]) == Decimal(10)
    other = await create(api, order_payload())  # no override: the bureau's 50,000
    checked = await wait_status(api, other["id"], S.FULFILLING)
    assert Decimal(checked["credit"]["credit_limit"]) == Decimal(50000)


async def test_idempotent_create_still_answers_the_same_order(api: Api) -> None:
    c = cid()
    payload = big_order(customer_id=c, tier="vip")
    first = await create(api, payload, **{"Idempotency-Key": "k-" + c})
    await wait_status(api, first["id"], S.AWAITING_APPROVAL)
    # The master changes between the tries: the retry still gets the order it created.
    await api.http.patch(f"/customers/{c}", json={"tier": "vip"}, headers=api.auth("root"))
    again = await api.http.post(
        "/orders", json=payload, headers={**api.auth("eshop"), "Idempotency-Key": "k-" + c}
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first["id"]
    assert again.json()["customer"]["tier"] == "standard"  # as it started


# --- erasure -------------------------------------------------------------------------------------

NAME, EMAIL, STREET = "Hedy Lamarr", "hedy@frequency.example", "7 Spread Spectrum Lane"


def hedy(customer_id: str) -> dict[str, Any]:
    payload = order_payload(customer_id=customer_id)
    payload["customer"] |= {"name": NAME, "email": EMAIL}
    payload["shipping_address"] |= {"name": NAME, "line1": STREET}
    return payload


async def gone(api: Api, order_id: str) -> bool:
    try:
        await api.stack.client.get_workflow_handle(order_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return True
        raise
    return False


async def test_erasure_shreds_the_pii_and_keeps_the_business_figures(api: Api) -> None:
    c = cid()
    order = await create(api, hedy(c))
    await wait_status(api, order["id"], S.FULFILLING)

    # An open order still needs the address: refused, naming it.
    refused = await api.http.delete(f"/customers/{c}/pii", headers=api.auth("support-1"))
    assert refused.status_code == 409, refused.text
    assert order["id"] in refused.json()["error"]["message"]

    await carrier(api, order["id"], "picked_up", "in_transit", "delivered")
    await wait_status(api, order["id"], S.COMPLETED)
    await eventually(
        lambda: api.http.get("/orders", params={"customer_id": c}, headers=api.auth("root")),
        lambda page: page.json()["items"][0]["status"] == "completed",
        what="the read model closed the order",
    )
    before = await get(api, order["id"])  # a closed order: answered from the read model
    assert (before["customer"]["name"], before["shipping_address"]["line1"]) == (NAME, STREET)
    dump = await text_dump(api.stack.sessions)
    for secret in (NAME, EMAIL, STREET):
        assert secret not in dump, f"{secret} in plain text before erasure"

    erased = await api.http.delete(f"/customers/{c}/pii", headers=api.auth("support-1"))
    assert erased.status_code == 200, erased.text
    result = erased.json()
    assert (result["data_key_shredded"], result["orders_kept"], result["workflows_deleted"]) == (
        True,
        1,
        1,
    )
    # The engine deletes asynchronously (about 30 s on the dev server).
    await eventually(lambda: gone(api, order["id"]), bool, timeout=90, what="workflow deleted")

    after = await get(api, order["id"])
    assert after["customer"]["name"] == ERASED
    assert after["customer"]["email"] == "erased@erased.example"
    assert after["shipping_address"]["line1"] == ERASED
    assert after["shipping_address"]["name"] == ERASED
    for same in ("status", "total", "lines", "currency", "payment"):
        assert after[same] == before[same], same
    assert after["customer"]["tier"] == before["customer"]["tier"]
    assert [e["type"] for e in after["timeline"]] == [e["type"] for e in before["timeline"]]
    assert after["timeline"][0]["data"]["spec"]["customer"]["name"] == ERASED
    master = await get_customer(api, c)
    assert (master["name"], master["email"], master["phone"]) == (
        ERASED,
        "erased@erased.example",
        None,
    )
    assert master["erased_at"] is not None
    listed = await api.http.get("/orders", params={"customer_id": c}, headers=api.auth("root"))
    assert [(o["id"], Decimal(o["total"])) for o in listed.json()["items"]] == [
        (order["id"], Decimal(before["total"]))
    ]
    dump = await text_dump(api.stack.sessions)
    for secret in (NAME, EMAIL, STREET):
        assert secret not in dump, secret
    log = await changes(api, c)
    assert log[-1]["change"] == "pii_erased"
    assert log[-1]["detail"] == {"data_key_shredded": True, "orders_kept": 1}

    # Idempotent: erasing again answers 200 with nothing left to do.
    twice = await api.http.delete(f"/customers/{c}/pii", headers=api.auth("root"))
    assert twice.status_code == 200, twice.text
    assert (twice.json()["data_key_shredded"], twice.json()["workflows_deleted"]) == (False, 0)
    # Erased data is not stored again.
    repatch = await api.http.patch(
        f"/customers/{c}", json={"name": NAME}, headers=api.auth("support-1")
    )
    assert repatch.status_code == 409
    assert "erased" in repatch.json()["error"]["message"]
    reimport = await api.http.post(
        "/customers/bulk", json={"items": [customer(c)]}, headers=api.auth("eshop")
    )
    assert reimport.json()["items"][0]["result"] == "invalid"
    still = await api.http.patch(
        f"/customers/{c}", json={"region": "EU-SOUTH"}, headers=api.auth("support-1")
    )
    assert still.status_code == 200  # non-personal fields stay editable


async def test_naming_a_known_customer_with_another_email_is_refused(api: Api) -> None:
    """A guessed id of a VIP must not buy its approval relief or credit limit."""
    c = cid()
    await post_customer(api, customer(c, tier="vip", credit_limit="1000000"))
    impostor = big_order(customer_id=c)  # ada@example.com, not the master's grace@navy.example
    refused = await api.http.post("/orders", json=impostor, headers=api.auth("eshop"))
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "customer_mismatch"
    assert error["message"].startswith(f"customer.email: customer {c} is on record with another")
    listed = await api.http.get("/orders", params={"customer_id": c}, headers=api.auth("root"))
    assert listed.json()["items"] == []
    impostor["customer"]["email"] = "GRACE@navy.example"  # the same address, other case
    order = await create(api, impostor)
    assert order["customer"]["tier"] == "vip"
