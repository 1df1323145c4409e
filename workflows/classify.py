"""Customer classification: a workflow a Temporal schedule starts (nightly by default) that pages
through the customers by id, one activity per page, and proposes tiers by RFM.

The run reads its figures as of its start (``as_of``), so every page of one run looks at the
same 12 months; it continues as new after ``batches_per_run`` pages (or when the engine suggests
it), carrying its cursor and progress, so its history stays short however many customers.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy

from workflows.schedules import cron_schedule, ensure

with workflow.unsafe.imports_passed_through():
    from activities.customers import (
        ClassifyBatch,
        ClassifyInput,
        ClassifyProgress,
        CountCustomers,
        CustomerActivities,
    )

SCHEDULE_ID = "orderly-classify-customers"
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


@workflow.defn(name="ClassifyCustomers")
class ClassifyCustomersWorkflow:
    @workflow.init
    def __init__(self, inp: ClassifyInput) -> None:
        self._progress = inp.progress or ClassifyProgress()

    @workflow.query
    def progress(self) -> ClassifyProgress:
        """Customers scanned of the total, proposals, promotions applied, suggestions."""
        return self._progress

    @workflow.run
    async def run(self, inp: ClassifyInput) -> ClassifyProgress:
        as_of = inp.as_of or workflow.now()
        if inp.progress is None:
            total = await workflow.execute_activity_method(
                CustomerActivities.count_customers,
                CountCustomers(),
                start_to_close_timeout=inp.activity_timeout,
                retry_policy=RETRY,
            )
            self._progress = self._progress.model_copy(update={"total": total})
        after, pages = inp.after, 0
        while True:
            page = await workflow.execute_activity_method(
                CustomerActivities.classify_customers,
                ClassifyBatch(after=after, limit=inp.batch_size, as_of=as_of),
                start_to_close_timeout=inp.activity_timeout,
                heartbeat_timeout=inp.heartbeat_timeout,
                retry_policy=RETRY,
            )
            p = self._progress
            self._progress = p.model_copy(
                update={
                    "scanned": p.scanned + page.scanned,
                    "proposals": p.proposals + page.proposals,
                    "applied": p.applied + page.applied,
                    "suggested": p.suggested + page.suggested,
                    "withdrawn": p.withdrawn + page.withdrawn,
                }
            )
            if page.last_id is None or page.scanned < inp.batch_size:
                break
            after, pages = page.last_id, pages + 1
            if pages >= inp.batches_per_run or workflow.info().is_continue_as_new_suggested():
                carried = self._progress.model_copy(update={"runs": self._progress.runs + 1})
                workflow.continue_as_new(
                    inp.model_copy(update={"as_of": as_of, "after": after, "progress": carried})
                )
        self._progress = self._progress.model_copy(update={"done": True})
        return self._progress


# --- the schedule (client side, called when a worker starts) -----------------------------------


async def ensure_schedule(
    client: Client, *, task_queue: str, cron: str, schedule_id: str = SCHEDULE_ID
) -> str:
    """Create the classification schedule, or bring an existing one up to date with these
    settings (a pause stays as it is). Returns "created", "updated" or "unchanged"."""
    wanted = cron_schedule(
        ClassifyCustomersWorkflow.run,
        ClassifyInput(),
        workflow_id=f"{SCHEDULE_ID}-run",
        task_queue=task_queue,
        cron=cron,
        what="classification",
    )
    return await ensure(client, schedule_id, wanted)
