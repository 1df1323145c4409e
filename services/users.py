"""People who use the console: invites, passwords (argon2), roles and approval levels, and
sign-in with a failure limit. A user is a :class:`~services.auth.Principal` like an API key's,
so the use cases treat both alike (an approver's level, self-approval, the audit trail)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, EmailStr, TypeAdapter, ValidationError
from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError

from db.models import ApiKeyRow, SignInFailureRow, UserRow
from db.session import SessionFactory
from services.auth import Principal, Role
from services.errors import Kind, ServiceError, invalid, not_found

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10
LANGUAGES = ("en", "zh")
Language = Literal["en", "zh"]
_hasher = PasswordHasher()
# Verified against when the user name is unknown, so both answers take as long.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class UserView(BaseModel):
    id: int
    username: str
    display_name: str
    roles: list[Role]
    approval_levels: list[int]
    language: Language
    email: str | None = None
    active: bool
    invited: bool  # an invite is open: no password set yet
    invite_expires_at: datetime | None
    created_at: datetime
    created_by: str
    last_sign_in_at: datetime | None


@dataclass(frozen=True)
class SignedIn:
    """A successful sign-in: what the session cookie keeps and the principal it stands for."""

    user_id: int
    epoch: int
    language: Language
    principal: Principal


class SignInRefused(Exception):
    """A refused sign-in: ``status`` 401 (wrong name or password) or 429 (too many failures)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


_EMAIL = TypeAdapter(EmailStr)


def check_email(value: str | None) -> str | None:
    """A user's address (approval reminders, owner notices), or None when empty."""
    if value is None or not value.strip():
        return None
    try:
        return str(_EMAIL.validate_python(value.strip()))
    except ValidationError:
        raise invalid("email", "not a valid email address") from None


def _view(row: UserRow) -> UserView:
    return UserView(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        roles=[Role(r) for r in row.roles],
        approval_levels=sorted(row.approval_levels),
        language="zh" if row.language == "zh" else "en",
        email=row.email,
        active=row.active,
        invited=row.password_hash is None,
        invite_expires_at=row.invite_expires_at,
        created_at=row.created_at,
        created_by=row.created_by,
        last_sign_in_at=row.last_sign_in_at,
    )


def principal_of_user(row: UserRow) -> Principal:
    return Principal(
        name=row.username,
        roles=frozenset(Role(r) for r in row.roles),
        approval_levels=frozenset(row.approval_levels),
    )


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME.match(name):
        raise invalid("username", "2-64 characters: lower-case letters, digits, '.', '_' or '-'")
    return name


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise invalid("password", f"must have at least {MIN_PASSWORD} characters")
    if len(password) > 256:
        raise invalid("password", "must have at most 256 characters")


def check_roles(roles: Iterable[str], levels: Iterable[int]) -> tuple[list[str], list[int]]:
    try:
        parsed = sorted({Role(r) for r in roles})
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise invalid("roles", f"unknown role; known roles: {known}") from None
    if not parsed:
        raise invalid("roles", "a user needs at least one role")
    level_list = sorted(set(levels))
    if any(lv < 1 or lv > 9 for lv in level_list):
        raise invalid("approval_levels", "levels are 1 to 9")
    if level_list and Role.APPROVER not in parsed and Role.ADMIN not in parsed:
        raise invalid("approval_levels", "only approvers hold approval levels")
    return [r.value for r in parsed], level_list


async def _hash(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)  # ~50 ms of CPU: off the loop


async def _verify(stored: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


class Users:
    """The console's people. Admin operations take the acting admin's name for the record."""

    def __init__(
        self,
        sessions: SessionFactory,
        *,
        invite_ttl: timedelta = timedelta(days=3),
        max_failures: int = 5,
        lockout: timedelta = timedelta(minutes=15),
    ) -> None:
        self._sessions = sessions
        self._invite_ttl, self._max_failures, self._lockout = invite_ttl, max_failures, lockout

    async def list(self) -> list[UserView]:
        async with self._sessions() as session:
            rows = await session.scalars(select(UserRow).order_by(UserRow.username))
            return [_view(r) for r in rows]

    async def get(self, user_id: int) -> UserView:
        async with self._sessions() as session:
            row = await session.get(UserRow, user_id)
        if row is None:
            raise not_found(f"user {user_id}")
        return _view(row)

    async def invite(
        self,
        actor: str,
        username: str,
        display_name: str,
        roles: Iterable[str],
        approval_levels: Iterable[int] = (),
        language: str = "en",
        password: str | None = None,
        email: str | None = None,
    ) -> tuple[UserView, str | None]:
        """A new user and the one-time invite token (shown once; only its hash is kept). With
        ``password`` (dev users, tests) the user can sign in at once and no invite is made."""
        name = check_username(username)
        role_values, levels = check_roles(roles, approval_levels)
        if not display_name.strip():
            raise invalid("display_name", "must not be empty")
        if language not in LANGUAGES:
            raise invalid("language", f"one of {', '.join(LANGUAGES)}")
        token = None if password is not None else secrets.token_urlsafe(24)
        now = datetime.now(UTC)
        row = UserRow(
            username=name,
            display_name=display_name.strip()[:120],
            roles=role_values,
            approval_levels=levels,
            language=language,
            email=check_email(email),
            active=True,
            session_epoch=0,
            created_at=now,
            created_by=actor,
        )
        if password is not None:
            check_password(password)
            row.password_hash = await _hash(password)
        else:
            assert token is not None
            row.invite_hash, row.invite_expires_at = _token_hash(token), now + self._invite_ttl
        async with self._sessions.begin() as session:
            taken = await session.scalar(
                select(func.count()).select_from(ApiKeyRow).where(ApiKeyRow.principal == name)
            )
            if taken:
                raise ServiceError(
                    Kind.CONFLICT, f"an API key is already named {name}: pick another name"
                )
            session.add(row)
            try:
                await session.flush()
            except IntegrityError:
                raise ServiceError(Kind.CONFLICT, f"user {name} already exists") from None
            return _view(row), token

    async def reinvite(self, user_id: int) -> tuple[UserView, str]:
        """A fresh invite (password reset): the old password and every session stop working."""
        token = secrets.token_urlsafe(24)
        async with self._sessions.begin() as session:
            row = await session.get(UserRow, user_id, with_for_update=True)
            if row is None:
                raise not_found(f"user {user_id}")
            row.password_hash = None
            row.invite_hash = _token_hash(token)
            row.invite_expires_at = datetime.now(UTC) + self._invite_ttl
            row.session_epoch += 1
            return _view(row), token

    async def invited(self, token: str) -> UserView | None:
        """The user an open, unexpired invite token belongs to."""
        async with self._sessions() as session:
            row = await session.scalar(
                select(UserRow).where(UserRow.invite_hash == _token_hash(token))
            )
        if row is None or row.invite_expires_at is None or not row.active:
            return None
        if row.invite_expires_at <= datetime.now(UTC):
            return None
        return _view(row)

    async def accept_invite(self, token: str, password: str) -> UserView:
        check_password(password)
        hashed = await _hash(password)
        async with self._sessions.begin() as session:
            row = await session.scalar(
                select(UserRow).where(UserRow.invite_hash == _token_hash(token)).with_for_update()
            )
            now = datetime.now(UTC)
            expired = row is None or row.invite_expires_at is None or row.invite_expires_at <= now
            if row is None or expired or not row.active:
                raise ServiceError(
                    Kind.CONFLICT, "this invite link is used, expired or revoked", code="gone"
                )
            row.password_hash, row.invite_hash, row.invite_expires_at = hashed, None, None
            row.session_epoch += 1
            return _view(row)

    async def update(
        self,
        user_id: int,
        *,
        roles: Iterable[str] | None = None,
        approval_levels: Iterable[int] | None = None,
        active: bool | None = None,
        display_name: str | None = None,
        language: str | None = None,
        email: str | None = None,
        actor: str | None = None,
    ) -> UserView:
        """Change a user; a change of roles, levels or the active flag ends their sessions."""
        async with self._sessions.begin() as session:
            row = await session.get(UserRow, user_id, with_for_update=True)
            if row is None:
                raise not_found(f"user {user_id}")
            if actor is not None and actor == row.username and active is False:
                raise ServiceError(Kind.CONFLICT, "you cannot deactivate yourself")
            new_roles, new_levels = check_roles(
                row.roles if roles is None else roles,
                row.approval_levels if approval_levels is None else approval_levels,
            )
            changed = new_roles != sorted(row.roles) or new_levels != sorted(row.approval_levels)
            if active is not None and active != row.active:
                changed = True
                row.active = active
            if display_name is not None:
                if not display_name.strip():
                    raise invalid("display_name", "must not be empty")
                row.display_name = display_name.strip()[:120]
            if language is not None:
                if language not in LANGUAGES:
                    raise invalid("language", f"one of {', '.join(LANGUAGES)}")
                row.language = language
            if email is not None:  # "" removes it
                row.email = check_email(email)
            row.roles, row.approval_levels = new_roles, new_levels
            if changed:
                row.session_epoch += 1
            return _view(row)

    async def sign_in(self, username: str, password: str, source_ip: str) -> SignedIn:
        """Check a name and password; too many recent failures for the name (or the address,
        4x the limit) refuse with 429 before the password is even looked at."""
        name = username.strip().lower()[:64]
        since = datetime.now(UTC) - self._lockout
        async with self._sessions() as session:
            by_name = await session.scalar(
                select(func.count())
                .select_from(SignInFailureRow)
                .where(SignInFailureRow.username == name, SignInFailureRow.at > since)
            )
            by_ip = await session.scalar(
                select(func.count())
                .select_from(SignInFailureRow)
                .where(SignInFailureRow.source_ip == source_ip, SignInFailureRow.at > since)
            )
            row = await session.scalar(select(UserRow).where(UserRow.username == name))
        minutes = int(self._lockout.total_seconds() // 60)
        if (by_name or 0) >= self._max_failures or (by_ip or 0) >= 4 * self._max_failures:
            raise SignInRefused(429, f"too many failed sign-ins; try again in {minutes} minutes")
        stored = row.password_hash if row is not None and row.active else None
        ok = await _verify(stored or _DUMMY_HASH, password)
        if row is None or stored is None or not ok:
            await self._failed(name, source_ip, since)
            raise SignInRefused(401, "wrong user name or password")
        async with self._sessions.begin() as session:
            fresh = await session.get(UserRow, row.id)
            if fresh is not None:
                fresh.last_sign_in_at = datetime.now(UTC)
            await session.execute(delete(SignInFailureRow).where(SignInFailureRow.username == name))
        return SignedIn(
            user_id=row.id,
            epoch=row.session_epoch,
            language="zh" if row.language == "zh" else "en",
            principal=principal_of_user(row),
        )

    async def _failed(self, name: str, source_ip: str, since: datetime) -> None:
        async with self._sessions.begin() as session:
            session.add(SignInFailureRow(username=name, source_ip=source_ip, at=datetime.now(UTC)))
            await session.execute(
                delete(SignInFailureRow).where(
                    or_(SignInFailureRow.username == name, SignInFailureRow.source_ip == source_ip),
                    SignInFailureRow.at <= since,
                )
            )
