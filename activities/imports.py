"""Import activities: validate an uploaded file, start its orders one batch at a time, finish.

The file never travels through workflow history: the activities read it (sealed) from the
``imports`` row by the import's id, and write their progress to that row as they go, so a
client reads live counts from the database. Each is idempotent:

- ``validate_import`` stores its outcome (the valid orders, sealed, in ``import_orders``, and
  the report) in one transaction with the status change; a retry after that returns the stored
  counts; a retry before it validates again;
- ``start_import_batch`` starts each pending order (``services.intake``, a batched
  ``Orders.create``) with source
  ``import`` and ``external_reference`` = the order_ref, so the database's unique claim of that
  pair (never the upload, never the run) makes a second start of the same order a no-op that
  answers with the first order;
- ``finish_import`` only moves a running import to its final status.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.import_contracts import (
    FinishImport,
    ImportCounts,
    ImportRef,
    ImportStatus,
    StageResult,
    StartBatch,
    file_aad,
    report_aad,
    report_blob,
    spec_aad,
)
from db.models import (
    CustomerRow,
    ImportOrderRow,
    ImportRow,
    OrderReferenceRow,
    PriceRow,
    StockItemRow,
)
from domain.import_formats import ImportFileError, Table, read_table
from domain.imports import (
    CustomerCheck,
    ImportMode,
    Validation,
    blocked,
    normalize_header,
    validate,
)
from domain.order import OrderSource, OrderSpec
from security.sealing import seal_bytes, unseal_bytes
from services.auth import Principal, Role
from services.context import Services
from services.errors import ServiceError
from services.intake import Intake, Outcome
from services.prices import list_prices_at

log = logging.getLogger("orderly.imports")
CHUNK = 500  # rows of an IN (...) lookup
PROGRESS_WRITE_EVERY = 1.0  # seconds between progress writes while validating
HEARTBEAT_EVERY = 1.0  # seconds; a dead worker's batch is retried after the heartbeat timeout


def _principal(row: ImportRow) -> Principal:
    return Principal(name=row.created_by, roles=frozenset({Role.SYSTEM}))


class _Progress:
    """Rows validated, set from the validating thread and read by the writer loop."""

    def __init__(self) -> None:
        self.rows = 0

    def __call__(self, rows: int) -> None:
        self.rows = rows


class ImportActivities:
    def __init__(self, services: Services) -> None:
        self._s = services
        self._sessions = services.sessions
        self._ring = services.keyring

    # --- validate -------------------------------------------------------------------------

    @activity.defn(name="validate_import")
    async def validate_import(self, ref: ImportRef) -> StageResult:
        """Validate the whole file and store the outcome (see the module docstring)."""
        import_id = ref.import_id
        async with self._sessions() as session:
            row = await self._row(session, import_id)
            if row.status != ImportStatus.VALIDATING:  # a retry after the outcome was stored
                return StageResult(status=row.status, counts=ImportCounts(**row.counts))
            if row.file is None:
                raise ApplicationError(f"import {import_id} has no file", non_retryable=True)
            data = unseal_bytes(self._ring, file_aad(import_id), row.file)
            filename, mode, dry_run = row.filename, ImportMode(row.mode), row.dry_run
        try:
            table = await asyncio.to_thread(read_table, data, filename)
        except ImportFileError as exc:  # the API checked it; a changed limit can still refuse
            return await self._fail(import_id, exc.message)
        del data
        lookups = await self._lookups(table)
        progress = _Progress()
        work = asyncio.ensure_future(
            asyncio.to_thread(
                validate,
                table,
                known_skus=lookups.skus,
                is_known_customer=lookups.customer,
                already_imported=lookups.imported.get,
                progress=progress,
                list_price=lookups.list_price,
            )
        )
        while True:
            done, _ = await asyncio.wait({work}, timeout=PROGRESS_WRITE_EVERY)
            activity.heartbeat(progress.rows)
            if done:
                break
            await self._counts(import_id, rows_validated=progress.rows)
        try:
            result = work.result()
        except ImportFileError as exc:
            return await self._fail(import_id, exc.message)
        return await self._store(import_id, table, result, mode, dry_run)

    async def _lookups(self, table: Table) -> _Lookups:
        """What validation asks of the database, fetched up front (it runs in a thread)."""
        column = {normalize_header(h): i for i, h in reversed(list(enumerate(table.header)))}

        def values(name: str) -> set[str]:
            i = column.get(name)
            return {r.get(i).strip() for r in table.rows} - {""} if i is not None else set()

        refs, customer_ids = values("order_ref"), values("customer_id")
        file_skus = values("sku")
        currencies = {c.upper() for c in values("currency") if c.isascii() and len(c) == 3}
        now = datetime.now(UTC)
        async with self._sessions() as session:
            prices: dict[tuple[str, str], Decimal] = {}
            for currency in currencies:  # as listed now: the price an order takes at intake
                for chunk in _chunks(file_skus):
                    listed = await list_prices_at(session, chunk, currency, now)
                    prices.update({(sku, currency): p for sku, p in listed.items()})
            skus = set(await session.scalars(select(StockItemRow.sku)))
            skus |= set(await session.scalars(select(PriceRow.sku).distinct()))
            imported: dict[str, str] = {}
            for chunk in _chunks(refs):
                found = await session.execute(
                    select(OrderReferenceRow.external_reference, OrderReferenceRow.order_id)
                    .where(OrderReferenceRow.source == OrderSource.IMPORT.value)
                    .where(OrderReferenceRow.external_reference.in_(chunk))
                )
                imported.update(dict(found.all()))
            emails: dict[str, str] = {}
            for chunk in _chunks(customer_ids):
                rows = list(
                    await session.execute(
                        select(CustomerRow.id, CustomerRow.email).where(CustomerRow.id.in_(chunk))
                    )
                )
                opened = await self._s.vault.open_texts(session, [(i, e) for i, e in rows], "email")
                emails.update({cid: email for (cid, _), email in zip(rows, opened, strict=True)})
        return _Lookups(skus, emails, imported, prices)

    async def _store(
        self,
        import_id: str,
        table: Table,
        result: Validation,
        mode: ImportMode,
        dry_run: bool,
    ) -> StageResult:
        v = result.counts
        starting = not dry_run and not blocked(result, mode) and bool(result.orders)
        counts = ImportCounts(
            rows=v.rows,
            rows_validated=v.rows,
            rows_invalid=v.rows_invalid,
            orders=v.orders,
            orders_valid=v.orders_valid,
            orders_invalid=v.orders_invalid,
            orders_skipped=v.orders_skipped,
            errors=v.errors,
            warnings=v.warnings,
            to_start=len(result.orders) if starting else 0,
        )
        if starting:
            status = ImportStatus.STARTING
        elif blocked(result, mode) and not dry_run:
            status = ImportStatus.BLOCKED
        else:
            status = ImportStatus.COMPLETED
        report = seal_bytes(self._ring, report_aad(import_id), report_blob(table, result.problems))
        by_number = {r.number: r.cells for r in table.rows}
        values = []
        if starting:
            for seq, (ref, spec) in enumerate(result.orders.items()):
                first = result.order_rows[ref][0]
                body = {"spec": spec.model_dump(mode="json"), "row": list(by_number[first])}
                values.append(
                    {
                        "import_id": import_id,
                        "seq": seq,
                        "order_ref": ref,
                        "first_row": first,
                        "status": "pending",
                        "spec": seal_bytes(
                            self._ring, spec_aad(import_id, seq), json.dumps(body).encode()
                        ),
                    }
                )
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            await session.execute(
                delete(ImportOrderRow).where(ImportOrderRow.import_id == import_id)
            )
            for chunk in _chunks(values):
                await session.execute(insert(ImportOrderRow), chunk)
            final = status in ImportStatus.FINAL
            await session.execute(
                update(ImportRow)
                .where(ImportRow.id == import_id, ImportRow.status == ImportStatus.VALIDATING)
                .values(
                    status=status,
                    counts=counts.model_dump(),
                    report=report,
                    updated_at=now,
                    finished_at=now if final else None,
                    file=None if final else ImportRow.file,
                )
            )
        log.info("import %s validated: %s, %s orders to start", import_id, status, counts.to_start)
        return StageResult(status=status, counts=counts)

    async def _fail(self, import_id: str, message: str) -> StageResult:
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            await session.execute(
                update(ImportRow)
                .where(ImportRow.id == import_id)
                .values(
                    status=ImportStatus.FAILED,
                    error=message,
                    updated_at=now,
                    finished_at=now,
                    file=None,
                )
            )
            row = await self._row(session, import_id)
            counts = ImportCounts(**row.counts)
        return StageResult(status=ImportStatus.FAILED, counts=counts)

    # --- start ----------------------------------------------------------------------------

    @activity.defn(name="start_import_batch")
    async def start_import_batch(self, req: StartBatch) -> StageResult:
        """Start the next ``limit`` orders after seq ``after`` (those still pending)."""
        async with self._sessions() as session:
            row = await self._row(session, req.import_id)
            principal = _principal(row)
            batch = list(
                await session.scalars(
                    select(ImportOrderRow)
                    .where(ImportOrderRow.import_id == req.import_id)
                    .where(ImportOrderRow.seq > req.after)
                    .order_by(ImportOrderRow.seq)
                    .limit(req.limit)
                )
            )
        pending = [item for item in batch if item.status == "pending"]
        if pending:  # when this batch was first tried: claims made since are this import's
            async with self._sessions.begin() as session:
                await session.execute(
                    update(ImportOrderRow)
                    .where(ImportOrderRow.import_id == req.import_id)
                    .where(ImportOrderRow.seq.in_([i.seq for i in pending]))
                    .where(ImportOrderRow.attempted_at.is_(None))
                    .values(attempted_at=datetime.now(UTC))
                )
                attempted = dict(
                    (
                        await session.execute(
                            select(ImportOrderRow.seq, ImportOrderRow.attempted_at)
                            .where(ImportOrderRow.import_id == req.import_id)
                            .where(ImportOrderRow.seq.in_([i.seq for i in pending]))
                        )
                    ).all()
                )
        specs = [self._spec(item) for item in pending]
        work = asyncio.ensure_future(Intake(self._s).create_referenced(specs, principal))
        try:
            while not (await asyncio.wait({work}, timeout=HEARTBEAT_EVERY))[0]:
                activity.heartbeat()
            results = work.result()
        except BaseException:
            work.cancel()  # e.g. the worker is shutting down: no starts left running
            raise
        outcomes = [
            await self._outcome(item, result, attempted[item.seq])
            for item, result in zip(pending, results, strict=True)
        ]
        if outcomes:
            async with self._sessions.begin() as session:
                await session.execute(update(ImportOrderRow), outcomes)
        counts = await self._recount(req.import_id)
        last = batch[-1].seq if len(batch) == req.limit else None
        return StageResult(status=ImportStatus.STARTING, counts=counts, last_seq=last)

    def _spec(self, item: ImportOrderRow) -> OrderSpec:
        assert item.spec is not None
        body = json.loads(unseal_bytes(self._ring, spec_aad(item.import_id, item.seq), item.spec))
        return OrderSpec.model_validate(body["spec"])

    async def _outcome(
        self, item: ImportOrderRow, result: Outcome, attempted_at: datetime | None
    ) -> dict[str, Any]:
        """The row update for one order's start."""
        key = {"import_id": item.import_id, "seq": item.seq}
        if isinstance(result, ServiceError):
            return {**key, "status": "failed", "message": f"{result.code}: {result.message}"}
        created = result.created
        if not created and attempted_at is not None:
            # A retried batch: the first try may have created it (claimed after it began).
            async with self._sessions() as session:
                claim = await session.get(
                    OrderReferenceRow, (OrderSource.IMPORT.value, item.order_ref)
                )
            created = claim is not None and claim.created_at >= attempted_at
        status = "started" if created else "existing"
        return {**key, "status": status, "order_id": result.order_id, "spec": None}

    async def _recount(self, import_id: str) -> ImportCounts:
        """Tally the orders by status into the import's counts (so retries count right)."""
        async with self._sessions.begin() as session:
            tally = dict(
                (
                    await session.execute(
                        select(ImportOrderRow.status, func.count())
                        .where(ImportOrderRow.import_id == import_id)
                        .group_by(ImportOrderRow.status)
                    )
                ).all()
            )
            row = await self._row(session, import_id)
            counts = ImportCounts(**row.counts).model_copy(
                update={
                    k: int(tally.get(k, 0)) for k in ("started", "existing", "failed", "cancelled")
                }
            )
            row.counts = counts.model_dump()
            row.updated_at = datetime.now(UTC)
        return counts

    # --- finish ---------------------------------------------------------------------------

    @activity.defn(name="finish_import")
    async def finish_import(self, req: FinishImport) -> StageResult:
        """Mark what is left cancelled (if so), drop the file and the started orders' specs."""
        async with self._sessions.begin() as session:
            if req.cancelled:
                await session.execute(
                    update(ImportOrderRow)
                    .where(ImportOrderRow.import_id == req.import_id)
                    .where(ImportOrderRow.status == "pending")
                    .values(status="cancelled", spec=None)
                )
        counts = await self._recount(req.import_id)
        status = ImportStatus.CANCELLED if req.cancelled else ImportStatus.COMPLETED
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            await session.execute(
                update(ImportRow)
                .where(ImportRow.id == req.import_id)
                .where(ImportRow.status.not_in(ImportStatus.FINAL))
                .values(status=status, updated_at=now, finished_at=now, file=None)
            )
            row = await self._row(session, req.import_id)
        return StageResult(status=row.status, counts=counts)

    # --- helpers --------------------------------------------------------------------------

    @staticmethod
    async def _row(session: AsyncSession, import_id: str) -> ImportRow:
        row = await session.get(ImportRow, import_id)
        if row is None:
            raise ApplicationError(f"import {import_id} not found", non_retryable=True)
        return row

    async def _counts(self, import_id: str, **changes: int) -> None:
        async with self._sessions.begin() as session:
            row = await self._row(session, import_id)
            row.counts = {**row.counts, **changes}
            row.updated_at = datetime.now(UTC)


class _Lookups:
    """The catalogue's SKUs, known customers' emails, order_refs imported before, and the
    price list's current prices of the file's SKUs."""

    def __init__(
        self,
        skus: set[str],
        emails: dict[str, str],
        imported: dict[str, str],
        prices: dict[tuple[str, str], Decimal],
    ) -> None:
        self.skus, self.emails, self.imported, self.prices = skus, emails, imported, prices

    def list_price(self, sku: str, currency: str) -> Decimal | None:
        return self.prices.get((sku, currency))

    def customer(self, customer_id: str, email: str) -> CustomerCheck:
        on_file = self.emails.get(customer_id)
        if on_file is None:
            return "new"
        return "known" if on_file.casefold() == email.casefold() else "mismatch"


def _chunks(items: Iterable[Any]) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch
