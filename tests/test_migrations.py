"""Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from db.models import Base
from db.session import make_engine

ROOT = Path(__file__).resolve().parents[1]


def _config(url: str) -> Config:
    config = Config(str(ROOT / "db" / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    return config


async def _diff_and_tables(url: str) -> tuple[list[object], set[str]]:
    engine = make_engine(url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
        )
        tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await engine.dispose()
    return diff, tables


def test_upgrade_matches_models_and_downgrade_empties(empty_database_url: str) -> None:
    config = _config(empty_database_url)
    command.upgrade(config, "head")
    diff, tables = asyncio.run(_diff_and_tables(empty_database_url))
    assert diff == []
    assert set(Base.metadata.tables) <= tables

    command.downgrade(config, "base")
    _, tables = asyncio.run(_diff_and_tables(empty_database_url))
    assert tables <= {"alembic_version"}
