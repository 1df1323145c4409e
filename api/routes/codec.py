"""The codec server: the Temporal UI (and ``temporal --codec-endpoint``) decode payloads here.

``POST /codec/decode`` and ``/codec/encode`` take and answer Temporal's proto-JSON ``Payloads``
(``{"payloads": [{"metadata": {"encoding": "<base64>"}, "data": "<base64>"}]}``); the UI calls
the configured endpoint + ``/decode`` (``/encode`` to send a signal), with ``X-Namespace``.
Only support and admin may: by bearer key, or by the browser session made at
``/codec/sign-in`` (``api.routes.codec_sign_in``), which the UI sends when served from the
same origin (``make run``'s devproxy.py) or when it includes cross-origin credentials. CORS
answers the Temporal UI's origin (``ORDERLY_TEMPORAL_UI_ORIGIN``) on these two paths only.
A payload this server cannot decrypt is an error naming why (an unknown key id, damage):
ciphertext never comes back as if it were decoded.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from pydantic import BaseModel, Field
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payload, Payloads

from api.deps import ServicesDep, _bearer, _principal
from api.errors import ApiError, ErrorBody
from api.routes import codec_sign_in
from api.routes.codec_sign_in import (
    CODEC_RULE,
    PREFIX,
    read_limited,
    session_keys,
    session_principal,
)
from config import Settings
from security.codec import EncryptionCodec, UndecodablePayload
from services.auth import Principal
from services.staff_sessions import SessionKeys

CODEC_PATHS = frozenset({f"{PREFIX}/encode", f"{PREFIX}/decode"})
MAX_BODY = 8 * 1024 * 1024  # a batch of payloads; Temporal refuses single payloads over 2 MB
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


async def _staff(
    request: Request,
    services: ServicesDep,
    keys: Annotated[SessionKeys, Depends(session_keys)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Support or admin, by bearer key (as every route) or by sign-in session."""
    if credentials is not None:
        principal = await _principal(request, services, credentials)
    else:
        principal = await session_principal(request, services, keys)
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


async def _payloads(request: Request) -> Payloads:
    """The body as ``Payloads``; 400 for anything else, 413 when too big."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, "unsupported_media_type", "the body must be application/json")
    body = await read_limited(request, MAX_BODY)
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
    app.include_router(codec_sign_in.router)
    app.add_middleware(CodecCORS, origin=settings.temporal_ui_origin)
