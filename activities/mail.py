"""The email activity: a round of the mail consumer (``dispatch_mail``).

Each pass composes the emails of new events of the log (domain.mail.TRIGGERS: whom, which
template, which language) into the outbox, then sends the due ones through the transport.
Composing is idempotent (one outbox key per event and kind, all of an event's messages in one
transaction); sending claims a message before it sends, so two rounds never send one message
at once. A failure never reaches an order: orders only write events; this reads them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from config import Settings
from db.cursors import MAIL, advance, since
from db.models import (
    ConsumerCursorRow,
    CustomerRow,
    OrderEventRow,
    OrderRow,
    OutboxRow,
)
from db.principals import approvers
from db.session import SessionFactory
from db.vault import Vault, placeholder
from domain.mail import (
    TRIGGERS,
    Audience,
    Language,
    MailStatus,
    approval_level,
    language_of,
    mail_key,
    smtp_verdict,
)
from domain.state import OrderState
from domain.webhooks import next_wait
from integrations.mail import MailOutbox, Message, Renderer, SendError, Transport, build

log = logging.getLogger("orderly.mail")
CURSOR = MAIL
LATE_COMMIT = timedelta(minutes=10)  # how late an event may commit after it was stamped
LOOKBACK = 1000  # event ids re-read below the cursor: late commits (activities/webhooks.py)
LOOKBACK_EVERY = 5.0  # seconds
COMPOSE_BATCH = 500
SEND_BATCH = 20
PENDING = MailStatus.PENDING.value


@dataclass(frozen=True)
class MailRoundInput:
    seconds: float = 60.0  # how long one round runs before it hands back to the workflow


@dataclass(frozen=True)
class MailRoundResult:
    composed: int = 0
    sent: int = 0
    failed: int = 0


@dataclass(frozen=True)
class PassResult:
    composed: int
    sent: int
    failed: int
    busy: bool  # the cursor moved or something was sent: look again at once


@dataclass(frozen=True)
class _Event:
    id: int
    order_id: str
    seq: int
    type: str
    at: datetime
    payload: dict[str, Any]


def _when(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else None


def _amount(value: Decimal) -> str:
    return f"{value:,.2f}"


class MailActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        vault: Vault,
        settings: Settings,
        transport: Transport,
        tracking_link: Callable[[str], str] | None = None,
    ) -> None:
        self._sessions, self._vault, self._settings = sessions, vault, settings
        self._transport = transport
        self._tracking_link = tracking_link
        self.outbox = MailOutbox(sessions, vault)
        self._renderer = Renderer()
        self._rng = random.Random()
        self._looked_back = 0.0

    @activity.defn(name="dispatch_mail")
    async def dispatch_mail(self, inp: MailRoundInput) -> MailRoundResult:
        end = time.monotonic() + inp.seconds
        composed = sent = failed = 0
        while True:
            done = await self.pass_once(beat=activity.heartbeat, until=end)
            composed, sent = composed + done.composed, sent + done.sent
            failed += done.failed
            activity.heartbeat()
            if time.monotonic() >= end:
                return MailRoundResult(composed, sent, failed)
            if not done.busy:
                await asyncio.sleep(self._settings.mail_poll.total_seconds())

    async def pass_once(
        self,
        *,
        now: datetime | None = None,
        beat: Callable[[], None] = lambda: None,
        until: float | None = None,
    ) -> PassResult:
        """Compose what new events ask for, then send what is due. ``beat`` is called after
        each send (the round's heartbeat); no send starts after ``until`` (monotonic), so a
        slow server cannot hold a round past its timeout."""
        composed, read = await self.compose()
        sent, failed = await self.send_due(now=now, beat=beat, until=until)
        return PassResult(composed, sent, failed, busy=bool(read or sent or failed))

    # --- composing --------------------------------------------------------------------------

    async def compose(self) -> tuple[int, bool]:
        """Compose the emails of the events after the cursor; every LOOKBACK_EVERY seconds
        also of recent events up to LOOKBACK ids below it (committed late: lower ids).
        Returns how many events were composed and whether the cursor moved."""
        async with self._sessions() as session:
            before = await session.scalar(
                select(ConsumerCursorRow.position).where(ConsumerCursorRow.name == CURSOR)
            )
            cursor = before or 0  # only this consumer moves it
            after = OrderEventRow.id > cursor
            limit = COMPOSE_BATCH
            if time.monotonic() - self._looked_back >= LOOKBACK_EVERY:
                self._looked_back = time.monotonic()
                recent = datetime.now(UTC) - LATE_COMMIT
                late = and_(OrderEventRow.id > cursor - LOOKBACK, OrderEventRow.at >= recent)
                after, limit = or_(after, late), COMPOSE_BATCH + LOOKBACK
            found = await session.execute(
                select(
                    OrderEventRow.id,
                    OrderEventRow.order_id,
                    OrderEventRow.seq,
                    OrderEventRow.type,
                    OrderEventRow.at,
                    OrderEventRow.payload,
                )
                .where(OrderEventRow.type.in_(list(TRIGGERS)), after)
                .order_by(OrderEventRow.id)
                .limit(limit)
            )
            events = [_Event(*row) for row in found]
            keys = {mail_key(e.order_id, e.seq, TRIGGERS[e.type].kind): e for e in events}
            done = set(await session.scalars(select(OutboxRow.key).where(OutboxRow.key.in_(keys))))
            todo = [e for k, e in keys.items() if k not in done]
            start = await since(session, CURSOR)
            if start is not None and todo:  # orders from before the consumer: history
                ids = {e.order_id for e in todo}
                ours = set(
                    await session.scalars(
                        select(OrderRow.id).where(
                            OrderRow.id.in_(ids), OrderRow.created_at >= start
                        )
                    )
                )
                todo = [e for e in todo if e.order_id in ours]
        composed = 0
        for event in todo:
            composed += await self._compose_event(event)
        moved = bool(events) and events[-1].id > cursor
        if moved:
            async with self._sessions.begin() as session:
                await advance(session, CURSOR, events[-1].id)
        return composed, moved

    async def _compose_event(self, event: _Event) -> bool:
        """Queue the event's emails (False: no order row, which is written with the event)."""
        trigger = TRIGGERS[event.type]
        async with self._sessions() as session:
            row = await session.get(OrderRow, event.order_id)
            if row is None:
                return False
            state = OrderState.model_validate(await self._vault.open(session, row.snapshot))
            recipients = await self._recipients(session, trigger.audience, event, state)
        values = self._values(event, state)
        key = mail_key(event.order_id, event.seq, trigger.kind)
        staff = trigger.audience is not Audience.CUSTOMER
        if staff:
            values["link"] = f"{self._settings.public_base_url}/console/orders/{state.id}"
        elif self._tracking_link is not None:
            values["link"] = self._tracking_link(state.id)
        messages: list[Message] = []
        for n, (language, addresses) in enumerate(sorted(recipients.items())):
            subject, text, html = self._renderer.render(trigger.kind, language, values, staff=staff)
            messages.append(
                Message(
                    key=key if n == 0 else f"{key}:{language}",
                    order_id=state.id,
                    kind=trigger.kind,
                    recipient=",".join(sorted(addresses)),
                    subject=subject,
                    body=text,
                    html=html,
                    language=language,
                    status=PENDING,
                )
            )
        if not messages:  # nobody to tell: recorded failed, so support sees it
            subject, text, html = self._renderer.render(trigger.kind, "en", values, staff=staff)
            why = {
                Audience.APPROVERS: f"no approver of level {values.get('level')} has an address",
                Audience.CUSTOMER: "the customer's personal data was erased",
            }.get(trigger.audience, "no recipient address")
            messages.append(
                Message(
                    key,
                    state.id,
                    trigger.kind,
                    "",
                    subject,
                    text,
                    html,
                    status=MailStatus.FAILED.value,
                    last_error=why,
                )
            )
        await self.outbox.add_many(messages, owner=state.customer.id)
        return True

    async def _recipients(
        self, session: AsyncSession, audience: Audience, event: _Event, state: OrderState
    ) -> dict[Language, set[str]]:
        """Addresses by language."""
        out: dict[Language, set[str]] = {}
        if audience is Audience.CUSTOMER:
            language = state.customer.language
            if language is None:
                stored = await session.scalar(
                    select(CustomerRow.language).where(CustomerRow.id == state.customer.id)
                )
                language = language_of(stored)
            if state.customer.email != placeholder("email"):  # erased: nobody to write to
                out[language] = {state.customer.email}
        elif audience is Audience.SUPPORT:
            out["en"] = {self._settings.mail_support_to}
        else:
            level = approval_level(event.type, event.payload)
            for address, tag in await approvers(session, level):
                out.setdefault(language_of(tag), set()).add(address)
        return out

    def _values(self, event: _Event, state: OrderState) -> dict[str, Any]:
        p = event.payload
        values: dict[str, Any] = {
            "order_id": state.id,
            "total": _amount(state.total),
            "currency": state.currency,
            "reason": p.get("reason", ""),
            "step": p.get("step", ""),
            "due_at": _when(state.payment.due_at),
            "tracking": ", ".join(x.tracking_number for x in state.active_parcels()),
        }
        if event.type in ("cancelled", "completed", "payment_reminder_sent"):
            values["name"] = state.customer.name
        if event.type in ("approval_reminder_sent", "approval_escalated"):
            level = approval_level(event.type, p)
            lv = next((x for x in state.approval.levels if x.level == p["level"]), None)
            values.update(
                level=level,
                from_level=p["level"],
                level_name=lv.name if lv else None,
                expire_at=_when(lv.expire_at) if lv else None,
            )
        return values

    # --- sending ----------------------------------------------------------------------------

    async def send_due(
        self,
        *,
        now: datetime | None = None,
        beat: Callable[[], None] = lambda: None,
        until: float | None = None,
    ) -> tuple[int, int]:
        now = now or datetime.now(UTC)
        async with self._sessions() as session:
            rows = list(
                await session.scalars(
                    select(OutboxRow)
                    .where(
                        OutboxRow.status == PENDING,
                        OutboxRow.next_attempt_at <= now,
                        or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until < now),
                    )
                    .order_by(OutboxRow.next_attempt_at)
                    .limit(SEND_BATCH)
                )
            )
        sent = failed = 0
        for message in await self.outbox.opened(rows):
            if until is not None and time.monotonic() >= until:
                break  # the next round goes on
            if not await self._claim(message, now):
                continue
            outcome = await self._send(message, now)
            sent += outcome == MailStatus.SENT
            failed += outcome == MailStatus.FAILED
            beat()
        return sent, failed

    async def _claim(self, message: Message, now: datetime) -> bool:
        hold = now + self._settings.smtp_timeout * 2
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.key == message.key,
                    OutboxRow.status == PENDING,
                    OutboxRow.attempts == message.attempts,
                    or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until < now),
                )
                .values(claimed_until=hold)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def _send(self, message: Message, now: datetime) -> MailStatus:
        attempts = message.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "claimed_until": None}
        try:
            await self._transport.send(build(message, self._settings.mail_from))
        except SendError as exc:
            wait = None
            if smtp_verdict(exc.code) == "retry":
                wait = next_wait(self._settings.mail_retry_schedule, attempts, self._rng)
            status = MailStatus.PENDING if wait is not None else MailStatus.FAILED
            values.update(
                status=status.value,
                last_error=str(exc)[:500],
                next_attempt_at=now + wait if wait is not None else None,
            )
            log.warning("mail %s (%s) attempt %d: %s", message.key, message.kind, attempts, exc)
        else:
            status = MailStatus.SENT
            values.update(status=status.value, sent_at=datetime.now(UTC), next_attempt_at=None)
        async with self._sessions.begin() as session:
            await session.execute(
                update(OutboxRow)
                .where(and_(OutboxRow.key == message.key, OutboxRow.attempts == message.attempts))
                .values(values)
            )
        return status
