"""Every console page declares who may open it, and the guard holds for all of them: no
session → the sign-in page; a user without the role → 403; an API key opens nothing here."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from api.app import create_app
from api.deps import route_rules
from services.auth import Role, create_api_key
from tests.api.conftest import services_for
from tests.conftest import Stack
from tests.console import add_user, sign_in_http

SAMPLES = {"order_id": "SO-NOPE-1", "user_id": str(2**31 - 1), "token": "nope"}


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLES.get(m.group(1), "x-1"), path)


@pytest.fixture
async def app_client(bare_stack: Stack) -> AsyncIterator[tuple[object, httpx.AsyncClient]]:
    app = create_app(bare_stack.settings, services=services_for(bare_stack))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://orderly.test") as http:
        yield app, http


def console_routes(app: object) -> list[tuple[str, str, frozenset[Role], bool]]:
    found = []
    for r in route_rules(app):  # type: ignore[arg-type]
        if r.path.startswith(("/console", "/track")):
            assert r.rule is not None, f"{r.method} {r.path} has no access rule"
            assert r.rule.console or r.rule.public, f"{r.method} {r.path}: not a console rule"
            found.append((r.method, r.path, r.rule.roles, r.rule.public))
    return found


async def test_every_console_page_has_a_console_rule(
    app_client: tuple[object, httpx.AsyncClient],
) -> None:
    app, _ = app_client
    routes = console_routes(app)
    assert ("GET", "/console/sign-in", frozenset(), True) in routes
    assert any(not public for *_, public in routes)


async def test_without_a_session_every_page_sends_to_sign_in(
    app_client: tuple[object, httpx.AsyncClient], bare_stack: Stack
) -> None:
    app, http = app_client
    key = await create_api_key(bare_stack.sessions, "access-admin", [Role.ADMIN])
    wrong = []
    for method, path, _roles, public in console_routes(app):
        if public:
            continue
        for headers in ({}, {"Authorization": f"Bearer {key}"}):
            answer = await http.request(method, concrete(path), headers=headers)
            target = answer.headers.get("location", "")
            if answer.status_code != 303 or not target.startswith("/console/sign-in"):
                wrong.append(f"{method} {path} {bool(headers)}: {answer.status_code} {target}")
    assert wrong == []


async def test_a_user_without_the_role_is_refused(
    app_client: tuple[object, httpx.AsyncClient], bare_stack: Stack
) -> None:
    app, _ = app_client
    clients: dict[Role, object] = {}
    wrong, checked = [], 0
    for method, path, roles, public in console_routes(app):
        if public or not roles:
            continue
        outsider = next(r for r in (Role.SYSTEM, Role.APPROVER, Role.MANAGER) if r not in roles)
        if outsider not in clients:
            await add_user(bare_stack.sessions, f"outsider-{outsider.value}", [outsider.value])
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # type: ignore[arg-type]
            http = httpx.AsyncClient(transport=transport, base_url="http://orderly.test")
            clients[outsider] = await sign_in_http(http, f"outsider-{outsider.value}")
        client = clients[outsider]
        if method == "GET":
            answer = await client.get(concrete(path))  # type: ignore[attr-defined]
        else:
            answer = await client.post(concrete(path), {})  # type: ignore[attr-defined]
        checked += 1
        if answer.status_code != 403:
            wrong.append(f"{method} {path} as {outsider}: {answer.status_code}")
    for client in clients.values():
        await client.http.aclose()  # type: ignore[attr-defined]
    assert wrong == []
    assert checked > 0
