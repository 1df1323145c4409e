"""FastAPI dependencies: settings, database sessions, the Temporal client, the caller.

All are ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool, a thread hop
per dependency and request for what is an attribute lookup."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from api.auth import KeyCache, Principal, Role
from api.errors import ApiError
from api.orders import Orders
from config import Settings
from db.session import SessionFactory
from domain.approval import ApprovalPolicy


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _sessions(request: Request) -> SessionFactory:
    sessions: SessionFactory = request.app.state.sessions
    return sessions


async def _approval_policy(request: Request) -> ApprovalPolicy:
    policy: ApprovalPolicy = request.app.state.approval_policy
    return policy


async def _client(request: Request) -> Client:
    client: Client = request.app.state.client
    return client


async def _session(
    sessions: Annotated[SessionFactory, Depends(_sessions)],
) -> AsyncIterator[AsyncSession]:
    """A session whose transaction the request owns: committed on success, else rolled back."""
    async with sessions.begin() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionsDep = Annotated[SessionFactory, Depends(_sessions)]
SessionDep = Annotated[AsyncSession, Depends(_session)]
ClientDep = Annotated[Client, Depends(_client)]
ApprovalPolicyDep = Annotated[ApprovalPolicy, Depends(_approval_policy)]


async def _orders(
    client: ClientDep, sessions: SessionsDep, settings: SettingsDep, policy: ApprovalPolicyDep
) -> Orders:
    return Orders(client, sessions, settings, policy)


OrdersDep = Annotated[Orders, Depends(_orders)]

_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer ok_...`")


async def _principal(
    request: Request,
    sessions: SessionsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ApiError(401, "unauthorized", "missing bearer API key", headers=challenge)
    cache: KeyCache = request.app.state.key_cache
    principal = await cache.authenticate(sessions, credentials.credentials)
    if principal is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key", headers=challenge)
    return principal


PrincipalDep = Annotated[Principal, Depends(_principal)]


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency that lets through callers holding any of ``roles`` (admins always)."""
    allowed = {*roles, Role.ADMIN}

    async def check(principal: PrincipalDep) -> Principal:
        if not principal.has_any(allowed):
            need = " or ".join(sorted(r.value for r in allowed))
            raise ApiError(403, "forbidden", f"this action needs the role {need}")
        return principal

    return check
