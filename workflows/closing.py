"""Compensation: a typed stack of undo steps, unwound in reverse when an order ends early.

A step refused for good (e.g. the gateway refuses a refund) is never dropped: the order moves to
``needs_attention``, support is alerted, and the step waits for a retry or a manual resolution.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain import events as ev
    from domain.status import Action, OrderStatus
    from workflows.contracts import ResolveCompensationInput, RetryCompensationInput

from workflows.recorder import (
    Commands,
    OrderEnded,
    Recorder,
    StepFailure,
    Ticket,
    error_message,
    not_allowed,
    refuse,
    settle,
)

S = OrderStatus
SupportDecision = RetryCompensationInput | ResolveCompensationInput


@dataclass(frozen=True)
class Compensation:
    """One undo step: a name for people and the coroutine that performs it."""

    name: str
    undo: Callable[[], Awaitable[None]]


class Compensations:
    def __init__(self, rec: Recorder) -> None:
        self._rec = rec
        self._stack: list[Compensation] = []
        self.decisions: Commands[SupportDecision] = Commands()

    def push(self, step: Compensation) -> None:
        """Before the step it undoes runs, so a crash in between still undoes it."""
        if all(s.name != step.name for s in self._stack):
            self._stack.append(step)

    def clear(self) -> None:
        """The goods have left: nothing is undone any more (returns are a separate process)."""
        self._stack.clear()

    def ensure_bottom(self, step: Compensation) -> None:
        if all(s.name != step.name for s in self._stack):
            self._stack.insert(0, step)

    async def unwind(self) -> None:
        retry: Ticket | None = None  # support's retry answers once that attempt is over
        while self._stack:
            step = self._stack[-1]
            try:
                await step.undo()
            except StepFailure as err:
                self._alerted(step, error_message(err))
                if retry is not None:
                    settle(retry)
                retry = await self._support_decides(step)
                if retry is not None:
                    continue
            else:
                if retry is not None:
                    settle(retry)
                    retry = None
            self._stack.pop()

    def _alerted(self, step: Compensation, reason: str) -> None:
        self._rec.emit(ev.CompensationFailed(step=step.name, reason=reason))

    async def _support_decides(self, step: Compensation) -> Ticket | None:
        """Alert support and wait: None once resolved by hand, else the retry's ticket."""
        rec, state = self._rec, self._rec.state
        assert state.attention is not None
        await rec.notify(
            "compensation_failed",
            "support@orderly.local",
            f"Order {state.id} needs attention",
            f"Compensation {step.name} was refused: {state.attention.reason}. Retry or resolve it.",
            step=f"compensation_failed:{step.name}:{state.seq}",
        )
        await rec.wait_for(lambda: bool(self.decisions))
        decision, ticket = self.decisions.take()
        if isinstance(decision, ResolveCompensationInput):
            rec.emit(
                ev.CompensationResolved(actor=decision.actor, step=step.name, note=decision.note)
            )
            settle(ticket)
            return None
        rec.emit(ev.CompensationRetried(actor=decision.actor, step=step.name))
        return ticket

    def validate(self, action: Action) -> None:
        state = self._rec.state
        if action not in state.allowed_actions or self.decisions:
            refuse(state, action)

    def refuse_pending(self) -> None:
        self.decisions.refuse_all(not_allowed(self._rec.state, "the order is closed"))


async def close(rec: Recorder, compensations: Compensations, end: OrderEnded) -> None:
    """Undo what was done, tell the customer if cancelled, then record the end."""
    await compensations.unwind()
    state = rec.state
    if end.status is S.CANCELLED:
        await rec.notify(
            "cancelled",
            state.customer.email,
            f"Order {state.id} cancelled",
            f"Your order was cancelled: {end.reason}",
            step="cancelled",
        )
    rec.emit(ev.CLOSURES[end.status.value](actor=end.actor, reason=end.reason))
