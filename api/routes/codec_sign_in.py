"""The codec's browser sign-in: staff paste a support or admin key once and keep a session.

``GET /codec/sign-in`` serves the form, ``POST /codec/sign-in`` checks the key and sets the
session cookie (``api.session``: sealed key id, principal and expiry, never the key),
``POST /codec/sign-out`` clears it. The forms are accepted only from this site's own origin.
The codec routes (``api.routes.codec``) accept the session in place of a bearer key.
"""

from __future__ import annotations

import html
import time
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from api.deps import ServicesDep, public
from api.errors import ApiError
from api.session import (
    COOKIE,
    SessionClaims,
    clear_session_cookie,
    cookie_secure,
    from_allowed_origin,
    own_origin,
    seal,
    set_session_cookie,
    unseal,
)
from config import Settings
from services.auth import AccessRule, Principal, Role
from services.context import Services
from services.staff_sessions import SessionKeys

PREFIX = "/codec"
MAX_FORM = 4096
# Support and admin (always) with keys that carry no scopes; a session counts as its key.
CODEC_RULE = AccessRule(roles=frozenset({Role.SUPPORT}), scope=None, own=False)
router = APIRouter(prefix=PREFIX, tags=["codec"])


async def session_keys(request: Request) -> SessionKeys:
    keys: SessionKeys = request.app.state.session_keys
    return keys


async def session_principal(request: Request, services: Services, keys: SessionKeys) -> Principal:
    challenge = {"WWW-Authenticate": "Bearer"}
    value = request.cookies.get(COOKIE)
    if not value:
        raise ApiError(
            401,
            "unauthorized",
            f"missing bearer API key or sign-in session (sign in at {PREFIX}/sign-in)",
            headers=challenge,
        )
    claims = unseal(services.keyring, value)
    if claims is None:
        raise ApiError(
            401,
            "unauthorized",
            f"the sign-in session is invalid or has expired: sign in again at {PREFIX}/sign-in",
            headers=challenge,
        )
    ui = services.settings.temporal_ui_origin
    if not from_allowed_origin(request, ui, own_origin(request)):
        raise ApiError(403, "forbidden", f"a sign-in session is accepted only from {ui}")
    principal = await keys.principal(services.sessions, claims.key_id)
    if principal is None or principal.name != claims.principal:
        raise ApiError(
            401,
            "unauthorized",
            "the API key of this sign-in session was revoked or has expired",
            headers=challenge,
        )
    return principal


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes ``limit`` bytes (never buffering more than that)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


# Browser pages, open to anyone (the form checks the key), not part of the JSON API's schema.
PAGE: dict[str, Any] = {
    "response_class": HTMLResponse,
    "dependencies": [Depends(public)],
    "include_in_schema": False,
}
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}"
    "input{font:inherit;width:100%;padding:.4rem;box-sizing:border-box}"
    "button{font:inherit;padding:.4rem 1rem;margin-top:.6rem}"
    ".error{color:#a00}code{background:#eee;padding:0 .2rem}"
)


def _page(request: Request, body: str, status_code: int = 200) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    ui = html.escape(settings.temporal_ui_origin)
    endpoint = html.escape(own_origin(request) + PREFIX)
    if own_origin(request) == settings.temporal_ui_origin:  # make run: UI and codec, one origin
        how = f"""<p>The <a href="{ui}">Temporal UI</a> is served from this same origin and
decodes through <code>{endpoint}</code>, so it sends this sign-in by itself: nothing to set in
the UI. Histories then show decoded payloads; without a valid sign-in they show the encrypted
ones.</p>"""
    else:
        how = f"""<p>The <a href="{ui}">Temporal UI</a> decodes through <code>{endpoint}</code>
and sends this sign-in only if it includes cross-origin credentials. Where its server is not
set up to, once per browser: click the UI's <b>Codec Server</b> button (top bar), choose
<i>Use my browser setting and ignore Cluster-level setting</i>, enter <code>{endpoint}</code>,
switch on <i>Include cross-origin credentials</i> and Apply. Histories then show decoded
payloads; without a valid sign-in they show the encrypted ones and the UI says <i>Codec Server
could not connect</i>.</p>"""
    text = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Orderly: decode Temporal payloads</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body><h1>Decode Temporal payloads</h1>
{body}
<h2>In the Temporal UI</h2>
{how}
</body></html>"""
    return HTMLResponse(text, status_code=status_code, headers=PAGE_HEADERS)


def _form(error: str | None = None) -> str:
    problem = f'<p class="error">{html.escape(error)}</p>' if error else ""
    return f"""{problem}<form method="post" action="{PREFIX}/sign-in">
<label for="api_key">Your support or admin API key</label>
<input id="api_key" name="api_key" type="password" autocomplete="off" required autofocus>
<button type="submit">Sign in</button></form>
<p>The key stays here: the browser keeps only a signed session for this codec server.</p>"""


def _refuse(request: Request, status_code: int, message: str) -> HTMLResponse:
    request.state.audit_reason = message
    return _page(request, _form(message), status_code)


@router.get("/sign-in", **PAGE)
async def sign_in_page(
    request: Request,
    services: ServicesDep,
    keys: Annotated[SessionKeys, Depends(session_keys)],
) -> HTMLResponse:
    """A page where staff sign in with their key, so the Temporal UI can decode payloads."""
    value = request.cookies.get(COOKIE)
    claims = unseal(services.keyring, value) if value else None
    principal = await keys.principal(services.sessions, claims.key_id) if claims else None
    if claims is None or principal is None or principal.name != claims.principal:
        return _page(request, _form())
    until = datetime.fromtimestamp(claims.expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    roles = ", ".join(sorted(r.value for r in principal.roles))
    return _page(
        request,
        f"""<p>Signed in as <b>{html.escape(principal.name)}</b> ({html.escape(roles)})
until {until}.</p>
<form method="post" action="{PREFIX}/sign-out"><button type="submit">Sign out</button></form>""",
    )


@router.post("/sign-in", **PAGE)
async def sign_in(request: Request, services: ServicesDep) -> Any:
    """Check a support or admin key and keep a session cookie for it (never the key)."""
    if not from_allowed_origin(request, own_origin(request)):
        return _refuse(request, 403, "sign-in refused: the form was not sent from this site")
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    body = await read_limited(request, MAX_FORM)
    if kind != "application/x-www-form-urlencoded" or body is None:
        return _refuse(request, 400, "send the sign-in form (application/x-www-form-urlencoded)")
    try:
        form = parse_qs(body.decode(), max_num_fields=4)
    except (UnicodeDecodeError, ValueError):
        return _refuse(request, 400, "the sign-in form is malformed")
    key = (form.get("api_key") or [""])[0].strip()
    if not key:
        return _refuse(request, 400, "enter your API key")
    settings = services.settings
    principal = await services.key_cache.authenticate(
        services.sessions, key, ttl=settings.key_cache_ttl.total_seconds()
    )
    if principal is None or principal.expired() or principal.key_id is None:
        return _refuse(request, 401, "unknown, revoked or expired API key")
    request.state.principal = principal  # for the audit trail
    refusal = CODEC_RULE.refusal(principal)
    if refusal is not None:
        return _refuse(request, 403, f"decoding payloads is for support and admin: {refusal}")
    now = int(time.time())
    expires = now + int(settings.codec_session_ttl.total_seconds())
    if principal.expires_at is not None:
        expires = min(expires, int(principal.expires_at.timestamp()))
    claims = SessionClaims(key_id=principal.key_id, principal=principal.name, expires_at=expires)
    response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
    set_session_cookie(
        response,
        seal(services.keyring, claims),
        max_age=expires - now,
        path=PREFIX,
        secure=cookie_secure(request, settings.session_cookie_secure),
    )
    return response


@router.post("/sign-out", **PAGE)
async def sign_out(request: Request, services: ServicesDep) -> Any:
    """Forget this browser's session (revoking the key ends all of its sessions)."""
    if not from_allowed_origin(request, own_origin(request)):
        return _refuse(request, 403, "sign-out refused: the form was not sent from this site")
    response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
    secure = cookie_secure(request, services.settings.session_cookie_secure)
    clear_session_cookie(response, path=PREFIX, secure=secure)
    return response
