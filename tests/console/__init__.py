"""Console test helpers: users with known passwords, and signing in over HTTP or in a browser."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from api.app import create_app
from db.session import SessionFactory
from services.users import Users
from tests.api.conftest import Api, create_keys, services_for
from tests.conftest import Stack

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_META = re.compile(r'<meta name="csrf-token" content="([^"]*)"')


async def add_user(
    sessions: SessionFactory,
    username: str,
    roles: list[str],
    levels: list[int] | None = None,
    *,
    language: str = "en",
    password: str = PASSWORD,
) -> int:
    """A user who can sign in at once with ``password``; returns the user id."""
    view, _ = await Users(sessions).invite(
        "test-admin",
        username,
        username.replace("-", " ").title(),
        roles,
        levels or [],
        language=language,
        password=password,
    )
    return view.id


@dataclass
class ConsoleClient:
    """An HTTP client signed in to the console; ``csrf`` is the session's form token."""

    http: httpx.AsyncClient
    csrf: str

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(path, **kwargs)

    async def post(
        self, path: str, data: dict[str, Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """A form post with the CSRF token (pass ``csrf=None`` in ``data`` to leave it out)."""
        fields = {"csrf_token": self.csrf, **(data or {})}
        fields = {k: v for k, v in fields.items() if v is not None}
        return await self.http.post(path, data=fields, **kwargs)


async def sign_in_http(
    http: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> ConsoleClient:
    """Sign ``http`` (cookies kept) in through the sign-in form; fails the test if refused."""
    page = await http.get("/console/sign-in")
    match = _CSRF.search(page.text)
    assert match, page.text[:500]
    answer = await http.post(
        "/console/sign-in",
        data={"username": username, "password": password, "csrf_token": match.group(1)},
    )
    assert answer.status_code == 303, answer.text[:500]
    me = await http.get("/console/me")
    meta = _META.search(me.text)
    assert meta is not None, me.text[:500]
    assert meta.group(1), "no CSRF token on a signed-in page"
    return ConsoleClient(http=http, csrf=meta.group(1))


async def sign_in_browser(
    page: Any, base_url: str, username: str, password: str = PASSWORD
) -> None:
    """Sign a Playwright page in through the form and wait for the landing page."""
    await page.goto(f"{base_url}/console/sign-in")
    await page.fill("#username", username)
    await page.fill("#password", password)
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    assert "/console/sign-in" not in page.url, await page.content()


def app_client(app: FastAPI) -> httpx.AsyncClient:
    """A client of its own (its own cookies) on the in-process app."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://orderly.test")


@dataclass
class Console:
    """The app over a test stack: the API with the test keys, and console users from
    ``users`` (name -> roles, levels), each signed in on first use in a client of their own."""

    app: FastAPI
    api: Api
    users: dict[str, tuple[list[str], list[int]]]
    languages: dict[str, str] = field(default_factory=dict)
    signed: dict[str, ConsoleClient] = field(default_factory=dict)

    async def user(self, name: str) -> ConsoleClient:
        if name not in self.signed:
            roles, levels = self.users[name]
            language = self.languages.get(name, "en")
            await add_user(self.api.stack.sessions, name, roles, levels, language=language)
            self.signed[name] = await sign_in_http(app_client(self.app), name)
        return self.signed[name]


@asynccontextmanager
async def open_console(
    stack: Stack,
    users: dict[str, tuple[list[str], list[int]]],
    languages: dict[str, str] | None = None,
) -> AsyncIterator[Console]:
    app = create_app(stack.settings, services=services_for(stack))
    async with app_client(app) as http:
        opened = Console(app, Api(http, await create_keys(stack.sessions), stack), users)
        opened.languages.update(languages or {})
        yield opened
        for client in opened.signed.values():
            await client.http.aclose()
