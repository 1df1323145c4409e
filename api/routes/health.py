"""Liveness of the API and its two dependencies."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import ClientDep, SessionsDep
from api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz(client: ClientDep, sessions: SessionsDep) -> JSONResponse:
    """200 when Temporal and the database answer, else 503 naming what is down."""

    async def temporal() -> str:
        try:
            await asyncio.wait_for(client.service_client.check_health(), timeout=3)
            return "ok"
        except Exception as exc:  # report any failure as the component's state
            return f"error: {type(exc).__name__}: {exc}"[:300]

    async def database() -> str:
        try:
            async with sessions() as session:
                await asyncio.wait_for(session.execute(text("SELECT 1")), timeout=3)
            return "ok"
        except Exception as exc:  # report any failure as the component's state
            return f"error: {type(exc).__name__}: {exc}"[:300]

    t, d = await asyncio.gather(temporal(), database())
    ok = t == "ok" and d == "ok"
    body = Health(status="ok" if ok else "degraded", api="ok", temporal=t, database=d)
    return JSONResponse(status_code=200 if ok else 503, content=body.model_dump())
