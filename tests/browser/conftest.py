"""Real-browser fixtures: the app served over HTTP, Debian's Chromium driven by Playwright.

Playwright never downloads a browser here: it launches the system Chromium
(``ORDERLY_CHROMIUM``, else ``/usr/bin/chromium``, else ``chromium`` on the PATH). Without one
these tests are skipped, unless ``ORDERLY_REQUIRE_BROWSER=1`` (as ``.ci/run`` sets), which fails
the run instead. Every page is offline but for the app: requests to any other host are aborted
and recorded (:meth:`PageFactory.blocked`), so a test can assert a page loaded nothing external.

The async fixtures share the session's event loop (``asyncio_default_*_loop_scope = "session"``
in pyproject.toml), like ``temporal_env``: the session-scoped browser, the app's server and the
test all run on it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Route,
    ViewportSize,
    async_playwright,
    expect,
)

from api.app import create_app
from tests.api.conftest import create_keys, services_for
from tests.conftest import Stack

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
LOOPBACK = frozenset({"127.0.0.1", "localhost"})
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}

# Playwright's 5 s default for expect() is too short on a loaded 2-core CI machine: ReDoc alone
# takes over 5 s there to parse the OpenAPI document and render its first heading.
expect.set_options(timeout=20_000)


def find_chromium() -> str | None:
    """The system Chromium to drive, or None."""
    configured = os.environ.get("ORDERLY_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    found = find_chromium()
    if found is None:
        message = (
            "Chromium not found (ORDERLY_CHROMIUM, /usr/bin/chromium, chromium on PATH): "
            "apt-get install chromium chromium-driver"
        )
        if os.environ.get("ORDERLY_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " and ORDERLY_REQUIRE_BROWSER=1")
        pytest.skip(message)
    return found


@pytest.fixture(params=["sqlite"])
def empty_database_url(tmp_path: Path) -> str:
    """Browser tests run on SQLite only (overrides the sqlite + postgresql fixture)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'orderly.db'}"


@dataclass
class Live:
    """The whole app served over real HTTP on a loopback port, over ``stack``."""

    base_url: str
    stack: Stack
    keys: dict[str, str]
    app: FastAPI

    def url(self, path: str) -> str:
        return self.base_url + path

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


@pytest.fixture
async def live(stack: Stack) -> AsyncIterator[Live]:
    app = create_app(stack.settings, services=services_for(stack))
    keys = await create_keys(stack.sessions)
    # Bind first and hand uvicorn the socket: no window for another process to take the port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,  # an open event stream must not hold the teardown
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn:{port}")
    try:
        async with asyncio.timeout(15):
            while not server.started:
                if task.done():  # start-up failed: its exception says why
                    task.result()
                    pytest.fail("uvicorn stopped before it started")
                await asyncio.sleep(0.02)
        yield Live(base_url=f"http://127.0.0.1:{port}", stack=stack, keys=keys, app=app)
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture(scope="session")
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    """Headless system Chromium for the session (one process, a context per page)."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=["--no-sandbox"]
        )
        yield launched
        await launched.close()


@dataclass
class _Opened:
    context: BrowserContext
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


class PageFactory:
    """``await page_factory()`` (or ``page_factory(viewport=PHONE)``): a fresh context (own
    cookies and storage) and page, with every non-loopback request aborted and recorded."""

    def __init__(self, browser: Browser) -> None:
        self._browser = browser
        self._opened: list[_Opened] = []

    async def __call__(self, *, viewport: ViewportSize = DESKTOP, locale: str = "en-US") -> Page:
        context = await self._browser.new_context(
            viewport=viewport,
            locale=locale,
            is_mobile=viewport["width"] < 600,
            service_workers="block",  # a service worker's fetches would bypass the routing
        )
        opened = _Opened(context)
        self._opened.append(opened)

        async def only_loopback(route: Route) -> None:
            url = route.request.url
            parts = urlsplit(url)
            if parts.scheme in ("http", "https") and parts.hostname in LOOPBACK:
                await route.continue_()
            else:
                opened.blocked.append(url)
                await route.abort("blockedbyclient")

        await context.route("**/*", only_loopback)
        page = await context.new_page()
        page.on("pageerror", lambda error: opened.errors.append(str(error)))
        page.on(
            "console",
            lambda message: (
                opened.console_errors.append(message.text) if message.type == "error" else None
            ),
        )
        return page

    def _of(self, page: Page) -> _Opened:
        for opened in self._opened:
            if opened.context is page.context:
                return opened
        raise LookupError("page not made by this factory")

    def blocked(self, page: Page) -> list[str]:
        """URLs the page's context tried to load from outside the app (all aborted)."""
        return list(self._of(page).blocked)

    def errors(self, page: Page) -> list[str]:
        """Uncaught JavaScript errors of the page's context."""
        return list(self._of(page).errors)

    def console_errors(self, page: Page) -> list[str]:
        """Errors the page's context logged (a refused Content-Security-Policy load is one)."""
        return list(self._of(page).console_errors)

    async def close(self) -> None:
        for opened in self._opened:
            await opened.context.close()
        self._opened.clear()


@pytest.fixture
async def page_factory(browser: Browser) -> AsyncIterator[PageFactory]:
    factory = PageFactory(browser)
    yield factory
    await factory.close()


async def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """Save ``test-output/screenshots/<name>.png`` (repository root) and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path
