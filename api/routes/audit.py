"""The audit trail for admins: every command and refusal, filtered, paged and exported."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from api.deps import ServicesDep, allow
from api.routes.orders import ERRORS, utc
from services import audit
from services.audit import AuditFilter, AuditOutcome, AuditPage
from services.auth import Principal, Role

router = APIRouter(prefix="/audit", tags=["audit"], responses=ERRORS)
# Admins only, and no key with scopes: no scope grants the audit trail.
Admin = Annotated[Principal, Depends(allow(Role.ADMIN, scope=None, own=False))]


async def _filter(
    principal: Annotated[str | None, Query(max_length=128)] = None,
    order_id: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="Route name, e.g. cancel_order.")
    ] = None,
    outcome: AuditOutcome | None = None,
    since: Annotated[datetime | None, Query(description="From this time (inclusive).")] = None,
    until: Annotated[datetime | None, Query(description="Before this time (exclusive).")] = None,
) -> AuditFilter:
    return AuditFilter(
        principal=principal,
        order_id=order_id,
        action=action,
        outcome=outcome,
        since=utc(since, "query.since"),
        until=utc(until, "query.until"),
    )


Filter = Annotated[AuditFilter, Depends(_filter)]
CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "One line per entry, oldest first."}
}


@router.get("", response_model=AuditPage)
async def list_audit(
    _: Admin,
    services: ServicesDep,
    flt: Filter,
    after: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="Last entry id seen; 0 from the start.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    """Audit entries after the cursor, oldest first."""
    return await audit.query(services, flt, after=after, limit=limit)


@router.get("/export.csv", response_class=StreamingResponse, responses=CSV)
async def export_audit(_: Admin, services: ServicesDep, flt: Filter) -> StreamingResponse:
    """Every matching audit entry as CSV (cells that a spreadsheet would run are quoted)."""
    return StreamingResponse(
        audit.export_csv(services, flt),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )
