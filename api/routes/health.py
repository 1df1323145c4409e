"""Liveness of the API and its two dependencies."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from api.deps import ServicesDep, public
from api.schemas import Health
from services.health import check

router = APIRouter(tags=["health"], dependencies=[Depends(public)])  # no key needed


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz(services: ServicesDep) -> JSONResponse:
    """200 when Temporal and the database answer, else 503 naming what is down."""
    temporal, database = await check(services)
    ok = temporal == "ok" and database == "ok"
    body = Health(status="ok" if ok else "degraded", api="ok", temporal=temporal, database=database)
    return JSONResponse(status_code=200 if ok else 503, content=body.model_dump())
