"""Temporal Schedules the worker keeps: create one, or bring it up to date with the settings."""

from __future__ import annotations

from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)


def cron_schedule(
    run: Any, arg: Any, *, workflow_id: str, task_queue: str, cron: str, what: str
) -> Schedule:
    """Start ``run(arg)`` on ``cron`` (UTC), skipping a start while the last run goes on; the
    note records what it was made from (see :func:`ensure`)."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            run,
            arg,
            id=workflow_id,
            task_queue=task_queue,  # the engine appends the time
        ),
        spec=ScheduleSpec(cron_expressions=[cron], time_zone_name="UTC"),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note=f"orderly {what}: cron={cron!r} UTC, task_queue={task_queue}"),
    )


async def ensure(client: Client, schedule_id: str, wanted: Schedule) -> str:
    """Create the schedule, or replace an existing one whose note (what it was made from: the
    engine keeps cron only as calendars) differs; a pause stays as it is. Returns "created",
    "updated" or "unchanged"."""
    try:
        await client.create_schedule(schedule_id, wanted)
        return "created"
    except ScheduleAlreadyRunningError:
        pass
    handle = client.get_schedule_handle(schedule_id)
    desc = await handle.describe()
    if desc.schedule.state.note == wanted.state.note:
        return "unchanged"

    async def _update(current: ScheduleUpdateInput) -> ScheduleUpdate:
        wanted.state.paused = current.description.schedule.state.paused
        return ScheduleUpdate(schedule=wanted)

    await handle.update(_update)
    return "updated"
