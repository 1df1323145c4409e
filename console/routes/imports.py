"""The import pages: upload a spreadsheet of orders, follow each import live, download its
report, cancel it. A client of :class:`services.imports.Imports` like ``api/routes/imports.py``.

An import's page polls its live part (``/live``, htmx, every second) while the import runs; the
answer for a final import has no trigger, so polling stops, and carries the final order list and
an empty cancel area out of band. Uploads are plain multipart forms (no JavaScript needed): a
file the service refuses comes back on the list page with the reason and its 4xx status.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from activities.import_contracts import ImportStatus
from api.errors import STATUS
from console.auth import Sales, ServicesDep, Viewer
from console.i18n import translator
from console.web import finish, language_of, page, redirect
from domain.import_formats import MAX_BYTES
from domain.imports import ImportMode
from services.context import Services
from services.errors import Kind, ServiceError, not_found
from services.imports import Imports, ImportView

router = APIRouter(prefix="/console/imports", include_in_schema=False)

_ID = re.compile(r"^IMP-[0-9A-Z]{10}$")
_CURSOR = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
PAGE_SIZE = 25
ORDERS_SHOWN = 500  # rows of the order list on the page (the report has every problem)
FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# Badge class, symbol and word of each status (the word is always shown, never colour alone).
LOOK = {
    ImportStatus.VALIDATING: ("info", "◷", "Validating"),
    ImportStatus.STARTING: ("info", "▶", "Starting orders"),
    ImportStatus.COMPLETED: ("ok", "✓", "Completed"),
    ImportStatus.BLOCKED: ("warn", "!", "Blocked"),
    ImportStatus.CANCELLED: ("bad", "✕", "Cancelled"),
    ImportStatus.FAILED: ("bad", "✕", "Failed"),
}
ORDER_LOOK = {
    "pending": ("info", "○", "Pending"),
    "started": ("ok", "✓", "Started"),
    "existing": ("info", "↺", "Already imported"),
    "failed": ("bad", "✕", "Refused"),
    "cancelled": ("bad", "✕", "Not started"),
}
MODES = (ImportMode.ALL_OR_NOTHING.value, ImportMode.SKIP_INVALID.value)


def _download(request: Request, data: bytes, fmt: str, filename: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return finish(request, Response(data, media_type=FORMATS[fmt], headers=headers))


def _error(request: Request, viewer: Viewer, exc: ServiceError) -> Response:
    t = translator(language_of(request, viewer))
    if exc.kind is Kind.NOT_FOUND:
        heading, message = "Import not found", t("There is no such import.")
    elif exc.code == "report_not_ready":
        heading = "Report not ready"
        message = t("The report is ready once every row has been validated.")
    else:
        heading, message = "Import unavailable", exc.message
    context = {"heading": heading, "message": message, "back": "/console/imports"}
    return page(request, "error.html", context, status=STATUS[exc.kind])


def _check_id(import_id: str) -> None:
    if not _ID.match(import_id):
        raise not_found("import")


def _shared() -> dict[str, Any]:
    return {"look": LOOK, "order_look": ORDER_LOOK, "final": ImportStatus.FINAL}


# --- the list and the upload -----------------------------------------------------------------


async def _list_page(
    request: Request,
    viewer: Viewer,
    services: Services,
    cursor: str | None = None,
    *,
    chosen: dict[str, Any] | None = None,
    problem: str | None = None,
    status: int = 200,
) -> Response:
    found = await Imports(services).list(viewer.user.principal, limit=PAGE_SIZE, cursor=cursor)
    context = {
        **_shared(),
        "items": found.items,
        "running": any(i.status not in ImportStatus.FINAL for i in found.items),
        "self_url": "/console/imports" + (f"?cursor={cursor}" if cursor else ""),
        "next_url": f"/console/imports?cursor={found.next_cursor}" if found.next_cursor else None,
        "paged": cursor is not None,
        "chosen": chosen or {"mode": ImportMode.ALL_OR_NOTHING.value, "dry_run": False},
        "modes": MODES,
        "problem": problem,
        "max_mib": MAX_BYTES // 2**20,
    }
    return page(request, "imports.html", context, partial="_imports_table.html", status=status)


@router.get("")
async def imports_page(
    request: Request,
    viewer: Sales,
    services: ServicesDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The imports, newest first, and the upload form."""
    if cursor is not None and not _CURSOR.match(cursor):
        cursor = None
    try:
        return await _list_page(request, viewer, services, cursor)
    except ServiceError as exc:  # a cursor this page did not give out
        return _error(request, viewer, exc)


async def _read(upload: UploadFile) -> bytes:
    """The uploaded file, refused (413) as soon as it passes the import's size limit."""
    chunks, size = [], 0
    while chunk := await upload.read(1 << 20):
        size += len(chunk)
        if size > MAX_BYTES:
            limit = f"more than {MAX_BYTES:,} bytes ({MAX_BYTES // 2**20} MiB); split the file"
            raise ServiceError(Kind.TOO_LARGE, f"file: {limit}", code="too_large")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("")
async def upload(request: Request, viewer: Sales, services: ServicesDep) -> Response:
    """Check the file and start its import (nothing is stored for a refused file)."""
    t = translator(language_of(request, viewer))
    sent = await request.form()
    file, sent_mode = sent.get("file"), sent.get("mode")
    mode = sent_mode if isinstance(sent_mode, str) and sent_mode in MODES else ""
    dry_run = sent.get("dry_run") == "1"
    chosen = {"mode": mode, "dry_run": dry_run}
    problem, status = None, 422
    if not mode:
        problem = t("Choose how the import treats invalid orders.")
    elif not isinstance(file, UploadFile) or not file.filename:
        problem = t("Choose a CSV or XLSX file to upload.")
    else:
        try:
            created = await Imports(services).submit(
                await _read(file),
                file.filename,
                viewer.user.principal,
                mode=ImportMode(mode),
                dry_run=dry_run,
            )
            return redirect(request, f"/console/imports/{created.id}")
        except ServiceError as exc:
            request.state.audit_reason = exc.message[:500]
            problem, status = exc.message.removeprefix("file: "), STATUS[exc.kind]
    return await _list_page(
        request, viewer, services, chosen=chosen, problem=problem, status=status
    )


@router.get("/template.{fmt}")
async def template(request: Request, fmt: Annotated[str, Path()], viewer: Sales) -> Response:
    """The import template to fill in (XLSX with a sheet documenting each column, or CSV)."""
    if fmt not in FORMATS:
        return page(request, "error.html", _missing(request, viewer), status=404)
    data = Imports.template("xlsx" if fmt == "xlsx" else "csv")
    return _download(request, data, fmt, f"orderly-import-template.{fmt}")


def _missing(request: Request, viewer: Viewer) -> dict[str, Any]:
    t = translator(language_of(request, viewer))
    return {"heading": "Not found", "message": t("There is no such file."), "back": None}


# --- one import ------------------------------------------------------------------------------


def _import_context(item: ImportView, orders: list[Any] | None) -> dict[str, Any]:
    c = item.counts
    return {
        **_shared(),
        "item": item,
        "pct": int(item.progress * 100),
        "is_final": item.status in ImportStatus.FINAL,
        "already": c.orders_skipped + c.existing,
        "orders": orders[:ORDERS_SHOWN] if orders is not None else None,
        "orders_total": len(orders) if orders is not None else 0,
        "oob": False,
    }


async def _show(
    request: Request,
    viewer: Viewer,
    services: Services,
    import_id: str,
    *,
    notice: str | None = None,
    problem: str | None = None,
    status: int = 200,
) -> Response:
    imports = Imports(services)
    try:
        _check_id(import_id)
        item = await imports.get(import_id, viewer.user.principal)
        orders = await imports.orders(import_id, viewer.user.principal)
    except ServiceError as exc:
        return _error(request, viewer, exc)
    context = {**_import_context(item, orders), "notice": notice, "problem": problem}
    return page(request, "import.html", context, status=status)


@router.get("/{import_id}")
async def import_page(
    request: Request,
    import_id: Annotated[str, Path()],
    viewer: Sales,
    services: ServicesDep,
    done: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    """One import: progress, counts, reports, its orders, and Cancel while it runs."""
    t = translator(language_of(request, viewer))
    notice = t("Cancel requested: the import stops before its next batch.") if done else None
    return await _show(request, viewer, services, import_id, notice=notice)


@router.get("/{import_id}/live")
async def import_live(
    request: Request, import_id: Annotated[str, Path()], viewer: Sales, services: ServicesDep
) -> Response:
    """The live part of the import page (htmx polls it every second until the import ends)."""
    imports = Imports(services)
    try:
        _check_id(import_id)
        item = await imports.get(import_id, viewer.user.principal)
        final = item.status in ImportStatus.FINAL
        orders = await imports.orders(import_id, viewer.user.principal) if final else None
    except ServiceError as exc:
        return _error(request, viewer, exc)
    context = {**_import_context(item, orders), "oob": final}
    return page(request, "_import_live.html", context)


@router.get("/{import_id}/report.{fmt}")
async def report(
    request: Request,
    import_id: Annotated[str, Path()],
    fmt: Annotated[str, Path()],
    viewer: Sales,
    services: ServicesDep,
) -> Response:
    """The problem report as CSV or XLSX (each problem with its original row)."""
    try:
        _check_id(import_id)
        if fmt not in FORMATS:
            raise not_found("report format")
        data, filename = await Imports(services).report(
            import_id, "xlsx" if fmt == "xlsx" else "csv", viewer.user.principal
        )
    except ServiceError as exc:
        return _error(request, viewer, exc)
    return _download(request, data, fmt, filename)


@router.post("/{import_id}/cancel")
async def cancel(
    request: Request, import_id: Annotated[str, Path()], viewer: Sales, services: ServicesDep
) -> Response:
    """Stop the import before its next batch; the orders started so far stay."""
    try:
        _check_id(import_id)
        await Imports(services).cancel(import_id, viewer.user.principal)
    except ServiceError as exc:
        request.state.audit_reason = exc.message[:500]
        if exc.kind is not Kind.NOT_ALLOWED:
            return _error(request, viewer, exc)
        t = translator(language_of(request, viewer))
        problem = t("This import has already ended; there is nothing to cancel.")
        return await _show(request, viewer, services, import_id, problem=problem, status=409)
    return redirect(request, f"/console/imports/{import_id}?done=cancel")
