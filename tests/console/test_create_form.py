"""The new-order form over HTTP, on the real stack: one order per form even when posted twice,
the live preview's totals and discounts (computed on the server), more line rows, and bad
input → 422 with each problem next to its field, the values kept and nothing created."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from db.models import ProductRuleRow
from tests.api.conftest import Api, create_keys, services_for
from tests.api.flows import get
from tests.conftest import Stack
from tests.console import ConsoleClient, add_user, sign_in_http
from tests.helpers import eventually

_FORM_KEY = re.compile(r'name="form_key" value="([^"]+)"')


@pytest.fixture
def app(stack: Stack) -> FastAPI:
    return create_app(stack.settings, services=services_for(stack))


@asynccontextmanager
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://orderly.test") as http:
        yield http


@pytest.fixture
async def api(app: FastAPI, stack: Stack) -> AsyncIterator[Api]:
    async with client(app) as http:
        yield Api(http, await create_keys(stack.sessions), stack)


async def signed_in(
    app: FastAPI, stack: Stack, name: str, roles: list[str], language: str = "en"
) -> ConsoleClient:
    levels = [1] if "approver" in roles else []
    await add_user(stack.sessions, name, roles, levels, language=language)
    return await sign_in_http(
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://orderly.test",
        ),
        name,
    )


@pytest.fixture
async def sales(app: FastAPI, stack: Stack) -> AsyncIterator[ConsoleClient]:
    signed = await signed_in(app, stack, "f-sales", ["support"])
    yield signed
    await signed.http.aclose()


def form(customer_id: str, **changes: Any) -> dict[str, Any]:
    """A filled-in form: three line rows, the last one left empty."""
    fields: dict[str, Any] = {
        "customer.id": customer_id,
        "customer.name": "Ada Lovelace",
        "customer.email": "ada@example.com",
        "customer.region": "EU-WEST",
        "customer.tier": "",
        "currency": "EUR",
        "shipping_address.name": "Ada Lovelace",
        "shipping_address.line1": "12 Analytical Row",
        "shipping_address.line2": "",
        "shipping_address.city": "London",
        "shipping_address.postal_code": "N1 9GU",
        "shipping_address.country": "GB",
        "payment_method.type": "card",
        "payment_method.token": "tok_visa",
        "sales_rep": "",
        "external_reference": f"FORM-{customer_id}",
        "sku": ["WIDGET-1", "GADGET-2", ""],
        "quantity": ["2", "1", ""],
        "unit_price": ["19.99", "249.00", ""],
        "list_price": ["25.00", "", ""],
    }
    fields.update(changes)
    return fields


async def form_key(client: ConsoleClient) -> str:
    page = await client.get("/console/orders/new")
    assert page.status_code == 200, page.text
    found = _FORM_KEY.search(page.text)
    assert found is not None
    return found.group(1)


async def orders_of(api: Api, customer_id: str) -> list[dict[str, Any]]:
    answer = await api.http.get(
        "/orders", params={"customer_id": customer_id}, headers=api.auth("support-1")
    )
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def test_the_form_creates_one_order_even_when_posted_twice(
    api: Api, sales: ConsoleClient
) -> None:
    page = await sales.get("/console/orders/new")
    assert page.status_code == 200
    assert page.text.count('name="sku"') == 3  # at least three line rows
    assert 'hx-trigger="input changed delay:300ms"' in page.text
    assert 'for="f-shipping-address-city"' in page.text
    key = _FORM_KEY.search(page.text)
    assert key is not None
    assert key.group(1) != await form_key(sales)  # a fresh key per rendered form

    customer = f"C-F-{uuid.uuid4().hex[:6]}"
    body = form(customer, form_key=key.group(1))
    first = await sales.post("/console/orders/new", body)
    assert first.status_code == 303, first.text
    target = first.headers["location"]
    assert re.fullmatch(r"/console/orders/SO-\d{8}-[0-9A-Z]{5}", target)
    again = await sales.post("/console/orders/new", body)  # the double click
    assert again.status_code == 303
    assert again.headers["location"] == target

    order_id = target.rsplit("/", 1)[1]
    order = await get(api, order_id)
    assert order["total"] == "288.98"  # 2 x 19.99 + 249.00, computed by the service
    assert order["external_reference"] == f"FORM-{customer}"
    assert order["created_by"] == "f-sales"
    assert [(line["sku"], line["quantity"]) for line in order["lines"]] == [
        ("WIDGET-1", 2),
        ("GADGET-2", 1),
    ]
    listed = await eventually(
        lambda: orders_of(api, customer), lambda items: len(items) >= 1, what="the order listed"
    )
    assert [o["id"] for o in listed] == [order_id]

    # a new form (a new key) with the same reference is that order: (console, reference) is
    # unique; with another reference it is a new order
    same_ref = await sales.post(
        "/console/orders/new", form(customer, form_key=await form_key(sales))
    )
    assert (same_ref.status_code, same_ref.headers["location"]) == (303, target)
    assert order["source"] == "console"
    other_ref = {"external_reference": f"FORM2-{customer}"}
    second = await sales.post(
        "/console/orders/new", form(customer, form_key=await form_key(sales), **other_ref)
    )
    assert second.status_code == 303
    assert second.headers["location"] != target


async def test_the_preview_shows_line_totals_discounts_and_the_total(
    sales: ConsoleClient,
) -> None:
    answer = await sales.post(
        "/console/orders/new/preview",
        form("C-PREVIEW", form_key="x" * 20),
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 200, answer.text
    html = answer.text
    assert "<html" not in html
    total = re.search(r'id="order-total"[^>]*>([^<]+)<', html)
    assert total is not None
    assert total.group(1) == "288.98 EUR"
    assert "39.98 EUR" in html  # the widget line's total
    assert "20.0 % off 25.00 EUR" in html  # 19.99 against a list price of 25.00
    discount = re.search(r'id="order-discount"[^>]*>([^<]+)<', html)
    assert discount is not None
    assert discount.group(1) == "\u221210.02 EUR"
    assert "needs an extra approval level" in html  # above the policy's 15 %

    # a client-side total is never read; a bad line is named and left out
    odd = form("C-PREVIEW", quantity=["2", "zero", ""], total="1.00")
    partial = await sales.post("/console/orders/new/preview", odd, headers={"HX-Request": "true"})
    total = re.search(r'id="order-total"[^>]*>([^<]+)<', partial.text)
    assert total is not None
    assert total.group(1) == "39.98 EUR"
    assert "line 2 not counted" in partial.text
    assert "quantity" in partial.text


async def test_the_preview_suggests_lines_often_ordered_with_these(
    sales: ConsoleClient, stack: Stack
) -> None:
    async with stack.sessions.begin() as session:
        session.add_all(
            [
                ProductRuleRow(
                    antecedent=["WIDGET-1"], consequent="GIZMO-3", support=0.1,
                    confidence=0.62, lift=3.1, orders=40, computed_at=datetime.now(UTC),
                ),
                ProductRuleRow(
                    antecedent=["WIDGET-1"], consequent="GADGET-2", support=0.1,
                    confidence=0.9, lift=4.0, orders=40, computed_at=datetime.now(UTC),
                ),
            ]
        )  # fmt: skip
    answer = await sales.post(
        "/console/orders/new/preview",
        form("C-SUGGEST", form_key="x" * 20),
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 200, answer.text
    assert "Often ordered with these" in answer.text
    assert "<code>GIZMO-3</code>" in answer.text
    assert "in 62 % of the orders with WIDGET-1" in answer.text
    assert "<code>GADGET-2</code>" not in answer.text  # already on the form

    none = await sales.post(
        "/console/orders/new/preview",
        form("C-SUGGEST", sku=["GADGET-2", "", ""], form_key="x" * 20),
        headers={"HX-Request": "true"},
    )
    assert "Often ordered with these" not in none.text


async def test_add_line_returns_one_more_row(sales: ConsoleClient) -> None:
    row = await sales.post(
        "/console/orders/new/line",
        {"sku": ["A", "B", "C"], "quantity": ["1", "1", "1"]},
        headers={"HX-Request": "true"},
    )
    assert row.status_code == 200
    assert row.text.strip().startswith("<tr>")
    assert row.text.count('name="sku"') == 1
    assert "SKU, line 4" in row.text
    ids = re.findall(r'id="(line-[^"]+)"', row.text)
    assert len(ids) == 4
    assert len(set(ids)) == 4

    # without JavaScript the form comes back with one more row, values kept
    longer = await sales.post("/console/orders/new", form("C-ROWS", add_line="1"))
    assert longer.status_code == 200
    assert longer.text.count('name="sku"') == 4
    assert 'value="GADGET-2"' in longer.text


async def test_bad_input_names_the_fields_and_creates_nothing(
    api: Api, sales: ConsoleClient
) -> None:
    customer = f"C-BAD-{uuid.uuid4().hex[:6]}"
    bad = form(
        customer,
        form_key=await form_key(sales),
        quantity=["0", "1", ""],
        currency="XXX",
        **{"shipping_address.city": ""},
    )
    answer = await sales.post("/console/orders/new", bad)
    assert answer.status_code == 422, answer.text
    html = answer.text
    for name in ("lines[0].quantity", "currency", "shipping_address.city"):
        assert f"<code>{name}</code>" in html, name
    assert 'id="line-0-quantity-error"' in html  # next to the first row's quantity
    assert 'id="f-shipping-address-city-error"' in html
    assert 'id="f-currency-error"' in html
    assert "greater than 0" in html
    assert "ISO 4217" in html
    assert 'value="12 Analytical Row"' in html
    assert 'value="WIDGET-1"' in html

    card = form(customer, form_key=await form_key(sales), **{"payment_method.token": ""})
    answer = await sales.post("/console/orders/new", card)
    assert answer.status_code == 422
    assert "<code>payment_method.token</code>" in answer.text

    nothing = form(
        customer, form_key=await form_key(sales), sku="", quantity="", unit_price="", list_price=""
    )
    answer = await sales.post("/console/orders/new", nothing)
    assert answer.status_code == 422
    assert "<code>lines</code>" in answer.text

    no_key = await sales.post("/console/orders/new", form(customer))
    assert no_key.status_code == 422
    assert "<code>form_key</code>" in no_key.text

    # nothing was created: no order, not even the customer's master record (made on create)
    assert await orders_of(api, customer) == []
    master = await api.http.get(f"/customers/{customer}", headers=api.auth("support-1"))
    assert master.status_code == 404

    # a known customer's id with another email: the use case refuses it next to the email
    known = form(customer, form_key=await form_key(sales))
    made = await sales.post("/console/orders/new", known)
    assert made.status_code == 303
    other = form(
        customer,
        form_key=await form_key(sales),
        **{"customer.email": "eve@example.com", "external_reference": f"FORM2-{customer}"},
    )
    refused = await sales.post("/console/orders/new", other)
    assert refused.status_code == 409
    assert "<code>customer.email</code>" in refused.text
    key = _FORM_KEY.search(refused.text)
    assert key is not None
    assert key.group(1) != other["form_key"]

    listed = await orders_of(api, customer)
    assert len(listed) <= 1  # only the good one (the read model may not show it yet)
    order_id = made.headers["location"].rsplit("/", 1)[1]
    assert all(o["id"] == order_id for o in listed)


async def test_only_sales_open_the_form(app: FastAPI, stack: Stack) -> None:
    approver = await signed_in(app, stack, "f-approver", ["approver"])
    assert (await approver.get("/console/orders/new")).status_code == 403
    refused = await approver.post("/console/orders/new", form("C-NO", form_key="k" * 20))
    assert refused.status_code == 403
    await approver.http.aclose()
    system = await signed_in(app, stack, "f-intake", ["system"], language="zh")
    page = await system.get("/console/orders/new")
    assert page.status_code == 200
    assert "新建订单" in page.text
    assert "收货地址" in page.text  # the form in the user's language
    preview = await system.post(
        "/console/orders/new/preview", form("C-ZH"), headers={"HX-Request": "true"}
    )
    assert "比 25.00 EUR 低 20.0 %" in preview.text
    await system.http.aclose()
