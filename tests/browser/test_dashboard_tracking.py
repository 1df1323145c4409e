"""In a real browser: a manager's dashboard with its SVG charts, and a customer's tracking
page on a phone (a shipped order, then an expired link)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import httpx
from playwright.async_api import expect

from domain.status import OrderStatus
from services.tracking import links_for
from tests.api.conftest import Api, services_for
from tests.api.flows import carrier, create, wait_status
from tests.browser.conftest import PHONE, Live, PageFactory, screenshot
from tests.console import add_user, sign_in_browser
from tests.factories import order_payload

S = OrderStatus


async def _orders(live: Live, *, delivered: int, shipped: int) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        api = Api(http=http, keys=live.keys, stack=live.stack)
        made = [await create(api, order_payload()) for _ in range(delivered + shipped)]
        for i, order in enumerate(made):
            await wait_status(api, order["id"], S.FULFILLING)
            scans = ("picked_up", "in_transit", "delivered") if i < delivered else ("picked_up",)
            await carrier(api, order["id"], *scans)
        for i, order in enumerate(made):
            await wait_status(api, order["id"], S.COMPLETED if i < delivered else S.SHIPPED)
        return made


async def _no_sideways_scroll(page: Any) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width


async def test_manager_sees_the_dashboard_charts(live: Live, page_factory: PageFactory) -> None:
    await _orders(live, delivered=2, shipped=1)
    await add_user(live.stack.sessions, "mara-manager", ["manager"])
    page = await page_factory()
    await sign_in_browser(page, live.base_url, "mara-manager")
    await page.goto(live.url("/console/dashboard"))

    charts = page.locator("svg.chart-svg")
    await expect(charts).to_have_count(8)
    for i in range(8):
        await expect(charts.nth(i)).to_be_visible()
    orders_chart = page.get_by_role("img", name="Orders per day")
    await expect(orders_chart).to_be_visible()
    box = await orders_chart.bounding_box()
    assert box is not None
    assert box["width"] > 300
    await expect(page.locator('[data-figure="orders"]')).to_have_text("3")
    await expect(page.locator('[data-figure="on-time"]')).to_contain_text("100 %")
    await expect(page.get_by_text("no orders in this period")).to_have_count(0)

    # The period select swaps the charts in place (htmx) and keeps the URL shareable.
    await page.select_option("#days", "7")
    await page.get_by_role("button", name="Show").click()
    await expect(page).to_have_url(live.url("/console/dashboard?days=7"))
    await expect(charts).to_have_count(8)
    await expect(page.locator("#panel-orders_per_day table th[scope=row]")).to_have_count(7)

    assert page_factory.blocked(page) == []
    assert page_factory.errors(page) == []
    assert page_factory.console_errors(page) == []  # e.g. nothing refused by the CSP
    await screenshot(page, "dashboard", full_page=True)

    phone = await page_factory(viewport=PHONE)
    await sign_in_browser(phone, live.base_url, "mara-manager")
    await phone.goto(live.url("/console/dashboard"))
    await expect(phone.locator("svg.chart-svg").first).to_be_visible()
    await _no_sideways_scroll(phone)


async def test_tracking_page_on_a_phone_and_an_expired_link(
    live: Live, page_factory: PageFactory
) -> None:
    [order] = await _orders(live, delivered=0, shipped=1)
    links = links_for(services_for(live.stack))
    page = await page_factory(viewport=PHONE)
    response = await page.goto(live.url(f"/track/{links.token(order['id'])}"))
    assert response is not None
    assert response.status == 200

    await expect(page.get_by_role("heading", level=1)).to_have_text("Your order is on its way")
    await expect(page.get_by_text(f"Order {order['id']}").first).to_be_visible()
    await expect(page.locator('[data-figure="city"]')).to_have_text("London")
    await expect(page.locator('[data-figure="tracking"]')).to_be_visible()
    await expect(page.locator('[data-figure="expected"]')).to_be_visible()
    await expect(page.locator('[aria-current="step"]')).to_contain_text("Shipped")
    await expect(page.get_by_role("navigation")).to_have_count(0)
    await expect(page.get_by_text("12 Analytical Row")).to_have_count(0)
    await _no_sideways_scroll(page)
    assert page_factory.console_errors(page) == []
    await screenshot(page, "tracking-phone")

    expired = links.token(order["id"], now=time.time() - 7200, ttl=timedelta(hours=1))
    gone = await page.goto(live.url(f"/track/{expired}"))
    assert gone is not None
    assert gone.status == 410
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "This tracking link has expired"
    )
    await expect(page.get_by_text(order["id"])).to_have_count(0)
    await _no_sideways_scroll(page)
    await screenshot(page, "tracking-expired-phone")
