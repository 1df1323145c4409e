"""``orderly import FILE``, ``orderly import-template``, ``orderly import-cancel ID``:
spreadsheet imports through :class:`services.imports.Imports`, from ORDERLY_* settings.

``import`` submits the file as ``cli:<os user>`` (role system), follows it with a progress bar
until it ends, prints a summary and, when the report has rows, writes it next to the file.
Exit codes: 0 completed without errors or failed orders; 1 blocked, failed, cancelled, with
errors or failed orders, or the engine unavailable; 2 a file the import refuses, or bad usage;
130 Ctrl-C while following (the import goes on; ``orderly import-cancel ID`` stops it).
"""

from __future__ import annotations

import asyncio
import csv
import getpass
import io
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from activities.import_contracts import ImportStatus
from config import Settings, get_settings
from domain.import_formats import MAX_BYTES, ImportFileError
from domain.imports import ImportMode
from security.keyring import KeyConfigError
from services.auth import Principal, Role
from services.context import open_services
from services.errors import Kind, ServiceError
from services.imports import Imports, ImportView, ReportFormat, file_refused
from workflows.client import TemporalConfigError, connect

T = TypeVar("T")
POLL_EVERY = 0.5  # seconds between reads of the import's counts
SHOW_PROBLEMS = 10
INTERRUPTED = 130  # the shell's code for a process stopped by SIGINT
IMPORT_ID = re.compile(r"^IMP-[0-9A-Z]{10}$")
_FILE_KINDS = frozenset({Kind.TOO_LARGE, Kind.UNSUPPORTED, Kind.INVALID})
_STATUS_STYLE = {
    ImportStatus.COMPLETED: "green",
    ImportStatus.BLOCKED: "red",
    ImportStatus.FAILED: "red",
    ImportStatus.CANCELLED: "yellow",
}


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "unknown"


def cli_principal(role: Role = Role.SYSTEM) -> Principal:
    """Who the CLI acts as: ``cli:<os user>``; the orders it imports are created by that name."""
    return Principal(name=f"cli:{_user()}", roles=frozenset({role}))


def _fail(message: str, code: int = 1) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


@asynccontextmanager
async def _imports(settings: Settings) -> AsyncIterator[Imports]:
    """The import use cases over the configured Temporal and database."""
    try:
        client = await connect(settings)
    except (TemporalConfigError, KeyConfigError) as exc:
        raise _fail(str(exc), 2) from exc
    except RuntimeError as exc:  # the SDK's "Failed client connect: ..."
        raise _fail(f"cannot reach Temporal at {settings.temporal_target}: {exc}") from exc
    async with open_services(settings, client=client) as services:
        yield Imports(services)


def _run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        return asyncio.run(work())
    except ServiceError as exc:
        raise _fail(exc.message, 2 if exc.kind in _FILE_KINDS else 1) from exc


# --- following ------------------------------------------------------------------------------


@dataclass
class _Bars:
    """One bar for the rows validated, one for the orders handled at start."""

    progress: Progress
    rows: TaskID
    starts: TaskID

    @classmethod
    def open(cls, console: Console, view: ImportView) -> _Bars:
        progress = Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
        )
        rows = progress.add_task("validating rows", total=view.counts.rows or None, note="")
        starts = progress.add_task(
            "starting orders", total=None, visible=not view.dry_run, start=False, note=""
        )
        return cls(progress, rows, starts)

    def show(self, view: ImportView) -> None:
        c = self.progress
        counts = view.counts
        c.update(self.rows, completed=counts.rows_validated, total=counts.rows or None)
        if view.status == ImportStatus.VALIDATING:
            return
        c.update(self.rows, description="validated rows", note=f"{counts.errors} errors")
        if view.dry_run:
            return
        if counts.to_start == 0 and view.status in ImportStatus.FINAL:
            c.update(self.starts, total=0, note="nothing started")
            return
        c.start_task(self.starts)
        handled = counts.started + counts.existing + counts.failed
        note = f"{counts.failed} failed" if counts.failed else ""
        c.update(self.starts, completed=handled, total=counts.to_start, note=note)
        if view.status in ImportStatus.FINAL:
            c.update(self.starts, description="started orders")
            c.stop_task(self.starts)


async def _follow(
    imports: Imports, view: ImportView, principal: Principal, out: Console
) -> ImportView:
    bars = _Bars.open(out, view)
    with bars.progress:
        while True:
            bars.show(view)
            if view.status in ImportStatus.FINAL:
                return view
            await asyncio.sleep(POLL_EVERY)
            view = await imports.get(view.id, principal)


# --- the summary and the report -------------------------------------------------------------


def _has_report_rows(view: ImportView) -> bool:
    c = view.counts
    return view.status != ImportStatus.FAILED and any(
        (c.errors, c.warnings, c.orders_skipped, c.existing, c.failed, c.cancelled)
    )


def exit_code(view: ImportView) -> int:
    c = view.counts
    ok = view.status == ImportStatus.COMPLETED and not c.errors and not c.failed
    return 0 if ok else 1


def _summary(view: ImportView) -> Table:
    c = view.counts
    table = Table(
        title=f"Import {view.id}", title_justify="left", box=box.SIMPLE, show_header=False
    )
    table.add_column("", no_wrap=True)
    table.add_column("", justify="right")
    started = "— (dry run)" if view.dry_run else str(c.started)
    rows = [
        ("rows", f"{c.rows} ({c.rows_invalid} invalid)" if c.rows_invalid else str(c.rows)),
        ("orders", str(c.orders)),
        ("  valid", str(c.orders_valid)),
        ("  invalid", str(c.orders_invalid)),
        ("  already imported", str(c.orders_skipped + c.existing)),
        ("started", started),
        ("failed at start", str(c.failed)),
        ("not started (cancelled)", str(c.cancelled)),
        ("errors", str(c.errors)),
        ("warnings", str(c.warnings)),
        ("status", f"[{_STATUS_STYLE.get(view.status, 'white')}]{view.status}[/]"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _problems(report: bytes) -> Table:
    """The first problems of the report: errors and warnings before the notes (infos)."""
    rows = list(csv.DictReader(io.StringIO(report.decode("utf-8-sig"))))
    rows.sort(key=lambda r: r["severity"] == "info")  # stable: by row within each group
    n = len(rows)
    table = Table(
        title=f"Problems ({n})" if n <= SHOW_PROBLEMS else f"First {SHOW_PROBLEMS} of {n} problems",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for name in ("row", "order_ref", "column", "severity", "code", "message"):
        table.add_column(name, overflow="fold", justify="right" if name == "row" else "left")
    style = {"error": "red", "warning": "yellow", "info": "cyan"}
    for r in rows[:SHOW_PROBLEMS]:
        severity = f"[{style.get(r['severity'], 'white')}]{r['severity']}[/]"
        cells = (escape(r[k]) for k in ("row", "order_ref", "column", "code", "message"))
        row, ref, column, code, message = cells
        table.add_row(row, ref, column, severity, code, message)
    return table


async def _write_report(
    imports: Imports, view: ImportView, principal: Principal, path: Path, out: Console
) -> None:
    data, _ = await imports.report(view.id, "csv", principal)
    try:
        path.write_bytes(data)
    except OSError as exc:
        out.print(f"cannot write the report to {path}: {exc.strerror}", style="red", markup=False)
    else:
        out.print(f"Report written to [bold]{escape(str(path))}[/bold]", highlight=False)
    out.print(_problems(data))


# --- commands -------------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    size = path.stat().st_size
    if size > MAX_BYTES:  # as the service would say, without reading it all first
        raise file_refused(
            ImportFileError(
                "too_large",
                f"{path.name} has {size:,} bytes; at most {MAX_BYTES:,} ({MAX_BYTES // 2**20} MiB)",
            )
        )
    return path.read_bytes()


def import_file(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="The CSV or XLSX file to import."
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and report only; start no order.")
    ] = False,
    mode: Annotated[
        ImportMode,
        typer.Option(
            help="all-or-nothing: any error starts nothing; skip-invalid: start the valid orders."
        ),
    ] = ImportMode.ALL_OR_NOTHING,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Follow the import until it ends.")
    ] = True,
    report: Annotated[
        Path | None,
        typer.Option(help="Where to write the problem report (CSV); default <file>-report.csv."),
    ] = None,
) -> None:
    """Import orders from a spreadsheet (see `orderly import-template`) and follow it."""
    out = Console()
    principal = cli_principal()
    report_path = report or file.with_name(f"{file.stem}-report.csv")
    submitted: list[str] = []

    async def go() -> int:
        async with _imports(get_settings()) as imports:
            data = await asyncio.to_thread(_read, file)
            view = await imports.submit(data, file.name, principal, mode=mode, dry_run=dry_run)
            submitted.append(view.id)
            what = "dry run" if dry_run else mode.value
            out.print(
                f"Import [bold]{view.id}[/bold] submitted: {escape(file.name)}, "
                f"{view.counts.rows} rows, {what}",
                highlight=False,
            )
            if not wait:
                out.print(f"Not following it; stop it with `orderly import-cancel {view.id}`.")
                return 0
            view = await _follow(imports, view, principal, out)
            out.print(_summary(view))
            if view.error:
                out.print(view.error, style="red", markup=False, highlight=False)
            if _has_report_rows(view):
                await _write_report(imports, view, principal, report_path, out)
            return exit_code(view)

    try:
        code = _run(go)
    except KeyboardInterrupt:
        if not submitted:
            raise _fail(
                "interrupted while submitting: the import may not have started", INTERRUPTED
            ) from None
        out.print(
            f"\nStopped following {submitted[0]}; the import goes on. "
            f"Stop it with `orderly import-cancel {submitted[0]}`.",
            highlight=False,
        )
        raise typer.Exit(INTERRUPTED) from None
    raise typer.Exit(code)


def import_template(
    fmt: Annotated[
        ReportFormat,
        typer.Option("--format", help="xlsx (with a sheet documenting each column) or csv."),
    ] = "xlsx",
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Default: ./orderly-import-template.<format>."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write the import template: the columns and one example order to fill in."""
    path = output or Path(f"orderly-import-template.{fmt}")
    if path.exists() and not force:
        raise _fail(f"{path} exists; pass --force to overwrite it", 2)
    try:
        path.write_bytes(Imports.template(fmt))
    except OSError as exc:
        raise _fail(f"cannot write {path}: {exc.strerror}", 2) from exc
    Console().print(f"Template written to [bold]{escape(str(path))}[/bold]", highlight=False)


def import_cancel(
    import_id: Annotated[str, typer.Argument(help="The import's id, e.g. IMP-7K2QF0AB9C.")],
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for it to stop (0: do not wait).")
    ] = 60,
) -> None:
    """Stop an import before its next batch; orders started so far stay (any user's import)."""
    if not IMPORT_ID.match(import_id):
        raise _fail(f"{import_id!r} is not an import id (IMP- and 10 characters)", 2)
    principal = cli_principal(Role.ADMIN)  # the CLI holds the database: it may stop any import
    out = Console()

    async def go() -> ImportView:
        async with _imports(get_settings()) as imports:
            view = await imports.cancel(import_id, principal)
            out.print(f"Cancel of {import_id} requested.", highlight=False)
            deadline = asyncio.get_running_loop().time() + wait
            with out.status("waiting for the batch in flight to end ..."):
                while view.status not in ImportStatus.FINAL:
                    if asyncio.get_running_loop().time() >= deadline:
                        break
                    await asyncio.sleep(POLL_EVERY)
                    view = await imports.get(import_id, principal)
            return view

    view = _run(go)
    c = view.counts
    if view.status in ImportStatus.FINAL:
        out.print(
            f"Import {view.id}: {view.status}; {c.started} orders started, "
            f"{c.cancelled} not started.",
            highlight=False,
        )
    else:
        out.print(
            f"Import {view.id} is still {view.status}: it stops before its next batch.",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    """Add the import commands to the ``orderly`` app (``import`` is a keyword in Python)."""
    app.command("import")(import_file)
    app.command("import-template")(import_template)
    app.command("import-cancel")(import_cancel)
