"""The order page's commands: approve, reject, request changes, cancel, retry or resolve a
compensation. Each form carries an idempotency key (one per rendered form), is checked here
(a 422 page names the field) and runs the use case as the viewer; a refusal shows on the order
page with the status the API would answer."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from api.errors import STATUS
from console.auth import Approver, ServicesDep, Support, Viewer
from console.i18n import Translate, translator
from console.routes.orders import (
    CANCEL_REASONS,
    FORM_KEY,
    MAX_TEXT,
    OrderId,
    Problem,
    check_id,
    error_page,
    show,
)
from console.web import language_of, redirect
from domain.order import no_control_chars
from domain.status import Action
from services.approvals import Approvals
from services.commands import Commands
from services.context import Services
from services.errors import Kind, ServiceError
from services.orders import Outcome

router = APIRouter(prefix="/console/orders", include_in_schema=False)


def _text(
    value: str, field: str, t: Translate, *, required: bool, limit: int = MAX_TEXT
) -> tuple[str, Problem | None]:
    """A one-line text as the workflow accepts it (line breaks become spaces)."""
    text = " ".join(value.split())
    if required and not text:
        return text, Problem(t("{field}: required, say why", field=field), field)
    if len(text) > limit:
        return text, Problem(t("{field}: at most {n} characters", field=field, n=limit), field)
    try:
        no_control_chars(text)
    except ValueError as exc:
        return text, Problem(f"{field}: {exc}", field)
    return text, None


def _key(value: str) -> str | None:
    """The form's idempotency key (one per rendered form): a double submit acts once."""
    return value if FORM_KEY.match(value) else None


async def _act(
    request: Request,
    viewer: Viewer,
    services: Services,
    order_id: str,
    action: Action,
    run: Any,
    problem: Problem | None,
) -> Response:
    """Run the command ``run()`` unless the form is refused; back to the order page."""
    try:
        check_id(order_id)
    except ServiceError as exc:
        return error_page(request, viewer, exc)
    if problem is not None:
        request.state.audit_reason = problem.message
        return await show(request, viewer, services, order_id, problem=problem, status=422)
    try:
        outcome: Outcome = await run()
    except ServiceError as exc:
        request.state.audit_reason = exc.message
        if exc.kind is Kind.NOT_FOUND:
            return error_page(request, viewer, exc)
        allowed = exc.extra.get("allowed_actions")
        refused = Problem(
            exc.message,
            field=(exc.extra.get("fields") or [{}])[0].get("field"),
            allowed=tuple(allowed) if allowed is not None else None,
        )
        status = STATUS[exc.kind]
        return await show(request, viewer, services, order_id, problem=refused, status=status)
    target = f"/console/orders/{quote(order_id)}?done={action.value}"
    return redirect(request, target if outcome.finished else target + "&pending=1")


Text = Annotated[str, Form()]


@router.post("/{order_id}/approve")
async def approve(
    request: Request,
    order_id: OrderId,
    viewer: Approver,
    services: ServicesDep,
    comment: Text = "",
    key: Text = "",
) -> Response:
    """Approve at the approver's level, with an optional comment."""
    t = translator(language_of(request, viewer))
    text, problem = _text(comment, "comment", t, required=False)

    async def run() -> Outcome:
        p = viewer.user.principal
        return await Approvals(services).approve(order_id, p, text or None, None, _key(key))

    return await _act(request, viewer, services, order_id, Action.APPROVE, run, problem)


@router.post("/{order_id}/reject")
async def reject(
    request: Request,
    order_id: OrderId,
    viewer: Approver,
    services: ServicesDep,
    reason: Text = "",
    key: Text = "",
) -> Response:
    """Reject at the approver's level; a reason is required."""
    t = translator(language_of(request, viewer))
    text, problem = _text(reason, "reason", t, required=True)

    async def run() -> Outcome:
        p = viewer.user.principal
        return await Approvals(services).reject(order_id, p, text, None, _key(key))

    return await _act(request, viewer, services, order_id, Action.REJECT, run, problem)


@router.post("/{order_id}/request-changes")
async def request_changes(
    request: Request,
    order_id: OrderId,
    viewer: Approver,
    services: ServicesDep,
    reason: Text = "",
    key: Text = "",
) -> Response:
    """Send the order back to sales; a reason is required."""
    t = translator(language_of(request, viewer))
    text, problem = _text(reason, "reason", t, required=True)

    async def run() -> Outcome:
        p = viewer.user.principal
        return await Approvals(services).request_changes(order_id, p, text, None, _key(key))

    return await _act(request, viewer, services, order_id, Action.REQUEST_CHANGES, run, problem)


@router.post("/{order_id}/cancel")
async def cancel(
    request: Request,
    order_id: OrderId,
    viewer: Support,
    services: ServicesDep,
    reason_code: Text = "",
    note: Text = "",
    key: Text = "",
) -> Response:
    """Cancel with a reason code and an optional note (stock released, payment refunded)."""
    t = translator(language_of(request, viewer))
    problem = None
    if reason_code not in dict(CANCEL_REASONS):
        codes = ", ".join(code for code, _ in CANCEL_REASONS)
        problem = Problem(t("reason_code: choose one of {codes}", codes=codes), "reason_code")
    room = MAX_TEXT - len("payment_problem: ")  # the longest code and its separator
    text, note_problem = _text(note, "note", t, required=False, limit=room)
    problem = problem or note_problem
    reason = f"{reason_code}: {text}" if text else reason_code

    async def run() -> Outcome:
        return await Commands(services).cancel(order_id, viewer.user.principal, reason, _key(key))

    return await _act(request, viewer, services, order_id, Action.CANCEL, run, problem)


@router.post("/{order_id}/retry-compensation")
async def retry_compensation(
    request: Request, order_id: OrderId, viewer: Support, services: ServicesDep, key: Text = ""
) -> Response:
    """A ``needs_attention`` order: run the refused compensation again."""

    async def run() -> Outcome:
        return await Commands(services).retry_compensation(
            order_id, viewer.user.principal, _key(key)
        )

    return await _act(request, viewer, services, order_id, Action.RETRY_COMPENSATION, run, None)


@router.post("/{order_id}/resolve-compensation")
async def resolve_compensation(
    request: Request,
    order_id: OrderId,
    viewer: Support,
    services: ServicesDep,
    note: Text = "",
    key: Text = "",
) -> Response:
    """A ``needs_attention`` order: the refused step was settled by hand; a note is required."""
    t = translator(language_of(request, viewer))
    text, problem = _text(note, "note", t, required=True)

    async def run() -> Outcome:
        return await Commands(services).resolve_compensation(
            order_id, viewer.user.principal, text, _key(key)
        )

    return await _act(
        request, viewer, services, order_id, Action.RESOLVE_COMPENSATION, run, problem
    )
