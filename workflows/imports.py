"""A spreadsheet import as a durable workflow: validate the whole file, then start its valid
orders in batches, then finish; ``cancel`` (an update) stops it between batches.

History stays small whatever the file's size: the file, the orders and the report stay in the
database (the activities take the import's id), each batch is one activity, and the run
continues as new after ``batches_per_run`` batches carrying its cursor and counts. A worker or
server restart resumes at the batch in flight; starting an order twice is a no-op (see
``activities.imports``).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.import_contracts import (
        FinishImport,
        ImportCounts,
        ImportInput,
        ImportProgress,
        ImportRef,
        ImportStatus,
        StageResult,
        StartBatch,
    )
    from activities.imports import ImportActivities

RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


def workflow_id(import_id: str) -> str:
    return f"import-{import_id}"


@workflow.defn(name="Import")
class ImportWorkflow:
    @workflow.init
    def __init__(self, inp: ImportInput) -> None:
        status = ImportStatus.STARTING if inp.validated else ImportStatus.VALIDATING
        self._progress = ImportProgress(
            status=status, counts=inp.counts or ImportCounts(), runs=1 if inp.counts is None else 2
        )
        self._cancel = False

    @workflow.query
    def progress(self) -> ImportProgress:
        """Status and counts as of the last finished step (rows validated, orders started)."""
        return self._progress

    @workflow.update
    def cancel(self) -> ImportProgress:
        """Stop before the next batch; orders started so far stay, the rest are not started."""
        self._cancel = True
        self._progress = self._progress.model_copy(update={"cancel_requested": True})
        return self._progress

    @cancel.validator
    def _cancel_allowed(self) -> None:
        if self._progress.status in ImportStatus.FINAL:
            raise ValueError(f"the import has ended ({self._progress.status})")

    def _set(self, result: StageResult) -> None:
        self._progress = self._progress.model_copy(
            update={"status": result.status, "counts": result.counts}
        )

    @workflow.run
    async def run(self, inp: ImportInput) -> ImportProgress:
        if not inp.validated:
            self._set(
                await workflow.execute_activity_method(
                    ImportActivities.validate_import,
                    ImportRef(import_id=inp.import_id),
                    start_to_close_timeout=inp.validate_timeout,
                    heartbeat_timeout=inp.heartbeat_timeout,
                    retry_policy=RETRY,
                )
            )
            if self._progress.status != ImportStatus.STARTING:
                return self._progress  # a dry run, blocked, nothing to start, or failed
        after, batches = inp.after, 0
        while not self._cancel:
            result = await workflow.execute_activity_method(
                ImportActivities.start_import_batch,
                StartBatch(import_id=inp.import_id, after=after, limit=inp.batch_size),
                start_to_close_timeout=inp.batch_timeout,
                heartbeat_timeout=inp.heartbeat_timeout,
                retry_policy=RETRY,
            )
            self._set(result)
            if result.last_seq is None:
                break
            after, batches = result.last_seq, batches + 1
            if self._cancel:
                break
            if batches >= inp.batches_per_run or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(
                    inp.model_copy(
                        update={"validated": True, "after": after, "counts": self._progress.counts}
                    )
                )
        self._set(
            await workflow.execute_activity_method(
                ImportActivities.finish_import,
                FinishImport(import_id=inp.import_id, cancelled=self._cancel),
                start_to_close_timeout=inp.batch_timeout,
                retry_policy=RETRY,
            )
        )
        return self._progress
