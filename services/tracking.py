"""The customer's tracking link: a signed, expiring token naming one order, and what the
public tracking page may show of that order (and nothing more).

The token is ``{order id, expiry}`` sealed with the key ring (AES-256-GCM) under its own
associated data, so it never passes for a session cookie or a payload and cannot be changed
without failing. A link is ``{public_base_url}/track/{token}``; emails carry it
(:class:`TrackingLinks`, used by the notification activity at send time).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from domain.status import OrderStatus
from security.keyring import KeyRing
from security.sealing import seal_data, unseal_data
from services.context import Services
from services.errors import Kind, ServiceError
from services.orders import Orders
from services.views import OrderDetail

AAD = b"orderly-track:v1"
PATH = "/track/"
# How long a parcel usually travels once the carrier has it (the simulated carrier's promise).
TRANSIT_ESTIMATE = timedelta(days=3)
S = OrderStatus


class LinkProblem(StrEnum):
    INVALID = "invalid"  # tampered, foreign or unknown: 404
    EXPIRED = "expired"  # genuine but past its expiry: 410


class TrackingRefused(Exception):
    def __init__(self, problem: LinkProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


class TrackingLinks:
    """Makes and checks tracking tokens with the key ring."""

    def __init__(self, ring: KeyRing, base_url: str, ttl: timedelta) -> None:
        self._ring, self._base, self._ttl = ring, base_url.rstrip("/"), ttl

    def token(
        self, order_id: str, *, now: float | None = None, ttl: timedelta | None = None
    ) -> str:
        expires = int(
            (now if now is not None else time.time()) + (ttl or self._ttl).total_seconds()
        )
        return seal_data(self._ring, AAD, {"o": order_id, "e": expires})

    def url(self, order_id: str, *, now: float | None = None) -> str:
        return f"{self._base}{PATH}{self.token(order_id, now=now)}"

    def order_id(self, token: str, *, now: float | None = None) -> str:
        """The order a token names; raises :class:`TrackingRefused` (invalid or expired)."""
        data = unseal_data(self._ring, AAD, token)
        order_id, expires = (data or {}).get("o"), (data or {}).get("e")
        if not isinstance(order_id, str) or not isinstance(expires, int):
            raise TrackingRefused(LinkProblem.INVALID)
        if expires <= (now if now is not None else time.time()):
            raise TrackingRefused(LinkProblem.EXPIRED)
        return order_id


def links_for(services: Services) -> TrackingLinks:
    s = services.settings
    return TrackingLinks(services.keyring, s.public_base_url, s.tracking_link_ttl)


class Stage(StrEnum):
    """The order's status in the customer's words."""

    RECEIVED = "received"
    BEING_APPROVED = "being_approved"
    AWAITING_PAYMENT = "awaiting_payment"
    CONFIRMED = "confirmed"
    PACKED = "packed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    ON_HOLD = "on_hold"
    CANCELLED = "cancelled"


STAGES: dict[OrderStatus, Stage] = {
    S.RECEIVED: Stage.RECEIVED,
    S.CREDIT_CHECK: Stage.RECEIVED,
    S.AWAITING_APPROVAL: Stage.BEING_APPROVED,
    S.CHANGES_REQUESTED: Stage.BEING_APPROVED,
    S.CONFIRMED: Stage.CONFIRMED,
    S.AWAITING_PAYMENT: Stage.AWAITING_PAYMENT,
    S.PAID: Stage.CONFIRMED,
    S.FULFILLING: Stage.PACKED,
    S.SHIPPED: Stage.SHIPPED,
    S.DELIVERED: Stage.DELIVERED,
    S.COMPLETED: Stage.DELIVERED,
    S.NEEDS_ATTENTION: Stage.ON_HOLD,
    S.CANCELLED: Stage.CANCELLED,
    S.REJECTED: Stage.CANCELLED,
    S.FAILED: Stage.CANCELLED,
}
# The steps of an order that goes well, as the page lists them.
PROGRESS = (
    Stage.RECEIVED,
    Stage.CONFIRMED,
    Stage.PACKED,
    Stage.SHIPPED,
    Stage.DELIVERED,
)


@dataclass(frozen=True)
class Scan:
    what: str  # picked_up | in_transit | delivered | exception
    location: str | None
    at: datetime


@dataclass(frozen=True)
class Tracking:
    """Everything the public page shows: no name, street, email or line items; the total
    only when the settings allow it."""

    order_id: str
    stage: Stage
    step: int | None  # index in PROGRESS reached; None off the normal path
    carrier: str | None
    tracking_number: str | None
    last_scan: Scan | None
    expected_by: date | None
    delivered_on: date | None
    city: str
    total: Decimal | None
    currency: str | None


def _step(stage: Stage) -> int | None:
    if stage is Stage.BEING_APPROVED or stage is Stage.AWAITING_PAYMENT:
        return 0
    return PROGRESS.index(stage) if stage in PROGRESS else None


def _first_at(order: OrderDetail, kind: str) -> datetime | None:
    return next((e.at for e in order.timeline if e.type == kind), None)


def _last_scan(order: OrderDetail, tracking_number: str | None) -> Scan | None:
    for e in reversed(order.timeline):
        if e.type != "carrier_scan" or e.data.get("tracking_number") != tracking_number:
            continue
        occurred = e.data.get("occurred_at")
        at = datetime.fromisoformat(occurred) if isinstance(occurred, str) else e.at
        location = e.data.get("location")
        return Scan(str(e.data.get("scan")), location if isinstance(location, str) else None, at)
    return None


def tracking_view(order: OrderDetail, *, sla: timedelta, show_prices: bool) -> Tracking:
    """The allowed fields of ``order`` for its customer."""
    stage = STAGES[order.status]
    delivered = order.shipment.delivered_at
    expected: date | None = None
    if stage not in (Stage.CANCELLED, Stage.ON_HOLD, Stage.DELIVERED):
        shipped = _first_at(order, "shipped")
        confirmed = _first_at(order, "confirmed")
        if shipped is not None:
            expected = (shipped + TRANSIT_ESTIMATE).date()
        elif confirmed is not None:
            expected = (confirmed + sla).date()
    return Tracking(
        order_id=order.id,
        stage=stage,
        step=_step(stage),
        carrier=order.shipment.carrier,
        tracking_number=order.shipment.tracking_number,
        last_scan=_last_scan(order, order.shipment.tracking_number),
        expected_by=expected,
        delivered_on=delivered.astimezone(UTC).date() if delivered else None,
        city=order.shipping_address.city,
        total=order.total if show_prices else None,
        currency=order.currency if show_prices else None,
    )


class OrderTracking:
    """The tracking page's use case: a token in, the order's public view out."""

    def __init__(self, services: Services) -> None:
        self._s = services
        self.links = links_for(services)

    async def view(self, token: str) -> Tracking:
        """Raises :class:`TrackingRefused` for a bad or expired token or an unknown order, and
        :class:`ServiceError` (unavailable) when the order cannot be read now."""
        order_id = self.links.order_id(token)
        try:
            order = await Orders(self._s).get(order_id)
        except ServiceError as exc:
            if exc.kind is Kind.NOT_FOUND:
                raise TrackingRefused(LinkProblem.INVALID) from exc
            raise
        s = self._s.settings
        return tracking_view(order, sla=s.delivery_sla, show_prices=s.tracking_show_prices)
