"""The audit trail: one append-only row per command (accepted, refused or failed), queried by
admins with filters and a cursor, and exported as CSV.

Rows are only ever inserted: the database itself refuses UPDATE and DELETE on ``audit_log``
(triggers, see :data:`db.models.AUDIT_APPEND_ONLY_DDL`). Request bodies are never stored, so
the trail holds no customer data; the reason of a refusal is the error message the caller got.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select

from db.models import AuditRow
from services.context import Services


class AuditOutcome(StrEnum):
    ACCEPTED = "accepted"  # 2xx (and 1xx/3xx, which commands do not answer)
    REFUSED = "refused"  # 4xx: the caller's fault, nothing happened
    FAILED = "failed"  # 5xx or no answer at all


def outcome_for(status_code: int) -> AuditOutcome:
    if status_code >= 500:
        return AuditOutcome.FAILED
    if status_code >= 400:
        return AuditOutcome.REFUSED
    return AuditOutcome.ACCEPTED


@dataclass(frozen=True)
class AuditRecord:
    """What is recorded of one command; long or odd values are clipped when stored."""

    at: datetime
    principal: str | None
    roles: Iterable[str]
    key_id: str | None
    source_ip: str | None
    method: str
    path: str
    action: str | None
    order_id: str | None
    status_code: int
    reason: str | None
    request_id: str | None = None
    idempotency_key: str | None = None
    outcome: AuditOutcome | None = None  # None: from the status code


class AuditEntry(BaseModel):
    """One recorded command."""

    id: int = Field(description="Cursor: pass the last one seen as `after`.")
    at: datetime = Field(description="When the request arrived.")
    principal: str | None = Field(description="Null: the caller was not authenticated.")
    roles: list[str]
    key_id: str | None
    source_ip: str | None
    method: str
    path: str
    action: str | None = Field(description="The route's name, e.g. cancel_order.")
    order_id: str | None
    outcome: AuditOutcome
    status_code: int
    reason: str | None = Field(description="The error message of a refusal or failure.")
    request_id: str | None
    idempotency_key: str | None


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_after: int = Field(description="Cursor for the next call (the last id, or `after`).")


@dataclass(frozen=True)
class AuditFilter:
    principal: str | None = None
    order_id: str | None = None
    action: str | None = None
    outcome: AuditOutcome | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


def _clip(value: str | None, size: int | None) -> str | None:
    """Fit a value into its column: PostgreSQL rejects NUL in text, and lengths are enforced."""
    if value is None:
        return None
    value = value.replace("\x00", "\ufffd")
    return value[:size] if size is not None else value


def _row(entry: AuditRecord) -> AuditRow:
    columns = AuditRow.__table__.c

    def fit(name: str, value: str | None) -> str | None:
        return _clip(value, getattr(columns[name].type, "length", None))

    return AuditRow(
        at=entry.at,
        principal=fit("principal", entry.principal),
        roles=fit("roles", ",".join(sorted(entry.roles))) or "",
        key_id=fit("key_id", entry.key_id),
        source_ip=fit("source_ip", entry.source_ip),
        method=fit("method", entry.method) or "",
        path=fit("path", entry.path) or "",
        action=fit("action", entry.action),
        order_id=fit("order_id", entry.order_id),
        outcome=(entry.outcome or outcome_for(entry.status_code)).value,
        status_code=entry.status_code,
        reason=_clip(entry.reason, 4000),
        request_id=fit("request_id", entry.request_id),
        idempotency_key=fit("idempotency_key", entry.idempotency_key),
    )


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        principal=row.principal,
        roles=[r for r in row.roles.split(",") if r],
        key_id=row.key_id,
        source_ip=row.source_ip,
        method=row.method,
        path=row.path,
        action=row.action,
        order_id=row.order_id,
        outcome=AuditOutcome(row.outcome),
        status_code=row.status_code,
        reason=row.reason,
        request_id=row.request_id,
        idempotency_key=row.idempotency_key,
    )


# Serialises audit inserts on PostgreSQL so ids commit in order: a reader paging by ``after``
# never misses a row committed later with a smaller id (SQLite serialises writers anyway).
AUDIT_LOCK = 0xA0D1


async def record(services: Services, entry: AuditRecord) -> int:
    """Append one row in its own transaction; returns its id."""
    row = _row(entry)
    async with services.sessions.begin() as session:
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(select(func.pg_advisory_xact_lock(AUDIT_LOCK)))
        session.add(row)
        await session.flush()
        return row.id


def _select(flt: AuditFilter, after: int) -> Select[AuditRow]:
    stmt = select(AuditRow).where(AuditRow.id > after)
    if flt.principal is not None:
        stmt = stmt.where(AuditRow.principal == flt.principal)
    if flt.order_id is not None:
        stmt = stmt.where(AuditRow.order_id == flt.order_id)
    if flt.action is not None:
        stmt = stmt.where(AuditRow.action == flt.action)
    if flt.outcome is not None:
        stmt = stmt.where(AuditRow.outcome == flt.outcome.value)
    if flt.since is not None:
        stmt = stmt.where(AuditRow.at >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(AuditRow.at < flt.until)
    return stmt.order_by(AuditRow.id)


async def query(services: Services, flt: AuditFilter, *, after: int = 0, limit: int) -> AuditPage:
    """Entries matching ``flt`` with an id above ``after``, oldest first."""
    async with services.sessions() as session:
        rows = list(await session.scalars(_select(flt, after).limit(limit)))
    items = [_entry(r) for r in rows]
    return AuditPage(items=items, next_after=items[-1].id if items else after)


async def export(
    services: Services, flt: AuditFilter, *, batch: int = 500
) -> AsyncIterator[AuditEntry]:
    """Every entry matching ``flt``, oldest first, read in batches (no long transaction)."""
    after = 0
    while True:
        page = await query(services, flt, after=after, limit=batch)
        for item in page.items:
            yield item
        if len(page.items) < batch:
            return
        after = page.next_after


CSV_COLUMNS = list(AuditEntry.model_fields)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A cell a spreadsheet shows as text: a leading = + - @ tab or CR gets a quote first."""
    if value is None:
        return ""
    if isinstance(value, list):
        text = ",".join(str(v) for v in value)
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


async def export_csv(services: Services, flt: AuditFilter) -> AsyncIterator[str]:
    """The export as CSV text chunks: a header line, then one line per entry."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield take()
    count = 0
    async for entry in export(services, flt):
        writer.writerow([csv_cell(getattr(entry, name)) for name in CSV_COLUMNS])
        count += 1
        if count % 200 == 0:
            yield take()
    rest = take()
    if rest:
        yield rest
