from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest

from api.app import create_app
from api.auth import Role, create_api_key
from config import load_policy
from db.session import SessionFactory
from services.context import Services
from tests.conftest import Stack


@dataclass
class Api:
    http: httpx.AsyncClient
    keys: dict[str, str]
    stack: Stack

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


PRINCIPALS: dict[str, tuple[list[Role], list[int]]] = {
    "eshop": ([Role.SYSTEM], []),
    "lead-1": ([Role.APPROVER], [1]),
    "lead-2": ([Role.APPROVER], [1]),
    "manager-1": ([Role.APPROVER], [2]),
    "finance-1": ([Role.APPROVER], [3]),
    "boss": ([Role.APPROVER], [1, 2, 3]),
    "rep-jane": ([Role.APPROVER], [1, 2]),  # the sales rep of the factories' orders
    "support-1": ([Role.SUPPORT], []),
    "root": ([Role.ADMIN], []),
}


def services_for(stack: Stack) -> Services:
    """The use cases' dependencies over the test stack's client and database."""
    return Services(
        settings=stack.settings,
        client=stack.client,
        sessions=stack.sessions,
        approval_policy=load_policy(stack.settings.approval_policy_file),
    )


async def create_keys(sessions: SessionFactory) -> dict[str, str]:
    """One API key per test principal."""
    return {
        name: await create_api_key(sessions, name, roles, levels)
        for name, (roles, levels) in PRINCIPALS.items()
    }


@asynccontextmanager
async def open_api(stack: Stack) -> AsyncIterator[Api]:
    """The HTTP API in-process over ``stack``, with a key per test principal."""
    app = create_app(stack.settings, services=services_for(stack))
    keys = await create_keys(stack.sessions)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://orderly.test") as http:
        yield Api(http=http, keys=keys, stack=stack)


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[Api]:
    async with open_api(stack) as opened:
        yield opened
