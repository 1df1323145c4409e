"""The email outbox for support: what was sent, what failed and why; resend a failed one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from api.deps import ServicesDep, allow
from api.routes.orders import ERRORS
from domain.mail import KINDS, MailStatus
from services.auth import Principal, Role, Scope
from services.notifications import Notifications, NotificationView

router = APIRouter(prefix="/notifications", tags=["notifications"], responses=ERRORS)
Reader = Annotated[
    Principal, Depends(allow(Role.SUPPORT, scope=Scope.NOTIFICATIONS_READ, own=False))
]
Writer = Annotated[
    Principal, Depends(allow(Role.SUPPORT, scope=Scope.NOTIFICATIONS_WRITE, own=False))
]
Key = Annotated[str, Path(min_length=1, max_length=160, description="The notification's key.")]
Kind = Annotated[str | None, Query(pattern="^(" + "|".join(sorted(KINDS)) + ")$")]


async def _notifications(services: ServicesDep) -> Notifications:
    return Notifications(services.sessions, services.vault)


NotificationsDep = Annotated[Notifications, Depends(_notifications)]


@router.get("", response_model=list[NotificationView])
async def list_notifications(
    principal: Reader,
    notifications: NotificationsDep,
    status: Annotated[MailStatus | None, Query(description="pending, sent or failed")] = None,
    kind: Kind = None,
    order_id: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[NotificationView]:
    """Emails, newest first; ``status=failed`` lists what did not reach its recipient."""
    return await notifications.list(
        principal, status=status, kind=kind, order_id=order_id, limit=limit
    )


@router.post("/{key}/resend", response_model=NotificationView)
async def resend_notification(
    key: Key, principal: Writer, notifications: NotificationsDep
) -> NotificationView:
    """Queue a failed email again (409 unless it failed), e.g. after the address was fixed."""
    return await notifications.resend(principal, key)
