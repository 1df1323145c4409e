"""Report workflows: a background export (one per export, or one per week of a subscription's
Temporal Schedule), and the analytics run a schedule starts (nightly by default) that recomputes
the association rules and the demand forecasts."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy

from workflows.schedules import cron_schedule, ensure

with workflow.unsafe.imports_passed_through():
    from activities.reports import (
        AnalyticsInput,
        ExportInput,
        ForecastInput,
        ForecastResult,
        OpenWeek,
        ReportActivities,
        RulesInput,
        RulesResult,
        RunExport,
    )
    from services.report_exports import ExportView

ANALYTICS_SCHEDULE_ID = "orderly-analytics"
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
__all__ = ["AnalyticsWorkflow", "ExportInput", "ReportExportWorkflow", "ensure_analytics_schedule"]


@workflow.defn(name="ReportExport")
class ReportExportWorkflow:
    @workflow.run
    async def run(self, inp: ExportInput) -> ExportView | None:
        export_id = inp.export_id
        if export_id is None:
            if inp.subscription_id is None:
                raise ValueError("an export id or a subscription id")
            export_id = await workflow.execute_activity_method(
                ReportActivities.open_week_export,
                OpenWeek(subscription_id=inp.subscription_id, at=workflow.now()),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=RETRY,
            )
            if export_id is None:  # cancelled meanwhile
                return None
        return await workflow.execute_activity_method(
            ReportActivities.run_export,
            RunExport(export_id=export_id),
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1),
                maximum_interval=timedelta(minutes=1),
                maximum_attempts=5,
            ),
        )


@workflow.defn(name="Analytics")
class AnalyticsWorkflow:
    @workflow.run
    async def run(self, inp: AnalyticsInput) -> tuple[RulesResult, ForecastResult]:
        as_of = inp.as_of or workflow.now()
        rules = await workflow.execute_activity_method(
            ReportActivities.compute_rules,
            RulesInput(as_of=as_of),
            start_to_close_timeout=timedelta(minutes=20),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RETRY,
        )
        forecasts = await workflow.execute_activity_method(
            ReportActivities.compute_forecasts,
            ForecastInput(as_of=as_of),
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RETRY,
        )
        return rules, forecasts


async def ensure_analytics_schedule(
    client: Client, *, task_queue: str, cron: str, schedule_id: str = ANALYTICS_SCHEDULE_ID
) -> str:
    """Create the analytics schedule or bring it up to date (a pause stays as it is)."""
    wanted = cron_schedule(
        AnalyticsWorkflow.run,
        AnalyticsInput(),
        workflow_id=f"{ANALYTICS_SCHEDULE_ID}-run",
        task_queue=task_queue,
        cron=cron,
        what="analytics",
    )
    return await ensure(client, schedule_id, wanted)
