"""Reports as files: produced now (small ones, straight from the API) or in the background
(``POST /reports/exports``: a ReportExportWorkflow renders it, recording its progress on the
``report_exports`` row, and the file is downloaded when done), and weekly subscriptions (a
Temporal Schedule per subscription starts the same workflow for the week just ended).

A stored export holds the report's resolved parameters (absolute dates), so re-running it gives
the same file; subscriptions hold the parameters without dates.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError

from config import Settings
from db.models import ReportExportRow, ReportSubscriptionRow
from db.session import SessionFactory
from services.auth import Principal, Role
from services.errors import Kind, ServiceError, invalid, not_found, unavailable
from services.report_files import content_type, file_suffix
from services.report_operations import OperationsReports, parse_range
from services.report_output import (
    FORMATS,
    Format,
    customers_chart,
    customers_table,
    operations_chart,
    operations_table,
    render,
    sales_chart,
    sales_table,
)
from services.reports import Reports, parse_sales_query

ReportKind = Literal["sales", "operations", "customers"]
REPORTS: tuple[ReportKind, ...] = ("sales", "operations", "customers")
_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SUBSCRIPTION_CRON = "0 6 * * 1"  # Mondays 06:00 UTC: the week just ended
_SALES_KEYS = {"from", "to", "period", "group_by", "filters", "currency", "convert_to",
               "compare", "top"}  # fmt: skip
_RANGE_KEYS = {"from", "to", "top"}


def new_export_id() -> str:
    return "RX-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


def new_subscription_id() -> str:
    return "RS-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def export_workflow_id(export_id: str) -> str:
    return f"report-export-{export_id}"


def subscription_schedule_id(subscription_id: str) -> str:
    return f"orderly-report-{subscription_id}"


def subscription_export_id(subscription_id: str, week: date) -> str:
    """The export a subscription makes for the week starting ``week``: one per week, so a
    retried or re-run schedule action finds it made."""
    return f"{subscription_id}-{week.isoformat()}"


# --- parameters -----------------------------------------------------------------------------------


def _date(params: Mapping[str, Any], key: str) -> date | None:
    value = params.get(key)
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise invalid(key, "not a date (YYYY-MM-DD)") from None


def _strings(params: Mapping[str, Any], key: str) -> list[str]:
    value = params.get(key) or []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(key, "a list of strings")
    return value


@dataclass(frozen=True)
class Prepared:
    """A checked report, ready to run: ``params`` are the resolved ones (stored)."""

    kind: ReportKind
    params: dict[str, Any]
    produce: Callable[[Any, Settings, Principal], Any]  # async -> (Table, Chart, rows)
    query: Any  # the checked query: a SalesQuery, or a Range


def prepare(
    kind: str, params: Mapping[str, Any], settings: Settings, *, today: date | None = None
) -> Prepared:
    """Check a report's parameters (422 naming the parameter) and resolve them."""
    if kind not in REPORTS:
        raise invalid("report", f"one of {', '.join(REPORTS)}")
    known = _SALES_KEYS if kind == "sales" else _RANGE_KEYS
    unknown = sorted(set(params) - known)
    if unknown:
        raise invalid(unknown[0], f"not a parameter of the {kind} report")
    start, end = _date(params, "from"), _date(params, "to")
    if kind == "sales":
        filters = params.get("filters") or {}
        if not isinstance(filters, dict):
            raise invalid("filters", "an object of dimension -> values")
        query = parse_sales_query(
            start=start,
            end=end,
            period=params.get("period"),
            group_by=_strings(params, "group_by"),
            filters={k: _strings(filters, k) for k in filters},
            currency=_strings(params, "currency"),
            convert_to=params.get("convert_to"),
            compare=bool(params.get("compare")),
            top=_int(params, "top"),
            settings=settings,
            today=today,
        )

        async def sales(sessions: Any, s: Settings, principal: Principal) -> Any:
            report = await Reports(sessions, s).sales(principal, query)
            return sales_table(report), sales_chart(report), len(report.rows)

        return Prepared("sales", query.params(), sales, query)
    rng = parse_range(start, end, today=today)
    top = _int(params, "top") or 20
    if kind == "operations":

        async def operations(sessions: Any, s: Settings, principal: Principal) -> Any:
            report = await OperationsReports(sessions, s).operations(principal, rng)
            return operations_table(report), operations_chart(report), None

        return Prepared("operations", rng.params(), operations, rng)

    async def customers(sessions: Any, s: Settings, principal: Principal) -> Any:
        report = await OperationsReports(sessions, s).customers(principal, rng, top=top)
        return customers_table(report), customers_chart(report), len(report.top)

    return Prepared("customers", {**rng.params(), "top": top}, customers, rng)


def _int(params: Mapping[str, Any], key: str) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(key, "an integer")
    return value


def week_params(params: Mapping[str, Any], at: datetime) -> tuple[date, dict[str, Any]]:
    """A subscription's parameters for the ISO week before ``at`` (Monday to Monday)."""
    today = at.astimezone(UTC).date()
    end = today - timedelta(days=today.weekday())
    start = end - timedelta(days=7)
    out = {**params, "from": start.isoformat(), "to": end.isoformat()}
    return start, out


# --- views ----------------------------------------------------------------------------------------


class ExportView(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    report: str
    format: str
    params: dict[str, Any]
    status: str = Field(description="queued | running | done | failed")
    rows_done: int
    rows_total: int | None
    progress_pct: float | None = Field(description="rows_done of rows_total, when known.")
    error: str | None
    subscription_id: str | None
    created_by: str
    created_at: datetime
    finished_at: datetime | None
    download: str | None = Field(description="The file's URL, once done.")
    size_bytes: int | None


def export_view(row: ReportExportRow) -> ExportView:
    total = row.rows_total
    pct = None
    if row.status == "done":
        pct = 100.0
    elif total:
        pct = round(min(100.0, row.rows_done * 100 / total), 1)
    return ExportView(
        id=row.id,
        report=row.report,
        format=row.format,
        params=row.params,
        status=row.status,
        rows_done=row.rows_done,
        rows_total=total,
        progress_pct=pct,
        error=row.error,
        subscription_id=row.subscription_id,
        created_by=row.created_by,
        created_at=row.created_at,
        finished_at=row.finished_at,
        download=f"/reports/exports/{row.id}/file" if row.status == "done" else None,
        size_bytes=len(row.content) if row.content is not None else None,
    )


class SubscriptionView(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    report: str
    format: str
    params: dict[str, Any]
    cadence: str
    schedule: str = Field(description="Cron (UTC) of the Temporal Schedule that runs it.")
    delivery: str = Field(description="How the file reaches the subscriber.")
    active: bool
    created_at: datetime


def subscription_view(row: ReportSubscriptionRow) -> SubscriptionView:
    return SubscriptionView(
        id=row.id,
        report=row.report,
        format=row.format,
        params=row.params,
        cadence=row.cadence,
        schedule=SUBSCRIPTION_CRON,
        delivery="emailed (a link) to the subscriber's address, and stored: "
        "GET /reports/exports?subscription_id=" + row.id,
        active=row.active,
        created_at=row.created_at,
    )


@dataclass(frozen=True)
class File:
    name: str
    content_type: str
    content: bytes


# --- the use cases ------------------------------------------------------------------------------


class ReportExports:
    """Background exports and subscriptions (managers and admins)."""

    def __init__(self, sessions: SessionFactory, settings: Settings, client: Client | None) -> None:
        self._sessions = sessions
        self._settings = settings
        self._client = client

    @staticmethod
    def _format(fmt: str) -> Format:
        if fmt not in FORMATS:
            raise invalid("format", f"one of {', '.join(FORMATS)}")
        return fmt

    async def render_now(self, principal: Principal, prepared: Prepared, fmt: str) -> File:
        """A small report's file, made in the request (bigger ones: ``request``)."""
        Reports.allow(principal)
        chosen = self._format(fmt)
        table, chart, rows = await prepared.produce(self._sessions, self._settings, principal)
        limit = self._settings.report_sync_rows
        if rows is not None and rows > limit and chosen != "png":
            raise invalid(
                "format",
                f"{rows} rows is more than {limit}: export it in the background "
                "(POST /reports/exports) and download it when done",
            )
        content = await asyncio.to_thread(render, chosen, table, chart)  # off the event loop
        return File(_filename(prepared, chosen), content_type(chosen), content)

    async def request(
        self, principal: Principal, kind: str, fmt: str, params: Mapping[str, Any]
    ) -> ExportView:
        Reports.allow(principal)
        chosen = self._format(fmt)
        prepared = prepare(kind, params, self._settings)
        now = datetime.now(UTC)
        row = ReportExportRow(
            id=new_export_id(),
            report=prepared.kind,
            params=prepared.params,
            format=chosen,
            status="queued",
            rows_done=0,
            created_by=principal.name,
            created_at=now,
        )
        async with self._sessions.begin() as session:
            session.add(row)
        await self._start(row.id)
        return export_view(row)

    async def _start(self, export_id: str) -> None:
        from workflows.reports import ExportInput, ReportExportWorkflow

        if self._client is None:
            raise ServiceError(Kind.UNAVAILABLE, "no Temporal client: exports cannot start")
        try:
            await self._client.start_workflow(
                ReportExportWorkflow.run,
                ExportInput(export_id=export_id),
                id=export_workflow_id(export_id),
                task_queue=self._settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except RPCError as exc:
            async with self._sessions.begin() as session:
                await session.execute(
                    update(ReportExportRow)
                    .where(ReportExportRow.id == export_id)
                    .values(status="failed", error="the engine could not start the export")
                )
            raise unavailable(exc) from exc

    async def _row(self, principal: Principal, export_id: str) -> ReportExportRow:
        Reports.allow(principal)
        async with self._sessions() as session:
            row = await session.get(ReportExportRow, export_id)
        if row is None or not _may_see(principal, row.created_by):
            raise not_found(f"export {export_id}")
        return row

    async def get(self, principal: Principal, export_id: str) -> ExportView:
        return export_view(await self._row(principal, export_id))

    async def file(self, principal: Principal, export_id: str) -> File:
        row = await self._row(principal, export_id)
        if row.status != "done" or row.content is None:
            raise ServiceError(
                Kind.NOT_ALLOWED,
                f"export {export_id} is {row.status}, not done",
                allowed_actions=[],
                status=row.status,
            )
        name = f"{row.report}-{row.id}{file_suffix(row.format)}"
        return File(name, content_type(row.format), row.content)

    async def exports(
        self, principal: Principal, *, subscription_id: str | None = None, limit: int = 50
    ) -> list[ExportView]:
        Reports.allow(principal)
        stmt = select(ReportExportRow).order_by(
            ReportExportRow.created_at.desc(), ReportExportRow.id.desc()
        )
        if not _sees_all(principal):
            stmt = stmt.where(ReportExportRow.created_by == principal.name)
        if subscription_id is not None:
            stmt = stmt.where(ReportExportRow.subscription_id == subscription_id)
        async with self._sessions() as session:
            rows = list(await session.scalars(stmt.limit(limit)))
        return [export_view(r) for r in rows]

    # --- the background side (activities/reports.py) ---

    async def open_for_week(self, subscription_id: str, at: datetime) -> str | None:
        """The export of a subscription for the week before ``at``, made once (None: the
        subscription was cancelled)."""
        async with self._sessions.begin() as session:
            sub = await session.get(ReportSubscriptionRow, subscription_id)
            if sub is None or not sub.active:
                return None
            week, params = week_params(sub.params, at)
            export_id = subscription_export_id(subscription_id, week)
            if await session.get(ReportExportRow, export_id) is None:
                prepared = prepare(sub.report, params, self._settings)
                session.add(
                    ReportExportRow(
                        id=export_id,
                        report=sub.report,
                        params=prepared.params,
                        format=sub.format,
                        status="queued",
                        rows_done=0,
                        subscription_id=subscription_id,
                        created_by=sub.principal,
                        created_at=datetime.now(UTC),
                    )
                )
        return export_id

    async def produce(
        self, export_id: str, on_progress: Callable[[int, int | None], None]
    ) -> ExportView:
        """Run and store an export (again if an earlier try died half-way; a done one is
        left as it is). The file is rendered in a thread so progress keeps flowing."""
        async with self._sessions() as session:
            row = await session.get(ReportExportRow, export_id)
        if row is None:
            raise not_found(f"export {export_id}")
        if row.status in ("done", "failed"):
            return export_view(row)
        principal = Principal(name=row.created_by, roles=frozenset({Role.MANAGER}))
        try:
            prepared = prepare(row.report, row.params, self._settings)
            table, chart, total = await prepared.produce(self._sessions, self._settings, principal)
        except ServiceError as exc:  # e.g. the rate table changed since: say so, do not retry
            return await self._finish(export_id, status="failed", error=exc.message)
        await self._progress(export_id, 0, total, status="running")
        done = [0]
        loop = asyncio.get_running_loop()
        fmt = self._format(row.format)
        rendering = loop.run_in_executor(
            None, lambda: render(fmt, table, chart, progress=lambda n: done.__setitem__(0, n))
        )
        while True:
            try:
                content = await asyncio.wait_for(asyncio.shield(rendering), timeout=1.0)
                break
            except TimeoutError:
                on_progress(done[0], total)
                await self._progress(export_id, done[0], total)
        on_progress(total or done[0], total)
        return await self._finish(
            export_id, status="done", content=content, rows_done=total or done[0]
        )

    async def _progress(
        self, export_id: str, done: int, total: int | None, *, status: str | None = None
    ) -> None:
        values: dict[str, Any] = {"rows_done": done, "rows_total": total}
        if status:
            values["status"] = status
        async with self._sessions.begin() as session:
            await session.execute(
                update(ReportExportRow).where(ReportExportRow.id == export_id).values(**values)
            )

    async def _finish(self, export_id: str, *, status: str, **values: Any) -> ExportView:
        async with self._sessions.begin() as session:
            await session.execute(
                update(ReportExportRow)
                .where(ReportExportRow.id == export_id)
                .values(status=status, finished_at=datetime.now(UTC), **values)
            )
            row = await session.get(ReportExportRow, export_id)
        assert row is not None
        return export_view(row)

    # --- subscriptions ---

    async def subscribe(
        self, principal: Principal, kind: str, fmt: str, params: Mapping[str, Any]
    ) -> SubscriptionView:
        Reports.allow(principal)
        chosen = self._format(fmt)
        for key in ("from", "to"):
            if key in params:
                raise invalid(key, "a weekly subscription always covers the week just ended")
        prepared = prepare(kind, params, self._settings)  # checks them
        stored = {k: v for k, v in prepared.params.items() if k not in ("from", "to")}
        row = ReportSubscriptionRow(
            id=new_subscription_id(),
            principal=principal.name,
            report=prepared.kind,
            params=stored,
            format=chosen,
            cadence="weekly",
            email=None,
            active=True,
            created_at=datetime.now(UTC),
        )
        async with self._sessions.begin() as session:
            session.add(row)
        try:
            await self._schedule(row.id)
        except RPCError as exc:
            async with self._sessions.begin() as session:
                stored_row = await session.get(ReportSubscriptionRow, row.id)
                if stored_row is not None:
                    await session.delete(stored_row)
            raise unavailable(exc) from exc
        return subscription_view(row)

    async def _schedule(self, subscription_id: str) -> None:
        from workflows.reports import ExportInput, ReportExportWorkflow

        if self._client is None:
            raise ServiceError(Kind.UNAVAILABLE, "no Temporal client: cannot schedule")
        schedule = Schedule(
            action=ScheduleActionStartWorkflow(
                ReportExportWorkflow.run,
                ExportInput(subscription_id=subscription_id),
                id=f"report-{subscription_id}",  # the engine appends the scheduled time
                task_queue=self._settings.task_queue,
            ),
            spec=ScheduleSpec(cron_expressions=[SUBSCRIPTION_CRON], time_zone_name="UTC"),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        )
        try:
            await self._client.create_schedule(subscription_schedule_id(subscription_id), schedule)
        except ScheduleAlreadyRunningError:
            pass

    async def subscriptions(self, principal: Principal) -> list[SubscriptionView]:
        Reports.allow(principal)
        stmt = select(ReportSubscriptionRow).order_by(ReportSubscriptionRow.created_at)
        if not _sees_all(principal):
            stmt = stmt.where(ReportSubscriptionRow.principal == principal.name)
        async with self._sessions() as session:
            rows = list(await session.scalars(stmt.where(ReportSubscriptionRow.active)))
        return [subscription_view(r) for r in rows]

    async def run_subscription_now(self, principal: Principal, subscription_id: str) -> None:
        """Trigger the subscription's schedule once (the week just ended)."""
        await self._subscription(principal, subscription_id)
        if self._client is None:
            raise ServiceError(Kind.UNAVAILABLE, "no Temporal client")
        try:
            await self._client.get_schedule_handle(
                subscription_schedule_id(subscription_id)
            ).trigger()
        except RPCError as exc:
            raise unavailable(exc) from exc

    async def _subscription(
        self, principal: Principal, subscription_id: str
    ) -> ReportSubscriptionRow:
        Reports.allow(principal)
        async with self._sessions() as session:
            row = await session.get(ReportSubscriptionRow, subscription_id)
        if row is None or not row.active or not _may_see(principal, row.principal):
            raise not_found(f"subscription {subscription_id}")
        return row

    async def unsubscribe(self, principal: Principal, subscription_id: str) -> None:
        await self._subscription(principal, subscription_id)
        async with self._sessions.begin() as session:
            await session.execute(
                update(ReportSubscriptionRow)
                .where(ReportSubscriptionRow.id == subscription_id)
                .values(active=False)
            )
        if self._client is not None:
            try:
                await self._client.get_schedule_handle(
                    subscription_schedule_id(subscription_id)
                ).delete()
            except RPCError:
                pass  # gone already; the export step checks ``active`` too


def _sees_all(principal: Principal) -> bool:
    return principal.has_any({Role.ADMIN})


def _may_see(principal: Principal, owner: str) -> bool:
    return _sees_all(principal) or owner == principal.name


def _filename(prepared: Prepared, fmt: str) -> str:
    p = prepared.params
    return f"{prepared.kind}-{p.get('from', '')}-{p.get('to', '')}{file_suffix(fmt)}"
