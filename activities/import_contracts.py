"""What the import workflow, its activities and their clients share: statuses, counts, the
activities' inputs and results (no file content, only the import's id), and how an import's
sealed values are named (the associated data of ``security.sealing``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.import_formats import Table
from domain.imports import Problem


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True)


class ImportStatus:
    """An import's status (``imports.status``)."""

    VALIDATING = "validating"
    STARTING = "starting"
    COMPLETED = "completed"  # also a dry run's end, and an import with nothing to start
    BLOCKED = "blocked"  # all-or-nothing with errors: nothing started
    CANCELLED = "cancelled"  # stopped on request; orders started before stay
    FAILED = "failed"  # the file could not be read (a file-level problem)

    FINAL = frozenset({COMPLETED, BLOCKED, CANCELLED, FAILED})


class ImportCounts(_Contract):
    """Rows and orders of an import, as far as it has got."""

    rows: int = 0
    rows_validated: int = 0
    rows_invalid: int = Field(default=0, description="Rows with at least one error.")
    orders: int = Field(default=0, description="Distinct order_refs in the file.")
    orders_valid: int = 0
    orders_invalid: int = 0
    orders_skipped: int = Field(default=0, description="Imported before: not started again.")
    errors: int = 0
    warnings: int = 0
    to_start: int = Field(default=0, description="Orders this import starts (0 in a dry run).")
    started: int = Field(default=0, description="Orders this import created.")
    existing: int = Field(
        default=0, description="Orders found already created (e.g. by an overlapping import)."
    )
    failed: int = Field(default=0, description="Orders refused at start (see the report).")
    cancelled: int = Field(default=0, description="Orders not started: the import was cancelled.")


class ImportInput(_Contract):
    """One import workflow run (``ImportWorkflow``); later runs carry the cursor on."""

    import_id: str
    batch_size: int = Field(default=100, ge=1, le=1000)
    batches_per_run: int = Field(default=100, ge=1, description="Then continue as new.")
    validate_timeout: timedelta = timedelta(minutes=15)
    batch_timeout: timedelta = timedelta(minutes=5)
    heartbeat_timeout: timedelta = timedelta(seconds=30)
    validated: bool = Field(default=False, description="Carried over: validation is done.")
    after: int = Field(default=-1, description="Carried over: the last order (seq) handled.")
    counts: ImportCounts | None = Field(default=None, description="Carried over.")


class ImportProgress(_Contract):
    """The workflow's ``progress`` query."""

    status: str
    counts: ImportCounts
    cancel_requested: bool = False
    runs: int = 1


class ImportRef(_Contract):
    import_id: str


class StartBatch(_Contract):
    import_id: str
    after: int
    limit: int


class StageResult(_Contract):
    status: str
    counts: ImportCounts
    last_seq: int | None = Field(default=None, description="Last order handled; None: done.")


class FinishImport(_Contract):
    import_id: str
    cancelled: bool


# --- sealing and the report blob ----------------------------------------------------------------


def file_aad(import_id: str) -> bytes:
    return f"import-file:{import_id}".encode()


def report_aad(import_id: str) -> bytes:
    return f"import-report:{import_id}".encode()


def spec_aad(import_id: str, seq: int) -> bytes:
    return f"import-order:{import_id}:{seq}".encode()


def problem_row(p: Problem) -> list[Any]:
    return [p.row, p.column, p.value, p.code, p.message, p.severity, p.order_ref]


def report_blob(table: Table, problems: Sequence[Problem]) -> bytes:
    """The report as stored: the header and only the rows that have a problem."""
    wanted = {p.row for p in problems if p.row is not None}
    rows = {str(r.number): list(r.cells) for r in table.rows if r.number in wanted}
    body = {
        "header": list(table.header),
        "header_row": table.header_row,
        "format": table.format,
        "rows": rows,
        "problems": [problem_row(p) for p in problems],
    }
    return json.dumps(body, separators=(",", ":")).encode()
