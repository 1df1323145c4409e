from __future__ import annotations

from temporalio import activity

from integrations.mail import Mailer, Message
from workflows.contracts import NotifyRequest


class NotifyActivities:
    def __init__(self, mailer: Mailer) -> None:
        self._mailer = mailer

    @activity.defn(name="send_notification")
    async def send_notification(self, req: NotifyRequest) -> None:
        await self._mailer.send(
            Message(
                key=req.key,
                order_id=req.order_id,
                kind=req.kind,
                recipient=req.recipient,
                subject=req.subject,
                body=req.body,
            )
        )
