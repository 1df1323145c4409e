from __future__ import annotations

from collections.abc import Callable

from temporalio import activity

from integrations.mail import Mailer, Message
from workflows.contracts import NotifyRequest

# What the workflows send to the customer (the others go to approvers' and support's mailboxes).
CUSTOMER_KINDS = frozenset({"payment_reminder", "cancelled", "delivered"})


class NotifyActivities:
    """Sends the workflow's notifications. ``tracking_link`` (order id -> URL), when given, is
    appended to every message for a customer at send time, so the order's history never holds
    a link (nor its expiry)."""

    def __init__(self, mailer: Mailer, tracking_link: Callable[[str], str] | None = None) -> None:
        self._mailer = mailer
        self._tracking_link = tracking_link

    def _body(self, req: NotifyRequest) -> str:
        if self._tracking_link is None or req.kind not in CUSTOMER_KINDS:
            return req.body
        return f"{req.body}\n\nTrack your order: {self._tracking_link(req.order_id)}"

    @activity.defn(name="send_notification")
    async def send_notification(self, req: NotifyRequest) -> None:
        await self._mailer.send(
            Message(
                key=req.key,
                order_id=req.order_id,
                kind=req.kind,
                recipient=req.recipient,
                subject=req.subject,
                body=self._body(req),
            )
        )
