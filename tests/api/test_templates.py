"""Order templates through the HTTP API: versions, archive, orders from a template priced from
the price list at use time (discount approval, missing prices, validity), idempotency, PII sealed
at rest, and who may do what."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from db.models import OrderTemplateRow, OrderTemplateVersionRow, ProductRow, ProductRuleRow
from domain.status import OrderStatus
from tests.api.conftest import Api
from tests.api.flows import get, wait_status
from tests.factories import order_payload

S = OrderStatus
PII = ("Ada Lovelace", "ada@example.com", "Analytical Row", "N1 9GU", "tok_visa_4242", "gate")
LONG_AGO = "2020-01-01T00:00:00Z"


def cid() -> str:
    return f"C-{uuid.uuid4().hex[:8]}"


def template_body(customer_id: str | None = None, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Weekly restock",
        "customer": {
            "id": customer_id or cid(),
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "region": "EU-WEST",
        },
        "currency": "EUR",
        "lines": [
            {"sku": "WIDGET-1", "quantity": 2},
            {"sku": "GADGET-2", "quantity": 1, "discount_pct": "10"},
        ],
        "shipping_address": {
            "name": "Ada Lovelace",
            "line1": "12 Analytical Row",
            "city": "London",
            "postal_code": "N1 9GU",
            "country": "GB",
        },
        "payment_method": {"type": "card", "token": "tok_visa_4242"},
        "notes": "Code for the gate: 1234\nring twice",
    }
    body.update(changes)
    return body


async def set_price(
    api: Api, sku: str, list_price: str, valid_from: str = LONG_AGO, valid_to: str | None = None
) -> None:
    body = {"currency": "EUR", "list_price": list_price, "valid_from": valid_from}
    response = await api.http.put(
        f"/prices/{sku}", json={**body, "valid_to": valid_to}, headers=api.auth("support-1")
    )
    assert response.status_code in (200, 201), response.text


async def standard_prices(api: Api) -> None:
    await set_price(api, "WIDGET-1", "19.99")
    await set_price(api, "GADGET-2", "100.00")


async def create_template(api: Api, body: dict[str, Any], who: str = "support-1") -> dict[str, Any]:
    response = await api.http.post("/templates", json=body, headers=api.auth(who))
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    assert response.headers["Location"] == f"/templates/{made['id']}"
    return made


async def use(
    api: Api,
    template_id: str,
    body: dict[str, Any] | None = None,
    who: str = "eshop",
    status: int = 201,
    key: str | None = None,
) -> dict[str, Any]:
    headers = {**api.auth(who), **({"Idempotency-Key": key} if key else {})}
    response = await api.http.post(
        f"/orders/from-template/{template_id}", json=body or {}, headers=headers
    )
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def read(api: Api, template_id: str, who: str = "support-1", **params: str) -> Any:
    response = await api.http.get(f"/templates/{template_id}", params=params, headers=api.auth(who))
    assert response.status_code == 200, response.text
    return response.json()


# --- versions and archive --------------------------------------------------------------------


async def test_edits_make_new_versions_and_keep_the_old_ones(api: Api) -> None:
    await standard_prices(api)
    made = await create_template(api, template_body())
    assert (made["version"], made["current_version"]) == (1, 1)
    assert made["payment_method"] == {"type": "card", "token": "****4242"}  # masked
    assert made["notes"] == "Code for the gate: 1234\nring twice"
    assert "unit_price" not in json.dumps(made)
    tid = made["id"]
    first = await use(api, tid)
    assert first["template"] == {"id": tid, "version": 1}

    # PUT replaces the whole content: version 2.
    replaced = template_body(
        made["customer"]["id"], lines=[{"sku": "WIDGET-1", "quantity": 5}], name="Big restock"
    )
    put = await api.http.put(f"/templates/{tid}", json=replaced, headers=api.auth("eshop"))
    assert put.status_code == 200, put.text
    assert (put.json()["version"], put.json()["name"]) == (2, "Big restock")
    # PATCH changes some fields: version 3, the rest kept.
    patch = await api.http.patch(
        f"/templates/{tid}", json={"notes": "", "valid_until": None}, headers=api.auth("support-1")
    )
    assert patch.status_code == 200, patch.text
    v3 = patch.json()
    assert (v3["version"], v3["name"], v3["notes"]) == (3, "Big restock", "")
    assert v3["lines"] == [{"sku": "WIDGET-1", "quantity": 5, "discount_pct": None}]
    assert v3["payment_method"]["token"] == "****4242"  # the real token is still used

    current = await read(api, tid)
    assert (current["version"], current["current_version"]) == (3, 3)
    old = await read(api, tid, version="1")
    assert (old["version"], old["current_version"], old["name"]) == (1, 3, "Weekly restock")
    assert [ln["sku"] for ln in old["lines"]] == ["WIDGET-1", "GADGET-2"]
    assert old["notes"] == "Code for the gate: 1234\nring twice"
    missing = await api.http.get(
        f"/templates/{tid}", params={"version": "4"}, headers=api.auth("support-1")
    )
    assert missing.status_code == 404, missing.text

    # The first order still names version 1; a new one uses version 3.
    assert (await get(api, first["id"]))["template"] == {"id": tid, "version": 1}
    second = await use(api, tid)
    assert second["template"] == {"id": tid, "version": 3}
    assert [(ln["sku"], ln["quantity"]) for ln in second["lines"]] == [("WIDGET-1", 5)]
    await wait_status(api, second["id"], S.FULFILLING)  # a card order runs as any other

    bad = await api.http.patch(
        f"/templates/{tid}",
        json={"lines": [{"sku": "WIDGET-1", "quantity": 0}]},
        headers=api.auth("support-1"),
    )
    assert bad.status_code == 422, bad.text
    assert bad.json()["error"]["fields"][0]["field"] == "lines[0].quantity"
    assert (await read(api, tid))["version"] == 3  # nothing written


async def test_archived_templates_stay_readable_and_cannot_be_used_or_edited(api: Api) -> None:
    await standard_prices(api)
    kept = await create_template(api, template_body(name="Kept"))
    gone = await create_template(api, template_body(name="Gone"))
    archived = await api.http.post(f"/templates/{gone['id']}/archive", headers=api.auth("eshop"))
    assert archived.status_code == 200, archived.text
    assert archived.json()["archived_by"] == "eshop"
    again = await api.http.post(f"/templates/{gone['id']}/archive", headers=api.auth("support-1"))
    assert again.json()["archived_at"] == archived.json()["archived_at"]  # idempotent

    refused = await api.http.post(
        f"/orders/from-template/{gone['id']}", json={}, headers=api.auth("eshop")
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "template_archived"
    edit = await api.http.patch(
        f"/templates/{gone['id']}", json={"name": "Back"}, headers=api.auth("support-1")
    )
    assert edit.status_code == 409, edit.text
    assert (await read(api, gone["id"]))["name"] == "Gone"

    async def names(**params: str) -> list[str]:
        response = await api.http.get("/templates", params=params, headers=api.auth("boss"))
        assert response.status_code == 200, response.text
        return [t["name"] for t in response.json()["items"]]

    assert sorted(await names()) == ["Gone", "Kept"]
    assert await names(archived="false") == ["Kept"]
    assert await names(archived="true") == ["Gone"]
    assert await names(customer_id=kept["customer"]["id"]) == ["Kept"]
    nope = await api.http.post("/orders/from-template/TPL-NOPE", json={}, headers=api.auth("eshop"))
    assert nope.status_code == 404, nope.text


# --- orders from a template ------------------------------------------------------------------


async def test_an_order_is_priced_from_the_list_when_the_template_is_used(api: Api) -> None:
    await standard_prices(api)
    made = await create_template(api, template_body())
    before = await use(api, made["id"])
    assert [(ln["sku"], ln["unit_price"], ln["list_price"]) for ln in before["lines"]] == [
        ("WIDGET-1", "19.99", "19.99"),
        ("GADGET-2", "90.00", "100.00"),  # 10 % off the list price
    ]
    assert before["total"] == "129.98"

    # The price changes after the template was made: end the old row, start a new one.
    now = datetime.now(UTC)
    await set_price(api, "WIDGET-1", "19.99", LONG_AGO, now.isoformat())
    await set_price(api, "WIDGET-1", "24.00", now.isoformat())
    after = await use(
        api,
        made["id"],
        {"quantities": {"WIDGET-1": 3}, "external_reference": "PO-4711"},
        who="support-1",
    )
    assert [(ln["sku"], ln["quantity"], ln["unit_price"]) for ln in after["lines"]] == [
        ("WIDGET-1", 3, "24.00"),
        ("GADGET-2", 1, "90.00"),
    ]
    assert after["total"] == "162.00"
    assert (after["external_reference"], after["created_by"]) == ("PO-4711", "support-1")
    stored = await get(api, after["id"])
    assert stored["template"] == {"id": made["id"], "version": 1}
    assert stored["lines"][0]["unit_price"] == "24.00"
    assert stored["customer"]["name"] == "Ada Lovelace"


async def test_a_discount_over_the_limit_needs_the_sales_manager(api: Api) -> None:
    await standard_prices(api)
    body = template_body(lines=[{"sku": "WIDGET-1", "quantity": 1, "discount_pct": "20"}])
    made = await create_template(api, body)
    order = await use(api, made["id"])
    assert (order["lines"][0]["unit_price"], order["lines"][0]["list_price"]) == ("15.99", "19.99")
    waiting = await wait_status(api, order["id"], S.AWAITING_APPROVAL)
    assert [(lv["level"], lv["name"]) for lv in waiting["approval"]["levels"]] == [
        (2, "sales_manager")
    ]
    # At the limit (15 %) no approval is needed.
    at_limit = template_body(lines=[{"sku": "GADGET-2", "quantity": 1, "discount_pct": "15"}])
    fine = await use(api, (await create_template(api, at_limit))["id"])
    done = await wait_status(api, fine["id"], S.FULFILLING)
    assert done["approval"]["levels"] == []


async def test_a_line_without_a_valid_price_is_named(api: Api) -> None:
    await set_price(api, "WIDGET-1", "19.99")
    await set_price(api, "GADGET-2", "100.00", LONG_AGO, "2021-01-01T00:00:00Z")  # ended
    made = await create_template(api, template_body())
    response = await api.http.post(
        f"/orders/from-template/{made['id']}", json={}, headers=api.auth("eshop")
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["fields"] == [
        {"field": "lines[1].sku", "reason": "no list price in EUR valid now"}
    ]
    # Dropping that line (quantity 0) makes a valid order.
    order = await use(api, made["id"], {"quantities": {"GADGET-2": 0}})
    assert [ln["sku"] for ln in order["lines"]] == ["WIDGET-1"]
    for overrides, field in (
        ({"quantities": {"RARE-9": 1}}, "quantities.RARE-9"),
        ({"quantities": {"WIDGET-1": -1}}, "quantities.WIDGET-1"),
        ({"unit_price": "1.00"}, "unit_price"),
        ({"payment_method": {"type": "card"}}, "payment_method"),
    ):
        refused = await api.http.post(
            f"/orders/from-template/{made['id']}", json=overrides, headers=api.auth("eshop")
        )
        assert refused.status_code == 422, (overrides, refused.text)
        assert any(f["field"].startswith(field) for f in refused.json()["error"]["fields"]), (
            refused.text
        )


async def test_missing_parties_come_from_the_request(api: Api) -> None:
    await standard_prices(api)
    bare = template_body(customer=None, shipping_address=None, payment_method=None, notes="")
    made = await create_template(api, bare, who="eshop")
    refused = await api.http.post(
        f"/orders/from-template/{made['id']}", json={}, headers=api.auth("eshop")
    )
    assert refused.status_code == 422, refused.text
    assert [f["field"] for f in refused.json()["error"]["fields"]] == [
        "customer",
        "shipping_address",
        "payment_method",
    ]
    full = template_body()
    overrides = {k: full[k] for k in ("customer", "shipping_address", "payment_method")}
    order = await use(api, made["id"], overrides)
    assert order["customer"]["id"] == full["customer"]["id"]
    assert order["payment_method"]["type"] == "card"


async def test_templates_outside_their_validity_cannot_be_used(api: Api) -> None:
    await standard_prices(api)
    now = datetime.now(UTC)
    expired = template_body(valid_until=(now - timedelta(seconds=1)).isoformat())
    future = template_body(valid_from=(now + timedelta(days=1)).isoformat())
    for body, words in ((expired, "expired at"), (future, "is valid from")):
        made = await create_template(api, body)
        response = await api.http.post(
            f"/orders/from-template/{made['id']}", json={}, headers=api.auth("eshop")
        )
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "template_not_valid"
        assert words in response.json()["error"]["message"]
    wrong_way = template_body(valid_from="2026-02-01T00:00:00Z", valid_until="2026-01-01T00:00:00Z")
    response = await api.http.post("/templates", json=wrong_way, headers=api.auth("support-1"))
    assert response.status_code == 422, response.text
    assert "valid_until: must be after valid_from" in response.json()["error"]["message"]


async def test_a_retry_with_the_same_key_finds_the_same_order(api: Api) -> None:
    await standard_prices(api)
    made = await create_template(api, template_body())
    key = f"tpl-{uuid.uuid4().hex}"
    first = await use(api, made["id"], {"quantities": {"WIDGET-1": 4}}, key=key)
    # Even after the price changed, the retry is priced as of the first attempt.
    now = datetime.now(UTC).isoformat()
    await set_price(api, "WIDGET-1", "19.99", LONG_AGO, now)
    await set_price(api, "WIDGET-1", "30.00", now)
    again = await use(api, made["id"], {"quantities": {"WIDGET-1": 4}}, status=200, key=key)
    assert (again["id"], again["total"]) == (first["id"], first["total"])
    other = await api.http.post(
        f"/orders/from-template/{made['id']}",
        json={"quantities": {"WIDGET-1": 5}},
        headers={**api.auth("eshop"), "Idempotency-Key": key},
    )
    assert other.status_code == 409, other.text
    assert other.json()["error"]["code"] == "idempotency_conflict"


# --- PII at rest and access ------------------------------------------------------------------


async def test_template_pii_is_sealed_in_the_database(api: Api) -> None:
    with_customer = await create_template(api, template_body())
    without = await create_template(
        api,
        template_body(
            customer=None, shipping_address={**template_body()["shipping_address"]}, name="Anon"
        ),
    )
    await api.http.patch(
        f"/templates/{with_customer['id']}",
        json={"notes": "gate code again"},
        headers=api.auth("support-1"),
    )
    async with api.stack.sessions() as session:
        templates = list(await session.execute(select(OrderTemplateRow.__table__)))
        versions = list(await session.execute(select(OrderTemplateVersionRow.__table__)))
    raw = json.dumps([list(r) for r in templates + versions], default=str)
    assert len(versions) == 3
    for secret in PII:
        assert secret not in raw, secret
    assert "pii1:" in raw  # the token and notes are sealed values
    owners = {r.template_id: r.owner for r in versions}
    assert owners == {
        with_customer["id"]: with_customer["customer"]["id"],
        without["id"]: f"template:{without['id']}",
    }
    # ... and read back through the API.
    shown = await read(api, without["id"], who="boss")
    assert shown["shipping_address"]["line1"] == "12 Analytical Row"
    assert (await read(api, with_customer["id"]))["notes"] == "gate code again"


async def test_who_may_do_what_with_templates(api: Api) -> None:
    await standard_prices(api)
    body = template_body()
    for who, status in (("boss", 403), ("eshop", 201), ("support-1", 201), ("root", 201)):
        response = await api.http.post("/templates", json=body, headers=api.auth(who))
        assert response.status_code == status, (who, response.text)
    tid = response.json()["id"]
    for who in ("boss", "eshop", "support-1", "root"):  # approvers may read
        assert (await api.http.get(f"/templates/{tid}", headers=api.auth(who))).status_code == 200
        assert (await api.http.get("/templates", headers=api.auth(who))).status_code == 200
    for method, path in (
        ("PATCH", f"/templates/{tid}"),
        ("POST", f"/templates/{tid}/archive"),
        ("POST", f"/orders/from-template/{tid}"),
    ):
        response = await api.http.request(method, path, json={}, headers=api.auth("boss"))
        assert response.status_code == 403, (method, path, response.text)
    assert (await api.http.get(f"/templates/{tid}")).status_code == 401
    order = await use(api, tid, who="support-1")
    assert order["created_by"] == "support-1"


async def test_a_client_cannot_claim_a_template_on_a_plain_create(api: Api) -> None:
    body = {**order_payload(), "template": {"id": "tpl-x", "version": 1}}
    answer = await api.http.post("/orders", json=body, headers=api.auth("eshop"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["fields"][0]["field"] == "template"
    listed = await api.http.get(
        "/orders",
        params={"external_reference": body["external_reference"]},
        headers=api.auth("eshop"),
    )
    assert listed.json()["items"] == []


async def test_a_template_suggests_lines_often_ordered_with_its_own(api: Api) -> None:
    now = datetime.now(UTC)

    def rule(antecedent: list[str], consequent: str, lift: float) -> ProductRuleRow:
        return ProductRuleRow(
            antecedent=antecedent, consequent=consequent, support=0.05, confidence=0.5,
            lift=lift, orders=30, computed_at=now,
        )  # fmt: skip

    async with api.stack.sessions.begin() as session:
        session.add(ProductRow(sku="SUG-C", name="Cable", category="parts", updated_at=now))
        session.add_all(
            [
                rule(["SUG-A"], "SUG-C", 2.0),
                rule(["SUG-A", "SUG-B"], "SUG-D", 5.0),  # the whole template holds both
                rule(["SUG-A"], "SUG-B", 9.0),  # already a line: never suggested
                rule(["SUG-X"], "SUG-Y", 9.0),  # the template does not hold SUG-X
            ]
        )
    lines = [{"sku": "SUG-A", "quantity": 1}, {"sku": "SUG-B", "quantity": 2}]
    tid = (await create_template(api, template_body(lines=lines)))["id"]
    response = await api.http.get(f"/templates/{tid}/suggestions", headers=api.auth("eshop"))
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["held"] == ["SUG-A", "SUG-B"]
    assert [(s["sku"], s["name"]) for s in got["suggestions"]] == [
        ("SUG-D", None),
        ("SUG-C", "Cable"),
    ]
    assert got["suggestions"][0]["because"]["antecedent"] == ["SUG-A", "SUG-B"]
    one = await api.http.get(
        f"/templates/{tid}/suggestions", params={"limit": 1}, headers=api.auth("support-1")
    )
    assert [s["sku"] for s in one.json()["suggestions"]] == ["SUG-D"]
    # A new version with the suggested line: it is no longer suggested.
    patched = await api.http.patch(
        f"/templates/{tid}",
        json={"lines": [*lines, {"sku": "SUG-D", "quantity": 1}]},
        headers=api.auth("support-1"),
    )
    assert patched.status_code == 200, patched.text
    again = await api.http.get(f"/templates/{tid}/suggestions", headers=api.auth("eshop"))
    assert [s["sku"] for s in again.json()["suggestions"]] == ["SUG-C"]

    bad = await api.http.get(
        f"/templates/{tid}/suggestions", params={"limit": 0}, headers=api.auth("eshop")
    )
    assert bad.status_code == 422
    assert "limit" in bad.text
    missing = await api.http.get("/templates/TPL-NOPE/suggestions", headers=api.auth("eshop"))
    assert missing.status_code == 404
    refused = await api.http.get(f"/templates/{tid}/suggestions", headers=api.auth("boss"))
    assert refused.status_code == 403  # approvers read templates, not sales history
