"""Where email to staff goes: the addresses (and languages) on principals, console users
first, API keys after."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ApiKeyRow, UserRow


async def approvers(session: AsyncSession, level: int) -> Sequence[tuple[str, str]]:
    """(address, language) of everyone active who holds approval ``level`` and has an address:
    console users with the approver role, and API keys' principals."""
    now = datetime.now(UTC)
    found: dict[str, str] = {}
    for user in await session.scalars(
        select(UserRow).where(UserRow.active.is_(True), UserRow.email.is_not(None))
    ):
        if "approver" in user.roles and level in user.approval_levels and user.email:
            found.setdefault(user.email.lower(), user.language)
    for key in await session.scalars(
        select(ApiKeyRow).where(ApiKeyRow.active.is_(True), ApiKeyRow.email.is_not(None))
    ):
        live = key.expires_at is None or key.expires_at > now
        if live and "approver" in key.roles and level in key.approval_levels and key.email:
            found.setdefault(key.email.lower(), "en")
    return sorted(found.items())


async def principal_address(session: AsyncSession, name: str) -> tuple[str, str] | None:
    """(address, language) of a principal by name: a console user's, else an API key's."""
    user = await session.scalar(select(UserRow).where(UserRow.username == name))
    if user is not None and user.email:
        return user.email, user.language
    key = await session.scalar(
        select(ApiKeyRow)
        .where(ApiKeyRow.principal == name, ApiKeyRow.email.is_not(None))
        .order_by(ApiKeyRow.id.desc())
        .limit(1)
    )
    return (key.email, "en") if key is not None and key.email else None
