from __future__ import annotations

from temporalio import activity

from workflows.contracts import NotifyRequest


class NotifyActivities:
    """What orders started before the ``mail-from-event-log`` patch call. Their emails, like
    everyone's, are composed from the event log (activities/mail.py), so this sends nothing:
    it stays registered so that those histories replay and those orders go on."""

    @activity.defn(name="send_notification")
    async def send_notification(self, req: NotifyRequest) -> None:
        activity.logger.debug("notification %s: sent from the event log", req.key)
