"""The mail consumer: one long-running workflow (id ``mail-<task queue>``) running one
``dispatch_mail`` round after another (compose the emails new events ask for, send the due
ones, retry transient failures on the schedule kept in the outbox), continuing as new when the
engine suggests it. Every worker starts it at start-up if it is not running."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy, WorkflowIDConflictPolicy, WorkflowIDReusePolicy

with workflow.unsafe.imports_passed_through():
    from activities.mail import MailActivities, MailRoundInput


def workflow_id(task_queue: str) -> str:
    """One consumer per deployment (its task queue): ``mail-orders`` by default."""
    return f"mail-{task_queue}"


RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
MAX_ROUNDS = 200


@dataclass(frozen=True)
class MailInput:
    """``round_seconds``: one round's length; ``send_seconds``: the last sends' limit after it;
    ``heartbeat_seconds``: how soon a dead worker's round is taken over."""

    round_seconds: float = 60.0
    send_seconds: float = 120.0
    heartbeat_seconds: float = 10.0
    rounds: int = 0  # 0: for ever (continuing as new); else end after that many (tests)


@workflow.defn(name="MailDispatch")
class MailDispatchWorkflow:
    @workflow.run
    async def run(self, inp: MailInput) -> None:
        for n in range(1, MAX_ROUNDS + 1):
            await workflow.execute_activity_method(
                MailActivities.dispatch_mail,
                MailRoundInput(seconds=inp.round_seconds),
                start_to_close_timeout=timedelta(seconds=inp.round_seconds + inp.send_seconds),
                heartbeat_timeout=timedelta(seconds=inp.heartbeat_seconds),
                retry_policy=RETRY,
            )
            if n == inp.rounds:
                return
            if workflow.info().is_continue_as_new_suggested():
                break
        workflow.continue_as_new(inp)


async def start_mail_dispatch(client: Client, settings: Any) -> None:
    """Start the mail consumer unless it runs."""
    await client.start_workflow(
        MailDispatchWorkflow.run,
        MailInput(
            # no send starts after the round's time: the last one may take the SMTP timeout
            send_seconds=settings.smtp_timeout.total_seconds() + 30,
            # a heartbeat comes after each send: one send may take the SMTP timeout
            heartbeat_seconds=max(
                settings.activity_heartbeat.total_seconds(),
                settings.smtp_timeout.total_seconds() + 5,
            ),
        ),
        id=workflow_id(settings.task_queue),
        task_queue=settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
