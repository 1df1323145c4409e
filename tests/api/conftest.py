from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from api.app import create_app
from api.auth import Role, create_api_key
from tests.conftest import Stack


@dataclass
class Api:
    http: httpx.AsyncClient
    keys: dict[str, str]
    stack: Stack

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


PRINCIPALS: dict[str, list[Role]] = {
    "eshop": [Role.SYSTEM],
    "lead-1": [Role.APPROVER],
    "lead-2": [Role.APPROVER],
    "support-1": [Role.SUPPORT],
    "root": [Role.ADMIN],
}


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[Api]:
    app = create_app(stack.settings, client=stack.client, sessions=stack.sessions)
    keys = {
        name: await create_api_key(stack.sessions, name, roles)
        for name, roles in PRINCIPALS.items()
    }
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://orderly.test") as http:
        yield Api(http=http, keys=keys, stack=stack)
