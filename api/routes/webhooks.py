"""Outbound webhooks (admin): subscriptions, secrets, the delivery log, redelivery, replay.

The contract a receiver can rely on is in the README ("Outbound webhooks")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from api.deps import ServicesDep, allow
from api.routes.orders import ERRORS
from domain.webhooks import DeliveryStatus
from services.auth import Principal, Role, Scope
from services.webhooks import (
    DeliveryPage,
    DeliveryView,
    ReplayIn,
    ReplayResult,
    RotateIn,
    WebhookCreated,
    WebhookIn,
    WebhookPage,
    WebhookPatch,
    Webhooks,
    WebhookView,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=ERRORS)
Admin = Annotated[Principal, Depends(allow(Role.ADMIN, scope=Scope.WEBHOOKS_ADMIN, own=False))]
EndpointId = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{1,32}$", description="e.g. WH-3K9Q…")]


async def _webhooks(services: ServicesDep) -> Webhooks:
    return Webhooks(services.sessions, services.settings, services.keyring, services.client)


WebhooksDep = Annotated[Webhooks, Depends(_webhooks)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated)
async def create_webhook(
    body: WebhookIn, principal: Admin, webhooks: WebhooksDep, response: Response
) -> WebhookCreated:
    """Subscribe a URL to event types (all by default); the answer holds the signing secret,
    which is never shown again. Events logged from now on are delivered."""
    created = await webhooks.create(principal, body)
    response.headers["Location"] = f"/webhooks/{created.id}"
    return created


@router.get("", response_model=WebhookPage)
async def list_webhooks(principal: Admin, webhooks: WebhooksDep) -> WebhookPage:
    return await webhooks.list(principal)


@router.get("/{endpoint_id}", response_model=WebhookView)
async def get_webhook(
    endpoint_id: EndpointId, principal: Admin, webhooks: WebhooksDep
) -> WebhookView:
    return await webhooks.get(principal, endpoint_id)


@router.patch("/{endpoint_id}", response_model=WebhookView)
async def patch_webhook(
    endpoint_id: EndpointId, body: WebhookPatch, principal: Admin, webhooks: WebhooksDep
) -> WebhookView:
    """Change the URL, types or description; `enabled: true` restarts a disabled endpoint."""
    return await webhooks.patch(principal, endpoint_id, body)


@router.delete("/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(endpoint_id: EndpointId, principal: Admin, webhooks: WebhooksDep) -> None:
    await webhooks.delete(principal, endpoint_id)


@router.post("/{endpoint_id}/rotate-secret", response_model=WebhookCreated)
async def rotate_webhook_secret(
    endpoint_id: EndpointId, principal: Admin, webhooks: WebhooksDep, body: RotateIn | None = None
) -> WebhookCreated:
    """A new secret (shown once); the old one keeps signing alongside until the overlap ends."""
    return await webhooks.rotate(principal, endpoint_id, body or RotateIn())


@router.get("/{endpoint_id}/deliveries", response_model=DeliveryPage)
async def list_deliveries(
    endpoint_id: EndpointId,
    principal: Admin,
    webhooks: WebhooksDep,
    status_: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    order_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9-]{1,32}$")] = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeliveryPage:
    """The delivery log, newest first: status, attempts, last answer, next attempt."""
    return await webhooks.deliveries(
        principal, endpoint_id, status=status_, order_id=order_id, before=before, limit=limit
    )


@router.post("/{endpoint_id}/deliveries/{delivery_id}/redeliver", response_model=DeliveryView)
async def redeliver(
    endpoint_id: EndpointId,
    delivery_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    principal: Admin,
    webhooks: WebhooksDep,
) -> DeliveryView:
    """Send a delivery again now (also a dead or failed one), with a fresh retry schedule."""
    return await webhooks.redeliver(principal, endpoint_id, delivery_id)


@router.post("/{endpoint_id}/replay", response_model=ReplayResult)
async def replay(
    endpoint_id: EndpointId, body: ReplayIn, principal: Admin, webhooks: WebhooksDep
) -> ReplayResult:
    """Deliver every event after the event log id `after` again (a receiver lost data)."""
    return await webhooks.replay(principal, endpoint_id, body)
