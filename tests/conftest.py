"""Shared fixtures: real Temporal servers, SQLite and PostgreSQL databases, an in-process worker."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.mail import MailActivities
from config import Settings
from db.models import Base
from db.session import SessionFactory, make_engine, make_sessionmaker
from db.vault import Vault
from integrations.carrier import SimulatedCarrier
from integrations.credit import SimulatedBureau
from integrations.inventory import SimulatedInventory
from integrations.mail import Message, NoTransport
from integrations.payment import SimulatedGateway
from services.tracking import TrackingLinks
from tests.keys import TEST_CONVERTER, TEST_KEYS, TEST_RING
from tests.pgcluster import PgCluster, find_pg_bindir
from worker import build_worker

BIN = Path(sys.executable).parent


def binary(name: str) -> str:
    """A binary shipped by a PyPI package in this venv (temporal, temporal-test-server)."""
    found = shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)
    if found is None:
        pytest.fail(f"{name} not found: install the dev dependencies (make test does)")
    return found


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server for the whole session (in memory)."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        data_converter=TEST_CONVERTER,
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    if find_pg_bindir() is None:
        message = "PostgreSQL server binaries not found (pg_config --bindir)"
        if os.environ.get("ORDERLY_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + " and ORDERLY_REQUIRE_POSTGRES=1")
        pytest.skip(message)
    cluster = PgCluster()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database, once per backend."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'orderly.db'}"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    name = f"t_{uuid.uuid4().hex[:12]}"
    cluster.create_database(name)
    return cluster.url(name)


@pytest.fixture
async def database_url(empty_database_url: str) -> str:
    """A fresh database with the schema (the migrations are tested to build the same)."""
    engine = make_engine(empty_database_url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()
    return empty_database_url


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[SessionFactory]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "task_queue": f"orders-{uuid.uuid4().hex[:8]}",
        "activity_timeout": timedelta(seconds=10),
        "activity_heartbeat": timedelta(seconds=3),
        "strict_sandbox": True,  # every call workflow code makes is checked
        "encryption_keys": TEST_KEYS,
        "encryption_key_id": "test-1",
        "mail_transport": "outbox",
        **overrides,
    }
    return Settings.model_validate(values)


@dataclass
class MailBox:
    """The emails of an order: ``sent`` first runs a pass of the mail consumer (compose what
    the events ask for, send what is due through ``transport``), then reads the outbox."""

    activities: MailActivities

    async def sent(self, order_id: str, *, waiting_for: str | None = None) -> list[Message]:
        """``waiting_for`` a kind: pass again until it is there (an API test sees an order's
        status from the workflow a moment before its event is in the log)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            await self.activities.pass_once()
            found = await self.activities.outbox.sent(order_id)
            if waiting_for is None or any(m.kind == waiting_for for m in found):
                return found
            if loop.time() > deadline:
                raise AssertionError(f"no {waiting_for} email for {order_id}: {found}")
            await asyncio.sleep(0.1)


@dataclass
class Stack:
    """A worker on its own task queue, plus the simulators to seed and inspect."""

    client: Client
    settings: Settings
    sessions: SessionFactory
    inventory: SimulatedInventory
    bureau: SimulatedBureau
    gateway: SimulatedGateway
    carrier: SimulatedCarrier
    mailer: MailBox
    vault: Vault


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Override in a test module to change the worker's settings."""
    return {}


async def seeded_stack(client: Client, settings: Settings, sessions: SessionFactory) -> Stack:
    """Simulators over ``sessions`` with stock on hand; no worker."""
    inventory = SimulatedInventory(sessions)
    await inventory.set_stock({"WIDGET-1": 1000, "GADGET-2": 50, "RARE-9": 1})
    return Stack(
        client=client,
        settings=settings,
        sessions=sessions,
        inventory=inventory,
        bureau=SimulatedBureau(sessions, default_score=700, default_limit=Decimal(50000)),
        gateway=SimulatedGateway(sessions),
        carrier=SimulatedCarrier(sessions),
        mailer=MailBox(
            MailActivities(
                sessions,
                Vault(TEST_RING),
                settings,
                NoTransport(),
                TrackingLinks(TEST_RING, settings.public_base_url, settings.tracking_link_ttl).url,
            )
        ),
        vault=Vault(TEST_RING),
    )


@pytest.fixture
async def bare_stack(
    temporal_env: WorkflowEnvironment,
    database_url: str,
    sessions: SessionFactory,
    settings_overrides: dict[str, object],
) -> Stack:
    """Settings, seeded simulators and a client, but no worker: the test runs its own."""
    settings = make_settings(database_url, **settings_overrides)
    return await seeded_stack(temporal_env.client, settings, sessions)


@pytest.fixture
async def stack(bare_stack: Stack) -> AsyncIterator[Stack]:
    """``bare_stack`` with a worker polling its task queue."""
    async with build_worker(bare_stack.client, bare_stack.settings, bare_stack.sessions):
        yield bare_stack
