"""The FastAPI application factory: ``uvicorn api.app:create_app --factory``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from temporalio.client import Client

from api.auth import KeyCache
from api.errors import install_error_handlers
from api.routes import approvals, health, orders
from config import Settings, get_settings, load_policy
from db.session import SessionFactory, make_engine, make_sessionmaker
from workflows.client import connect


def create_app(
    settings: Settings | None = None,
    *,
    client: Client | None = None,
    sessions: SessionFactory | None = None,
) -> FastAPI:
    """Build the app. Tests inject a client and sessions; otherwise the lifespan creates them."""
    settings = settings or get_settings()
    approval_policy = load_policy(settings.approval_policy_file)  # a bad file stops start-up

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = None
        if sessions is None:
            engine = make_engine(settings.database_url)
            app.state.sessions = make_sessionmaker(engine)
        app.state.client = client or await connect(settings)
        yield
        if engine is not None:
            await engine.dispose()

    app = FastAPI(
        title="Orderly",
        version="0.1.0",
        summary="Orders as durable Temporal workflows: create, approve, track, cancel.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.approval_policy = approval_policy
    app.state.key_cache = KeyCache()
    app.state.sessions = sessions
    app.state.client = client
    install_error_handlers(app)
    app.include_router(orders.router)
    app.include_router(approvals.router)
    app.include_router(health.router)
    return app
