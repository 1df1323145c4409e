"""/docs and /redoc render in a real browser with every external request blocked."""

from __future__ import annotations

import re

from playwright.async_api import expect

from tests.browser.conftest import PHONE, Live, PageFactory, screenshot

REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


async def test_swagger_ui_renders_offline(live: Live, page_factory: PageFactory) -> None:
    page = await page_factory()
    response = await page.goto(live.url("/docs"))
    assert response is not None
    assert response.status == 200

    await expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Orderly"))
    create = page.get_by_role("button", name="POST /orders Create Order")
    await expect(create).to_be_visible()
    await create.click()  # opens the operation: its request body schema, from /openapi.json
    await expect(page.get_by_role("button", name="Try it out")).to_be_visible()

    assert page_factory.blocked(page) == []
    assert page_factory.errors(page) == []
    assert page_factory.console_errors(page) == []
    await screenshot(page, "docs")


async def test_redoc_renders_offline(live: Live, page_factory: PageFactory) -> None:
    page = await page_factory()
    response = await page.goto(live.url("/redoc"))
    assert response is not None
    assert response.status == 200

    await expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Orderly"))
    await expect(page.get_by_role("menuitem", name="orders", exact=True)).to_be_visible()
    create = page.get_by_role("heading", level=2, name=re.compile(r"Create Order$"))
    await expect(create).to_be_visible()

    assert page_factory.blocked(page) == []
    assert page_factory.errors(page) == []
    # ReDoc's footer always asks cdn.redoc.ly for a logo: the page's CSP refuses it before any
    # request is made, and ReDoc drops the image. Nothing else may be refused.
    refused = page_factory.console_errors(page)
    assert all(REDOCLY_LOGO in message for message in refused), refused
    await expect(page.locator("img[alt='redocly logo']")).to_have_count(0)
    await screenshot(page, "redoc")


FETCH_CDN = """async (url) => {
    try { await fetch(url); return true; } catch { return false; }
}"""
CDN_CSS = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"


async def test_external_requests_are_blocked_and_recorded(
    live: Live, page_factory: PageFactory
) -> None:
    """The harness itself: a page without a CSP that reaches outside gets nothing, and the
    attempt is recorded; on /docs the page's own CSP refuses it before any request."""
    page = await page_factory(viewport=PHONE)
    await page.goto(live.url("/openapi.json"))
    assert await page.evaluate(FETCH_CDN, CDN_CSS) is False
    assert page_factory.blocked(page) == [CDN_CSS]

    docs = await page_factory(viewport=PHONE)
    await docs.goto(live.url("/docs"))
    assert await docs.evaluate(FETCH_CDN, CDN_CSS) is False
    assert page_factory.blocked(docs) == []
    assert any("Content Security Policy" in m for m in page_factory.console_errors(docs))
