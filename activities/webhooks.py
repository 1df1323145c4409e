"""The webhook delivery activities: turn new events into deliveries and find the due ones
(``next_webhooks``), and make one attempt of one delivery (``attempt_webhook``).

Both are idempotent: their state is the delivery log (``webhook_deliveries``). An attempt of a
delivery that is no longer pending does nothing; a worker that dies after a receiver answered
and before the answer was recorded makes the next attempt send the same ``webhook-id`` again,
which is what the receiver de-duplicates on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from config import Settings
from db.models import OrderEventRow, WebhookDeliveryRow, WebhookEndpointRow
from db.session import SessionFactory
from db.upsert import insert_for
from db.vault import without_pii
from domain.webhooks import DeliveryStatus, Verdict, body, classify, message_id, next_wait
from integrations.webhooks import WebhookSender, signature_header
from security.keyring import KeyRing
from services.webhook_secrets import active_secrets

log = logging.getLogger("orderly.webhooks")
LOOKBACK = 1000  # event ids re-read below the cursor: see _ingest
INGEST_BATCH = 500
DUE_BATCH = 64
PENDING = DeliveryStatus.PENDING.value
T = TypeVar("T")


@dataclass(frozen=True)
class NextInput:
    endpoint_id: str
    wait_seconds: float = 20.0  # how long to wait for work before answering "nothing"


@dataclass(frozen=True)
class NextWork:
    """``state``: live | disabled | gone; ``due``: delivery ids to attempt now, at most one
    per order (the order's oldest pending one)."""

    state: str
    due: list[int]


@dataclass(frozen=True)
class AttemptInput:
    delivery_id: int


@dataclass(frozen=True)
class AttemptResult:
    status: str  # the delivery's status after this attempt
    code: int | None = None


class WebhookActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        settings: Settings,
        keyring: KeyRing,
        sender: WebhookSender | None = None,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._ring = keyring
        self._sender = sender or WebhookSender(
            timeout=settings.webhook_timeout, allow_private=settings.webhook_allow_private
        )
        self._rng = random.Random()

    @activity.defn(name="next_webhooks")
    async def next_webhooks(self, inp: NextInput) -> NextWork:
        """Ingest new events and answer the due deliveries; wait (heartbeating) up to
        ``wait_seconds`` for some to come."""
        deadline = time.monotonic() + inp.wait_seconds
        poll = self._settings.webhook_poll.total_seconds()
        while True:
            async with self._sessions.begin() as session:
                endpoint = await session.get(WebhookEndpointRow, inp.endpoint_id)
                if endpoint is None:
                    return NextWork("gone", [])
                if not endpoint.enabled:
                    return NextWork("disabled", [])
                ingested = await _ingest(session, endpoint)
                due = await _due(session, endpoint.id, datetime.now(UTC))
            if due:
                return NextWork("live", due)
            if ingested:
                continue
            if time.monotonic() >= deadline:
                return NextWork("live", [])
            activity.heartbeat()
            await asyncio.sleep(poll)

    @activity.defn(name="attempt_webhook")
    async def attempt_webhook(self, inp: AttemptInput) -> AttemptResult:
        """One attempt of one delivery, its outcome recorded (never raises for the receiver's
        answer: only the database failing makes the activity retry)."""
        async with self._sessions() as session:
            delivery = await session.get(WebhookDeliveryRow, inp.delivery_id)
            if delivery is None or delivery.status != PENDING:
                return AttemptResult(delivery.status if delivery else "gone")
            endpoint = await session.get(WebhookEndpointRow, delivery.endpoint_id)
            # By (order, seq): an event re-logged after a retried workflow task has a new id.
            event = await session.scalar(
                select(OrderEventRow).where(
                    OrderEventRow.order_id == delivery.order_id, OrderEventRow.seq == delivery.seq
                )
            )
            if endpoint is None or not endpoint.enabled:
                return AttemptResult(PENDING)  # kept for when it is enabled again
            now = datetime.now(UTC)
            signing = active_secrets(self._ring, endpoint, now)
            url = endpoint.url
        text = _body_text(delivery, event)
        msg_id = message_id(delivery.order_id, delivery.seq)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature_header(signing, msg_id, now, text),
        }
        answer = await _beating(self._sender.send(url, headers, text))
        done = datetime.now(UTC)
        if answer.refused:
            verdict, wish = Verdict.FAILED, None
        else:
            outcome = classify(answer.status, answer.retry_after, now=done)
            verdict, wish = outcome.verdict, outcome.retry_after
        attempts = delivery.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status_code": answer.status,
            "last_error": answer.error,
            "last_latency_ms": answer.latency_ms,
        }
        if verdict is Verdict.DELIVERED:
            values |= {"status": DeliveryStatus.DELIVERED.value, "finished_at": done}
        elif verdict is Verdict.RETRY:
            wait = next_wait(self._settings.webhook_retry_schedule, attempts, self._rng, wish)
            if wait is None:
                values |= {"status": DeliveryStatus.DEAD.value, "finished_at": done}
            else:
                values |= {"next_attempt_at": done + wait}
        else:
            values |= {"status": DeliveryStatus.FAILED.value, "finished_at": done}
        async with self._sessions.begin() as session:
            changed = await session.execute(
                update(WebhookDeliveryRow)
                .where(
                    WebhookDeliveryRow.id == delivery.id,
                    WebhookDeliveryRow.status == PENDING,
                    WebhookDeliveryRow.attempts == delivery.attempts,
                )
                .values(**values)
            )
            if changed.rowcount:  # type: ignore[attr-defined]
                await self._endpoint_health(session, delivery.endpoint_id, verdict, done)
        log.info(
            "webhook %s delivery %s (%s) attempt %d: %s %s",
            delivery.endpoint_id,
            delivery.id,
            msg_id,
            attempts,
            answer.status if answer.status is not None else "-",
            verdict.value,
        )
        return AttemptResult(values.get("status", PENDING), answer.status)

    async def _endpoint_health(
        self, session: AsyncSession, endpoint_id: str, verdict: Verdict, at: datetime
    ) -> None:
        """A 410 disables the endpoint; so does failing every delivery for the set time."""
        endpoint = await session.get(WebhookEndpointRow, endpoint_id, with_for_update=True)
        if endpoint is None:
            return
        if verdict is Verdict.DELIVERED:
            endpoint.failing_since = None
            return
        if verdict is Verdict.GONE:
            reason = "the receiver answered 410 Gone"
        else:
            endpoint.failing_since = endpoint.failing_since or at
            if at - endpoint.failing_since < self._settings.webhook_disable_after:
                return
            reason = f"every delivery failed since {endpoint.failing_since.isoformat()}"
        endpoint.enabled = False
        endpoint.disabled_reason = f"{reason} (disabled {at.isoformat()})"
        endpoint.updated_at = at
        log.warning("webhook endpoint %s disabled: %s", endpoint_id, reason)


async def _beating(work: Awaitable[T]) -> T:
    """``work``, heartbeating every second meanwhile (a dead worker's attempt is taken over
    after the heartbeat timeout, not after the whole attempt's limit)."""
    task = asyncio.ensure_future(work)
    while not task.done():
        activity.heartbeat()
        await asyncio.wait({task}, timeout=1.0)
    return task.result()


async def _ingest(session: AsyncSession, endpoint: WebhookEndpointRow) -> int:
    """New events of the log as pending deliveries; returns how many.

    Ids below the cursor are read again (``LOOKBACK``): on PostgreSQL a projection that
    committed later than another can hold a lower id, which a plain "id > cursor" would skip.
    The unique (endpoint, order, seq) key makes reading one twice harmless."""
    e = OrderEventRow
    d = WebhookDeliveryRow
    known = (
        select(d.id)
        .where(d.endpoint_id == endpoint.id, d.order_id == e.order_id, d.seq == e.seq)
        .exists()
    )
    stmt = select(e.id, e.order_id, e.seq, e.type).where(
        e.id > max(endpoint.since, endpoint.cursor - LOOKBACK), ~known
    )
    if endpoint.event_types:
        stmt = stmt.where(e.type.in_(endpoint.event_types))
    rows = list(await session.execute(stmt.order_by(e.id).limit(INGEST_BATCH)))
    top = await session.scalar(select(func.max(e.id)))
    if rows:
        now = datetime.now(UTC)
        values = [
            {
                "endpoint_id": endpoint.id,
                "event_id": r.id,
                "order_id": r.order_id,
                "seq": r.seq,
                "type": r.type,
                "status": PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for r in rows
        ]
        stmt_ins = insert_for(session, WebhookDeliveryRow).values(values)
        await session.execute(
            stmt_ins.on_conflict_do_nothing(index_elements=["endpoint_id", "order_id", "seq"])
        )
    # The cursor moves to the log's end unless this batch stopped short of it.
    cursor = rows[-1].id if len(rows) == INGEST_BATCH else int(top or 0)
    if cursor > endpoint.cursor:
        endpoint.cursor = cursor
    return len(rows)


async def _due(session: AsyncSession, endpoint_id: str, now: datetime) -> list[int]:
    """Per order, its oldest pending delivery, if its time has come (oldest first)."""
    d = WebhookDeliveryRow
    heads = (
        select(d.order_id, func.min(d.seq).label("seq"))
        .where(d.endpoint_id == endpoint_id, d.status == PENDING)
        .group_by(d.order_id)
        .subquery()
    )
    stmt = (
        select(d.id)
        .join(heads, and_(d.order_id == heads.c.order_id, d.seq == heads.c.seq))
        .where(d.endpoint_id == endpoint_id, d.next_attempt_at <= now)
        .order_by(d.next_attempt_at, d.id)
        .limit(DUE_BATCH)
    )
    return [int(i) for i in await session.scalars(stmt)]


def _body_text(delivery: WebhookDeliveryRow, event: OrderEventRow | None) -> str:
    """The delivery's JSON body: the same bytes for the same event on every attempt (only the
    timestamp header and the signatures change)."""
    payload = without_pii(event.payload) if event is not None else {}
    data = {k: v for k, v in payload.items() if k not in ("seq", "at", "type")}
    at = event.at if event is not None else delivery.created_at
    return json.dumps(
        body(
            event_type=delivery.type,
            at=at,
            order_id=delivery.order_id,
            seq=delivery.seq,
            cursor=event.id if event is not None else delivery.event_id,
            status=event.status if event is not None else "",
            event=data,
        ),
        separators=(",", ":"),
        sort_keys=True,
    )
