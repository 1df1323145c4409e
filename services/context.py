"""What every use case needs, built once per process (API lifespan, CLI, tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from temporalio.client import Client

from config import Settings, load_policy
from db.session import SessionFactory, make_engine, make_sessionmaker
from domain.approval import ApprovalPolicy
from services.auth import KeyCache
from workflows.client import connect


@dataclass
class Services:
    """The Temporal client, the database sessions, settings and the approval policy."""

    settings: Settings
    client: Client
    sessions: SessionFactory
    approval_policy: ApprovalPolicy
    key_cache: KeyCache = field(default_factory=KeyCache)


@asynccontextmanager
async def open_services(
    settings: Settings, *, client: Client | None = None
) -> AsyncIterator[Services]:
    """Connect to Temporal and the database for the lifetime of the block."""
    engine = make_engine(settings.database_url)
    try:
        yield Services(
            settings=settings,
            client=client or await connect(settings),
            sessions=make_sessionmaker(engine),
            approval_policy=load_policy(settings.approval_policy_file),
        )
    finally:
        await engine.dispose()
