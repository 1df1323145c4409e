"""Email rules: which events send which message to whom, in which language, and which SMTP
answers are retried. Pure: no SMTP, no SQL, no Temporal."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

Language = Literal["en", "zh-CN"]
LANGUAGES: tuple[Language, ...] = ("en", "zh-CN")
DEFAULT_LANGUAGE: Language = "en"


def language_of(value: str | None) -> Language:
    """A stored or requested language as one we write emails in: any Chinese tag is
    Simplified Chinese (``zh``, ``zh_CN``, ``zh-Hans``), anything else English."""
    if value and value.replace("_", "-").lower().split("-")[0] == "zh":
        return "zh-CN"
    return DEFAULT_LANGUAGE


class MailStatus(StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt
    SENT = "sent"  # the server accepted it
    FAILED = "failed"  # refused for good, no recipient, or retried to the end of the schedule


class Audience(StrEnum):
    CUSTOMER = "customer"  # the order's customer
    APPROVERS = "approvers"  # everyone who holds the event's approval level
    SUPPORT = "support"  # the support mailbox (settings.mail_support_to)


@dataclass(frozen=True)
class Trigger:
    kind: str  # the template's name
    audience: Audience


# Which events of the log send an email (every other event sends none).
TRIGGERS: dict[str, Trigger] = {
    "approval_reminder_sent": Trigger("approval_reminder", Audience.APPROVERS),
    "approval_escalated": Trigger("approval_escalated", Audience.APPROVERS),
    "payment_reminder_sent": Trigger("payment_reminder", Audience.CUSTOMER),
    "cancelled": Trigger("cancelled", Audience.CUSTOMER),
    "completed": Trigger("delivered", Audience.CUSTOMER),
    "delivery_overdue": Trigger("delivery_overdue", Audience.SUPPORT),
    "compensation_failed": Trigger("compensation_failed", Audience.SUPPORT),
}
# Messages sent by the service itself, not by an order's event.
OWNER_KINDS = frozenset({"webhook_disabled", "report_ready"})
KINDS = frozenset(t.kind for t in TRIGGERS.values()) | OWNER_KINDS


def approval_level(event_type: str, payload: dict[str, Any]) -> int:
    """The level whose approvers an approval email goes to: an escalation goes to the level
    it escalated to."""
    if event_type == "approval_escalated":
        return int(payload["to_level"])
    return int(payload["level"])


def mail_key(order_id: str, seq: int, kind: str) -> str:
    """One email per order event and kind: the idempotency key of the outbox."""
    return f"{order_id}:{seq}:{kind}"


Verdict = Literal["retry", "failed"]


def smtp_verdict(code: int | None) -> Verdict:
    """What an SMTP failure means. None (no connection, timeout, dropped) and 4xx replies are
    transient (RFC 5321 §4.2.1): tried again on the schedule; 5xx and anything else are
    permanent: recorded, not retried."""
    if code is None or 400 <= code < 500:
        return "retry"
    return "failed"


_ADDRESS = re.compile(r"<?[^\s<>@,;]+@[^\s<>@,;]+>?")


def redact(text: str) -> str:
    """An error text without the addresses a server may echo (it is stored and logged)."""
    return _ADDRESS.sub("<address>", text)


def mask(address: str) -> str:
    """An address as support lists show it: first letter and domain (``a***@example.com``)."""
    local, at, domain = address.partition("@")
    return f"{local[:1]}***{at}{domain}" if at else "***"
