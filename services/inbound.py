"""Signed inbound webhooks: carrier scans and payment notices from the parties we work with.

Contract (Standard Webhooks): each sender has its own secrets (``settings.inbound_webhooks``)
and signs ``{webhook-id}.{webhook-timestamp}.{body}`` with HMAC-SHA256; the
``webhook-signature`` header holds ``v1,<base64>`` signatures, space-separated while a secret
rotates (one valid signature suffices). A timestamp more than 5 minutes off is refused.

Each delivery (sender, ``webhook-id``) acts at most once. It is recorded before it acts
(``acting``, with the time of the claim), marked ``done`` after; a failed action deletes the
record, so the sender's retry acts again. While a delivery is acting, the same delivery again
is refused with a conflict (retry later), so two at once act once; a claim older than the lease
(a process that died mid-way) is taken over. Payments are also idempotent in the engine (the
update id derives from the delivery), carrier scans are signals: a crash between the signal and
``done`` can make a retry after the lease signal the scan twice, never lose it.

Bodies are never logged: only sender, delivery id and order id.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, Field
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from config import InboundSender
from db.models import InboundDeliveryRow
from services.auth import Principal, Role
from services.commands import Commands
from services.context import Services
from services.errors import Kind, ServiceError, invalid, not_found
from workflows.contracts import CarrierEventType

log = logging.getLogger("orderly.inbound")
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
MAX_WEBHOOK_ID = 255
TOLERANCE = timedelta(minutes=5)  # the standardwebhooks package's, stated for the messages
CLAIM_ATTEMPTS = 3


class SenderKind(StrEnum):
    CARRIER = "carrier"
    PAYMENT = "payment"


class SignatureRefused(Exception):
    """The delivery is not signed by the sender (a 401): nothing was done."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Delivery:
    """A delivery whose signature checked out."""

    sender: str
    kind: SenderKind
    webhook_id: str

    @property
    def principal(self) -> Principal:
        """Who acts on the order (the audit trail and the order's events name it)."""
        return Principal(name=f"inbound:{self.sender}", roles=frozenset({Role.SYSTEM}))


class Receipt(BaseModel):
    """The answer to a delivery: acted on now, or a duplicate of one acted on before."""

    webhook_id: str
    order_id: str | None = None
    duplicate: bool = Field(description="True: this webhook-id was handled before; nothing done.")


def _message(exc: Exception) -> str:
    text = str(exc)
    if "too old" in text or "too new" in text:
        return (
            f"webhook-timestamp is more than {int(TOLERANCE.total_seconds() // 60)} minutes "
            "from the server's clock (a stale or replayed delivery)"
        )
    if "Invalid Signature Headers" in text:
        return "webhook-timestamp must be the Unix time in seconds"
    if "No matching signature" in text:
        return "webhook-signature: no signature of this sender matches the delivery"
    return f"webhook-signature: malformed (expected space-separated v1,<base64>): {text}"


class Inbound:
    """Verify, deduplicate and act on inbound deliveries."""

    def __init__(self, services: Services) -> None:
        self._settings = services.settings
        self._sessions = services.sessions
        self._commands = Commands(services)
        wait = self._settings.command_wait
        self._lease = max(timedelta(seconds=60), wait * 2 + timedelta(seconds=10))

    def sender(self, kind: SenderKind, name: str) -> InboundSender:
        """The configured sender of this kind (404 otherwise: never say which names exist)."""
        found = self._settings.inbound_webhooks.get(name)
        if found is None or found.kind != kind.value:
            raise not_found(f"{kind.value} sender {name}")
        return found

    def verify(
        self, kind: SenderKind, name: str, body: bytes, headers: Mapping[str, str]
    ) -> Delivery:
        """The delivery if one of the sender's secrets signed it; else :class:`SignatureRefused`."""
        sender = self.sender(kind, name)
        values = {h: headers.get(h, "") for h in HEADERS}
        missing = [h for h in HEADERS if not values[h]]
        if missing:
            raise SignatureRefused(f"unsigned delivery: missing header {', '.join(missing)}")
        failure: Exception | None = None
        for secret in sender.secrets:
            try:
                Webhook(secret.get_secret_value()).verify(body, values, json_parse=False)
            except WebhookVerificationError as exc:
                failure = exc
                if "No matching signature" in str(exc):
                    continue  # perhaps the other secret of a rotation
                break
            except UnicodeDecodeError:
                raise SignatureRefused("cannot verify: the body is not UTF-8 text") from None
            except ValueError as exc:  # a signature without "," or with bad base64
                failure = exc
                break
            else:
                failure = None
                break
        if failure is not None:
            log.warning("inbound %s delivery from %s refused: %s", kind, name, failure)
            raise SignatureRefused(_message(failure))
        webhook_id = values["webhook-id"]
        if len(webhook_id) > MAX_WEBHOOK_ID or not webhook_id.isprintable():
            raise invalid("header.webhook-id", f"at most {MAX_WEBHOOK_ID} printable characters")
        return Delivery(sender=name, kind=kind, webhook_id=webhook_id)

    # --- the actions ---------------------------------------------------------------------

    async def carrier_event(
        self,
        delivery: Delivery,
        order_id: str,
        event: CarrierEventType,
        *,
        tracking_number: str | None = None,
        location: str | None = None,
        note: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Receipt:
        """A carrier's scan, as ``POST /orders/{id}/shipment-events`` takes it."""

        async def act() -> None:
            await self._commands.carrier_event(
                order_id,
                delivery.principal,
                event,
                tracking_number=tracking_number,
                location=location,
                note=note,
                occurred_at=occurred_at,
            )

        return await self._once(delivery, order_id, act)

    async def payment(
        self, delivery: Delivery, order_id: str, amount: Decimal, token: str
    ) -> Receipt:
        """A payment provider's notice, as ``POST /orders/{id}/payments`` takes it (the update
        id derives from the delivery, so the engine applies it once whatever happens here)."""

        async def act() -> None:
            key = f"{delivery.sender}:{delivery.webhook_id}"
            await self._commands.pay(order_id, delivery.principal, amount, token, key)

        return await self._once(delivery, order_id, act)

    # --- at most once per delivery ---------------------------------------------------------

    async def _once(
        self, delivery: Delivery, order_id: str, act: Callable[[], Awaitable[None]]
    ) -> Receipt:
        claimed_at = datetime.now(UTC)
        duplicate = await self._claim(delivery, order_id, claimed_at)
        if duplicate is not None:
            log.info("inbound %s %s: duplicate", delivery.sender, delivery.webhook_id)
            return duplicate
        try:
            await act()
        except BaseException:
            await self._release(delivery, claimed_at)
            raise
        async with self._sessions.begin() as session:
            await session.execute(
                update(InboundDeliveryRow)
                .where(InboundDeliveryRow.sender == delivery.sender)
                .where(InboundDeliveryRow.webhook_id == delivery.webhook_id)
                .values(state="done", done_at=datetime.now(UTC))
            )
        log.info("inbound %s %s: acted on %s", delivery.sender, delivery.webhook_id, order_id)
        return Receipt(webhook_id=delivery.webhook_id, order_id=order_id, duplicate=False)

    async def _claim(
        self, delivery: Delivery, order_id: str, claimed_at: datetime
    ) -> Receipt | None:
        """Record the delivery as ``acting`` (None: go ahead), or the receipt of a duplicate;
        a conflict while another request acts on it."""
        in_progress = ServiceError(
            Kind.CONFLICT,
            f"webhook-id {delivery.webhook_id} is being handled by another request; retry later",
            code="delivery_in_progress",
        )
        for _ in range(CLAIM_ATTEMPTS):
            try:
                async with self._sessions.begin() as session:
                    session.add(
                        InboundDeliveryRow(
                            sender=delivery.sender,
                            webhook_id=delivery.webhook_id,
                            kind=delivery.kind.value,
                            state="acting",
                            order_id=order_id,
                            received_at=claimed_at,
                            claimed_at=claimed_at,
                        )
                    )
                return None
            except IntegrityError:
                pass
            async with self._sessions.begin() as session:
                found = await session.get(
                    InboundDeliveryRow, (delivery.sender, delivery.webhook_id)
                )
                if found is None:
                    continue  # released meanwhile (its action failed): claim it again
                if found.state == "done":
                    return Receipt(
                        webhook_id=delivery.webhook_id, order_id=found.order_id, duplicate=True
                    )
                if found.claimed_at > claimed_at - self._lease:
                    raise in_progress
                # The request that claimed it stopped without releasing it: take it over.
                taken = await session.execute(
                    update(InboundDeliveryRow)
                    .where(InboundDeliveryRow.sender == delivery.sender)
                    .where(InboundDeliveryRow.webhook_id == delivery.webhook_id)
                    .where(InboundDeliveryRow.state == "acting")
                    .where(InboundDeliveryRow.claimed_at == found.claimed_at)
                    .values(claimed_at=claimed_at, order_id=order_id)
                )
                if taken.rowcount:  # type: ignore[attr-defined]
                    return None
            raise in_progress
        raise in_progress

    async def _release(self, delivery: Delivery, claimed_at: datetime) -> None:
        """Forget a delivery whose action failed (only our own claim), so a retry acts."""
        try:
            async with self._sessions.begin() as session:
                await session.execute(
                    delete(InboundDeliveryRow)
                    .where(InboundDeliveryRow.sender == delivery.sender)
                    .where(InboundDeliveryRow.webhook_id == delivery.webhook_id)
                    .where(InboundDeliveryRow.state == "acting")
                    .where(InboundDeliveryRow.claimed_at == claimed_at)
                )
        except Exception:  # the claim's lease runs out instead
            log.exception("inbound %s %s: release failed", delivery.sender, delivery.webhook_id)
