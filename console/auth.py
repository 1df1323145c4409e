"""Who is signed in to the console, what they may open, and CSRF on every form.

Every console route depends on :func:`need` (a signed-in user holding one of the roles;
admins always) or :func:`open_page` (no sign-in: the sign-in and invite pages, the customer's
tracking page). :func:`need` also checks the CSRF token of every request that is not a read,
so no form can forget it: the token lives in the sealed session cookie and comes back as the
form field ``csrf_token`` or the ``X-CSRF-Token`` header (htmx sends it, see base.html). A
cross-site ``Origin`` is refused as well.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from api.session import own_origin, request_origin
from console import session as cookie
from services.auth import AccessRule, Role
from services.context import Services
from services.staff_sessions import SessionUser

SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Viewer:
    """The signed-in person of this request and their session's claims."""

    user: SessionUser
    claims: cookie.ConsoleClaims

    @property
    def roles(self) -> frozenset[Role]:
        return self.user.principal.roles

    def has(self, *roles: Role) -> bool:
        return self.user.principal.has_any(set(roles) | {Role.ADMIN})


class SignInRequired(Exception):
    """No live session: the handler sends the browser to the sign-in page."""


class NotPermitted(Exception):
    def __init__(self, need: str) -> None:
        super().__init__(need)
        self.need = need


class CsrfRefused(Exception):
    pass


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def viewer(request: Request) -> Viewer | None:
    """The live session's user (cached on the request), or None."""
    if hasattr(request.state, "viewer"):
        found: Viewer | None = request.state.viewer
        return found
    request.state.viewer = None
    value = request.cookies.get(cookie.COOKIE)
    services = _services(request)
    if not value:
        return None
    claims = cookie.unseal(services.keyring, value)
    settings = services.settings
    now = time.time()
    ttl = settings.console_session_ttl.total_seconds()
    idle = settings.console_idle_timeout.total_seconds()
    if claims is None or not claims.live(ttl, idle, now):
        request.state.session_ended = True
        return None
    user = await services.session_users.user(
        services.sessions, claims.user_id, claims.epoch, claims.csrf
    )
    if user is None:
        request.state.session_ended = True
        return None
    if now - claims.seen_at >= cookie.REFRESH_AFTER:
        claims = claims.seen(now)
        left = int(min(claims.issued_at + ttl - now, idle))
        request.state.console_cookie = (cookie.seal(services.keyring, claims), left)
    found = Viewer(user=user, claims=claims)
    request.state.viewer = found
    request.state.principal = user.principal  # for the audit trail
    return found


async def _csrf_token_sent(request: Request) -> str | None:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()  # Starlette keeps it: the route reads the same form
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    return sent


def same_origin(request: Request) -> bool:
    origin = request_origin(request)
    base = request.app.state.settings.public_base_url.rstrip("/")
    return origin is None or origin in (own_origin(request), base)


async def check_csrf(request: Request, expected: str) -> None:
    sent = await _csrf_token_sent(request)
    if not same_origin(request) or not sent or not hmac.compare_digest(sent, expected):
        request.state.audit_reason = "CSRF token missing or wrong, or a cross-site request"
        raise CsrfRefused()


Guard = Callable[..., Coroutine[Any, Any, Viewer]]


def need(*roles: Role) -> Guard:
    """A console page for signed-in users holding any of ``roles`` (none: any user)."""
    rule = AccessRule(roles=frozenset(roles), scope=None, own=False, console=True)

    async def check(request: Request) -> Viewer:
        found = await viewer(request)
        if found is None:
            raise SignInRequired()
        if request.method not in SAFE:
            await check_csrf(request, found.claims.csrf)
        if roles and not found.has(*roles):
            need_text = " or ".join(sorted(r.value for r in rule.allowed_roles))
            request.state.audit_reason = f"console: this page needs the role {need_text}"
            raise NotPermitted(need_text)
        return found

    check.access_rule = rule  # type: ignore[attr-defined]
    return check


async def open_page(request: Request) -> Viewer | None:
    """A console page anyone may open; the viewer if someone is signed in."""
    return await viewer(request)


open_page.access_rule = AccessRule(  # type: ignore[attr-defined]
    roles=frozenset(), scope=None, own=True, public=True
)

AnyUser = Annotated[Viewer, Depends(need())]
Approver = Annotated[Viewer, Depends(need(Role.APPROVER))]
Support = Annotated[Viewer, Depends(need(Role.SUPPORT))]
Staff = Annotated[Viewer, Depends(need(Role.APPROVER, Role.SUPPORT, Role.MANAGER))]
Manager = Annotated[Viewer, Depends(need(Role.MANAGER))]
Admin = Annotated[Viewer, Depends(need(Role.ADMIN))]
Sales = Annotated[Viewer, Depends(need(Role.SUPPORT, Role.SYSTEM))]
MaybeViewer = Annotated[Viewer | None, Depends(open_page)]
ServicesDep = Annotated[Services, Depends(_services)]
