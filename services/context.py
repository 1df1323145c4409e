"""What every use case needs, built once per process (API lifespan, CLI, tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from temporalio.client import Client

from config import Settings, load_keyring, load_policy
from db.session import SessionFactory, make_engine, make_sessionmaker
from db.vault import Vault
from domain.approval import ApprovalPolicy
from security.keyring import KeyRing
from services.auth import KeyCache
from services.staff_sessions import SessionUsers
from workflows.client import connect


@dataclass
class Services:
    """The Temporal client, the database sessions, settings, the approval policy, and the
    key ring with the vault that seals customer PII at rest."""

    settings: Settings
    client: Client
    sessions: SessionFactory
    approval_policy: ApprovalPolicy
    key_cache: KeyCache = field(default_factory=KeyCache)
    session_users: SessionUsers = field(default_factory=SessionUsers)
    keyring: KeyRing = field(default=None)  # type: ignore[assignment]  # from settings
    vault: Vault = field(init=False)

    def __post_init__(self) -> None:
        if self.keyring is None:
            self.keyring = load_keyring(self.settings)
        self.vault = Vault(self.keyring)


@asynccontextmanager
async def open_services(
    settings: Settings, *, client: Client | None = None
) -> AsyncIterator[Services]:
    """Connect to Temporal and the database for the lifetime of the block."""
    engine = make_engine(settings.database_url)
    keyring = load_keyring(settings)
    try:
        yield Services(
            settings=settings,
            client=client or await connect(settings, keyring),
            sessions=make_sessionmaker(engine),
            approval_policy=load_policy(settings.approval_policy_file),
            keyring=keyring,
        )
    finally:
        await engine.dispose()
