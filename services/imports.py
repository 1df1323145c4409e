"""Spreadsheet imports as clients use them (API, console, CLI): submit a file, follow it,
download its report, cancel it, get the template.

``submit`` refuses a file it cannot read at once (empty, not CSV/XLSX, too large, a formula, a
zip bomb, too many columns, no usable header): nothing is stored then. Otherwise it stores the
file sealed under the key ring and starts ``ImportWorkflow``, which validates every row and
starts the valid orders (``activities.imports``). An order's identity is (source ``import``,
``order_ref``), so importing a file again, or one that overlaps, creates no order twice.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import json
import secrets
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import and_, or_, select
from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError

from activities.import_contracts import (
    ImportCounts,
    ImportInput,
    ImportStatus,
    file_aad,
    report_aad,
    spec_aad,
)
from db.models import ImportOrderRow, ImportRow
from domain.import_formats import ImportFileError, Row, Table, read_table
from domain.import_reports import report_csv, report_xlsx, template_csv, template_xlsx
from domain.imports import ImportMode, Problem, map_header
from security.sealing import seal_bytes, unseal_bytes
from services.auth import Principal, Role
from services.context import Services
from services.errors import Kind, ServiceError, invalid, not_found, unavailable
from workflows.imports import ImportWorkflow, workflow_id

_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ReportFormat = Literal["csv", "xlsx"]
# How a refused file maps to what the client is told (the rest are 422 invalid input).
_FILE_KINDS = {"too_large": Kind.TOO_LARGE, "not_a_spreadsheet": Kind.UNSUPPORTED}
SEE_ALL = frozenset({Role.SUPPORT, Role.ADMIN})  # see every import, not only their own


def new_import_id() -> str:
    return "IMP-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


class ImportView(BaseModel):
    """An import: options, status, counts and how far it has got."""

    id: str
    filename: str
    format: str
    size_bytes: int
    mode: ImportMode
    dry_run: bool
    status: str = Field(
        description="validating | starting | completed | blocked (all-or-nothing with errors) "
        "| cancelled | failed"
    )
    progress: float = Field(description="0..1: validation is the first half, starts the second.")
    counts: ImportCounts
    error: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    report_csv: str = Field(description="Path of the problem report as CSV.")
    report_xlsx: str


class ImportPage(BaseModel):
    items: list[ImportView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


class ImportOrder(BaseModel):
    """One order of an import and what became of it."""

    order_ref: str
    row: int
    status: str = Field(description="pending | started | existing | failed | cancelled")
    order_id: str | None
    message: str | None


def progress_of(status: str, counts: ImportCounts, dry_run: bool) -> float:
    if status in ImportStatus.FINAL:
        return 1.0
    checked = counts.rows_validated / counts.rows if counts.rows else 0.0
    if status == ImportStatus.VALIDATING:
        return round(checked if dry_run else checked / 2, 4)
    handled = counts.started + counts.existing + counts.failed
    return round(0.5 + (handled / counts.to_start / 2 if counts.to_start else 0.5), 4)


def view(row: ImportRow) -> ImportView:
    counts = ImportCounts(**row.counts)
    return ImportView(
        id=row.id,
        filename=row.filename,
        format=row.format,
        size_bytes=row.size_bytes,
        mode=ImportMode(row.mode),
        dry_run=row.dry_run,
        status=row.status,
        progress=progress_of(row.status, counts, row.dry_run),
        counts=counts,
        error=row.error,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        report_csv=f"/imports/{row.id}/report.csv",
        report_xlsx=f"/imports/{row.id}/report.xlsx",
    )


def file_refused(exc: ImportFileError) -> ServiceError:
    kind = _FILE_KINDS.get(exc.code, Kind.INVALID)
    return ServiceError(
        kind,
        f"file: {exc.message}",
        code=exc.code,
        fields=[{"field": "file", "reason": exc.message}],
    )


def check_file(data: bytes, filename: str) -> Table:
    """The file's table, or the ServiceError that refuses it (file-level problems only)."""
    try:
        table = read_table(data, filename)
        map_header(table)
    except ImportFileError as exc:
        raise file_refused(exc) from None
    return table


def _cursor(row: ImportRow) -> str:
    raw = json.dumps([row.created_at.isoformat(), row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(cursor: str) -> tuple[datetime, str]:
    try:
        at, import_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(at), str(import_id)
    except (ValueError, TypeError) as exc:
        raise invalid("cursor", "cursor is not one this API returned") from exc


class Imports:
    batch_size: int | None = None  # orders per start activity; None: the setting
    batches_per_run = 100  # then the workflow continues as new

    def __init__(self, services: Services) -> None:
        self._s = services
        self._sessions, self._ring = services.sessions, services.keyring

    @staticmethod
    def template(fmt: ReportFormat) -> bytes:
        """The import template: the columns, one example order, and (XLSX) a sheet that
        documents each column."""
        return template_xlsx() if fmt == "xlsx" else template_csv()

    async def submit(
        self,
        data: bytes,
        filename: str,
        principal: Principal,
        *,
        mode: ImportMode = ImportMode.ALL_OR_NOTHING,
        dry_run: bool = False,
    ) -> ImportView:
        """Check the file, store it sealed and start its import workflow."""
        filename = (filename or "upload").replace("\\", "/").rsplit("/", 1)[-1][:255] or "upload"
        table = await asyncio.to_thread(check_file, data, filename)
        now = datetime.now(UTC)
        import_id = new_import_id()
        row = ImportRow(
            id=import_id,
            filename=filename,
            format=table.format,
            size_bytes=len(data),
            mode=mode.value,
            dry_run=dry_run,
            status=ImportStatus.VALIDATING,
            counts=ImportCounts(rows=len(table.rows)).model_dump(),
            created_by=principal.name,
            created_at=now,
            updated_at=now,
            file=seal_bytes(self._ring, file_aad(import_id), data),
        )
        del table
        async with self._sessions.begin() as session:
            session.add(row)
        try:
            await self._s.client.start_workflow(
                ImportWorkflow.run,
                ImportInput(
                    import_id=import_id,
                    batch_size=self.batch_size or self._s.settings.import_batch_size,
                    batches_per_run=self.batches_per_run,
                    heartbeat_timeout=self._s.settings.activity_heartbeat,
                ),
                id=workflow_id(import_id),
                task_queue=self._s.settings.intake_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except RPCError as exc:
            async with self._sessions.begin() as session:  # nothing runs it: say so
                stored = await session.get(ImportRow, import_id)
                if stored is not None:
                    await session.delete(stored)
            raise unavailable(exc) from exc
        return view(row)

    async def _row(self, import_id: str, principal: Principal) -> ImportRow:
        async with self._sessions() as session:
            row = await session.get(ImportRow, import_id)
        if row is None or not self._may_see(row, principal):
            raise not_found(f"import {import_id}")
        return row

    @staticmethod
    def _sees_all(principal: Principal) -> bool:
        return principal.has_any(SEE_ALL) and principal.owner is None

    def _may_see(self, row: ImportRow, principal: Principal) -> bool:
        return self._sees_all(principal) or row.created_by == principal.name

    async def get(self, import_id: str, principal: Principal) -> ImportView:
        return view(await self._row(import_id, principal))

    async def list(
        self,
        principal: Principal,
        *,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ImportPage:
        """Newest first; support and admins see everyone's, others their own."""
        stmt = select(ImportRow).order_by(ImportRow.created_at.desc(), ImportRow.id.desc())
        if not self._sees_all(principal):
            stmt = stmt.where(ImportRow.created_by == principal.name)
        if status is not None:
            stmt = stmt.where(ImportRow.status == status)
        if cursor:
            at, import_id = _after(cursor)
            stmt = stmt.where(
                or_(
                    ImportRow.created_at < at,
                    and_(ImportRow.created_at == at, ImportRow.id < import_id),
                )
            )
        async with self._sessions() as session:
            rows = list(await session.scalars(stmt.limit(limit + 1)))
        items = [view(r) for r in rows[:limit]]
        return ImportPage(
            items=items, next_cursor=_cursor(rows[limit - 1]) if len(rows) > limit else None
        )

    async def orders(self, import_id: str, principal: Principal) -> builtins.list[ImportOrder]:
        """The import's orders in file order, each with its outcome."""
        await self._row(import_id, principal)
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ImportOrderRow)
                .where(ImportOrderRow.import_id == import_id)
                .order_by(ImportOrderRow.seq)
            )
            return [
                ImportOrder(
                    order_ref=r.order_ref,
                    row=r.first_row,
                    status=r.status,
                    order_id=r.order_id,
                    message=r.message,
                )
                for r in rows
            ]

    async def report(
        self, import_id: str, fmt: ReportFormat, principal: Principal
    ) -> tuple[bytes, str]:
        """The problem report (validation problems, then what happened at start: refused,
        already imported, not started) with each problem's original row; and a file name."""
        row = await self._row(import_id, principal)
        if row.report is None:
            raise ServiceError(
                Kind.NOT_ALLOWED,
                f"import {import_id} is still validating; the report is ready after that",
                code="report_not_ready",
                status=row.status,
                allowed_actions=["cancel"] if row.status not in ImportStatus.FINAL else [],
            )
        stored = json.loads(unseal_bytes(self._ring, report_aad(import_id), row.report))
        rows = {int(n): tuple(cells) for n, cells in stored["rows"].items()}
        problems = [Problem(*p) for p in stored["problems"]]
        problems += await self._start_problems(import_id, rows)
        problems.sort(key=lambda p: p.row or 0)
        table = Table(
            tuple(stored["header"]),
            int(stored["header_row"]),
            tuple(Row(n, cells) for n, cells in sorted(rows.items())),
            stored["format"],
        )
        stem = row.filename.rsplit(".", 1)[0] or "import"
        if fmt == "xlsx":
            return await asyncio.to_thread(report_xlsx, problems, table), f"{stem}-report.xlsx"
        return await asyncio.to_thread(report_csv, problems, table), f"{stem}-report.csv"

    async def _start_problems(
        self, import_id: str, rows: dict[int, tuple[str, ...]]
    ) -> builtins.list[Problem]:
        """What happened to orders at start that the report must tell (rows added to
        ``rows``): refused (error), found already created (info), not started (info)."""
        async with self._sessions() as session:
            found = await session.scalars(
                select(ImportOrderRow)
                .where(ImportOrderRow.import_id == import_id)
                .where(ImportOrderRow.status.in_(("existing", "failed", "cancelled")))
                .order_by(ImportOrderRow.seq)
            )
            items = list(found)
        problems = []
        for item in items:
            if item.spec is not None and item.first_row not in rows:
                body = json.loads(
                    unseal_bytes(self._ring, spec_aad(import_id, item.seq), item.spec)
                )
                rows[item.first_row] = tuple(body["row"])
            if item.status == "failed":
                code, _, message = (item.message or "refused: ").partition(": ")
                problems.append(
                    Problem(
                        item.first_row,
                        None,
                        "",
                        code,
                        f"not started: {message}",
                        "error",
                        item.order_ref,
                    )
                )
            elif item.status == "existing":
                problems.append(
                    Problem(
                        item.first_row,
                        "order_ref",
                        item.order_ref,
                        "already_imported",
                        f"already imported as {item.order_id}; this order is skipped",
                        "info",
                        item.order_ref,
                    )
                )
            else:
                problems.append(
                    Problem(
                        item.first_row,
                        None,
                        "",
                        "cancelled",
                        "not started: the import was cancelled",
                        "info",
                        item.order_ref,
                    )
                )
        return problems

    async def cancel(self, import_id: str, principal: Principal) -> ImportView:
        """Stop the import before its next batch (409 once it has ended)."""
        row = await self._row(import_id, principal)
        if row.status in ImportStatus.FINAL:
            raise ServiceError(
                Kind.NOT_ALLOWED,
                f"import {import_id} has ended ({row.status}); nothing to cancel",
                status=row.status,
                allowed_actions=[],
            )
        handle = self._s.client.get_workflow_handle_for(ImportWorkflow.run, workflow_id(import_id))
        try:
            await handle.execute_update(ImportWorkflow.cancel)
        except WorkflowUpdateFailedError:
            pass  # it ended meanwhile: the row says how
        except RPCError as exc:
            raise unavailable(exc) from exc
        return await self.get(import_id, principal)
