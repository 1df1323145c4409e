"""Bookkeeping every order workflow step relies on: timeline, status moves, projection,
cancellable waits and activity calls with the order's policy."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.status import CANCELLABLE, Action, OrderStatus, allowed_actions, check_transition
    from domain.view import OrderView, TimelineEvent
    from workflows.contracts import CancelInput, NotifyRequest, ProjectRequest, StartOrderInput

S = OrderStatus
SYSTEM = "system"
COMMAND_NOT_ALLOWED = "CommandNotAllowed"
INVALID_COMMAND = "InvalidCommand"

FORWARD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)
# Compensations must eventually succeed: retry forever, never give up on a refund.
COMPENSATION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=0,
)


class OrderEnded(Exception):
    """The order cannot go on: unwind compensations and close it with ``status``."""

    def __init__(self, status: OrderStatus, event: str, reason: str, actor: str) -> None:
        super().__init__(reason)
        self.status, self.event, self.reason, self.actor = status, event, reason, actor


def refuse(view: OrderView, action: Action, why: str | None = None) -> NoReturn:
    """Refuse a command in a validator: it never enters history; the caller sees what is allowed."""
    message = why or f"{action} is not allowed while the order is {view.status}"
    raise ApplicationError(
        message,
        {"status": view.status.value, "allowed_actions": [a.value for a in view.allowed_actions]},
        type=COMMAND_NOT_ALLOWED,
        non_retryable=True,
    )


class OrderRecorder:
    """State and helpers shared by the order workflow's steps and handlers."""

    _inp: StartOrderInput
    _view: OrderView
    _unprojected: list[TimelineEvent]
    _cancel: CancelInput | None
    # Lean orders (started by this code or later) project only when they wait and run cheap
    # steps as local activities; orders started before keep their recorded behaviour.
    _lean: bool = False
    # Steady orders project a fixed number of times (see _flush); set with _lean.
    _steady: bool = False
    # Orders that decide only where a workflow task ends (see DECIDE_AT_TASK_END in order.py).
    _decide_at_task_end: bool = False

    def _require(self, action: Action) -> None:
        if action not in self._view.allowed_actions:
            refuse(self._view, action)

    # --- helpers --------------------------------------------------------------------------------

    def _event(
        self, type_: str, message: str, *, actor: str = SYSTEM, data: dict[str, str] | None = None
    ) -> None:
        view = self._view
        now = workflow.now()
        event = TimelineEvent(
            seq=len(view.timeline) + 1,
            at=now,
            type=type_,
            status=view.status,
            actor=actor,
            message=message,
            data=data or {},
        )
        view.timeline.append(event)
        view.updated_at = now
        self._unprojected.append(event)

    def _move(
        self,
        status: OrderStatus,
        type_: str,
        message: str,
        *,
        actor: str = SYSTEM,
        data: dict[str, str] | None = None,
    ) -> None:
        view = self._view
        view.status = check_transition(view.status, status)
        view.allowed_actions = self._actions(status)
        self._event(type_, message, actor=actor, data=data)

    async def _flush(self) -> None:
        """Project the events recorded since the last flush into the read model.

        Steady orders run exactly one projection per call, whatever is pending: how many
        events an update handler added while a local activity ran depends on timing that a
        replay does not reproduce, so the number of projections must not depend on it.
        """
        if self._steady:
            await self._project()
            return
        while self._unprojected:
            await self._project()

    async def _project(self) -> None:
        events, self._unprojected = self._unprojected, []
        snapshot = self._view.model_copy(update={"timeline": []})
        await workflow.execute_local_activity(
            "project_order",
            ProjectRequest(view=snapshot, events=events),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10), maximum_attempts=0),
        )

    async def _checkpoint(self) -> None:
        """Between steps: honour a cancellation. Pre-lean orders also project here.

        Orders that decide at task ends honour it only where a workflow task ends instead: before
        a regular activity (:meth:`_before_step`) and when waiting. An update can reach the run
        while a local activity is under way, but a replay sees it from the start of that task,
        so a check between two local activities could decide differently on replay (chaos).
        """
        if not self._lean:
            await self._flush()
        if not self._decide_at_task_end:
            self._check_cancel()

    def _before_step(self) -> None:
        """Right before a forward step that is a regular activity: the task ends here."""
        if self._decide_at_task_end:
            self._check_cancel()

    def _actions(self, status: OrderStatus) -> list[Action]:
        """What callers may do in ``status`` (nothing while a cancellation is under way)."""
        return allowed_actions(status, cancel_pending=self._cancel is not None)

    def _cancel_due(self) -> bool:
        return self._cancel is not None and self._view.status in CANCELLABLE

    def _check_cancel(self) -> None:
        cancel = self._cancel
        if cancel is not None and self._cancel_due():
            raise OrderEnded(S.CANCELLED, "cancelled", cancel.reason, cancel.actor)

    async def _wait_for(self, ready: Callable[[], bool], timeout: timedelta | None = None) -> bool:
        """Wait until ``ready()`` or the timeout; project events meanwhile; honour cancellation."""
        deadline = None if timeout is None else workflow.now() + timeout
        if self._steady:
            await self._flush()  # once: the read model is current when the order waits
        while True:
            if not self._steady:
                await self._flush()
            self._check_cancel()
            if ready():
                return True
            remaining = None if deadline is None else deadline - workflow.now()
            if remaining is not None and remaining <= timedelta(0):
                return False
            try:
                await workflow.wait_condition(
                    lambda: (
                        ready()
                        or self._cancel_due()
                        or (not self._steady and bool(self._unprojected))
                    ),
                    timeout=remaining,
                )
            except TimeoutError:
                return ready()

    async def _activity(
        self,
        name: str,
        arg: Any,
        result_type: type | None = None,
        *,
        heartbeat: bool = False,
        retry: RetryPolicy = FORWARD_RETRY,
        local: bool = False,
    ) -> Any:
        """An activity with the order's timeouts. ``local``: a cheap database step, run as a
        local activity on lean orders (no task round trip through the server)."""
        policy = self._inp.policy
        if local and self._lean:
            return await workflow.execute_local_activity(
                name,
                arg,
                result_type=result_type,
                start_to_close_timeout=policy.activity_timeout,
                retry_policy=retry,
            )
        return await workflow.execute_activity(
            name,
            arg,
            result_type=result_type,
            start_to_close_timeout=policy.activity_timeout,
            heartbeat_timeout=policy.activity_heartbeat if heartbeat else None,
            retry_policy=retry,
        )

    async def _notify(
        self, kind: str, recipient: str, subject: str, body: str, *, step: str | None = None
    ) -> None:
        """Send once per order and ``step`` (default: the kind)."""
        await self._activity(
            "send_notification",
            NotifyRequest(
                order_id=self._view.id,
                key=f"{self._view.id}:{step or kind}",
                kind=kind,
                recipient=recipient,
                subject=subject,
                body=body,
            ),
            local=True,
        )


# A step that failed for good: activities raise ActivityError (the cause inside), local
# activities the ApplicationError itself.
StepFailure = (ActivityError, ApplicationError)


def _application(err: BaseException) -> ApplicationError | None:
    if isinstance(err, ApplicationError):
        return err
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, ApplicationError) else None


def error_type(err: BaseException) -> str | None:
    app = _application(err)
    return app.type if app else None


def error_message(err: BaseException) -> str:
    app = _application(err)
    return app.message if app else str(err)
