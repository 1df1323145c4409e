"""Outbound webhook rules: which answers are retried and when, which targets are allowed, and
the message a receiver gets. Pure: no HTTP, no SQL, no Temporal."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

MAX_URL = 2000
JITTER = 0.1  # each retry wait is moved by up to 10 % either way
MAX_RETRY_AFTER = timedelta(hours=24)


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its attempt (or its retry)
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"  # a final answer (3xx, 4xx but 408/429): not retried
    DEAD = "dead"  # retried to the end of the schedule: the dead letter

    @property
    def final(self) -> bool:
        return self is not DeliveryStatus.PENDING


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    GONE = "gone"  # 410: the receiver says the endpoint is gone; it is disabled


@dataclass(frozen=True)
class Outcome:
    """What one attempt's answer means; ``retry_after``: the receiver's wish (429/503)."""

    verdict: Verdict
    retry_after: timedelta | None = None


def classify(status: int | None, retry_after: str | None = None, *, now: datetime) -> Outcome:
    """The outcome of an answer with ``status`` (None: timeout, refused or reset connection)."""
    if status is None:
        return Outcome(Verdict.RETRY)
    if 200 <= status < 300:
        return Outcome(Verdict.DELIVERED)
    if status == 410:
        return Outcome(Verdict.GONE)
    if status in (408, 429) or status >= 500:
        wish = parse_retry_after(retry_after, now) if status in (429, 503) else None
        return Outcome(Verdict.RETRY, wish)
    return Outcome(Verdict.FAILED)


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as seconds or an HTTP date; None when absent or unreadable; capped."""
    if not value:
        return None
    value = value.strip()
    wait: timedelta | None
    if value.isdigit():
        wait = timedelta(seconds=int(value))
    else:
        try:
            wait = parsedate_to_datetime(value) - now
        except (TypeError, ValueError, IndexError):
            return None
    return max(timedelta(0), min(wait, MAX_RETRY_AFTER))


def next_wait(
    schedule: Sequence[timedelta], attempts: int, rng: random.Random, wish: timedelta | None = None
) -> timedelta | None:
    """The wait before the next try after ``attempts`` failed ones (None: the schedule is
    over, the delivery is dead). The receiver's ``Retry-After`` wins when it asks for longer."""
    if attempts > len(schedule):
        return None
    base = schedule[attempts - 1]
    jittered = base * (1 + rng.uniform(-JITTER, JITTER))
    return max(jittered, wish) if wish is not None else jittered


class TargetError(ValueError):
    """A webhook URL that may not be used (the message says why)."""


def check_url(url: str) -> tuple[str, str]:
    """(scheme, host) of a webhook URL: http(s), a host, no credentials, no fragment."""
    if len(url) > MAX_URL:
        raise TargetError(f"at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetError(f"not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise TargetError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise TargetError("has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetError("must not hold credentials (the signature authenticates)")
    if parts.fragment:
        raise TargetError("must not have a #fragment")
    if port == 0:
        raise TargetError("port 0 is not a port")
    return parts.scheme, parts.hostname


def private_address(address: str) -> str | None:
    """Why ``address`` (an IP) is not a public target, or None if it is one."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_private or ip.is_reserved or ip.is_multicast or ip.is_unspecified:
        return "a private or reserved address"
    return None


def message_id(order_id: str, seq: int) -> str:
    """The ``webhook-id`` of an order's event: the same on every attempt, redelivery and replay,
    and for every endpoint, so a receiver can drop duplicates by it."""
    return f"msg_{order_id}_{seq}"


def body(
    *, event_type: str, at: datetime, order_id: str, seq: int, cursor: int, status: str, event: Any
) -> dict[str, Any]:
    """The JSON a receiver gets: a thin event (the timeline entry's fields, no customer data)."""
    return {
        "type": event_type,
        "timestamp": at.isoformat(),
        "data": {
            "order_id": order_id,
            "seq": seq,
            "cursor": cursor,
            "status": status,
            "event": event,
        },
    }
