"""The email outbox as support sees it: what was sent to whom (addresses masked), what failed
and why, and a resend once the cause is fixed. Emails are written by the mail consumer
(activities/mail.py); a failed one never held its order back, so this is where it shows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import select, update

from db.models import OutboxRow
from db.session import SessionFactory
from db.vault import Vault
from domain.mail import MailStatus, mask
from services.auth import Principal, Role
from services.errors import Kind, ServiceError, not_found

MAX_LIMIT = 500


class NotificationView(BaseModel):
    key: str = Field(description="<order>:<event seq>:<kind>[:<language>]")
    order_id: str | None
    kind: str
    channel: Literal["email"] = "email"
    language: str
    recipients: list[str] = Field(description="Masked: first letter and domain.")
    subject: str
    status: MailStatus
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    sent_at: datetime | None
    created_at: datetime


class Notifications:
    def __init__(self, sessions: SessionFactory, vault: Vault) -> None:
        self._sessions, self._vault = sessions, vault

    @staticmethod
    def allow(principal: Principal) -> None:
        if not principal.has_any({Role.ADMIN, Role.SUPPORT}):
            raise ServiceError(Kind.FORBIDDEN, "notifications are for support and admins")

    async def list(
        self,
        principal: Principal,
        *,
        status: MailStatus | None = None,
        kind: str | None = None,
        order_id: str | None = None,
        limit: int = 100,
    ) -> list[NotificationView]:
        """Newest first."""
        self.allow(principal)
        stmt = select(OutboxRow).order_by(OutboxRow.created_at.desc(), OutboxRow.key)
        if status is not None:
            stmt = stmt.where(OutboxRow.status == status.value)
        if kind is not None:
            stmt = stmt.where(OutboxRow.kind == kind)
        if order_id is not None:
            stmt = stmt.where(OutboxRow.order_id == order_id)
        async with self._sessions() as session:
            rows = list(await session.scalars(stmt.limit(min(limit, MAX_LIMIT))))
            tos = await self._vault.open_texts(
                session, [(r.owner, r.recipient) for r in rows], "email"
            )
        return [_view(r, to) for r, to in zip(rows, tos, strict=True)]

    async def resend(self, principal: Principal, key: str) -> NotificationView:
        """A failed email queued again from its first attempt (409 unless it failed)."""
        self.allow(principal)
        async with self._sessions.begin() as session:
            row = await session.get(OutboxRow, key, with_for_update=True)
            if row is None:
                raise not_found(f"notification {key}")
            if row.status != MailStatus.FAILED.value:
                raise ServiceError(Kind.CONFLICT, f"notification {key} is {row.status}, not failed")
            to = await self._vault.open_text(session, row.owner, row.recipient, "email")
            if not to.strip(","):
                raise ServiceError(Kind.CONFLICT, f"notification {key} has no recipient")
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.key == key)
                .values(
                    status=MailStatus.PENDING.value,
                    attempts=0,
                    next_attempt_at=datetime.now(UTC),
                    claimed_until=None,
                )
            )
            await session.refresh(row)
            return _view(row, to)


def _view(row: OutboxRow, recipients: str) -> NotificationView:
    return NotificationView(
        key=row.key,
        order_id=row.order_id,
        kind=row.kind,
        language=row.language,
        recipients=[mask(r) for r in recipients.split(",") if r],
        subject=row.subject,
        status=MailStatus(row.status),
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        sent_at=row.sent_at,
        created_at=row.created_at,
    )
