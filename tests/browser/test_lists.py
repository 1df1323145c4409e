"""The inbox, the order search and the new-order form in a real browser: filtering without a
full reload (the URL follows, the back button restores the previous filter), opening an order
from the inbox, the live total while typing, creating an order, and the phone layout."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Any

import httpx
from playwright.async_api import Page, expect

from tests.browser.conftest import PHONE, Live, PageFactory, screenshot
from tests.console import add_user, sign_in_browser
from tests.factories import order_payload
from tests.helpers import eventually


async def _order(http: httpx.AsyncClient, live: Live, unit_price: str) -> str:
    payload = order_payload(lines=[{"sku": "WIDGET-1", "quantity": 100, "unit_price": unit_price}])
    await live.stack.bureau.set_profile(
        payload["customer"]["id"], score=900, credit_limit=Decimal(10_000_000)
    )
    answer = await http.post("/orders", json=payload, headers=live.auth("eshop"))
    assert answer.status_code == 201, answer.text
    order_id: str = answer.json()["id"]
    return order_id


async def _waiting_at(http: httpx.AsyncClient, live: Live, order_id: str, level: int) -> None:
    async def read() -> dict[str, Any]:
        answer = await http.get(f"/orders/{order_id}", headers=live.auth("support-1"))
        body: dict[str, Any] = answer.json()
        return body

    await eventually(
        read,
        lambda o: o["status"] == "awaiting_approval" and o["approval"]["current_level"] == level,
        what=f"{order_id} waiting at level {level}",
    )


async def _no_sideways_scroll(page: Page) -> None:
    fits = await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert fits, await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


async def test_an_approver_filters_the_inbox_and_opens_an_order(
    live: Live, page_factory: PageFactory
) -> None:
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        first = await _order(http, live, "60.00")  # 6,000 EUR: level 1
        await _waiting_at(http, live, first, 1)
        second = await _order(http, live, "250.00")  # 25,000 EUR: levels 1 and 2
        await _waiting_at(http, live, second, 1)
        approved = await http.post(
            f"/orders/{second}/approve", json={}, headers=live.auth("lead-1")
        )
        assert approved.status_code == 200, approved.text
        await _waiting_at(http, live, second, 2)
    await add_user(live.stack.sessions, "b-approver", ["approver"], [1, 2])

    page = await page_factory()
    await sign_in_browser(page, live.base_url, "b-approver")
    await expect(page).to_have_url(re.compile(r"/console/inbox$"))  # the approver's home
    rows = page.locator("table.inbox tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0)).to_contain_text(first)  # oldest first
    await expect(rows.nth(0)).to_contain_text("6,000.00 EUR")
    await expect(rows.nth(1)).to_contain_text("2 · sales manager")
    await screenshot(page, "inbox")

    await page.evaluate("window.stillThisPage = true")
    await page.get_by_label("Level").select_option("2")  # htmx: only the table is replaced
    # the URL is pushed when the answer arrives: slow on a loaded CI machine
    await expect(page).to_have_url(re.compile(r"/console/inbox\?level=2"), timeout=15_000)
    await expect(rows).to_have_count(1)
    await expect(rows.nth(0)).to_contain_text(second)
    assert await page.evaluate("window.stillThisPage === true")  # no full reload

    restores: list[str] = []
    page.on(
        "request",
        lambda r: (
            restores.append(r.url)
            if r.headers.get("hx-history-restore-request") == "true"
            else None
        ),
    )
    await page.go_back()  # the previous filter page comes back whole, from the server
    await expect(page).to_have_url(re.compile(r"/console/inbox$"))
    await expect(rows).to_have_count(2)
    await expect(page.get_by_label("Level")).to_have_value("")
    assert [u.rsplit("/", 1)[1] for u in restores] == ["inbox"]
    assert await page.evaluate("window.stillThisPage === true")  # restored in place
    await page.go_forward()
    await expect(page).to_have_url(re.compile(r"level=2"))
    await expect(rows).to_have_count(1)
    await expect(page.get_by_label("Level")).to_have_value("2")

    await page.get_by_role("link", name=second).click()
    await expect(page).to_have_url(re.compile(rf"/console/orders/{second}$"))
    await expect(page.locator("main")).to_contain_text(second)
    assert page_factory.errors(page) == []

    phone = await page_factory(viewport=PHONE)
    await sign_in_browser(phone, live.base_url, "b-approver")
    await expect(phone.locator("table.inbox tbody tr")).to_have_count(2)
    await _no_sideways_scroll(phone)
    await screenshot(phone, "inbox-phone")
    assert page_factory.blocked(page) == []
    assert page_factory.blocked(phone) == []


async def test_support_creates_an_order_with_a_live_total(
    live: Live, page_factory: PageFactory
) -> None:
    await add_user(live.stack.sessions, "b-support", ["support"])
    customer = f"C-B-{uuid.uuid4().hex[:6].upper()}"
    page = await page_factory()
    await sign_in_browser(page, live.base_url, "b-support")
    await page.goto(live.url("/console/orders/new"))

    await page.get_by_label("Customer id").fill(customer)
    await page.get_by_label("Name", exact=True).fill("Ada Lovelace")
    await page.get_by_label("Email").fill("ada@example.com")
    await page.get_by_label("Region").fill("EU-WEST")
    await page.get_by_label("Recipient").fill("Ada Lovelace")
    await page.get_by_label("Address line 1").fill("12 Analytical Row")
    await page.get_by_label("City").fill("London")
    await page.get_by_label("Postal code").fill("N1 9GU")
    await page.get_by_label("Country").fill("GB")
    await page.get_by_label("Card token").fill("tok_visa")
    await page.get_by_label("External reference").fill(f"WEB-{customer}")

    total = page.locator("#order-total")
    await page.get_by_label("SKU, line 1").fill("WIDGET-1")
    await page.get_by_label("Unit price, line 1").fill("19.99")
    await page.get_by_label("List price, line 1").fill("25.00")
    quantity = page.get_by_label("Quantity, line 1")
    await quantity.press_sequentially("3")
    await expect(total).to_have_text("59.97 EUR")  # 3 x 19.99, from the server
    await expect(page.locator("#order-discount")).to_have_text("\u221215.03 EUR")
    await quantity.press_sequentially("0")  # 30
    await expect(total).to_have_text("599.70 EUR")

    lines = page.locator('input[name="sku"]')
    await expect(lines).to_have_count(3)
    await page.get_by_role("button", name="Add line").click()
    await expect(lines).to_have_count(4)
    await page.get_by_label("SKU, line 4").fill("GADGET-2")
    await page.get_by_label("Unit price, line 4").fill("249.00")
    await page.get_by_label("Quantity, line 4").press_sequentially("2")
    await expect(total).to_have_text("1,097.70 EUR")
    await screenshot(page, "new-order", full_page=True)

    await page.get_by_role("button", name="Create order").click()
    await expect(page).to_have_url(re.compile(r"/console/orders/SO-\d{8}-[0-9A-Z]{5}$"))
    order_id = page.url.rsplit("/", 1)[1]

    await page.goto(live.url("/console/orders"))
    await page.evaluate("window.stillThisPage = true")
    await page.get_by_label("External reference").fill(f"WEB-{customer}")

    async def search() -> int:
        await page.get_by_role("button", name="Search").click()
        await expect(page).to_have_url(re.compile(r"external_reference=WEB-"))
        return await page.locator("table.orders tbody tr").count()

    await eventually(search, lambda n: n == 1, what="the new order in the search")
    await expect(page.get_by_role("link", name=order_id)).to_be_visible()
    assert await page.evaluate("window.stillThisPage === true")  # htmx, not a reload
    await screenshot(page, "search")
    # a bad filter: htmx swaps the 422 answer in, so the problem shows next to the form
    await page.get_by_label("Created from").fill("2026-12-02")
    await page.get_by_label("Created to (inclusive)").fill("2026-12-01")
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_role("alert")).to_contain_text("created_to")
    assert await page.evaluate("window.stillThisPage === true")
    assert page_factory.errors(page) == []
    assert page_factory.blocked(page) == []

    phone = await page_factory(viewport=PHONE)
    await sign_in_browser(phone, live.base_url, "b-support")
    for path in ("/console/orders/new", f"/console/orders?customer_id={customer}"):
        await phone.goto(live.url(path))
        await expect(phone.locator("h1")).to_be_visible()
        await _no_sideways_scroll(phone)
