"""Bearer API keys, stored as sha256 hashes, mapping to a principal with roles."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel
from sqlalchemy import select

from db.models import ApiKeyRow
from db.session import SessionFactory


class Role(StrEnum):
    SYSTEM = "system"  # e-shop, ERP, POS, CSV import, payment and carrier webhooks
    APPROVER = "approver"
    SUPPORT = "support"
    ADMIN = "admin"


class Principal(BaseModel):
    name: str
    roles: frozenset[Role]
    approval_levels: frozenset[int] = frozenset()

    def has_any(self, roles: set[Role]) -> bool:
        return bool(self.roles & roles)


KEY_PREFIX = "ok_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(
    sessions: SessionFactory, principal: str, roles: list[Role], approval_levels: Sequence[int] = ()
) -> str:
    """Create a key for ``principal`` (approvers with their levels); the plaintext is returned
    once and never stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    async with sessions.begin() as session:
        session.add(
            ApiKeyRow(
                key_hash=hash_key(key),
                principal=principal,
                roles=[r.value for r in roles],
                approval_levels=sorted(set(approval_levels)),
                active=True,
                created_at=datetime.now(UTC),
            )
        )
    return key


class KeyCache:
    """Principals of recently seen keys, so a request costs no database read for auth.

    A revoked key stops working within ``ttl`` seconds.
    """

    def __init__(self, ttl: float = 30.0, size: int = 10_000) -> None:
        self._ttl, self._size = ttl, size
        self._entries: dict[str, tuple[float, Principal]] = {}

    async def authenticate(self, sessions: SessionFactory, key: str) -> Principal | None:
        digest = hash_key(key)
        now = time.monotonic()
        hit = self._entries.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        principal = await authenticate(sessions, key)
        if principal is not None:
            if len(self._entries) >= self._size:
                self._entries.clear()
            self._entries[digest] = (now + self._ttl, principal)
        return principal


async def authenticate(sessions: SessionFactory, key: str) -> Principal | None:
    async with sessions() as session:
        row = await session.scalar(
            select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(key), ApiKeyRow.active)
        )
    if row is None:
        return None
    return Principal(
        name=row.principal,
        roles=frozenset(Role(r) for r in row.roles),
        approval_levels=frozenset(row.approval_levels),
    )
