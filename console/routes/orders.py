"""The order page: everything an approver needs to decide and support needs to help, the
actions the viewer may take (and only those), and the live view fed by the order's event log.

Routes under ``/console/orders/{order_id}``; the commands are in ``order_actions.py``; the search
list, the inbox and the new-order form belong to other modules (this router is included after
theirs, so ``/console/orders/new`` is theirs).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from api.errors import STATUS
from console.auth import ServicesDep, Staff, Viewer
from console.i18n import translator
from console.web import finish, language_of, page
from domain.status import Action, OrderStatus
from services import events
from services.auth import Role
from services.context import Services
from services.errors import Kind, ServiceError, not_found
from services.orders import OrderFilter, Orders
from services.views import OrderDetail, OrderSummary

router = APIRouter(prefix="/console/orders", include_in_schema=False)

OrderId = Annotated[str, Path()]  # checked by check_id: a malformed id is a 404 page, not JSON
_ID = re.compile(r"^[A-Za-z0-9-]{1,32}$")
MAX_TEXT = 500  # the workflow's limit for reasons, notes and comments
RECENT = 5
# The live stream: how often it looks at the event log, when it sends a keep-alive comment,
# and how long one connection lives (the browser's EventSource reconnects on its own, with
# Last-Event-ID); bounded so that no open page holds a server's shutdown for long.
POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
STREAM_SECONDS = 180.0
RECONNECT_MS = 2000

APPROVER_ACTIONS = frozenset({Action.APPROVE, Action.REJECT, Action.REQUEST_CHANGES})
SUPPORT_ACTIONS = frozenset({Action.CANCEL, Action.RETRY_COMPENSATION, Action.RESOLVE_COMPENSATION})
CANCEL_REASONS = (
    ("customer_request", "Customer request"),
    ("duplicate", "Duplicate order"),
    ("out_of_stock", "Out of stock"),
    ("payment_problem", "Payment problem"),
    ("fraud_suspected", "Fraud suspected"),
    ("other", "Other"),
)
FORM_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

S = OrderStatus
# Badge class and symbol of each status: the word is always shown too (never colour alone).
LOOK: dict[OrderStatus, tuple[str, str]] = {
    S.RECEIVED: ("info", "○"),
    S.CREDIT_CHECK: ("info", "○"),
    S.AWAITING_APPROVAL: ("warn", "◷"),
    S.CHANGES_REQUESTED: ("warn", "↩"),
    S.CONFIRMED: ("info", "●"),
    S.AWAITING_PAYMENT: ("warn", "◷"),
    S.PAID: ("info", "●"),
    S.FULFILLING: ("info", "▶"),
    S.SHIPPED: ("info", "▶"),
    S.DELIVERED: ("ok", "✓"),
    S.COMPLETED: ("ok", "✓"),
    S.NEEDS_ATTENTION: ("bad", "!"),
    S.CANCELLED: ("bad", "✕"),
    S.REJECTED: ("bad", "✕"),
    S.FAILED: ("bad", "✕"),
}
LEVEL_LOOK = {
    "pending": ("info", "○"),
    "waiting": ("warn", "◷"),
    "approved": ("ok", "✓"),
    "rejected": ("bad", "✕"),
}
REFUND_WORDS = {"none": "no refund", "partial": "partly refunded", "full": "fully refunded"}
# What the page says after an action (never text from the request).
DONE = {
    "approve": "Approved.",
    "reject": "Rejected.",
    "request_changes": "Sent back for changes.",
    "cancel": "Cancellation requested.",
    "retry_compensation": "The refused step is being retried.",
    "resolve_compensation": "Marked as settled by hand.",
}


@dataclass(frozen=True)
class LineRow:
    sku: str
    quantity: int
    unit_price: Decimal
    list_price: Decimal | None
    discount_pct: Decimal | None  # None: no list price
    flagged: bool  # above the approval policy's discount limit
    line_total: Decimal


@dataclass(frozen=True)
class Problem:
    """A refused form or command: the field (if any) and the reason, shown on the page."""

    message: str
    field: str | None = None
    allowed: tuple[str, ...] | None = None


def viewer_actions(order: OrderDetail, viewer: Viewer) -> list[Action]:
    """The order's allowed actions that this viewer may take from the console (the API's
    rules: deciding needs an approver holding a level that may decide the waiting level;
    cancel and compensations need support; payments, scans and splits are not for people)."""
    mine: set[Action] = set()
    waiting = order.approval.waiting()
    if (
        viewer.has(Role.APPROVER)
        and waiting is not None
        and viewer.user.principal.approval_levels & set(waiting.eligible_levels)
    ):
        mine |= APPROVER_ACTIONS
    if viewer.has(Role.SUPPORT):
        mine |= SUPPORT_ACTIONS
    return [a for a in order.allowed_actions if a in mine]


def _lines(order: OrderDetail, limit_pct: Decimal) -> list[LineRow]:
    rows = []
    for line in order.lines:
        pct = line.discount_pct().quantize(Decimal("0.1")) if line.list_price else None
        rows.append(
            LineRow(
                sku=line.sku,
                quantity=line.quantity,
                unit_price=line.unit_price,
                list_price=line.list_price,
                discount_pct=pct,
                flagged=pct is not None and pct > limit_pct,
                line_total=line.line_total,
            )
        )
    return rows


def temporal_link(services: Services, order_id: str) -> str:
    """The order's workflow (id = order id) in the Temporal UI."""
    s = services.settings
    namespace = quote(s.temporal_namespace, safe="")
    return f"{s.temporal_ui_origin}/namespaces/{namespace}/workflows/{quote(order_id, safe='')}"


async def _recent(services: Services, order: OrderDetail, viewer: Viewer) -> list[OrderSummary]:
    found = await Orders(services).list(
        OrderFilter(customer_id=order.customer.id),
        limit=RECENT + 1,
        cursor=None,
        principal=viewer.user.principal,
    )
    return [o for o in found.items if o.id != order.id][:RECENT]


def _context(
    services: Services,
    order: OrderDetail,
    viewer: Viewer,
    recent: list[OrderSummary],
    problem: Problem | None,
    notice: str | None,
) -> dict[str, Any]:
    policy = services.approval_policy
    return {
        "order": order,
        "look": LOOK,
        "level_look": LEVEL_LOOK,
        "lines": _lines(order, policy.max_discount_pct),
        "discount_limit": policy.max_discount_pct,
        "actions": [a.value for a in viewer_actions(order, viewer)],
        "is_approver": viewer.has(Role.APPROVER),
        "refund_words": REFUND_WORDS,
        "waiting": order.approval.waiting(),
        "timeline": list(reversed(order.timeline)),
        "last_seq": max((e.seq for e in order.timeline), default=0),
        "recent": recent,
        "temporal_url": temporal_link(services, order.id),
        "cancel_reasons": CANCEL_REASONS,
        "form_key": secrets.token_urlsafe(18),
        "problem": problem,
        "notice": notice,
    }


def check_id(order_id: str) -> None:
    """A 404 for an id no order can have (the order ids' alphabet and length)."""
    if not _ID.match(order_id):
        raise not_found("order")


def error_page(request: Request, viewer: Viewer, exc: ServiceError) -> Response:
    t = translator(language_of(request, viewer))
    status = STATUS[exc.kind]
    heading = "Order not found" if exc.kind is Kind.NOT_FOUND else "Order unavailable"
    message = exc.message if exc.kind is not Kind.NOT_FOUND else t("There is no such order.")
    context = {"heading": heading, "message": message, "back": "/console/orders"}
    return page(request, "error.html", context, status=status)


async def show(
    request: Request,
    viewer: Viewer,
    services: Services,
    order_id: str,
    *,
    problem: Problem | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    try:
        check_id(order_id)
        order = await Orders(services).get(order_id, viewer.user.principal)
        recent = await _recent(services, order, viewer)
    except ServiceError as exc:
        return error_page(request, viewer, exc)
    context = _context(services, order, viewer, recent, problem, notice)
    return page(request, "order.html", context, partial="_order_panel.html", status=status)


@router.get("/{order_id}")
async def order_page(
    request: Request,
    order_id: OrderId,
    viewer: Staff,
    services: ServicesDep,
    done: Annotated[str | None, Query(max_length=32)] = None,
    pending: Annotated[str | None, Query(max_length=8)] = None,
) -> Response:
    """One order: facts, approval chain, payment, parcels, timeline, and the viewer's actions."""
    t = translator(language_of(request, viewer))
    notice = None
    if done in DONE:
        notice = t(DONE[done])
        if pending:
            notice += " " + t("The order is still working on it; this page updates itself.")
    return await show(request, viewer, services, order_id, notice=notice)


@router.get("/{order_id}/panel")
async def order_panel(
    request: Request, order_id: OrderId, viewer: Staff, services: ServicesDep
) -> Response:
    """The live part of the order page (htmx swaps it in when the event log grows)."""
    try:
        check_id(order_id)
        order = await Orders(services).get(order_id, viewer.user.principal)
        recent = await _recent(services, order, viewer)
    except ServiceError as exc:
        return error_page(request, viewer, exc)
    context = _context(services, order, viewer, recent, None, None)
    return page(request, "_order_panel.html", context)


# --- live ------------------------------------------------------------------------------------


def _sse(event: str, seq: int, data: dict[str, Any]) -> str:
    return f"event: {event}\nid: {seq}\ndata: {json.dumps(data)}\n\n"


async def _event_stream(
    request: Request, services: Services, order_id: str, after: int
) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    quiet_since = started
    yield f"retry: {RECONNECT_MS}\n: live view of {order_id}\n\n"
    while loop.time() - started < STREAM_SECONDS:
        if await request.is_disconnected():
            return
        seq = await events.last_seq(services, order_id)
        if seq > after:
            after = seq
            quiet_since = loop.time()
            yield _sse("order-event", seq, {"order_id": order_id, "seq": seq})
        elif loop.time() - quiet_since >= KEEPALIVE_SECONDS:
            quiet_since = loop.time()
            yield ": keep-alive\n\n"
        await asyncio.sleep(POLL_SECONDS)


@router.get("/{order_id}/live")
async def order_live(
    request: Request,
    order_id: OrderId,
    viewer: Staff,
    services: ServicesDep,
    after: Annotated[int, Query(ge=0, le=2**31)] = 0,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> Response:
    """Server-sent events: ``order-event`` (id = the event's seq) whenever the order's event
    log grows past ``after`` (or the ``Last-Event-ID`` the browser sends when it reconnects)."""
    if last_event_id and last_event_id.isdigit():
        after = int(last_event_id)
    try:
        check_id(order_id)
        if await events.last_seq(services, order_id) == 0:
            # not logged yet: a real order just started, or none at all (404)
            await Orders(services).live_state(order_id)
    except ServiceError as exc:
        return error_page(request, viewer, exc)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    response = StreamingResponse(
        _event_stream(request, services, order_id, after),
        media_type="text/event-stream",
        headers=headers,
    )
    return finish(request, response)
