"""The webhook delivery activity: a round of an endpoint's deliveries (``deliver_webhooks``).

A round is idempotent: its state is the delivery log (``webhook_deliveries``), and an answer is
recorded only on a delivery still pending at the attempt count it was sent with. A worker that
dies after a receiver answered and before the answer was recorded makes the next round send the
same ``webhook-id`` again, which is what receivers de-duplicate on. One activity per round (not
per attempt) keeps the engine's share per delivery small: measured in bench/webhooks.py.
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
from typing import Any, TypeVar, cast

from sqlalchemy import Table, and_, bindparam, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from config import Settings
from db.models import OrderEventRow, WebhookDeliveryRow, WebhookEndpointRow
from db.session import SessionFactory
from db.upsert import insert_for
from db.vault import Vault, without_pii
from domain.webhooks import DeliveryStatus, Verdict, body, classify, message_id, next_wait
from integrations.mail import MailOutbox, Renderer
from integrations.webhooks import Answer, WebhookSender, signature_header
from security.keyring import KeyRing
from services.webhook_secrets import active_secrets

log = logging.getLogger("orderly.webhooks")
LOOKBACK = 1000  # event ids re-read below the cursor: see _ingest
LOOKBACK_EVERY = 2.0  # seconds
INGEST_BATCH = 500
DUE_BATCH = 64  # orders attempted at once
RUN_PER_ORDER = 20  # an order's deliveries sent one after another in one go
PENDING = DeliveryStatus.PENDING.value
T = TypeVar("T")


@dataclass(frozen=True)
class RoundInput:
    endpoint_id: str
    seconds: float = 60.0  # how long one round runs before it hands back to the workflow


@dataclass(frozen=True)
class RoundResult:
    """``state``: live (the round's time is up) | disabled | gone; what the round did."""

    state: str
    attempts: int = 0
    delivered: int = 0


_TABLE = cast(Table, WebhookDeliveryRow.__table__)
_OUTCOME = ("status", "attempts", "next_attempt_at", "last_status_code", "last_error",
            "last_latency_ms", "finished_at")  # fmt: skip
# One attempt's outcome, for many deliveries at once (executemany): a delivery no longer
# pending at the attempt count it was sent with (redelivered meanwhile) is left as it is.
_RECORD = (
    update(_TABLE)
    .where(
        _TABLE.c.id == bindparam("b_id"),
        _TABLE.c.status == PENDING,
        _TABLE.c.attempts == bindparam("b_attempts"),
    )
    .values({c: bindparam(f"v_{c}") for c in _OUTCOME})
)


@dataclass(frozen=True)
class _Planned:
    row: WebhookDeliveryRow
    text: str
    msg_id: str


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
        self._outbox = MailOutbox(sessions, Vault(keyring))  # the owner's notice
        self._renderer = Renderer()

    @activity.defn(name="deliver_webhooks")
    async def deliver_webhooks(self, inp: RoundInput) -> RoundResult:
        """One delivery round of an endpoint, for ``inp.seconds``: over and over, turn new
        events into deliveries, attempt the due ones (orders concurrently, each order's pending
        ones in sequence from its oldest), record the answers; sleep ``webhook_poll`` when
        there is nothing to do. Heartbeats throughout, so a dead worker's round is taken over
        quickly; all state is in the delivery log, so the next round goes on where this one
        stopped."""
        deadline = time.monotonic() + inp.seconds
        poll = self._settings.webhook_poll.total_seconds()
        attempts = delivered = 0
        looked_back = 0.0
        while True:
            activity.heartbeat(attempts)
            async with self._sessions.begin() as session:
                endpoint = await session.get(WebhookEndpointRow, inp.endpoint_id)
                if endpoint is None:
                    return RoundResult("gone", attempts, delivered)
                if not endpoint.enabled:
                    return RoundResult("disabled", attempts, delivered)
                lookback = time.monotonic() - looked_back >= LOOKBACK_EVERY
                if lookback:
                    looked_back = time.monotonic()
                ingested = await _ingest(session, endpoint, lookback=lookback)
                now = datetime.now(UTC)
                due = await _due(session, endpoint.id, now)
                url = endpoint.url
                signing = active_secrets(self._ring, endpoint, now) if due else []
                planned = await _plan(session, endpoint.id, due)
            if planned:
                tried, done = await _beating(
                    self._attempt_all(inp.endpoint_id, url, signing, planned, deadline)
                )
                attempts += tried
                delivered += done
            if time.monotonic() >= deadline:  # also when busy: a round never overruns
                return RoundResult("live", attempts, delivered)
            if not planned and not ingested:
                await asyncio.sleep(poll)

    async def _attempt_all(
        self,
        endpoint_id: str,
        url: str,
        signing: list[str],
        planned: list[list[_Planned]],
        until: float,
    ) -> tuple[int, int]:
        """Send the planned deliveries: orders concurrently, each order's in sequence until one
        is not delivered (the rest wait for it); record the answers in one transaction.
        Returns (attempts, delivered)."""

        async def order(run: list[_Planned]) -> list[tuple[_Planned, Answer]]:
            out = []
            for i, p in enumerate(run):
                if i and time.monotonic() > until:
                    break  # the round is over: the next one goes on from here
                now = datetime.now(UTC)  # signed per attempt: a stale timestamp is refused
                headers = {
                    "webhook-id": p.msg_id,
                    "webhook-timestamp": str(int(now.timestamp())),
                    "webhook-signature": signature_header(signing, p.msg_id, now, p.text),
                }
                answer = await self._sender.send(url, headers, p.text)
                out.append((p, answer))
                if answer.status is None or not 200 <= answer.status < 300:
                    break
            return out

        answers = [a for run in await asyncio.gather(*(order(r) for r in planned)) for a in run]
        done = datetime.now(UTC)
        verdicts: list[Verdict] = []
        rows: list[dict[str, Any]] = []
        for p, answer in answers:
            verdict, values = self._outcome(p.row, answer, done)
            verdicts.append(verdict)
            rows.append(
                {"b_id": p.row.id, "b_attempts": p.row.attempts}
                | {f"v_{c}": values[c] for c in _OUTCOME}
            )
            if verdict is not Verdict.DELIVERED:
                log.info(
                    "webhook %s delivery %s (%s) attempt %d: %s %s",
                    endpoint_id,
                    p.row.id,
                    p.msg_id,
                    values["attempts"],
                    answer.status if answer.status is not None else "-",
                    verdict.value,
                )
        async with self._sessions.begin() as session:
            await (await session.connection()).execute(_RECORD, rows)
            await self._endpoint_health(session, endpoint_id, verdicts, done)
        return len(verdicts), sum(1 for v in verdicts if v is Verdict.DELIVERED)

    def _outcome(
        self, row: WebhookDeliveryRow, answer: Answer, done: datetime
    ) -> tuple[Verdict, dict[str, Any]]:
        if answer.refused:
            verdict, wish = Verdict.FAILED, None
        else:
            outcome = classify(answer.status, answer.retry_after, now=done)
            verdict, wish = outcome.verdict, outcome.retry_after
        attempts = row.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status_code": answer.status,
            "last_error": answer.error,
            "last_latency_ms": answer.latency_ms,
            "next_attempt_at": None,
            "finished_at": done,
        }
        if verdict is Verdict.DELIVERED:
            values["status"] = DeliveryStatus.DELIVERED.value
        elif verdict is Verdict.RETRY:
            wait = next_wait(self._settings.webhook_retry_schedule, attempts, self._rng, wish)
            if wait is None:
                values["status"] = DeliveryStatus.DEAD.value
            else:
                values |= {"status": PENDING, "next_attempt_at": done + wait, "finished_at": None}
        else:
            values["status"] = DeliveryStatus.FAILED.value
        return verdict, values

    async def _endpoint_health(
        self, session: AsyncSession, endpoint_id: str, verdicts: list[Verdict], at: datetime
    ) -> None:
        """A 410 disables the endpoint; so does failing every delivery for the set time."""
        endpoint = await session.get(WebhookEndpointRow, endpoint_id, with_for_update=True)
        if endpoint is None:
            return
        if Verdict.GONE in verdicts:
            reason = "the receiver answered 410 Gone"
        elif Verdict.DELIVERED in verdicts:
            endpoint.failing_since = None
            return
        else:
            endpoint.failing_since = endpoint.failing_since or at
            if at - endpoint.failing_since < self._settings.webhook_disable_after:
                return
            reason = f"every delivery failed since {endpoint.failing_since.isoformat()}"
        endpoint.enabled = False
        endpoint.disabled_reason = f"{reason} (disabled {at.isoformat()})"
        endpoint.updated_at = at
        log.warning("webhook endpoint %s disabled: %s", endpoint_id, reason)
        await self._tell_owner(session, endpoint, reason, at)

    async def _tell_owner(
        self, session: AsyncSession, endpoint: WebhookEndpointRow, reason: str, at: datetime
    ) -> None:
        """Email the endpoint's creator that it was disabled (in the disabling transaction)."""
        link = f"{self._settings.public_base_url}/webhooks/{endpoint.id}/deliveries"
        await self._outbox.queue_for_principal(
            session,
            self._renderer,
            principal=endpoint.created_by,
            kind="webhook_disabled",
            key=f"webhook:{endpoint.id}:disabled:{at.isoformat()}",
            values={
                "endpoint_id": endpoint.id,
                "url": endpoint.url,
                "reason": reason,
                "link": link,
            },
        )


async def _plan(session: AsyncSession, endpoint_id: str, due: list[int]) -> list[list[_Planned]]:
    """Per order with a due head: its pending deliveries from the head on (at most
    ``RUN_PER_ORDER``), in sequence, with their bodies (events read by (order, seq): an event
    re-logged after a retried workflow task has a new id)."""
    if not due:
        return []
    d = WebhookDeliveryRow
    heads = {r.order_id: r.seq for r in await session.scalars(select(d).where(d.id.in_(due)))}
    rows = await session.scalars(
        select(d)
        .where(d.endpoint_id == endpoint_id, d.status == PENDING, d.order_id.in_(list(heads)))
        .order_by(d.order_id, d.seq)
    )
    runs: dict[str, list[WebhookDeliveryRow]] = {}
    for r in rows:
        run = runs.setdefault(r.order_id, [])
        if r.seq >= heads[r.order_id] and len(run) < RUN_PER_ORDER:
            run.append(r)
    keys = [(r.order_id, r.seq) for run in runs.values() for r in run]
    events = {
        (e.order_id, e.seq): e
        for e in await session.scalars(
            select(OrderEventRow).where(tuple_(OrderEventRow.order_id, OrderEventRow.seq).in_(keys))
        )
    }
    return [
        [
            _Planned(
                r, _body_text(r, events.get((r.order_id, r.seq))), message_id(r.order_id, r.seq)
            )
            for r in run
        ]
        for run in runs.values()
        if run
    ]


async def _beating(work: Awaitable[T]) -> T:
    """``work``, heartbeating every second meanwhile (a dead worker's attempt is taken over
    after the heartbeat timeout, not after the whole attempt's limit)."""
    task = asyncio.ensure_future(work)
    while not task.done():
        activity.heartbeat()
        await asyncio.wait({task}, timeout=1.0)
    return task.result()


async def _ingest(session: AsyncSession, endpoint: WebhookEndpointRow, *, lookback: bool) -> int:
    """New events of the log as pending deliveries; returns how many.

    With ``lookback`` (every ``LOOKBACK_EVERY`` seconds) the ``LOOKBACK`` ids below the cursor
    are read again: on PostgreSQL a projection that committed later than another can hold a
    lower id, which a plain "id > cursor" would skip. The unique (endpoint, order, seq) key
    makes reading one twice harmless."""
    e = OrderEventRow
    d = WebhookDeliveryRow
    if lookback:
        known = (
            select(d.id)
            .where(d.endpoint_id == endpoint.id, d.order_id == e.order_id, d.seq == e.seq)
            .exists()
        )
        stmt = select(e.id, e.order_id, e.seq, e.type).where(
            e.id > max(endpoint.since, endpoint.cursor - LOOKBACK), ~known
        )
    else:
        stmt = select(e.id, e.order_id, e.seq, e.type).where(
            e.id > max(endpoint.since, endpoint.cursor)
        )
    if endpoint.event_types:
        stmt = stmt.where(e.type.in_(endpoint.event_types))
    rows = list(await session.execute(stmt.order_by(e.id).limit(INGEST_BATCH)))
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
    # The cursor moves to the last event read (never back: a lookback reads below it).
    if rows and rows[-1].id > endpoint.cursor:
        endpoint.cursor = rows[-1].id
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
