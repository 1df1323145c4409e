"""The order page in a real browser: three approvers decide a 3-level order from their own
sessions while it waits (each page follows live), support's view has no approver actions,
support cancels a paid order and sees the refund, and a carrier scan posted through the API
appears on an open page without a reload."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from playwright.async_api import Page, expect

from domain.status import OrderStatus
from tests.api.conftest import Api
from tests.api.flows import carrier, create, get, wait_status
from tests.browser.conftest import PHONE, Live, PageFactory, screenshot
from tests.console import add_user, sign_in_browser
from tests.factories import order_payload
from tests.helpers import eventually

S = OrderStatus
LIVE_WAIT = 20_000  # ms: an SSE poll (1 s), the panel's fetch and the workflow's steps


async def _signed_in(
    live: Live, page_factory: PageFactory, name: str, roles: list[str], levels: list[int]
) -> Page:
    await add_user(live.stack.sessions, name, roles, levels)
    page = await page_factory()
    await sign_in_browser(page, live.base_url, name)
    return page


async def _open(page: Page, live: Live, order_id: str) -> None:
    await page.goto(live.url(f"/console/orders/{order_id}"))
    await expect(page.get_by_role("heading", name=f"Order {order_id}")).to_be_visible()
    # A marker that a reload would lose: the page must follow the order without one.
    await page.evaluate("window.orderPageMarker = 'kept'")


async def _not_reloaded(page: Page) -> None:
    assert await page.evaluate("window.orderPageMarker") == "kept"


def _status(page: Page) -> Any:
    return page.locator(".order-summary .status-badge")


async def _api(live: Live) -> Api:
    return Api(http=httpx.AsyncClient(base_url=live.base_url), keys=live.keys, stack=live.stack)


async def test_three_approvers_decide_a_three_level_order_while_it_waits(
    live: Live, page_factory: PageFactory
) -> None:
    api = await _api(live)
    payload = order_payload(lines=[{"sku": "WIDGET-1", "quantity": 100, "unit_price": "1200.00"}])
    await live.stack.bureau.set_profile(
        payload["customer"]["id"], score=900, credit_limit=Decimal(10_000_000)
    )
    order = await create(api, payload)
    await eventually(
        lambda: get(api, order["id"]),
        lambda o: o["status"] == "awaiting_approval" and o["approval"]["current_level"] == 1,
        what="the order waiting at level 1",
    )
    approvers = [
        await _signed_in(live, page_factory, f"ann-level-{n}", ["approver"], [n]) for n in (1, 2, 3)
    ]
    support = await _signed_in(live, page_factory, "sam-support", ["support"], [])
    for page in (*approvers, support):
        await _open(page, live, order["id"])

    # Support's page: cancel, but none of the approver's actions.
    await expect(support.get_by_role("button", name="Cancel order")).to_be_visible()
    for name in ("Approve", "Reject", "Request changes"):
        await expect(support.get_by_role("button", name=name)).to_have_count(0)

    for level, page in enumerate(approvers, start=1):
        button = page.get_by_role("button", name=f"Approve level {level}")
        await expect(button).to_be_visible(timeout=LIVE_WAIT)  # live, after the level before
        await _not_reloaded(page)
        for later in approvers[level:]:  # the next levels wait their turn
            await expect(later.get_by_role("button", name="Approve", exact=False)).to_have_count(0)
        if level == 2:  # the approver's view: level 1 decided, level 2 to decide
            await screenshot(page, "order", full_page=True)
        await page.get_by_label("Comment (optional)").fill(f"fine from level {level}")
        await button.click()
        await expect(page.get_by_role("status")).to_have_text("Approved.")
        level_item = page.locator(f'ol.chain li[data-level="{level}"]')
        await expect(level_item).to_contain_text(f"approved by ann-level-{level}")
        await expect(level_item).to_contain_text(f"fine from level {level}")

    for page in (*approvers, support):
        await expect(_status(page)).to_have_attribute(
            "data-status", "fulfilling", timeout=LIVE_WAIT
        )
        assert page_factory.errors(page) == []
        assert page_factory.blocked(page) == []
    await _not_reloaded(support)
    body = await get(api, order["id"])
    assert [lv["approvals"][0]["by"] for lv in body["approval"]["levels"]] == [
        "ann-level-1",
        "ann-level-2",
        "ann-level-3",
    ]
    await api.http.aclose()


async def test_support_cancels_a_paid_order_and_sees_the_refund(
    live: Live, page_factory: PageFactory
) -> None:
    api = await _api(live)
    order = await create(api, order_payload())
    await wait_status(api, order["id"], S.FULFILLING)
    page = await _signed_in(live, page_factory, "sam-support", ["support"], [])
    await _open(page, live, order["id"])
    await expect(page.locator(".payment .captured")).to_have_text("39.98 EUR")

    await page.get_by_label("Reason for cancelling").select_option("customer_request")
    await page.get_by_label("Note (optional)").fill("changed their mind")
    await page.get_by_role("button", name="Cancel order").click()
    await expect(page.get_by_role("status")).to_have_text("Cancellation requested.")
    await expect(_status(page)).to_have_attribute("data-status", "cancelled", timeout=LIVE_WAIT)
    await expect(page.locator(".payment .refunded")).to_have_text("39.98 EUR")
    await expect(page.locator(".payment .refund-state")).to_have_text("fully refunded")
    await expect(page.locator(".closure")).to_contain_text("customer_request: changed their mind")
    await expect(page.get_by_role("button", name="Cancel order")).to_have_count(0)
    assert page_factory.errors(page) == []
    await api.http.aclose()


async def test_a_carrier_scan_appears_on_an_open_page(
    live: Live, page_factory: PageFactory
) -> None:
    api = await _api(live)
    order = await create(api, order_payload())
    await wait_status(api, order["id"], S.FULFILLING)
    page = await _signed_in(live, page_factory, "sam-support", ["support"], [])
    await _open(page, live, order["id"])
    await expect(_status(page)).to_have_attribute("data-status", "fulfilling")
    await expect(page.locator("ol.timeline li").first).not_to_have_attribute("data-type", "shipped")

    await carrier(api, order["id"], "picked_up")
    await expect(_status(page)).to_have_attribute("data-status", "shipped", timeout=LIVE_WAIT)
    await expect(page.locator(".parcels .parcel-status").first).to_have_text("picked up")
    await expect(page.get_by_role("button", name="Cancel order")).to_have_count(0)
    await _not_reloaded(page)
    assert page_factory.errors(page) == []
    assert page_factory.blocked(page) == []

    phone = await page_factory(viewport=PHONE)
    await sign_in_browser(phone, live.base_url, "sam-support")
    await _open(phone, live, order["id"])
    await expect(_status(phone)).to_have_attribute("data-status", "shipped")
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    await screenshot(phone, "order-phone")
    await api.http.aclose()


async def test_a_live_update_never_throws_away_what_someone_is_typing(
    live: Live, page_factory: PageFactory
) -> None:
    api = await _api(live)
    order = await create(api, order_payload())
    await wait_status(api, order["id"], S.FULFILLING)
    page = await _signed_in(live, page_factory, "tia-support", ["support"], [])
    await _open(page, live, order["id"])
    note = page.get_by_label("Note (optional)")
    await note.fill("customer phoned about")

    await carrier(api, order["id"], "picked_up")
    stale = page.locator(".live-stale button")
    await expect(stale).to_be_visible(timeout=LIVE_WAIT)
    await expect(note).to_have_value("customer phoned about")  # not swapped away
    await expect(_status(page)).to_have_attribute("data-status", "fulfilling")
    await stale.click()
    await expect(_status(page)).to_have_attribute("data-status", "shipped")
    await expect(page.locator(".live-stale")).to_have_count(0)
    await _not_reloaded(page)
    assert page_factory.errors(page) == []
    await api.http.aclose()
