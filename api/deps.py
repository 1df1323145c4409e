"""FastAPI dependencies: the services, the use cases, the caller and its access rule.

All are ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool, a thread hop
per dependency and request for what is an attribute lookup."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from services.approvals import Approvals
from services.auth import PUBLIC, AccessRule, Principal, Role, Scope
from services.commands import Commands
from services.context import Services
from services.keys import Keys
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


async def _keys(services: ServicesDep) -> Keys:
    return Keys(services.sessions, services.key_cache)


OrdersDep = Annotated[Orders, Depends(_orders)]
CommandsDep = Annotated[Commands, Depends(_commands)]
ApprovalsDep = Annotated[Approvals, Depends(_approvals)]
KeysDep = Annotated[Keys, Depends(_keys)]

_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer ok_...`")


async def _principal(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ApiError(401, "unauthorized", "missing bearer API key", headers=challenge)
    principal = await services.key_cache.authenticate(
        services.sessions,
        credentials.credentials,
        ttl=services.settings.key_cache_ttl.total_seconds(),
    )
    if principal is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key", headers=challenge)
    if principal.expired():
        raise ApiError(401, "unauthorized", "API key expired", headers=challenge)
    request.state.principal = principal  # for the audit trail
    return principal


PrincipalDep = Annotated[Principal, Depends(_principal)]
Guard = Callable[..., Coroutine[Any, Any, Principal]]
ANY_ROLE = (Role.SYSTEM, Role.APPROVER, Role.SUPPORT)


def allow(*roles: Role, scope: Scope | None, own: bool = True) -> Guard:
    """The one access rule of a route, as a dependency: callers holding any of ``roles``
    (admins always) whose key, if it has scopes, includes ``scope``; ``own=False`` where the use
    case cannot limit an ``orders:own`` key to its orders (such keys are refused).

    The rule stays readable on the dependency (``access_rule``, see :func:`rule_of`)."""
    rule = AccessRule(roles=frozenset(roles), scope=scope, own=own)

    async def check(principal: PrincipalDep) -> Principal:
        refusal = rule.refusal(principal)
        if refusal is not None:
            raise ApiError(403, "forbidden", refusal)
        return principal

    check.access_rule = rule  # type: ignore[attr-defined]
    return check


async def public() -> None:
    """The rule of a route open to callers without a key: ``dependencies=[Depends(public)]``."""


public.access_rule = PUBLIC  # type: ignore[attr-defined]


def require(*roles: Role) -> Guard:
    """A roles-only rule: keys with scopes are refused. Prefer :func:`allow` with a scope."""
    return allow(*roles, scope=None, own=False)


@dataclass(frozen=True)
class RouteRule:
    method: str
    path: str
    name: str
    rule: AccessRule | None


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dep in dependant.dependencies:
        yield dep.call
        yield from _calls(dep)


def rule_of(dependant: Dependant) -> AccessRule | None:
    """The access rule a route's dependencies declare (None: the route has none)."""
    for call in _calls(dependant):
        rule = getattr(call, "access_rule", None)
        if isinstance(rule, AccessRule):
            return rule
    return None


def route_rules(app: FastAPI) -> list[RouteRule]:
    """Every API route (method and full path) with its access rule, as the app serves them."""
    found = []
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute):
            for method in sorted(route.methods or ()):
                found.append(
                    RouteRule(method, str(route.path), str(route.name), rule_of(route.dependant))
                )
    return found
