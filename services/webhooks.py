"""Outbound webhook subscriptions (admin): endpoints, their secrets, and the delivery log.

The delivery contract (Standard Webhooks) is in the README, section "Outbound webhooks". An
endpoint receives every event of the log after its creation whose type it subscribed to, in
``seq`` order per order; each endpoint has its own delivery workflow
(workflows/webhooks.py), started when the endpoint is created or enabled.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from config import Settings
from db.models import OrderEventRow, WebhookDeliveryRow, WebhookEndpointRow
from db.session import SessionFactory
from domain.events import EVENT_TYPES
from domain.webhooks import DeliveryStatus, TargetError, message_id
from integrations.webhooks import check_target, new_secret
from security.keyring import KeyRing
from services.auth import Principal, Role
from services.errors import Kind, ServiceError, invalid, not_found, unavailable
from services.webhook_secrets import open_secrets, seal_secrets

_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MAX_TYPES = 100


def new_endpoint_id() -> str:
    return "WH-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


class WebhookIn(BaseModel):
    url: str = Field(max_length=2000, description="http(s) URL the events are POSTed to.")
    event_types: list[str] = Field(
        default_factory=list, max_length=MAX_TYPES, description="[] = every event type."
    )
    description: str = Field(default="", max_length=500)
    enabled: bool = True


class WebhookPatch(BaseModel):
    url: str | None = Field(default=None, max_length=2000)
    event_types: list[str] | None = Field(default=None, max_length=MAX_TYPES)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class RotateIn(BaseModel):
    overlap_seconds: int | None = Field(
        default=None,
        ge=0,
        le=30 * 86400,
        description="How long the old secret still signs (default: the setting).",
    )


class SecretInfo(BaseModel):
    prefix: str = Field(description="The secret's first characters, to tell them apart.")
    until: datetime | None = Field(description="When it stops signing (None: current).")


class WebhookView(BaseModel):
    id: str
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    secrets: list[SecretInfo]
    cursor: int = Field(description="The last event log id turned into deliveries.")
    failing_since: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookView):
    secret: str = Field(description="The signing secret (whsec_...): shown only now.")


class WebhookPage(BaseModel):
    items: list[WebhookView]


class DeliveryView(BaseModel):
    id: int
    webhook_id: str = Field(description="The webhook-id header: stable per event.")
    order_id: str
    seq: int
    type: str
    cursor: int = Field(description="The event's id in the event log (GET /events).")
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: int | None
    created_at: datetime
    finished_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryView]
    next_before: int | None = Field(description="Pass as `before` for the older page.")


class ReplayIn(BaseModel):
    after: int = Field(ge=0, le=2**63 - 1, description="Event log id: every event after it.")


class ReplayResult(BaseModel):
    deliveries: int = Field(description="Deliveries queued again (more follow from the log).")


def _view(row: WebhookEndpointRow, ring: KeyRing) -> WebhookView:
    items = open_secrets(ring, row)
    return WebhookView(
        id=row.id,
        url=row.url,
        event_types=list(row.event_types),
        description=row.description,
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        secrets=[
            SecretInfo(
                prefix=i["secret"][:10] + "…",
                until=datetime.fromisoformat(i["until"]) if i["until"] else None,
            )
            for i in items
        ],
        cursor=row.cursor,
        failing_since=row.failing_since,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _delivery(row: WebhookDeliveryRow) -> DeliveryView:
    return DeliveryView(
        id=row.id,
        webhook_id=message_id(row.order_id, row.seq),
        order_id=row.order_id,
        seq=row.seq,
        type=row.type,
        cursor=row.event_id,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        last_latency_ms=row.last_latency_ms,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


class Webhooks:
    def __init__(
        self, sessions: SessionFactory, settings: Settings, keyring: KeyRing, client: Client | None
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._ring = keyring
        self._client = client

    @staticmethod
    def allow(principal: Principal) -> None:
        if not principal.has_any({Role.ADMIN}):
            raise ServiceError(Kind.FORBIDDEN, "webhooks are kept by admins")

    async def _check(self, url: str | None, types: list[str] | None) -> None:
        if url is not None:
            try:
                await check_target(url, allow_private=self._settings.webhook_allow_private)
            except TargetError as exc:
                raise invalid("url", str(exc)) from None
        if types is not None:
            unknown = sorted(set(types) - EVENT_TYPES)
            if unknown:
                raise invalid("event_types", f"unknown event type {', '.join(unknown)}")

    async def create(self, principal: Principal, body: WebhookIn) -> WebhookCreated:
        self.allow(principal)
        await self._check(body.url, body.event_types)
        now = datetime.now(UTC)
        secret = new_secret()
        endpoint_id = new_endpoint_id()
        async with self._sessions.begin() as session:
            top = await session.scalar(select(func.max(OrderEventRow.id)))
            row = WebhookEndpointRow(
                id=endpoint_id,
                url=body.url,
                event_types=sorted(set(body.event_types)),
                description=body.description,
                enabled=body.enabled,
                secrets=seal_secrets(self._ring, endpoint_id, [{"secret": secret, "until": None}]),
                cursor=int(top or 0),  # events from now on
                since=int(top or 0),
                created_by=principal.name,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
        if row.enabled:
            await self._start(endpoint_id)
        return WebhookCreated(**_view(row, self._ring).model_dump(), secret=secret)

    async def list(self, principal: Principal) -> WebhookPage:
        self.allow(principal)
        async with self._sessions() as session:
            rows = await session.scalars(
                select(WebhookEndpointRow).order_by(WebhookEndpointRow.created_at)
            )
            return WebhookPage(items=[_view(r, self._ring) for r in rows])

    async def get(self, principal: Principal, endpoint_id: str) -> WebhookView:
        self.allow(principal)
        async with self._sessions() as session:
            return _view(await self._row(session, endpoint_id), self._ring)

    async def patch(
        self, principal: Principal, endpoint_id: str, body: WebhookPatch
    ) -> WebhookView:
        self.allow(principal)
        await self._check(body.url, body.event_types)
        async with self._sessions.begin() as session:
            row = await self._row(session, endpoint_id, lock=True)
            if body.url is not None:
                row.url = body.url
            if body.event_types is not None:
                row.event_types = sorted(set(body.event_types))
            if body.description is not None:
                row.description = body.description
            starting = body.enabled is True and not row.enabled
            if body.enabled is not None:
                row.enabled = body.enabled
                if body.enabled:
                    row.disabled_reason = None
                    row.failing_since = None
                elif not row.disabled_reason:
                    row.disabled_reason = f"disabled by {principal.name}"
            row.updated_at = datetime.now(UTC)
            view = _view(row, self._ring)
        if starting:
            await self._start(endpoint_id)
        return view

    async def delete(self, principal: Principal, endpoint_id: str) -> None:
        """Delete the endpoint and its delivery log; its workflow ends on its next round."""
        self.allow(principal)
        async with self._sessions.begin() as session:
            await self._row(session, endpoint_id, lock=True)
            await session.execute(
                delete(WebhookDeliveryRow).where(WebhookDeliveryRow.endpoint_id == endpoint_id)
            )
            await session.execute(
                delete(WebhookEndpointRow).where(WebhookEndpointRow.id == endpoint_id)
            )

    async def rotate(
        self, principal: Principal, endpoint_id: str, body: RotateIn
    ) -> WebhookCreated:
        """A new current secret; the old one signs along until the overlap is over."""
        self.allow(principal)
        now = datetime.now(UTC)
        overlap = (
            timedelta(seconds=body.overlap_seconds)
            if body.overlap_seconds is not None
            else self._settings.webhook_secret_overlap
        )
        secret = new_secret()
        async with self._sessions.begin() as session:
            row = await self._row(session, endpoint_id, lock=True)
            kept: list[dict[str, Any]] = []
            for item in open_secrets(self._ring, row):
                until = datetime.fromisoformat(item["until"]) if item["until"] else now + overlap
                if until > now:
                    kept.append({"secret": item["secret"], "until": until.isoformat()})
            items = [{"secret": secret, "until": None}, *kept]
            row.secrets = seal_secrets(self._ring, endpoint_id, items)
            row.updated_at = now
            view = _view(row, self._ring)
        return WebhookCreated(**view.model_dump(), secret=secret)

    async def deliveries(
        self,
        principal: Principal,
        endpoint_id: str,
        *,
        status: DeliveryStatus | None = None,
        order_id: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> DeliveryPage:
        """The delivery log, newest first (filters: status, order)."""
        self.allow(principal)
        d = WebhookDeliveryRow
        async with self._sessions() as session:
            await self._row(session, endpoint_id)
            stmt = select(d).where(d.endpoint_id == endpoint_id)
            if status is not None:
                stmt = stmt.where(d.status == status.value)
            if order_id is not None:
                stmt = stmt.where(d.order_id == order_id)
            if before is not None:
                stmt = stmt.where(d.id < before)
            rows = list(await session.scalars(stmt.order_by(d.id.desc()).limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        return DeliveryPage(
            items=[_delivery(r) for r in rows], next_before=rows[-1].id if more else None
        )

    async def redeliver(
        self, principal: Principal, endpoint_id: str, delivery_id: int
    ) -> DeliveryView:
        """Queue a delivery again, now, with a fresh retry schedule (any status)."""
        self.allow(principal)
        async with self._sessions.begin() as session:
            await self._row(session, endpoint_id)
            row = await session.get(WebhookDeliveryRow, delivery_id, with_for_update=True)
            if row is None or row.endpoint_id != endpoint_id:
                raise not_found(f"delivery {delivery_id} of webhook {endpoint_id}")
            row.status = DeliveryStatus.PENDING.value
            row.attempts = 0
            row.next_attempt_at = datetime.now(UTC)
            row.finished_at = None
            view = _delivery(row)
        return view

    async def replay(self, principal: Principal, endpoint_id: str, body: ReplayIn) -> ReplayResult:
        """Deliver every event after ``body.after`` again (for a receiver that lost data):
        deliveries already made are queued again; events the endpoint never had are read
        from the log."""
        self.allow(principal)
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            row = await self._row(session, endpoint_id, lock=True)
            result = await session.execute(
                update(WebhookDeliveryRow)
                .where(
                    WebhookDeliveryRow.endpoint_id == endpoint_id,
                    WebhookDeliveryRow.event_id > body.after,
                )
                .values(status="pending", attempts=0, next_attempt_at=now, finished_at=None)
            )
            row.cursor = min(row.cursor, body.after)
            row.since = min(row.since, body.after)
            row.updated_at = now
        return ReplayResult(deliveries=int(result.rowcount or 0))  # type: ignore[attr-defined]

    async def _row(
        self, session: AsyncSession, endpoint_id: str, *, lock: bool = False
    ) -> WebhookEndpointRow:
        row = await session.get(WebhookEndpointRow, endpoint_id, with_for_update=lock)
        if row is None:
            raise not_found(f"webhook {endpoint_id}")
        return row

    async def _start(self, endpoint_id: str) -> None:
        from workflows.webhooks import start_delivery

        if self._client is None:
            raise ServiceError(Kind.UNAVAILABLE, "no Temporal client: deliveries cannot start")
        try:
            await start_delivery(self._client, endpoint_id, self._settings)
        except RPCError as exc:
            raise unavailable(exc) from exc


async def ensure_delivery_workflows(
    client: Client, sessions: SessionFactory, settings: Settings
) -> int:
    """At worker start: every enabled endpoint has its delivery workflow running (one whose
    start failed when it was created or enabled gets it now)."""
    from workflows.webhooks import start_delivery

    async with sessions() as session:
        ids = list(
            await session.scalars(
                select(WebhookEndpointRow.id).where(WebhookEndpointRow.enabled.is_(True))
            )
        )
    for endpoint_id in ids:
        await start_delivery(client, endpoint_id, settings)
    return len(ids)
