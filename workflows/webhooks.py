"""One long-running delivery workflow per webhook endpoint (id ``webhook-<endpoint id>``).

It runs one delivery round after another (``deliver_webhooks``: the activity turns new events
of the log into deliveries and attempts the due ones, at most one per order at a time: an
order's next event waits for the one before it, other orders do not) and continues as new when
the engine suggests it. It ends when the endpoint is disabled or deleted; enabling the endpoint
starts it again. Retry times are in the delivery log (``next_attempt_at``), so a redelivery or
a worker restart changes nothing in here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy, WorkflowIDConflictPolicy, WorkflowIDReusePolicy

with workflow.unsafe.imports_passed_through():
    from activities.webhooks import RoundInput, RoundResult, WebhookActivities

RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
MAX_ROUNDS = 200  # continue as new at the latest after this many rounds


@dataclass(frozen=True)
class WebhookInput:
    """``round_seconds``: how long one delivery round runs; ``attempt_seconds``: one batch of
    attempts' limit (the receiver's timeout plus the database work); ``heartbeat_seconds``: how
    soon a dead worker's round is taken over."""

    endpoint_id: str
    round_seconds: float = 60.0
    attempt_seconds: float = 30.0
    heartbeat_seconds: float = 10.0


def workflow_id(endpoint_id: str) -> str:
    return f"webhook-{endpoint_id}"


@workflow.defn(name="WebhookDelivery")
class WebhookDeliveryWorkflow:
    @workflow.run
    async def run(self, inp: WebhookInput) -> str:
        for _ in range(MAX_ROUNDS):
            result: RoundResult = await workflow.execute_activity_method(
                WebhookActivities.deliver_webhooks,
                RoundInput(endpoint_id=inp.endpoint_id, seconds=inp.round_seconds),
                # a round stops taking new work after its seconds, then finishes its attempts
                start_to_close_timeout=timedelta(seconds=inp.round_seconds + inp.attempt_seconds),
                heartbeat_timeout=timedelta(seconds=inp.heartbeat_seconds),
                retry_policy=RETRY,
            )
            if result.state != "live":
                return result.state
            if workflow.info().is_continue_as_new_suggested():
                break
        workflow.continue_as_new(inp)


async def start_delivery(client: Client, endpoint_id: str, settings: Any) -> None:
    """Start the endpoint's delivery workflow unless it runs (ended ones start again)."""
    await client.start_workflow(
        WebhookDeliveryWorkflow.run,
        WebhookInput(
            endpoint_id=endpoint_id,
            attempt_seconds=settings.webhook_timeout.total_seconds() + 20,
            heartbeat_seconds=max(2.0, settings.activity_heartbeat.total_seconds()),
        ),
        id=workflow_id(endpoint_id),
        task_queue=settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
