"""The audit middleware: one row per command (every method but GET, HEAD and OPTIONS), written
once the answer is known (see :mod:`services.audit`).

Pure ASGI, so it costs a status capture per request and nothing for reads. What it records
comes from the request after routing: the principal the auth dependency stored in
``request.state.principal``, the reason the error handlers stored in
``request.state.audit_reason``, the route (``scope["route"]``) and its path parameters, and the
client address of the connection. Behind a reverse proxy that address is the proxy's: run
uvicorn with ``--proxy-headers --forwarded-allow-ips=<proxy address>`` so it is the caller's.

The row is written after the response has gone out; if writing it fails, the failure is logged
and the caller's answer stays what it was.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services import audit
from services.audit import AuditOutcome, AuditRecord

log = logging.getLogger("orderly.audit")
READS = frozenset({"GET", "HEAD", "OPTIONS"})
REASON = "audit_reason"  # the request.state attribute the error handlers set


def _header(scope_or_message: Scope | Message, name: bytes) -> str | None:
    for key, value in scope_or_message.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _created_order(location: str | None) -> str | None:
    """The order a create answered with (``Location: /orders/<id>``)."""
    if location and location.startswith("/orders/"):
        return location.removeprefix("/orders/").split("/", 1)[0] or None
    return None


def record_of(
    scope: Scope,
    at: datetime,
    status_code: int,
    *,
    failure: str | None = None,
    location: str | None = None,
) -> AuditRecord:
    """What the audit trail keeps of the request in ``scope``, answered with ``status_code``
    (and ``location``, the answer's Location header, which names a created order)."""
    state: dict[str, Any] = scope.get("state") or {}
    principal = state.get("principal")
    route = scope.get("route")
    client = scope.get("client")
    key_id = getattr(principal, "key_id", None)
    order_id = (scope.get("path_params") or {}).get("order_id") or _created_order(location)
    return AuditRecord(
        at=at,
        principal=getattr(principal, "name", None),
        roles=[str(r) for r in getattr(principal, "roles", ())],
        key_id=None if key_id is None else str(key_id),
        source_ip=client[0] if client else None,
        method=scope["method"],
        path=scope.get("path", ""),
        action=getattr(route, "name", None),
        order_id=None if order_id is None else str(order_id),
        status_code=status_code,
        reason=failure or state.get(REASON),
        request_id=_header(scope, b"x-request-id"),
        idempotency_key=_header(scope, b"idempotency-key"),
        outcome=AuditOutcome.FAILED if failure else None,
    )


class AuditMiddleware:
    """Records every command of the wrapped app in the audit trail."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in READS:
            await self.app(scope, receive, send)
            return
        at = datetime.now(UTC)
        status_code: int | None = None
        location: str | None = None

        async def send_capturing_status(message: Message) -> None:
            nonlocal status_code, location
            if message["type"] == "http.response.start":
                status_code = int(message["status"])
                location = _header(message, b"location")
            await send(message)

        try:
            await self.app(scope, receive, send_capturing_status)
        except Exception as exc:  # answered 500 by ServerErrorMiddleware, outside this one
            failure = f"unhandled error: {type(exc).__name__}"
            await self._write(scope, record_of(scope, at, 500, failure=failure))
            raise
        if status_code is None:
            failure = "no response: the client went away"
            await self._write(scope, record_of(scope, at, 499, failure=failure))
        else:
            await self._write(scope, record_of(scope, at, status_code, location=location))

    async def _write(self, scope: Scope, entry: AuditRecord) -> None:
        try:
            await audit.record(scope["app"].state.services, entry)
        except Exception:
            log.exception("audit row not written: %s %s", entry.method, entry.path)
