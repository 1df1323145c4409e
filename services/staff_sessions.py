"""Browser sessions of staff (the codec's sign-in, later the console): a session names an API
key by id, and the key is re-checked here, so revoking it ends its sessions within seconds."""

from __future__ import annotations

import time

from db.models import ApiKeyRow
from db.session import SessionFactory
from services.auth import Principal, principal_of


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
