"""Signed-in browser sessions of staff: the codec's sign-in now, the console's later.

The cookie holds the API key's id, the principal's name and an expiry, sealed with AES-256-GCM
under the key ring's current key with its own associated data (``orderly-session:v1``), so a
cookie can never pass for a Temporal payload or a wrapped data key, nor they for it. A changed,
forged or foreign cookie fails authentication; keys rotate like payloads do. The API key itself
is never in it. Whoever uses the session re-checks the key by id (``services.staff_sessions``),
so revoking the key ends its sessions. Cookies are HttpOnly, SameSite=Strict and path-scoped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request, Response

from security.keyring import KeyRing
from security.sealing import seal_data, unseal_data

COOKIE = "orderly_session"
AAD = b"orderly-session:v1"


@dataclass(frozen=True)
class SessionClaims:
    """What a session cookie says: which key signed in, as whom, until when (Unix seconds)."""

    key_id: int
    principal: str
    expires_at: int


def seal(ring: KeyRing, claims: SessionClaims) -> str:
    """The cookie value of a codec session."""
    return seal_data(ring, AAD, {"k": claims.key_id, "p": claims.principal, "e": claims.expires_at})


def unseal(ring: KeyRing, value: str, now: float | None = None) -> SessionClaims | None:
    """The claims of a cookie this ring sealed and that has not expired, else None."""
    data = unseal_data(ring, AAD, value)
    if data is None:
        return None
    try:
        claims = SessionClaims(key_id=data["k"], principal=data["p"], expires_at=data["e"])  # type: ignore[arg-type]
    except KeyError:
        return None
    valid = (
        isinstance(claims.key_id, int)
        and isinstance(claims.principal, str)
        and isinstance(claims.expires_at, int)
    )
    if not valid or claims.expires_at <= (time.time() if now is None else now):
        return None
    return claims


def own_origin(request: Request) -> str:
    """This server's origin as the browser addressed it (scheme and Host)."""
    return f"{request.url.scheme}://{request.url.netloc}"


def request_origin(request: Request) -> str | None:
    """The ``Origin`` of a browser request (from ``Referer`` if Origin is missing); None when
    neither is sent, as by curl or scripts; ``"null"`` for opaque origins."""
    origin = request.headers.get("origin")
    if origin is not None:
        return origin.strip()
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "null"
    return None


def from_allowed_origin(request: Request, *allowed: str) -> bool:
    """Whether a request that would act on a session comes from one of ``allowed`` (a
    request without Origin and Referer is no browser's, so no forgery: it passes)."""
    origin = request_origin(request)
    return origin is None or origin in allowed


def cookie_secure(request: Request, setting: bool | None) -> bool:
    return request.url.scheme == "https" if setting is None else setting


def set_session_cookie(
    response: Response, value: str, *, max_age: int, path: str, secure: bool
) -> None:
    response.set_cookie(
        COOKIE, value, max_age=max_age, path=path, secure=secure, httponly=True, samesite="strict"
    )


def clear_session_cookie(response: Response, *, path: str, secure: bool) -> None:
    response.delete_cookie(COOKIE, path=path, secure=secure, httponly=True, samesite="strict")
