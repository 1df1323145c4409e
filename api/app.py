"""The FastAPI application factory: ``uvicorn api.app:create_app --factory``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

import console
from api.audit import AuditMiddleware
from api.docs import install_docs
from api.errors import install_error_handlers
from api.routes import approvals, codec, customers, events, health, keys, orders, prices, templates
from api.routes import audit as audit_routes
from api.routes import imports as imports_routes
from api.routes import inbound as inbound_routes
from api.routes import inventory as inventory_routes
from api.routes import notifications as notification_routes
from api.routes import reports as reports_routes
from api.routes import webhooks as webhooks_routes
from config import Settings, get_settings, load_keyring, load_policy
from services.context import Services, open_services


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """Build the app. Tests inject their services; otherwise the lifespan opens them."""
    settings = settings or (services.settings if services else get_settings())
    load_policy(settings.approval_policy_file)  # a bad file stops start-up
    if services is None:
        load_keyring(settings)  # so do missing or bad encryption keys

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if app.state.services is None:
                app.state.services = await stack.enter_async_context(open_services(settings))
            yield

    app = FastAPI(
        title="Orderly",
        version="0.1.0",
        summary="Orders as durable Temporal workflows: create, approve, track, cancel.",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs from local assets
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.services = services
    install_error_handlers(app)
    install_docs(app)  # /docs, /redoc; before any other /static mount
    app.add_middleware(AuditMiddleware)  # one row per command, see api/audit.py
    app.include_router(orders.router)
    app.include_router(approvals.router)
    app.include_router(events.router)
    app.include_router(health.router)
    app.include_router(keys.router)
    app.include_router(customers.router)
    app.include_router(audit_routes.router)
    app.include_router(inbound_routes.router)  # signed webhooks: /inbound/...
    app.include_router(prices.router)
    app.include_router(templates.router)
    app.include_router(imports_routes.router)
    app.include_router(reports_routes.router)
    app.include_router(reports_routes.products_router)
    app.include_router(webhooks_routes.router)
    app.include_router(inventory_routes.router)
    app.include_router(notification_routes.router)
    app.include_router(templates.orders_router)  # POST /orders/from-template/{id}
    codec.install(app, settings)  # /codec routes, CORS for the Temporal UI on them
    console.install(app)  # the web console under /console (console/)
    return app
