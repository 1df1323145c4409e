"""The console's session cookie: which user, at which ``session_epoch``, with which CSRF token,
issued and last seen when. Sealed (AES-256-GCM, :func:`security.sealing.seal_data`) under its own
associated data, so it is signed and unreadable; HttpOnly, SameSite=Lax, ``Path=/console``.

It ends at ``console_session_ttl`` after sign-in, after ``console_idle_timeout`` without a page
view, at sign-out (the cookie is dropped and the session recorded as ended, so a copy of the
cookie stops working too), and when the user's epoch moves (password reset, role change,
deactivation). Both are checked on every request, see services.staff_sessions.SessionUsers.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace

from fastapi import Request, Response

from api.session import cookie_secure
from security.keyring import KeyRing
from security.sealing import seal_data, unseal_data

COOKIE = "orderly_console"
PRE_COOKIE = "orderly_console_pre"  # the sign-in form's CSRF token, before any session
AAD = b"orderly-console:v1"
PATH = "/console"
REFRESH_AFTER = 60  # seconds: re-issue the cookie (new "seen") at most this often


@dataclass(frozen=True)
class ConsoleClaims:
    user_id: int
    epoch: int
    csrf: str
    issued_at: int
    seen_at: int

    @classmethod
    def new(cls, user_id: int, epoch: int, now: float | None = None) -> ConsoleClaims:
        at = int(time.time() if now is None else now)
        return cls(user_id, epoch, secrets.token_urlsafe(24), at, at)

    def live(self, ttl: float, idle: float, now: float) -> bool:
        return self.issued_at + ttl > now and self.seen_at + idle > now

    def seen(self, now: float) -> ConsoleClaims:
        return replace(self, seen_at=int(now))


def seal(ring: KeyRing, claims: ConsoleClaims) -> str:
    data: dict[str, object] = {
        "u": claims.user_id,
        "n": claims.epoch,
        "c": claims.csrf,
        "i": claims.issued_at,
        "s": claims.seen_at,
    }
    return seal_data(ring, AAD, data)


def unseal(ring: KeyRing, value: str) -> ConsoleClaims | None:
    data = unseal_data(ring, AAD, value)
    if data is None:
        return None
    fields = (data.get("u"), data.get("n"), data.get("c"), data.get("i"), data.get("s"))
    u, n, c, i, s = fields
    if not (
        isinstance(u, int)
        and isinstance(n, int)
        and isinstance(c, str)
        and isinstance(i, int)
        and isinstance(s, int)
    ):
        return None
    return ConsoleClaims(u, n, c, i, s)


def set_cookie(request: Request, response: Response, value: str, max_age: int) -> None:
    secure = cookie_secure(request, request.app.state.settings.session_cookie_secure)
    response.set_cookie(
        COOKIE, value, max_age=max_age, path=PATH, secure=secure, httponly=True, samesite="lax"
    )


def clear_cookie(request: Request, response: Response) -> None:
    secure = cookie_secure(request, request.app.state.settings.session_cookie_secure)
    response.delete_cookie(COOKIE, path=PATH, secure=secure, httponly=True, samesite="lax")
