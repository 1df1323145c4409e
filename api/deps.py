"""FastAPI dependencies: the services, the use cases, the caller.

All are ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool, a thread hop
per dependency and request for what is an attribute lookup."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from services.approvals import Approvals
from services.auth import Principal, Role
from services.commands import Commands
from services.context import Services
from services.orders import Orders


async def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]


async def _orders(services: ServicesDep) -> Orders:
    return Orders(services)


async def _commands(services: ServicesDep) -> Commands:
    return Commands(services)


async def _approvals(services: ServicesDep) -> Approvals:
    return Approvals(services)


OrdersDep = Annotated[Orders, Depends(_orders)]
CommandsDep = Annotated[Commands, Depends(_commands)]
ApprovalsDep = Annotated[Approvals, Depends(_approvals)]

_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer ok_...`")


async def _principal(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ApiError(401, "unauthorized", "missing bearer API key", headers=challenge)
    principal = await services.key_cache.authenticate(services.sessions, credentials.credentials)
    if principal is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key", headers=challenge)
    request.state.principal = principal  # for the audit trail
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
