"""Spreadsheet imports: upload, follow, report, cancel; and the template to fill in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Query, Response, UploadFile, status

from api.deps import ServicesDep, allow
from api.routes.orders import ERRORS
from domain.import_formats import MAX_BYTES
from domain.imports import ImportMode
from services.auth import Principal, Role, Scope
from services.errors import Kind, ServiceError
from services.imports import ImportOrder, ImportPage, Imports, ImportView, ReportFormat

router = APIRouter(prefix="/imports", tags=["imports"], responses=ERRORS)
# Systems (a spreadsheet upload job) and support import; each sees its own imports, support
# and admins everyone's. The orders it starts are the uploader's, so orders:own keys may import.
Reader = Annotated[
    Principal, Depends(allow(Role.SYSTEM, Role.SUPPORT, scope=Scope.IMPORTS_READ, own=True))
]
Writer = Annotated[
    Principal, Depends(allow(Role.SYSTEM, Role.SUPPORT, scope=Scope.IMPORTS_WRITE, own=True))
]
ImportId = Annotated[str, Path(pattern=r"^IMP-[0-9A-Z]{10}$", description="e.g. IMP-7K2QF0AB9C")]
FILE_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


async def _imports(services: ServicesDep) -> Imports:
    return Imports(services)


ImportsDep = Annotated[Imports, Depends(_imports)]


def _download(data: bytes, fmt: ReportFormat, filename: str) -> Response:
    return Response(
        content=data,
        media_type=FILE_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def read_upload(upload: UploadFile, limit: int = MAX_BYTES) -> bytes:
    """The uploaded file, refused (413) as soon as it passes ``limit`` bytes."""
    chunks, size = [], 0
    while chunk := await upload.read(1 << 20):
        size += len(chunk)
        if size > limit:
            message = f"file: more than {limit:,} bytes ({limit // 2**20} MiB); split the file"
            raise ServiceError(
                Kind.TOO_LARGE,
                message,
                code="too_large",
                fields=[{"field": "file", "reason": message.removeprefix("file: ")}],
            )
        chunks.append(chunk)
    return b"".join(chunks)


@router.get("/template.{fmt}", response_class=Response)
async def import_template(
    fmt: Annotated[
        ReportFormat, Path(description="xlsx (with a sheet documenting each column) or csv")
    ],
    _: Reader,
) -> Response:
    """The import template: the columns and one example order to fill in."""
    return _download(Imports.template(fmt), fmt, f"orderly-import-template.{fmt}")


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ImportView,
    responses={
        413: {"description": "The file is over 50 MiB"},
        415: {"description": "Not a CSV or XLSX file"},
    },
)
async def submit_import(
    principal: Writer,
    imports: ImportsDep,
    response: Response,
    file: Annotated[UploadFile, File(description="CSV (UTF-8, GB18030 or Latin-1) or XLSX")],
    mode: Annotated[
        ImportMode,
        Form(description="all-or-nothing: any error starts nothing; skip-invalid: start the rest"),
    ] = ImportMode.ALL_OR_NOTHING,
    dry_run: Annotated[bool, Form(description="Validate and report only; start nothing")] = False,
) -> ImportView:
    """Upload a file: it is checked at once (a file it cannot read is refused with the
    reason, nothing stored), then validated row by row and its valid orders started in the
    background. Follow it at `Location`; an order_ref imported before is never started again."""
    data = await read_upload(file)
    created = await imports.submit(
        data, file.filename or "upload", principal, mode=mode, dry_run=dry_run
    )
    response.headers["Location"] = f"/imports/{created.id}"
    return created


@router.get("", response_model=ImportPage)
async def list_imports(
    principal: Reader,
    imports: ImportsDep,
    status_: Annotated[
        str | None,
        Query(
            alias="status",
            pattern=r"^(validating|starting|completed|blocked|cancelled|failed)$",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ImportPage:
    """Imports, newest first (yours; support and admins see all)."""
    return await imports.list(principal, status=status_, limit=limit, cursor=cursor)


@router.get("/{import_id}", response_model=ImportView)
async def get_import(import_id: ImportId, principal: Reader, imports: ImportsDep) -> ImportView:
    """Status, counts (rows validated, orders started, failed, skipped) and progress."""
    return await imports.get(import_id, principal)


@router.get("/{import_id}/orders", response_model=list[ImportOrder])
async def import_orders(
    import_id: ImportId, principal: Reader, imports: ImportsDep
) -> list[ImportOrder]:
    """The import's orders in file order: order_ref, first row, outcome and order id."""
    return await imports.orders(import_id, principal)


@router.get("/{import_id}/report.{fmt}", response_class=Response)
async def import_report(
    import_id: ImportId, fmt: ReportFormat, principal: Reader, imports: ImportsDep
) -> Response:
    """Every problem (row, column, value, code, message) with the original row's cells."""
    data, filename = await imports.report(import_id, fmt, principal)
    return _download(data, fmt, filename)


@router.post("/{import_id}/cancel", response_model=ImportView)
async def cancel_import(import_id: ImportId, principal: Writer, imports: ImportsDep) -> ImportView:
    """Stop before the next batch: orders started stay; the rest are reported not started."""
    return await imports.cancel(import_id, principal)
