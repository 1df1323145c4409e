"""Hostile input, sent on purpose: each gets a clear 4xx naming the field and changes nothing;
odd but valid text (emoji, right-to-left, combining marks, SQL look-alikes) is kept as sent.

Each test sends its whole family of cases and reports every case that went wrong at once.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from domain.status import OrderStatus
from tests.api.conftest import Api
from tests.api.flows import create, get, wait_status
from tests.factories import big_order, order_payload

S = OrderStatus
MB = 1_000_000
SQL = [
    "'; DROP TABLE orders; --",
    "1' OR '1'='1",
    'x"); DELETE FROM api_keys WHERE ("1"="1',
    "Robert'); DROP TABLE students;--",
]


async def listing(api: Api) -> list[tuple[str, str]]:
    """Every order id and status, from the read model."""
    response = await api.http.get("/orders", params={"limit": 200}, headers=api.auth("root"))
    assert response.status_code == 200, response.text
    return sorted((i["id"], i["status"]) for i in response.json()["items"])


async def state(api: Api, order_id: str) -> dict[str, Any]:
    """What a refused command must not change."""
    view = await get(api, order_id)
    kept = ("status", "approval", "allowed_actions", "closure", "payment", "lines", "total")
    return {k: view[k] for k in kept} | {
        "timeline": [(e["seq"], e["type"]) for e in view["timeline"]]
    }


async def waiting_order(api: Api, payload: dict[str, Any], status: OrderStatus) -> str:
    order = await create(api, payload)
    await wait_status(api, order["id"], status)
    return str(order["id"])


def problem(response: httpx.Response, field: str | None = None) -> str | None:
    """Why ``response`` is not a 422 in our error shape naming ``field``; None if it is."""
    if response.status_code != 422:
        return f"{response.status_code} {response.text[:300]}"
    error = response.json()["error"]
    if error["code"] != "invalid_input" or not error["fields"]:
        return f"error shape: {error}"
    named = [f["field"] for f in error["fields"]]
    if field is not None and field not in named:
        return f"names {named}, not {field!r}"
    if len(response.content) > 10_000:
        return f"the error echoes the input back ({len(response.content)} bytes)"
    return None


class Problems(list[str]):
    def check(self, case: str, response: httpx.Response, field: str | None = None) -> None:
        found = problem(response, field)
        if found is not None:
            self.append(f"{case}: {found}")

    def report(self) -> str:
        return f"{len(self)} cases answered wrongly:\n" + "\n".join(self)


def setting(payload: dict[str, Any], path: tuple[str | int, ...], value: Any) -> Any:
    """``payload`` with ``value`` at ``path`` (the empty path replaces the whole body)."""
    if not path:
        return value
    target: Any = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return payload


async def post_raw(api: Api, url: str, content: bytes, who: str) -> httpx.Response:
    headers = {**api.auth(who), "Content-Type": "application/json"}
    return await api.http.post(url, content=content, headers=headers)


MALFORMED: dict[str, bytes] = {
    "truncated": b'{"customer": ',
    "trailing comma": b'{"currency": "EUR",}',
    "single quotes": b"{'currency': 'EUR'}",
    "not json": b"DROP TABLE orders",
    "empty": b"",
    "bare string": b'"an order"',
    "null": b"null",
    "list": b"[]",
    "NaN": b"NaN",
    "not UTF-8": b'{"currency": "\xff\xfe"}',
    "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "5,000-digit number": b'{"quantity": 1' + b"0" * 5000 + b"}",
}


async def test_malformed_json_is_422_and_changes_nothing(api: Api) -> None:
    order_id = await waiting_order(api, big_order(), S.AWAITING_APPROVAL)
    before, orders = await state(api, order_id), await listing(api)
    problems = Problems()
    for name, body in MALFORMED.items():
        created = await post_raw(api, "/orders", body, "eshop")
        problems.check(f"POST /orders {name}", created, "body")
        for command, who in [("reject", "lead-1"), ("cancel", "support-1"), ("amend", "eshop")]:
            response = await post_raw(api, f"/orders/{order_id}/{command}", body, who)
            problems.check(f"{command} {name}", response, "body")
    syntax = await post_raw(api, "/orders", MALFORMED["trailing comma"], "eshop")
    assert "malformed JSON" in syntax.json()["error"]["message"], syntax.text
    assert await state(api, order_id) == before
    assert await listing(api) == orders
    assert not problems, problems.report()


async def test_ten_thousand_lines_is_422_naming_lines(api: Api) -> None:
    line = {"sku": "WIDGET-1", "quantity": 1, "unit_price": "1.00"}
    body = order_payload(lines=[line] * 10_000)
    response = await api.http.post("/orders", json=body, headers=api.auth("eshop"))
    assert problem(response, "lines") is None, problem(response, "lines")
    assert "500" in response.json()["error"]["message"]
    assert await listing(api) == []


async def test_megabyte_text_is_422_and_changes_nothing(api: Api) -> None:
    order_id = await waiting_order(api, big_order(), S.AWAITING_APPROVAL)
    before, orders = await state(api, order_id), await listing(api)
    problems = Problems()
    for path in [
        ("customer", "name"),
        ("customer", "id"),
        ("external_reference",),
        ("sales_rep",),
        ("shipping_address", "line1"),
    ]:
        body = setting(order_payload(), path, "x" * MB)
        response = await api.http.post("/orders", json=body, headers=api.auth("eshop"))
        problems.check(f"POST /orders {'.'.join(path)}", response, ".".join(path))
    for command, who, body, field in [
        ("reject", "lead-1", {"reason": "r" * MB}, "reason"),
        ("request-changes", "lead-1", {"reason": "r" * MB}, "reason"),
        ("cancel", "root", {"reason": "r" * MB}, "reason"),
        ("cancel", "support-1", {"reason": "r" * MB}, "reason"),
        ("approve", "lead-1", {"comment": "c" * MB}, "comment"),
    ]:
        response = await api.http.post(
            f"/orders/{order_id}/{command}", json=body, headers=api.auth(who)
        )
        problems.check(f"{command} by {who}", response, field)
    assert await state(api, order_id) == before
    assert await listing(api) == orders
    assert not problems, problems.report()


LINES: list[tuple[dict[str, Any], str]] = [
    ({"quantity": 0}, "quantity"),
    ({"quantity": -1}, "quantity"),
    ({"quantity": -(10**6)}, "quantity"),
    ({"quantity": 1.5}, "quantity"),
    ({"quantity": "2"}, "quantity"),
    ({"quantity": 10**30}, "quantity"),
    ({"quantity": 1e300}, "quantity"),
    ({"unit_price": "-0.01"}, "unit_price"),
    ({"unit_price": -5}, "unit_price"),
    ({"unit_price": 10**400}, "unit_price"),
    ({"unit_price": 1e300}, "unit_price"),
    ({"unit_price": "1E+999999999"}, "unit_price"),
    ({"unit_price": "NaN"}, "unit_price"),
    ({"unit_price": "Infinity"}, "unit_price"),
    ({"list_price": "-Infinity"}, "list_price"),
]
# JSON literals Python reads as infinity or as a 400-digit integer.
HUGE = [b"1e400", b"-1e400", b"1" + b"0" * 400]


async def test_bad_quantities_and_amounts_are_422_and_change_nothing(api: Api) -> None:
    order_id = await waiting_order(
        api, order_payload(payment={"type": "bank_transfer"}), S.AWAITING_PAYMENT
    )
    before, orders = await state(api, order_id), await listing(api)
    problems = Problems()
    for change, name in LINES:
        line = {"sku": "WIDGET-1", "quantity": 1, "unit_price": "1.00"} | change
        body = order_payload(lines=[line])
        response = await api.http.post("/orders", json=body, headers=api.auth("eshop"))
        problems.check(f"line {change}", response, f"lines[0].{name}")
    for number in HUGE:
        for name in ("quantity", "unit_price"):
            line = {"sku": "WIDGET-1", "quantity": 1, "unit_price": "1.00", name: "@@"}
            raw = json.dumps(order_payload(lines=[line])).encode().replace(b'"@@"', number)
            response = await post_raw(api, "/orders", raw, "eshop")
            problems.check(f"{name} {number[:12]!r}", response, f"lines[0].{name}")
    for amount in [*HUGE, b'"1E+999999999"', b'"NaN"', b"0", b"-39.98", b'"39.98 EUR"']:
        raw = b'{"amount": ' + amount + b', "token": "TRX-1"}'
        response = await post_raw(api, f"/orders/{order_id}/payments", raw, "eshop")
        problems.check(f"payment {amount[:12]!r}", response, "amount")
    assert await state(api, order_id) == before
    assert await listing(api) == orders
    assert not problems, problems.report()


async def test_unknown_currencies_are_422(api: Api) -> None:
    problems = Problems()
    for currency, field in [
        ("XXX", "body"),  # well-formed, but not a currency we take: the order validator says so
        ("ABC", "body"),
        ("BTC", "body"),
        ("eur", "currency"),
        ("EURO", "currency"),
        ("", "currency"),
        ("€", "currency"),
        (978, "currency"),
        (None, "currency"),
    ]:
        body = order_payload(currency=currency)
        response = await api.http.post("/orders", json=body, headers=api.auth("eshop"))
        problems.check(f"currency {currency!r}", response, field)
        if response.status_code == 422 and "currency" not in response.text.lower():
            problems.append(f"currency {currency!r}: message does not say currency")
    assert await listing(api) == []
    assert not problems, problems.report()


async def test_wrong_types_are_422_and_change_nothing(api: Api) -> None:
    order_id = await waiting_order(api, big_order(), S.AWAITING_APPROVAL)
    before, orders = await state(api, order_id), await listing(api)
    problems = Problems()
    for path, value, field in [
        ((), [], "body"),
        ((), [order_payload()], "body"),
        (("customer",), [], "customer"),
        (("customer",), "Ada", "customer"),
        (("customer", "name"), {"first": "Ada"}, "customer.name"),
        (("customer", "name"), ["Ada"], "customer.name"),
        (("lines",), {}, "lines"),
        (("lines",), [[]], "lines[0]"),
        (("lines",), ["WIDGET-1"], "lines[0]"),
        (("lines", 0, "sku"), {"$gt": ""}, "lines[0].sku"),
        (("shipping_address",), "12 Analytical Row", "shipping_address"),
        (("payment_method",), 42, "payment_method"),
        (("payment_method", "type"), {"card": True}, "payment_method.type"),
        (("currency",), ["EUR"], "currency"),
        (("external_reference",), {"$ne": None}, "external_reference"),
    ]:
        body = setting(order_payload(), path, value)
        response = await api.http.post("/orders", json=body, headers=api.auth("eshop"))
        problems.check(f"POST /orders {path}={value!r:.40}", response, field)
    for command, who, body, field in [
        ("reject", "lead-1", {"reason": {"text": "no"}}, "reason"),
        ("reject", "lead-1", {"reason": ["no"]}, "reason"),
        ("reject", "lead-1", ["no"], "body"),
        ("approve", "lead-1", {"level": "one"}, "level"),
        ("approve", "lead-1", {"level": 10**40}, "level"),
        ("approve", "lead-1", {"comment": 5}, "comment"),
        ("cancel", "support-1", {"reason": None}, "reason"),
        ("request-changes", "lead-1", {"reason": 1.5}, "reason"),
        ("amend", "eshop", {"lines": {"sku": "WIDGET-1"}}, "lines"),
        ("shipment-events", "eshop", {"event": ["picked_up"]}, "event"),
    ]:
        response = await api.http.post(
            f"/orders/{order_id}/{command}", json=body, headers=api.auth(who)
        )
        problems.check(f"{command} {body!r:.40}", response, field)
    assert await state(api, order_id) == before
    assert await listing(api) == orders
    assert not problems, problems.report()


# Valid text a person may type: kept exactly as sent (no normalisation: e + U+0301 stays two).
UNICODE = {
    "emoji": "🦄 Ünïcörn Ltd. 🚀👩‍👩‍👧",
    "rtl": "שלום עולם مرحبا",
    "combining": "Zalgo Z̸̢a̵l̷g̶o̴ Jose\u0301",
    "cjk": "株式会社テスト 漢字",
    "astral": "𓀀𓁐 𠜎𠜱 𝄞",
}
TEXT_FIELDS = ("customer", "shipping_address", "sales_rep", "external_reference")


def unicode_order(text: str) -> dict[str, Any]:
    payload = order_payload(customer_id=f"C-{text[:20]}", sales_rep=text, external_reference=text)
    payload["customer"] |= {"name": text, "region": text, "email": "josé@exämple.de"}
    payload["shipping_address"] |= {
        "name": text,
        "line1": f"{text} 1",
        "line2": f"↳ {text}",
        "city": text,
        "postal_code": text[:20],
    }
    return payload


async def test_unicode_in_every_text_field_is_kept_exactly(api: Api) -> None:
    sent = {name: unicode_order(text) for name, text in UNICODE.items()}
    created = {name: await create(api, payload) for name, payload in sent.items()}
    for name, payload in sent.items():
        order_id = created[name]["id"]
        live = await wait_status(api, order_id, S.FULFILLING)
        want = {k: payload[k] for k in TEXT_FIELDS}
        assert {k: created[name][k] for k in TEXT_FIELDS} == want, name
        assert {k: live[k] for k in TEXT_FIELDS} == want, name
        page = await api.http.get(
            "/orders", params={"customer_id": payload["customer"]["id"]}, headers=api.auth("root")
        )
        items = page.json()["items"]
        assert [(i["id"], i["region"]) for i in items] == [
            (order_id, payload["customer"]["region"])
        ]


async def test_sql_looking_text_is_plain_text(api: Api) -> None:
    orders = []
    for text in SQL:
        payload = order_payload(customer_id=text, external_reference=text, sales_rep=text)
        payload["customer"]["name"] = text
        payload["shipping_address"]["line1"] = text
        order = await create(api, payload)
        assert (order["customer"]["id"], order["external_reference"]) == (text, text)
        orders.append(order)
    for text, order in zip(SQL, orders, strict=True):
        live = await wait_status(api, order["id"], S.FULFILLING)
        assert live["shipping_address"]["line1"] == live["customer"]["name"] == text
        page = await api.http.get("/orders", params={"customer_id": text}, headers=api.auth("root"))
        assert page.status_code == 200, page.text
        assert [i["id"] for i in page.json()["items"]] == [order["id"]]
    assert {i for i, _ in await listing(api)} == {o["id"] for o in orders}


async def test_sql_looking_query_params_and_ids_are_4xx_and_table_still_works(api: Api) -> None:
    order_id = await waiting_order(api, order_payload(), S.FULFILLING)
    orders = await listing(api)
    problems = Problems()
    for text in SQL:
        for url, params, field, who in [
            ("/orders", {"status": text}, "query.status", "root"),
            ("/orders", {"cursor": text}, "cursor", "root"),
            ("/orders", {"created_from": text}, "query.created_from", "root"),
            ("/orders", {"created_to": text}, "query.created_to", "root"),
            ("/orders", {"limit": text}, "query.limit", "root"),
            ("/approvals/inbox", {"tier": text}, "query.tier", "lead-1"),
            ("/approvals/inbox", {"level": text}, "query.level", "lead-1"),
            ("/approvals/inbox", {"cursor": text}, "cursor", "lead-1"),
            (f"/orders/{text}", {}, "path.order_id", "root"),
            (f"/orders/{text}/timeline", {}, "path.order_id", "root"),
        ]:
            response = await api.http.get(url, params=params, headers=api.auth(who))
            problems.check(f"GET {url} {params}", response, field)
        cancel = await api.http.post(
            f"/orders/{text}/cancel", json={"reason": text}, headers=api.auth("root")
        )
        problems.check(f"cancel {text}", cancel, "path.order_id")
        nobody = await api.http.get(
            "/orders", params={"customer_id": text}, headers=api.auth("root")
        )
        if nobody.status_code != 200 or nobody.json()["items"]:
            problems.append(f"customer_id={text!r}: {nobody.status_code} {nobody.text[:200]}")
    assert await listing(api) == orders
    assert not problems, problems.report()
    again = await create(api, order_payload())
    # Only the workflow's projection writes the read model: list once the new order has waited.
    await wait_status(api, again["id"], S.FULFILLING)
    assert {i for i, _ in await listing(api)} == {order_id, again["id"]}
