"""/docs and /redoc load nothing from outside the app, so they work on an air-gapped network."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tests.api.conftest import open_api
from tests.conftest import Stack

CONTENT_TYPES = {
    "script": ("text/javascript", "application/javascript"),
    "link": ("text/css", "image/png"),  # the stylesheet and the favicon
}


class Assets(HTMLParser):
    """The ``src``/``href`` of every ``<script>`` and ``<link>`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in CONTENT_TYPES:
            for name, value in attrs:
                if name in ("src", "href") and value:
                    self.found.append((tag, value))


def assets_of(html: str) -> list[tuple[str, str]]:
    parser = Assets()
    parser.feed(html)
    return parser.found


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_docs_pages_use_only_local_assets(bare_stack: Stack, path: str) -> None:
    async with open_api(bare_stack) as api:
        page = await api.http.get(path)  # no key: the docs are public
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "http://" not in page.text
        assert "https://" not in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]  # nor the bundles
        assets = assets_of(page.text)
        assert [tag for tag, _ in assets].count("script") == 1  # the vendored bundle
        for tag, url in assets:
            assert re.match(r"/[^/]", url), f"{tag} {url} is not a local path"
            asset = await api.http.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["content-type"].startswith(CONTENT_TYPES[tag]), url
            assert asset.content, url


async def test_swagger_ui_stylesheet_and_oauth2_redirect(bare_stack: Stack) -> None:
    async with open_api(bare_stack) as api:
        links = [url for tag, url in assets_of((await api.http.get("/docs")).text) if tag == "link"]
        assert "/static/docs/swagger-ui.css" in links
        redirect = await api.http.get("/docs/oauth2-redirect")
        assert redirect.status_code == 200
        assert "swaggerUIRedirectOauth2" in redirect.text


async def test_openapi_schema_still_served_without_the_docs_routes(bare_stack: Stack) -> None:
    async with open_api(bare_stack) as api:
        schema = await api.http.get("/openapi.json")
        assert schema.status_code == 200
        body = schema.json()
        assert body["info"]["title"] == "Orderly"
        assert "/orders" in body["paths"]
        assert not {"/docs", "/redoc", "/docs/oauth2-redirect"} & set(body["paths"])


async def test_the_asset_directory_is_not_listed(bare_stack: Stack) -> None:
    async with open_api(bare_stack) as api:
        assert (await api.http.get("/static/docs/")).status_code == 404
        assert (await api.http.get("/static/docs/missing.js")).status_code == 404
