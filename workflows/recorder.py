"""What every part of the order workflow shares: the event record and the state it folds to,
projection, command queues, cancellable waits and activity calls with the order's policy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, NoReturn, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.notify import NotifyActivities
    from activities.projection import ProjectionActivities
    from domain import events as ev
    from domain.state import LoggedEvent, OrderState, apply
    from domain.status import CANCELLABLE, Action, OrderStatus
    from workflows.contracts import (
        CancelInput,
        NotifyRequest,
        OrderRecord,
        ProjectRequest,
        StartOrderInput,
    )

S = OrderStatus
SYSTEM = ev.SYSTEM
COMMAND_NOT_ALLOWED = "CommandNotAllowed"
INVALID_COMMAND = "InvalidCommand"
FORBIDDEN = "Forbidden"

FORWARD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)
# Compensations must eventually succeed: transient errors are retried forever. A final refusal
# (non-retryable) puts the order in needs_attention for support instead of being dropped.
COMPENSATION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=0,
)
MAIL_FROM_EVENT_LOG = "mail-from-event-log"  # workflow.patched: see Recorder.notify
PROJECTION_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10), maximum_attempts=0)

A = TypeVar("A")
R = TypeVar("R")
T = TypeVar("T")


class OrderEnded(Exception):
    """The order cannot go on: unwind compensations and close it with ``status``."""

    def __init__(self, status: OrderStatus, reason: str, actor: str = SYSTEM) -> None:
        super().__init__(reason)
        self.status, self.reason, self.actor = status, reason, actor


def not_allowed(state: OrderState, message: str) -> ApplicationError:
    """A refusal (409): the caller sees the status and what is allowed now."""
    return ApplicationError(
        message,
        {"status": state.status.value, "allowed_actions": [a.value for a in state.allowed_actions]},
        type=COMMAND_NOT_ALLOWED,
        non_retryable=True,
    )


def invalid(field_name: str, message: str) -> ApplicationError:
    """A command whose input is wrong for this order (422 naming the field)."""
    return ApplicationError(
        message, {"field": field_name}, type=INVALID_COMMAND, non_retryable=True
    )


def refuse(state: OrderState, action: Action, why: str | None = None) -> NoReturn:
    """Refuse a command in a validator: it never enters history."""
    raise not_allowed(state, why or f"{action} is not allowed while the order is {state.status}")


@dataclass
class Ticket:
    """A command's place in its queue; the run loop settles it."""

    done: bool = False
    refusal: ApplicationError | None = None


@dataclass
class Commands(Generic[T]):
    """Commands accepted by update handlers, decided by the run loop where a task ends.

    Handlers never change the order themselves: a replay may deliver an update at another point
    of a workflow task than the original run did, so only the run loop records events.
    """

    items: list[tuple[T, Ticket]] = field(default_factory=list)

    def put(self, item: T) -> Ticket:
        ticket = Ticket()
        self.items.append((item, ticket))
        return ticket

    def __bool__(self) -> bool:
        return bool(self.items)

    def take(self) -> tuple[T, Ticket]:
        return self.items.pop(0)

    def refuse_all(self, refusal: ApplicationError) -> None:
        for _, ticket in self.items:
            settle(ticket, refusal)
        self.items.clear()


def settle(ticket: Ticket, refusal: ApplicationError | None = None) -> None:
    ticket.done, ticket.refusal = True, refusal


async def outcome(ticket: Ticket) -> None:
    """Wait in a handler until the run loop settled the command; raise its refusal."""
    await workflow.wait_condition(lambda: ticket.done)
    if ticket.refusal is not None:
        raise ticket.refusal


class Recorder:
    """The order's events, the state they fold to, and the helpers every step relies on."""

    def __init__(self, inp: StartOrderInput) -> None:
        self.inp, self.policy = inp, inp.policy
        self.log: list[LoggedEvent] = []
        self._projected = 0
        self.cancel: tuple[CancelInput, Ticket] | None = None
        self.cancel_arrival = 0
        self._arrivals = 0  # commands and signals in the order they reached the workflow
        spec = inp.spec.model_copy(update={"payment_method": inp.spec.payment_method.masked()})
        received = ev.Received(
            seq=1,
            at=inp.created_at,
            actor=inp.created_by,
            order_id=inp.order_id,
            spec=spec,
            total=inp.spec.total(),
        )
        self.state: OrderState = apply(None, received)
        self.log.append(LoggedEvent(status=self.state.status, event=received))

    @property
    def order_id(self) -> str:
        return self.state.id

    def emit(self, event: ev.OrderEvent) -> None:
        """Record ``event`` (stamped with the next seq and the workflow's time) and apply it."""
        stamped = event.model_copy(update={"seq": self.state.seq + 1, "at": workflow.now()})
        apply(self.state, stamped)
        # Both parts are valid already: no second validation on the hot path.
        self.log.append(LoggedEvent.model_construct(status=self.state.status, event=stamped))

    def record(self) -> OrderRecord:
        return OrderRecord(state=self.state, events=self.log)

    # --- projection ---------------------------------------------------------------------------

    async def flush(self, *, final: bool = False) -> None:
        """Project the events recorded since the last flush; ``final`` once the order closed.

        Only the run loop records events, so what a flush carries never depends on when an
        update reached the worker: a replay schedules the same local activities. Flushes cover
        every seq once, in order, so a retried task's flush overwrites what a discarded attempt
        logged; the final one also removes what such an attempt logged beyond the last event.
        """
        if not final and self._projected == len(self.log):
            return
        events = self.log[self._projected :]
        self._projected = len(self.log)
        await workflow.execute_local_activity_method(
            ProjectionActivities.project_order,
            ProjectRequest(state=self.state, events=events, final=final),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=PROJECTION_RETRY,
        )

    # --- cancellation and waits ---------------------------------------------------------------

    def arrival(self) -> int:
        """The next arrival number (handlers run in history order, so replays agree)."""
        self._arrivals += 1
        return self._arrivals

    def cancel_waiting(self) -> bool:
        return self.cancel is not None and not self.cancel[1].done

    def check_cancel(self) -> None:
        """Where a task ends: honour an accepted cancel, or refuse it if the goods have left."""
        if self.cancel is None or self.cancel[1].done:
            return
        inp, ticket = self.cancel
        if self.state.status in CANCELLABLE:
            settle(ticket)  # honoured: the handler now waits for the order to close
            self.emit(ev.CancelRequested(actor=inp.actor, reason=inp.reason))
            raise OrderEnded(S.CANCELLED, inp.reason, inp.actor)
        settle(ticket, not_allowed(self.state, f"the order is {self.state.status} already"))

    def before_step(self) -> None:
        """Right before a forward step that is a regular activity: the task ends here."""
        self.check_cancel()

    async def wait_for(
        self,
        ready: Callable[[], bool],
        timeout: timedelta | None = None,
        *,
        arrived: Callable[[], int] | None = None,
    ) -> bool:
        """Wait until ``ready()`` or the timeout; the read model is current meanwhile; a
        cancellation ends the wait (``OrderEnded``). A cancel is decided first, unless
        ``arrived()`` says the ready item reached the workflow before it: first come wins."""
        deadline = None if timeout is None else workflow.now() + timeout
        await self.flush()
        while True:
            if not (arrived and ready() and arrived() < self.cancel_arrival):
                self.check_cancel()
            if ready():
                return True
            remaining = None if deadline is None else deadline - workflow.now()
            if remaining is not None and remaining <= timedelta(0):
                return False
            try:
                await workflow.wait_condition(
                    lambda: ready() or self.cancel_waiting(), timeout=remaining
                )
            except TimeoutError:
                return ready()

    # --- activities ---------------------------------------------------------------------------

    async def call(
        self,
        activity: Callable[[Any, A], Awaitable[R]],
        arg: A,
        *,
        local: bool = False,
        heartbeat: bool = False,
        retry: RetryPolicy = FORWARD_RETRY,
    ) -> R:
        """An activity method with the order's timeouts; ``local`` for cheap database steps."""
        if local:
            return await workflow.execute_local_activity_method(
                activity,
                arg,
                start_to_close_timeout=self.policy.activity_timeout,
                retry_policy=retry,
            )
        return await workflow.execute_activity_method(
            activity,
            arg,
            start_to_close_timeout=self.policy.activity_timeout,
            heartbeat_timeout=self.policy.activity_heartbeat if heartbeat else None,
            retry_policy=retry,
        )

    async def notify(self, kind: str, recipient: str, subject: str, body: str, step: str) -> None:
        """Emails are composed from the event log (activities/mail.py: the event emitted next
        to each call names whom to tell); since MAIL_FROM_EVENT_LOG the order sends none
        itself. Histories from before replay their ``send_notification`` local activity."""
        if workflow.patched(MAIL_FROM_EVENT_LOG):
            return
        await self.call(
            NotifyActivities.send_notification,
            NotifyRequest(
                order_id=self.order_id,
                key=f"{self.order_id}:{step}",
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
