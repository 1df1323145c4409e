"""Accessibility of the console's main pages in a real browser: a label (accessible name) on
every input, a name on every button and link, one heading per page, the language set on the
page, statuses carried by words, charts with a text alternative, sign-in by keyboard alone, and
no sideways scrolling on a phone."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from playwright.async_api import Page, expect

from domain.status import OrderStatus
from services.tracking import TrackingLinks
from tests.api.conftest import Api
from tests.api.flows import create, wait_status
from tests.browser.conftest import PHONE, Live, PageFactory
from tests.console import PASSWORD, add_user, sign_in_browser
from tests.factories import order_payload
from tests.keys import TEST_RING

AUDIT = """() => {
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const named = (el) => (el.getAttribute("aria-label") || "").trim() ||
    (el.getAttribute("aria-labelledby") || "").trim() || (el.getAttribute("title") || "").trim();
  const problems = [];
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden" || !visible(el)) continue;
    if (!(el.labels && el.labels.length) && !named(el))
      problems.push(`unlabelled ${el.tagName.toLowerCase()} name=${el.name}`);
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (!visible(el)) continue;
    if (!el.textContent.trim() && !named(el)) problems.push(`nameless ${el.outerHTML}`);
  }
  for (const el of document.querySelectorAll(".badge")) {
    if (!el.textContent.trim()) problems.push("a badge without a word");
  }
  for (const el of document.querySelectorAll("svg")) {
    const alt = el.getAttribute("aria-label") || el.querySelector("title");
    if (!alt && el.getAttribute("aria-hidden") !== "true") problems.push("svg without text");
  }
  for (const el of document.querySelectorAll("img")) {
    if (!el.hasAttribute("alt")) problems.push(`img without alt ${el.src}`);
  }
  if (document.querySelectorAll("h1").length !== 1) problems.push("not exactly one h1");
  if (!document.documentElement.lang) problems.push("no lang on <html>");
  return problems;
}"""


async def _audit(page: Page, path: str) -> list[str]:
    return [f"{path}: {p}" for p in await page.evaluate(AUDIT)]


async def _orders(live: Live) -> tuple[str, str]:
    """One order waiting for approval, one shipped (for the tracking page)."""
    api = Api(http=httpx.AsyncClient(base_url=live.base_url), keys=live.keys, stack=live.stack)
    payload = order_payload(lines=[{"sku": "WIDGET-1", "quantity": 10, "unit_price": "900.00"}])
    await live.stack.bureau.set_profile(
        payload["customer"]["id"], score=900, credit_limit=Decimal(1_000_000)
    )
    waiting = await create(api, payload)
    shipped = await create(api, order_payload())
    await wait_status(api, waiting["id"], OrderStatus.AWAITING_APPROVAL)
    await wait_status(api, shipped["id"], OrderStatus.FULFILLING)
    await api.http.aclose()
    return waiting["id"], shipped["id"]


async def test_main_pages_are_labelled_named_and_fit_a_phone(
    live: Live, page_factory: PageFactory
) -> None:
    waiting, shipped = await _orders(live)
    await add_user(live.stack.sessions, "ally-admin", ["admin"], [1, 2, 3])
    token = TrackingLinks(TEST_RING, live.base_url, live.stack.settings.tracking_link_ttl)
    paths = [
        "/console/inbox",
        "/console/orders",
        f"/console/orders/{waiting}",
        "/console/orders/new",
        "/console/dashboard",
        "/console/admin/users",
        "/console/me",
    ]
    problems: list[str] = []
    for viewport in (None, PHONE):
        page = await (page_factory(viewport=viewport) if viewport else page_factory())
        await page.goto(live.url("/console/sign-in"))
        problems += await _audit(page, "/console/sign-in")
        await sign_in_browser(page, live.base_url, "ally-admin")
        for path in paths:
            await page.goto(live.url(path))
            await expect(page.locator("h1")).to_be_visible()
            problems += await _audit(page, path)
            if viewport:
                width = await page.evaluate("document.documentElement.scrollWidth")
                if width > PHONE["width"]:
                    problems.append(f"{path}: {width} px wide on a {PHONE['width']} px phone")
        await page.goto(token.url(shipped))
        await expect(page.locator("h1")).to_be_visible()
        problems += await _audit(page, "/track/…")
        assert page_factory.errors(page) == []
    assert problems == []


async def test_sign_in_by_keyboard_alone(live: Live, page_factory: PageFactory) -> None:
    await add_user(live.stack.sessions, "kai-support", ["support"])
    page = await page_factory()
    await page.goto(live.url("/console/sign-in"))
    assert await page.evaluate("document.activeElement.id") == "username"  # autofocus
    await page.keyboard.type("kai-support")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "password"
    await page.keyboard.type(PASSWORD)
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    await expect(page.locator("h1")).to_be_visible()
    assert "/console/sign-in" not in page.url
    # on every page the first Tab stop skips the header and navigation
    await page.keyboard.press("Tab")
    focused: Any = await page.evaluate("document.activeElement.textContent.trim()")
    assert focused == "Skip to content"
    # the focus is visible: the stylesheet gives :focus-visible an outline
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "content"
