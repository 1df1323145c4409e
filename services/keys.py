"""API key management: create, list, revoke, rotate. The admin API and the CLI share it.

A key's plaintext is returned once, when it is made; afterwards only its prefix identifies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, EmailStr, Field, field_validator, model_validator
from sqlalchemy import select

from db.models import ApiKeyRow
from db.session import SessionFactory
from services.auth import KeyCache, Principal, Role, Scope, new_key_row
from services.errors import Kind, ServiceError, invalid, not_allowed, not_found

PRINCIPAL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$"
_KNOWN_SCOPES = frozenset(s.value for s in Scope)


class KeyStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class KeySpec(BaseModel):
    """A key to create: who it acts as, its roles, and what narrows it."""

    principal: str = Field(
        pattern=PRINCIPAL_PATTERN,
        description="The name the key acts as (an order's `created_by`); an e-shop's source.",
    )
    roles: list[Role] = Field(min_length=1)
    approval_levels: list[int] = Field(default_factory=list, description="Approvers only.")
    scopes: list[Scope] = Field(
        default_factory=list, description="Empty: everything the roles allow."
    )
    expires_at: datetime | None = Field(default=None, description="None: never expires.")
    description: str = Field(default="", max_length=200)
    email: EmailStr | None = Field(
        default=None, description="The principal's address: approval reminders of its levels."
    )

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """A time without a zone is UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _levels_for_approvers(self) -> KeySpec:
        if self.approval_levels and Role.APPROVER not in self.roles:
            raise ValueError("approval_levels need the role approver")
        if any(not 1 <= level <= 9 for level in self.approval_levels):
            raise ValueError("approval_levels must be between 1 and 9")
        return self


class KeyInfo(BaseModel):
    """A key as listed: never its secret, only the prefix that identifies it."""

    id: int
    prefix: str = Field(description="The key's first characters, e.g. ok_AbCdEf123.")
    principal: str
    roles: list[Role]
    approval_levels: list[int]
    scopes: list[Scope]
    description: str
    email: str | None = None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="Updated at most once a minute.")
    revoked_at: datetime | None
    status: KeyStatus


class NewKey(KeyInfo):
    key: str = Field(description="The key itself: shown this once, never stored.")


def _info(row: ApiKeyRow, now: datetime) -> KeyInfo:
    if row.revoked_at is not None or not row.active:
        status = KeyStatus.REVOKED
    elif row.expires_at is not None and row.expires_at <= now:
        status = KeyStatus.EXPIRED
    else:
        status = KeyStatus.ACTIVE
    return KeyInfo(
        id=row.id,
        prefix=row.prefix,
        principal=row.principal,
        roles=[Role(r) for r in row.roles],
        approval_levels=list(row.approval_levels),
        scopes=[Scope(s) for s in row.scopes if s in _KNOWN_SCOPES],
        description=row.description,
        email=row.email,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        status=status,
    )


def check_within(by: Principal | None, roles: Sequence[str], scopes: Sequence[str]) -> None:
    """A key with scopes (e.g. an automation holding ``keys:admin``) may only hand out keys
    within its own roles and scopes, never a broader one (nor rotate one): 403 otherwise."""
    if by is None or not by.scopes - {Scope.ORDERS_OWN}:
        return  # an unscoped admin (or the CLI, which has database access anyway)
    wanted_roles = {Role(r) for r in roles}
    wanted_scopes = {Scope(s) for s in scopes}
    if wanted_roles <= by.roles and wanted_scopes and wanted_scopes <= by.scopes:
        return
    raise ServiceError(
        Kind.FORBIDDEN,
        "a key with scopes may only create or rotate keys within its own roles and scopes "
        f"(roles {', '.join(sorted(by.roles))}; scopes {', '.join(sorted(by.scopes))})",
        code="forbidden",
    )


def _new(key: str, row: ApiKeyRow, now: datetime) -> NewKey:
    return NewKey(key=key, **_info(row, now).model_dump())


class Keys:
    """API keys as admins manage them. ``cache``: this process's key cache, which forgets a
    revoked or rotated key at once (other processes see it within their cache TTL)."""

    def __init__(self, sessions: SessionFactory, cache: KeyCache | None = None) -> None:
        self._sessions, self._cache = sessions, cache

    async def create(self, spec: KeySpec, by: Principal | None = None) -> NewKey:
        check_within(by, [r.value for r in spec.roles], [sc.value for sc in spec.scopes])
        now = datetime.now(UTC)
        if spec.expires_at is not None and spec.expires_at <= now:
            raise invalid("expires_at", "must be in the future")
        key, row = new_key_row(
            spec.principal,
            spec.roles,
            spec.approval_levels,
            scopes=spec.scopes,
            expires_at=spec.expires_at,
            description=spec.description,
            email=spec.email,
        )
        async with self._sessions.begin() as session:
            session.add(row)
        return _new(key, row, now)

    async def list(
        self, *, principal: str | None = None, include_revoked: bool = True
    ) -> Sequence[KeyInfo]:
        """Every key (or ``principal``'s), oldest first, without secrets."""
        stmt = select(ApiKeyRow).order_by(ApiKeyRow.id)
        if principal is not None:
            stmt = stmt.where(ApiKeyRow.principal == principal)
        if not include_revoked:
            stmt = stmt.where(ApiKeyRow.active, ApiKeyRow.revoked_at.is_(None))
        async with self._sessions() as session:
            rows = list(await session.scalars(stmt))
        now = datetime.now(UTC)
        return [_info(r, now) for r in rows]

    async def get(self, key_id: int) -> KeyInfo:
        async with self._sessions() as session:
            row = await session.get(ApiKeyRow, key_id)
        if row is None:
            raise not_found(f"API key {key_id}")
        return _info(row, datetime.now(UTC))

    async def revoke(self, key_id: int) -> KeyInfo:
        """Revoke at once (again: no change). The next request with the key gets 401."""
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            row = await session.get(ApiKeyRow, key_id, with_for_update=True)
            if row is None:
                raise not_found(f"API key {key_id}")
            if row.revoked_at is None:
                row.revoked_at, row.active = now, False
        self._forget(key_id)
        return _info(row, now)

    async def rotate(self, key_id: int, overlap: timedelta, by: Principal | None = None) -> NewKey:
        """A new key with the same principal, roles, levels, scopes and lifetime; the old one
        keeps working for ``overlap``, then expires (sooner if it expired sooner anyway)."""
        if overlap < timedelta(0):
            raise invalid("overlap", "must not be negative")
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            old = await session.get(ApiKeyRow, key_id, with_for_update=True)
            if old is None:
                raise not_found(f"API key {key_id}")
            check_within(by, old.roles, old.scopes)
            if old.rotated_to is not None:  # a second rotation would leave two successors
                raise not_allowed(
                    f"API key {key_id} was rotated already (to key {old.rotated_to}): rotate "
                    "that one, or revoke it and create a new key",
                    "rotated",
                    [],
                )
            current = _info(old, now).status
            if current is not KeyStatus.ACTIVE:
                raise not_allowed(
                    f"API key {key_id} is {current}: create a new key instead",
                    current.value,
                    [],
                )
            lifetime = old.expires_at - old.created_at if old.expires_at else None
            key, row = new_key_row(
                old.principal,
                [Role(r) for r in old.roles],
                old.approval_levels,
                scopes=[Scope(s) for s in old.scopes],
                expires_at=now + lifetime if lifetime else None,
                description=old.description,
                email=old.email,
            )
            session.add(row)
            await session.flush()  # the new key's id
            old.rotated_to = row.id
            ends = now + overlap
            old.expires_at = ends if old.expires_at is None else min(old.expires_at, ends)
        self._forget(key_id)
        return _new(key, row, now)

    def _forget(self, key_id: int) -> None:
        if self._cache is not None:
            self._cache.forget(key_id)
