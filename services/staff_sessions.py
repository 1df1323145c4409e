"""Browser sessions of staff, re-checked on every request so that a change made anywhere ends
them within seconds: the codec's sign-in names an API key (revoking the key ends its sessions);
a console session names a user (a changed password, roles or active flag, or signing out,
ends it)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select

from db.models import ApiKeyRow, SignOutRow, UserRow
from db.session import SessionFactory
from services.auth import Principal, principal_of
from services.users import Language, principal_of_user


class SessionKeys:
    """The principal of the key behind a session, re-read from the key table at most every
    ``ttl`` seconds (unknown, revoked, expired or unreadable keys: None)."""

    def __init__(self, ttl: float = 5.0, size: int = 10_000) -> None:
        self._ttl, self._size = ttl, size
        self._entries: dict[int, tuple[float, Principal | None]] = {}

    async def principal(self, sessions: SessionFactory, key_id: int) -> Principal | None:
        now = time.monotonic()
        hit = self._entries.get(key_id)
        if hit is not None and hit[0] + self._ttl > now:
            found = hit[1]
        else:
            found = await _principal_of_key(sessions, key_id)
            if len(self._entries) >= self._size:
                self._entries.clear()
            self._entries[key_id] = (now, found)
        return None if found is None or found.expired() else found

    def forget(self, key_id: int) -> None:
        self._entries.pop(key_id, None)


async def _principal_of_key(sessions: SessionFactory, key_id: int) -> Principal | None:
    async with sessions() as session:
        row = await session.get(ApiKeyRow, key_id)
    if row is None or not row.active or row.revoked_at is not None:
        return None
    try:
        return principal_of(row)
    except ValueError:  # a role or scope this version does not know: not a session of ours
        return None


@dataclass(frozen=True)
class SessionUser:
    """The user behind a live console session."""

    user_id: int
    username: str
    display_name: str
    language: Language
    principal: Principal


def session_id(token: str) -> str:
    """How a session is named server-side: the sha256 of its random per-session token."""
    return hashlib.sha256(token.encode()).hexdigest()


async def sign_out(sessions: SessionFactory, user_id: int, token: str, until: datetime) -> None:
    """End the session whose token is ``token`` everywhere (a copied cookie too); the record
    is kept until ``until``, when the session would have expired anyway."""
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        await session.execute(delete(SignOutRow).where(SignOutRow.until <= now))
        await session.merge(SignOutRow(session_id=session_id(token), user_id=user_id, until=until))


class SessionUsers:
    """The user behind a session, re-read at most every ``ttl`` seconds with the sessions they
    signed out of; None when the user is gone, deactivated, their ``session_epoch`` moved past
    the session's, or the session was signed out."""

    def __init__(self, ttl: float = 5.0, size: int = 10_000) -> None:
        self._ttl, self._size = ttl, size
        self._entries: dict[int, tuple[float, UserRow | None, frozenset[str]]] = {}

    async def user(
        self, sessions: SessionFactory, user_id: int, epoch: int, token: str = ""
    ) -> SessionUser | None:
        now = time.monotonic()
        hit = self._entries.get(user_id)
        if hit is not None and hit[0] + self._ttl > now:
            _, row, ended = hit
        else:
            async with sessions() as session:
                row = await session.get(UserRow, user_id)
                if row is not None:
                    session.expunge(row)
                ended = frozenset(
                    await session.scalars(
                        select(SignOutRow.session_id).where(SignOutRow.user_id == user_id)
                    )
                )
            if len(self._entries) >= self._size:
                self._entries.clear()
            self._entries[user_id] = (now, row, ended)
        if row is None or not row.active or row.session_epoch != epoch or not row.password_hash:
            return None
        if token and session_id(token) in ended:
            return None
        return SessionUser(
            user_id=row.id,
            username=row.username,
            display_name=row.display_name,
            language="zh" if row.language == "zh" else "en",
            principal=principal_of_user(row),
        )

    def forget(self, user_id: int) -> None:
        self._entries.pop(user_id, None)
