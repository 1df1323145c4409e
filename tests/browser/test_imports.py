"""The import page in a real browser: support uploads a CSV through the form, the page's
progress bar follows the import (htmx polling, no reload) through intermediate values to 100 %,
the orders appear with their links, and the polling stops once the import has ended."""

from __future__ import annotations

import uuid

import httpx
from playwright.async_api import expect

from tests.api.test_templates import template_body
from tests.browser.conftest import DESKTOP, PHONE, Live, PageFactory, screenshot
from tests.browser.test_accessibility import AUDIT
from tests.console import add_user, sign_in_browser
from tests.import_files import csv_bytes, orders

LIVE_WAIT = 90_000  # ms: validation, the order starts, and the page's one-second polls
ORDERS = 20  # enough that the import is still running when its page opens
# Samples the bar's value every 100 ms (run by Playwright, so no inline script is needed).
WATCH = """() => {
  window.seenProgress = [];
  setInterval(() => {
    const bar = document.querySelector("#import-progress");
    if (bar) window.seenProgress.push(bar.value);
  }, 100);
}"""


async def test_an_upload_is_followed_to_100_percent(live: Live, page_factory: PageFactory) -> None:
    await add_user(live.stack.sessions, "imp-browser", ["support"])
    page = await page_factory()
    await sign_in_browser(page, live.base_url, "imp-browser")
    await page.goto(live.url("/console/imports"))
    await expect(page.get_by_role("link", name="Import", exact=True)).to_be_visible()
    await expect(page.get_by_role("heading", name="Upload a file")).to_be_visible()

    refs = f"BR{uuid.uuid4().hex[:6].upper()}"
    data = csv_bytes(orders(ORDERS, prefix=refs))
    await page.get_by_label("File (CSV or XLSX, at most 50 MiB)").set_input_files(
        {"name": "browser.csv", "mimeType": "text/csv", "buffer": data}
    )
    await page.get_by_label("Skip invalid orders").check()
    async with page.expect_navigation():
        await page.get_by_role("button", name="Upload and import").click()
    assert "/console/imports/IMP-" in page.url
    await page.evaluate("window.importPageMarker = 'kept'")  # a reload would lose it
    await page.evaluate(WATCH)

    bar = page.get_by_role("progressbar", name="Import progress")
    await expect(bar).to_be_visible()
    await expect(bar).to_have_attribute("value", "100", timeout=LIVE_WAIT)
    await expect(page.locator("#import-pct")).to_have_text("100%")
    await expect(page.locator("#import-live .import-status")).to_have_attribute(
        "data-status", "completed"
    )
    await expect(page.locator("#count-started")).to_have_text(str(ORDERS))
    links = page.locator("#import-orders a[href^='/console/orders/SO-']")
    await expect(links).to_have_count(ORDERS, timeout=LIVE_WAIT)  # swapped in by the last poll
    await expect(page.locator("#cancel-import")).to_have_count(0)
    await expect(page.locator("#import-live")).not_to_have_attribute("hx-trigger", "every 1s")
    assert await page.evaluate("window.importPageMarker") == "kept"
    seen = await page.evaluate("window.seenProgress")
    assert seen[0] < 100, seen  # the page opened while the import ran...
    assert len(set(seen)) >= 2, seen  # ...and the bar moved without a reload
    assert page_factory.errors(page) == []
    assert page_factory.console_errors(page) == []
    assert page_factory.blocked(page) == []
    await screenshot(page, "import-completed")

    first = links.first
    order_id = await first.inner_text()
    async with page.expect_navigation():
        await first.click()
    await expect(page.get_by_role("heading", name=f"Order {order_id}")).to_be_visible()


async def test_import_and_template_pages_are_labelled_and_fit_a_phone(
    live: Live, page_factory: PageFactory
) -> None:
    await add_user(live.stack.sessions, "imp-ally", ["support"])
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        res = await http.post(
            "/imports",
            files={"file": ("ally.csv", csv_bytes(orders(2, prefix="ALLY")))},
            data={"mode": "skip-invalid"},
            headers=live.auth("support-1"),
        )
        assert res.status_code == 202, res.text
        import_id = res.json()["id"]
        for sku, price in (("WIDGET-1", "19.99"), ("GADGET-2", "100.00")):
            body = {"currency": "EUR", "list_price": price, "valid_from": "2020-01-01T00:00:00Z"}
            put = await http.put(f"/prices/{sku}", json=body, headers=live.auth("support-1"))
            assert put.status_code in (200, 201), put.text
        made = await http.post("/templates", json=template_body(), headers=live.auth("support-1"))
        assert made.status_code == 201, made.text
    paths = [
        "/console/imports",
        f"/console/imports/{import_id}",
        f"/console/orders/new?template={made.json()['id']}",
    ]
    problems: list[str] = []
    for viewport in (DESKTOP, PHONE):
        page = await page_factory(viewport=viewport)
        await sign_in_browser(page, live.base_url, "imp-ally")
        for path in paths:
            await page.goto(live.url(path))
            await expect(page.locator("h1")).to_be_visible()
            problems += [f"{path}: {p}" for p in await page.evaluate(AUDIT)]
            width = await page.evaluate("document.documentElement.scrollWidth")
            if width > viewport["width"]:
                problems.append(f"{path}: {width} px wide on a {viewport['width']} px screen")
        assert page_factory.errors(page) == []
        assert page_factory.console_errors(page) == []
    await screenshot(page, "order-from-template-phone", full_page=True)
    assert problems == []
