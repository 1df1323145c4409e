"""The order search for staff: by order id (exact: straight to the order page), external
reference, customer, status and created date, newest first, paged by cursor
(``services.orders.Orders.list`` over the read model)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.errors import STATUS
from console.auth import ServicesDep, Staff
from console.i18n import Translate, translator
from console.routes.inbox import failure_page
from console.web import finish, is_partial, language_of, page, redirect
from domain.order import no_control_chars
from domain.status import OrderStatus
from services.errors import ServiceError
from services.orders import OrderFilter, Orders
from services.views import OrderPage

router = APIRouter(prefix="/console", include_in_schema=False)
PAGE_SIZE = 25
MAX_CURSOR = 200
ORDER_ID = re.compile(r"^[A-Za-z0-9-]{1,32}$")
S = OrderStatus

# Each status as a word (translated in console/locales/zh/lists.json) and a badge class;
# the word is always shown, the colour only repeats it.
STATUS_WORDS: dict[OrderStatus, str] = {
    S.RECEIVED: "received",
    S.CREDIT_CHECK: "credit check",
    S.AWAITING_APPROVAL: "awaiting approval",
    S.CHANGES_REQUESTED: "changes requested",
    S.CONFIRMED: "confirmed",
    S.AWAITING_PAYMENT: "awaiting payment",
    S.PAID: "paid",
    S.FULFILLING: "fulfilling",
    S.SHIPPED: "shipped",
    S.DELIVERED: "delivered",
    S.COMPLETED: "completed",
    S.NEEDS_ATTENTION: "needs attention",
    S.CANCELLED: "cancelled",
    S.REJECTED: "rejected",
    S.FAILED: "failed",
}
_OK = {S.CONFIRMED, S.PAID, S.DELIVERED, S.COMPLETED}
_WARN = {S.AWAITING_APPROVAL, S.CHANGES_REQUESTED, S.AWAITING_PAYMENT, S.NEEDS_ATTENTION}
_BAD = {S.CANCELLED, S.REJECTED, S.FAILED}


def status_badge(status: OrderStatus) -> str:
    """The badge class of a status: ok, warn, bad or info."""
    if status in _OK:
        return "ok"
    if status in _WARN:
        return "warn"
    return "bad" if status in _BAD else "info"


class _Problems:
    def __init__(self, t: Translate) -> None:
        self.t = t
        self.found: list[tuple[str, str]] = []

    def add(self, field: str, reason: str) -> None:
        self.found.append((field, reason))


def _text(params: Any, name: str, limit: int, problems: _Problems) -> str | None:
    value = str(params.get(name, "")).strip()
    if not value:
        return None
    if len(value) > limit:
        problems.add(name, problems.t("must be at most {n} characters", n=limit))
        return None
    try:
        return no_control_chars(value)
    except ValueError:
        problems.add(name, problems.t("must not contain control characters"))
        return None


def _day(params: Any, name: str, problems: _Problems) -> date | None:
    value = str(params.get(name, "")).strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.add(name, problems.t("must be a date such as 2026-12-31"))
        return None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _jump(request: Request, to: str) -> Response:
    """To the order page: a whole page load, also from an htmx search."""
    if is_partial(request):
        return finish(request, Response(status_code=204, headers={"HX-Redirect": to}))
    return redirect(request, to)


@router.get("/orders")
async def search_orders(request: Request, viewer: Staff, services: ServicesDep) -> Response:
    """Orders newest first, filtered; an exact order id opens that order."""
    t = translator(language_of(request, viewer))
    params = request.query_params
    problems = _Problems(t)
    order_id = _text(params, "order_id", 32, problems)
    if order_id is not None:
        order_id = order_id.upper()
        if not ORDER_ID.match(order_id):
            problems.add("order_id", t("must look like SO-20261123-7K2QF"))
            order_id = None
    reference = _text(params, "external_reference", 64, problems)
    customer_id = _text(params, "customer_id", 64, problems)
    status: OrderStatus | None = None
    if status_text := params.get("status", "").strip():
        try:
            status = OrderStatus(status_text)
        except ValueError:
            problems.add("status", t("is not an order status"))
    created_from = _day(params, "created_from", problems)
    created_to = _day(params, "created_to", problems)
    if created_from and created_to and created_to < created_from:
        problems.add("created_to", t("must not be before the start date"))
    cursor = params.get("cursor", "").strip() or None
    if cursor is not None and len(cursor) > MAX_CURSOR:
        problems.add("cursor", t("is not one this page gave out"))

    found = OrderPage(items=[], next_cursor=None)
    orders = Orders(services)
    principal = viewer.user.principal
    missing_id = None
    if not problems.found:
        flt = OrderFilter(
            status=status,
            customer_id=customer_id,
            created_from=_midnight(created_from) if created_from else None,
            created_to=_midnight(created_to + timedelta(days=1)) if created_to else None,
            order_id=order_id,
            external_reference=reference,
        )
        try:
            if order_id is not None:
                exact = await orders.list(
                    OrderFilter(order_id=order_id), limit=1, cursor=None, principal=principal
                )
                if exact.items:
                    return _jump(request, f"/console/orders/{quote(order_id, safe='')}")
                missing_id = order_id
            else:
                found = await orders.list(flt, limit=PAGE_SIZE, cursor=cursor, principal=principal)
        except ServiceError as exc:
            if STATUS[exc.kind] != 422:
                return failure_page(request, exc)
            problems.add("cursor", t("is not one this page gave out"))

    chosen = {
        "order_id": params.get("order_id", "").strip(),
        "external_reference": params.get("external_reference", "").strip(),
        "customer_id": params.get("customer_id", "").strip(),
        "status": params.get("status", "").strip(),
        "created_from": params.get("created_from", "").strip(),
        "created_to": params.get("created_to", "").strip(),
    }
    kept = {k: v for k, v in chosen.items() if v and k != "order_id"}
    next_url = None
    if found.next_cursor:
        next_url = "/console/orders?" + urlencode({**kept, "cursor": found.next_cursor})
    first = urlencode(kept)
    context: dict[str, Any] = {
        "items": found.items,
        "chosen": chosen,
        "statuses": [(s.value, STATUS_WORDS[s]) for s in OrderStatus],
        "status_words": STATUS_WORDS,
        "status_badge": status_badge,
        "filtered": bool(kept),
        "paged": cursor is not None,
        "first_url": "/console/orders" + (f"?{first}" if first else ""),
        "next_url": next_url,
        "missing_id": missing_id,
        "problems": problems.found,
    }
    code = 422 if problems.found else 200  # htmx swaps 422 in too (base.html)
    return page(request, "search.html", context, partial="_search_results.html", status=code)
