"""The approver's inbox: orders waiting on a level the signed-in approver may decide, oldest
first, filtered by level and customer tier, paged by cursor (``services.approvals``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.errors import STATUS
from console.auth import Approver, ServicesDep
from console.i18n import translator
from console.web import language_of, page
from domain.order import CustomerTier
from services.approvals import Approvals
from services.errors import ServiceError
from services.views import InboxPage

router = APIRouter(prefix="/console", include_in_schema=False)
PAGE_SIZE = 25
MAX_CURSOR = 200
# What the next deadline of a waiting level is (domain.state ApprovalInfo.next_deadline_kind).
DEADLINE_WORDS = {"reminder": "reminder", "escalation": "escalation", "expiry": "expiry"}


def level_name(name: str) -> str:
    """The policy's level name, readable: ``sales_manager`` → ``sales manager``."""
    return name.replace("_", " ")


def failure_page(request: Request, exc: ServiceError) -> Response:
    """A use case's refusal or failure, with the status the API gives it."""
    context = {"heading": "Something went wrong", "message": exc.message, "back": None}
    return page(request, "error.html", context, status=STATUS[exc.kind])


def _query(**params: str | None) -> str:
    return urlencode({k: v for k, v in params.items() if v})


@router.get("/inbox")
async def inbox_page(request: Request, viewer: Approver, services: ServicesDep) -> Response:
    """Orders waiting for the approver's decision, oldest first."""
    t = translator(language_of(request, viewer))
    params = request.query_params
    levels = [(rule.level, rule.name) for rule in services.approval_policy.levels]
    known = {level for level, _ in levels}
    level_text = params.get("level", "").strip()
    tier_text = params.get("tier", "").strip()
    cursor = params.get("cursor", "").strip() or None
    problems: list[tuple[str, str]] = []
    level: int | None = None
    if level_text:
        if level_text.isdigit() and int(level_text) in known:
            level = int(level_text)
        else:
            choices = ", ".join(str(n) for n in sorted(known))
            problems.append(("level", t("must be one of the levels {levels}", levels=choices)))
    tier: CustomerTier | None = None
    if tier_text:
        try:
            tier = CustomerTier(tier_text)
        except ValueError:
            choices = ", ".join(x.value for x in CustomerTier)
            problems.append(("tier", t("must be one of {tiers}", tiers=choices)))
    if cursor is not None and len(cursor) > MAX_CURSOR:
        problems.append(("cursor", t("is not one this page gave out")))
    found = InboxPage(items=[], next_cursor=None)
    if not problems:
        try:
            found = await Approvals(services).inbox(
                viewer.user.principal, level=level, tier=tier, limit=PAGE_SIZE, cursor=cursor
            )
        except ServiceError as exc:
            if STATUS[exc.kind] != 422:
                return failure_page(request, exc)
            problems.append(("cursor", t("is not one this page gave out")))
    filters = {"level": level_text, "tier": tier_text}
    next_url = (
        f"/console/inbox?{_query(**filters, cursor=found.next_cursor)}"
        if found.next_cursor
        else None
    )
    context: dict[str, Any] = {
        "items": found.items,
        "levels": [(n, level_name(name)) for n, name in levels],
        "tiers": [x.value for x in CustomerTier],
        "chosen": filters,
        "filtered": bool(level_text or tier_text),
        "holds_levels": bool(viewer.user.principal.approval_levels),
        "paged": cursor is not None,
        "first_url": f"/console/inbox?{_query(**filters)}".rstrip("?"),
        "next_url": next_url,
        "problems": problems,
        "level_name": level_name,
        "deadline_words": DEADLINE_WORDS,
    }
    status = 422 if problems else 200  # htmx swaps 422 in too (base.html)
    return page(request, "inbox.html", context, partial="_inbox_results.html", status=status)
