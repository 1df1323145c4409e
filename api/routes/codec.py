"""The codec server: the Temporal UI (and ``temporal --codec-endpoint``) decode payloads here.

``POST /codec/decode`` and ``/codec/encode`` take and answer Temporal's proto-JSON ``Payloads``
(``{"payloads": [{"metadata": {"encoding": "<base64>"}, "data": "<base64>"}]}``); the UI calls
the configured endpoint + ``/decode`` (``/encode`` to send a signal), with ``X-Namespace``.
Only support and admin may: by bearer key, or by the browser session made at
``/codec/sign-in``, which the UI sends when served from the same origin (``make run``'s
devproxy.py) or when it includes cross-origin credentials. CORS answers the Temporal UI's
origin (``ORDERLY_TEMPORAL_UI_ORIGIN``) on these two paths and nobody else.
A payload this server cannot decrypt is an error naming why (an unknown key id, damage):
ciphertext never comes back as if it were decoded.
"""

from __future__ import annotations

import html
import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from pydantic import BaseModel, Field
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payload, Payloads

from api.deps import ServicesDep, _bearer, _principal, public
from api.errors import ApiError, ErrorBody
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
from security.codec import EncryptionCodec, UndecodablePayload
from services.auth import AccessRule, Principal, Role
from services.context import Services
from services.staff_sessions import SessionKeys

PREFIX = "/codec"
CODEC_PATHS = frozenset({f"{PREFIX}/encode", f"{PREFIX}/decode"})
MAX_BODY = 8 * 1024 * 1024  # a batch of payloads; Temporal refuses single payloads over 2 MB
MAX_FORM = 4096
# Support and admin (always) with keys that carry no scopes; a session counts as its key.
CODEC_RULE = AccessRule(roles=frozenset({Role.SUPPORT}), scope=None, own=False)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 413, 415, 422)
}
router = APIRouter(prefix=PREFIX, tags=["codec"])


class PayloadJson(BaseModel):
    """One ``temporal.api.common.v1.Payload`` in proto JSON: bytes as base64."""

    metadata: dict[str, str] = Field(
        default_factory=dict, examples=[{"encoding": "anNvbi9wbGFpbg=="}]
    )
    data: str = Field(default="", examples=["eyJuYW1lIjogIkFkYSJ9"])


class PayloadsJson(BaseModel):
    """``temporal.api.common.v1.Payloads`` in proto JSON."""

    payloads: list[PayloadJson] = Field(default_factory=list)


# The body is read as proto JSON (not by pydantic); this documents it in OpenAPI.
BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PayloadsJson"}}},
    }
}


# --------------------------------------------------------------------------------- who


async def _session_keys(request: Request) -> SessionKeys:
    keys: SessionKeys = request.app.state.session_keys
    return keys


async def _session_principal(request: Request, services: Services, keys: SessionKeys) -> Principal:
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


async def _staff(
    request: Request,
    services: ServicesDep,
    keys: Annotated[SessionKeys, Depends(_session_keys)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Support or admin, by bearer key (as every route) or by sign-in session."""
    if credentials is not None:
        principal = await _principal(request, services, credentials)
    else:
        principal = await _session_principal(request, services, keys)
        request.state.principal = principal  # for the audit trail
    refusal = CODEC_RULE.refusal(principal)
    if refusal is not None:
        raise ApiError(403, "forbidden", refusal)
    return principal


_staff.access_rule = CODEC_RULE  # type: ignore[attr-defined]  # read by api.deps.rule_of
Staff = Annotated[Principal, Depends(_staff)]
Namespace = Annotated[
    str | None,
    Header(
        alias="X-Namespace",
        max_length=255,
        description="Sent by the Temporal UI; one key ring serves every namespace.",
    ),
]


# ------------------------------------------------------------------------------ codec


async def _read(request: Request, limit: int) -> bytes | None:
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


async def _payloads(request: Request) -> Payloads:
    """The body as ``Payloads``; 400 for anything else, 413 when too big."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, "unsupported_media_type", "the body must be application/json")
    body = await _read(request, MAX_BODY)
    if body is None:
        raise ApiError(413, "too_large", f"the body is over {MAX_BODY} bytes")
    try:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, not {type(data).__name__}")
        return json_format.ParseDict(data, Payloads())
    except (json_format.Error, ValueError, RecursionError) as exc:
        reason = str(exc) or type(exc).__name__
        raise ApiError(
            400,
            "malformed",
            f"body: not a Temporal Payloads message in proto JSON: {reason}",
            fields=[{"field": "body", "reason": reason}],
        ) from exc


def _answer(payloads: list[Payload]) -> JSONResponse:
    return JSONResponse({"payloads": [json_format.MessageToDict(p) for p in payloads]})


@router.post(
    "/decode",
    response_model=PayloadsJson,
    responses=ERRORS,
    openapi_extra=BODY_DOC,
)
async def decode(
    request: Request, _: Staff, services: ServicesDep, _ns: Namespace = None
) -> JSONResponse:
    """Decrypt payloads (others pass unchanged); 422 names a payload that cannot be, and why."""
    codec = EncryptionCodec(services.keyring)
    out = []
    for i, payload in enumerate((await _payloads(request)).payloads):
        try:
            out.append(codec.decode_one(payload))
        except (UndecodablePayload, DecodeError) as exc:
            reason = f"cannot be decrypted: {exc}"
            raise ApiError(
                422,
                "undecodable_payload",
                f"payloads[{i}] {reason}",
                fields=[{"field": f"payloads[{i}]", "reason": reason}],
            ) from exc
    return _answer(out)


@router.post(
    "/encode",
    response_model=PayloadsJson,
    responses=ERRORS,
    openapi_extra=BODY_DOC,
)
async def encode(
    request: Request, _: Staff, services: ServicesDep, _ns: Namespace = None
) -> JSONResponse:
    """Encrypt payloads under the current key (the UI's signal and schedule inputs)."""
    codec = EncryptionCodec(services.keyring)
    return _answer([codec.encode_one(p) for p in (await _payloads(request)).payloads])


# ---------------------------------------------------------------------------- sign-in

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
    keys: Annotated[SessionKeys, Depends(_session_keys)],
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
    body = await _read(request, MAX_FORM)
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


# ------------------------------------------------------------------------------- wiring


class CodecCORS:
    """CORS for the Temporal UI's origin on the codec paths only (credentials allowed, since
    the UI may send the sign-in cookie); every other path and origin gets no CORS headers."""

    def __init__(self, app: ASGIApp, origin: str) -> None:
        self._app = app
        self._cors = CORSMiddleware(
            app,
            allow_origins=[origin],
            allow_methods=["POST"],
            allow_headers=["authorization", "content-type", "x-namespace"],
            allow_credentials=True,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in CODEC_PATHS:
            await self._cors(scope, receive, send)
        else:
            await self._app(scope, receive, send)


def install(app: FastAPI, settings: Settings) -> None:
    """The codec routes, their CORS, and the cache of keys behind sign-in sessions."""
    app.state.session_keys = SessionKeys(ttl=settings.key_cache_ttl.total_seconds())
    app.include_router(router)
    app.add_middleware(CodecCORS, origin=settings.temporal_ui_origin)
