"""Liveness of the engine and the database."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from services.context import Services


async def check(services: Services) -> tuple[str, str]:
    """(temporal, database): "ok" or the error, each within 3 s."""

    async def temporal() -> str:
        try:
            await asyncio.wait_for(services.client.service_client.check_health(), timeout=3)
            return "ok"
        except Exception as exc:  # report any failure as the component's state
            return f"error: {type(exc).__name__}: {exc}"[:300]

    async def database() -> str:
        try:
            async with services.sessions() as session:
                await asyncio.wait_for(session.execute(text("SELECT 1")), timeout=3)
            return "ok"
        except Exception as exc:  # report any failure as the component's state
            return f"error: {type(exc).__name__}: {exc}"[:300]

    t, d = await asyncio.gather(temporal(), database())
    return t, d
