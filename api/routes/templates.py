"""Order templates (versioned, archived never deleted) and orders created from them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from api.deps import ANY_ROLE, ServicesDep, allow
from api.routes.orders import ERRORS, IdempotencyKey
from domain.pricing import TemplateContent, TemplateOverrides
from services.analytics import Recommendations
from services.auth import Principal, Role, Scope
from services.templates import TemplatePage, TemplatePatch, Templates, TemplateView
from services.views import OrderDetail

router = APIRouter(prefix="/templates", tags=["templates"], responses=ERRORS)
orders_router = APIRouter(prefix="/orders", tags=["orders"], responses=ERRORS)
# Templates are shared by everyone who orders (not one principal's): orders:own keys are refused.
Reader = Annotated[Principal, Depends(allow(*ANY_ROLE, scope=Scope.TEMPLATES_READ, own=False))]
Writer = Annotated[
    Principal, Depends(allow(Role.SYSTEM, Role.SUPPORT, scope=Scope.TEMPLATES_WRITE, own=False))
]
# The suggestions come from sales history: staff and systems, not customers' own keys.
Suggested = Annotated[
    Principal,
    Depends(allow(Role.SYSTEM, Role.SUPPORT, Role.MANAGER, scope=Scope.TEMPLATES_READ, own=False)),
]
User = Annotated[
    Principal, Depends(allow(Role.SYSTEM, Role.SUPPORT, scope=Scope.ORDERS_CREATE, own=False))
]
TemplateId = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{1,32}$", description="e.g. TPL-7K2QF0AB")]


async def _templates(services: ServicesDep) -> Templates:
    return Templates(services)


TemplatesDep = Annotated[Templates, Depends(_templates)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TemplateView)
async def create_template(
    body: TemplateContent, principal: Writer, templates: TemplatesDep, response: Response
) -> TemplateView:
    """Create a template (version 1): customer, lines, address, payment, notes; no prices."""
    view = await templates.create(body, principal)
    response.headers["Location"] = f"/templates/{view.id}"
    return view


@router.get("", response_model=TemplatePage)
async def list_templates(
    _: Reader,
    templates: TemplatesDep,
    archived: Annotated[bool | None, Query(description="Omit for both.")] = None,
    customer_id: Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> TemplatePage:
    """Templates by id, with cursor pagination; filter by archived or customer."""
    return await templates.list(
        archived=archived, customer_id=customer_id, limit=limit, cursor=cursor
    )


@router.get("/{template_id}", response_model=TemplateView)
async def get_template(
    template_id: TemplateId,
    _: Reader,
    templates: TemplatesDep,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> TemplateView:
    """The current version of a template, or `version` N (orders record the one they used)."""
    return await templates.get(template_id, version)


@router.get("/{template_id}/suggestions", response_model=Recommendations)
async def template_suggestions(
    template_id: TemplateId,
    principal: Suggested,
    templates: TemplatesDep,
    limit: Annotated[int, Query(ge=1, le=20)] = 5,
) -> Recommendations:
    """Lines customers often order with the template's lines ("also ordered"), best first:
    candidates to add to the template (a PATCH makes the new version)."""
    return await templates.suggestions(template_id, principal, limit)


@router.put("/{template_id}", response_model=TemplateView)
async def replace_template(
    template_id: TemplateId, body: TemplateContent, principal: Writer, templates: TemplatesDep
) -> TemplateView:
    """Replace the content: a new version; the earlier ones are kept."""
    return await templates.replace(template_id, body, principal)


@router.patch("/{template_id}", response_model=TemplateView)
async def patch_template(
    template_id: TemplateId, body: TemplatePatch, principal: Writer, templates: TemplatesDep
) -> TemplateView:
    """Change some fields: a new version; the earlier ones are kept."""
    return await templates.patch(template_id, body, principal)


@router.post("/{template_id}/archive", response_model=TemplateView)
async def archive_template(
    template_id: TemplateId, principal: Writer, templates: TemplatesDep
) -> TemplateView:
    """Archive for good (never deleted): it can no longer be used or edited."""
    return await templates.archive(template_id, principal)


@orders_router.post(
    "/from-template/{template_id}",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderDetail,
    responses={
        200: {
            "model": OrderDetail,
            "description": "Same Idempotency-Key and body: the order created before",
        }
    },
)
async def create_order_from_template(
    template_id: TemplateId,
    principal: User,
    templates: TemplatesDep,
    response: Response,
    body: TemplateOverrides | None = None,
    idempotency_key: IdempotencyKey = None,
) -> OrderDetail:
    """Start an order from a template, priced from the price list now; like `POST /orders`."""
    order, created = await templates.use(
        template_id, body or TemplateOverrides(), principal, idempotency_key
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/orders/{order.id}"
    return order
