"""The approval chain of an order: levels decided in order, reminders, escalation, expiry,
requests for changes and amendments."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from domain import events as ev
    from domain.approval import ApprovalPolicy, Timing, approval_chain, check_decider
    from domain.order import OrderSpec
    from domain.policies import CreditOutcome
    from domain.state import LevelState, LevelStatus
    from domain.status import Action, OrderStatus
    from workflows.contracts import (
        AmendInput,
        ApproveInput,
        DeciderInput,
        RejectInput,
        RequestChangesInput,
    )

from workflows.recorder import (
    FORBIDDEN,
    SYSTEM,
    Commands,
    OrderEnded,
    Recorder,
    Ticket,
    invalid,
    not_allowed,
    refuse,
    settle,
)
from workflows.stock import Stock

S = OrderStatus
Decision = ApproveInput | RejectInput | RequestChangesInput
_ACTIONS: dict[type[DeciderInput], Action] = {
    ApproveInput: Action.APPROVE,
    RejectInput: Action.REJECT,
    RequestChangesInput: Action.REQUEST_CHANGES,
}


class ApprovalChain:
    """Decides which levels an order needs and waits for them; owns decisions and amendments."""

    def __init__(
        self, rec: Recorder, stock: Stock, check_credit: Callable[[], Awaitable[CreditOutcome]]
    ) -> None:
        self._rec, self._stock, self._check_credit = rec, stock, check_credit
        self.spec: OrderSpec = rec.inp.spec
        self.credit = CreditOutcome.ACCEPT
        # Each decision with the level that was waiting when it was accepted.
        self.decisions: Commands[tuple[Decision, int | None]] = Commands()
        self.amendments: Commands[tuple[AmendInput, OrderSpec]] = Commands()
        self._timings: dict[int, Timing] = {}

    @property
    def _policy(self) -> ApprovalPolicy:
        return self._rec.policy.approval

    # --- run ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Until every level the policy asks for has approved; raises ``OrderEnded`` on
        rejection or expiry. Amendments restart it (decisions stand if the total is not higher).
        """
        keep = False
        while self._decide_chain(keep):
            if not await self._await_levels():
                break
            old_total = self._rec.state.total
            await self._await_amendment()
            keep = self._rec.state.total <= old_total
        self._refuse_pending("the approval chain is complete")
        self._rec.emit(ev.Confirmed())

    def _refuse_pending(self, why: str) -> None:
        self.decisions.refuse_all(not_allowed(self._rec.state, why))

    def submit(self, inp: Decision) -> Ticket:
        """Queue a validated decision for the level waiting now."""
        return self.decisions.put((inp, self._rec.state.approval.current_level))

    def _decide_chain(self, keep: bool) -> bool:
        """Record the chain for the order as it is now; True if a level still has to decide."""
        state, policy = self._rec.state, self._policy
        chain = approval_chain(
            policy,
            total=state.total,
            currency=state.currency,
            credit=self.credit,
            max_discount_pct=self.spec.max_discount_pct(),
            tier=state.customer.tier,
        )
        kept = [
            lv.level for lv in state.approval.levels if keep and lv.status is LevelStatus.APPROVED
        ]
        self._timings = {c.level: c.timing for c in chain}
        if not chain and not state.approval.levels:
            return False
        self._rec.emit(
            ev.ApprovalChainDecided(
                policy_version=policy.version,
                levels=[
                    ev.ChainStep(
                        level=c.level, name=c.name, quorum=c.quorum, escalate_to=c.escalate_to
                    )
                    for c in chain
                ],
                kept=[lv for lv in kept if lv in self._timings],
            )
        )
        return any(lv.status is not LevelStatus.APPROVED for lv in state.approval.levels)

    async def _await_levels(self) -> bool:
        """Each level in order; False once all approved, True when changes were requested."""
        rec = self._rec
        for lv in list(rec.state.approval.levels):
            if lv.status is LevelStatus.APPROVED:
                continue
            timing, now = self._timings[lv.level], workflow.now()
            rec.emit(
                ev.ApprovalRequested(
                    level=lv.level,
                    remind_at=now + timing.reminder_after,
                    escalate_at=now + timing.escalate_after,
                    expire_at=now + timing.expire_after,
                )
            )
            level = rec.state.approval.level(lv.level)
            for kind in ("reminder", "escalation", "expiry"):
                at = {
                    "reminder": level.remind_at,
                    "escalation": level.escalate_at,
                    "expiry": level.expire_at,
                }[kind]
                assert at is not None
                while await rec.wait_for(lambda: bool(self.decisions), at - workflow.now()):
                    if self._decide(self.decisions.take()):
                        return True
                    if level.status is LevelStatus.APPROVED:
                        break
                if level.status is LevelStatus.APPROVED:
                    break
                await self._deadline_passed(kind, level)
        return False

    def _decide(self, item: tuple[tuple[Decision, int | None], Ticket]) -> bool:
        """Apply one decision: first accepted wins; one the order no longer allows is refused
        (two decisions can be accepted in the same workflow task). True if changes were asked."""
        (inp, level), ticket = item
        waiting = self._rec.state.approval.waiting()
        if waiting is None or waiting.level != level:
            settle(ticket, not_allowed(self._rec.state, f"level {level} was decided already"))
            return False
        refusal = self._refusal(inp, _ACTIONS[type(inp)])
        if refusal is not None:
            settle(ticket, refusal)
            return False
        rec, lv = self._rec, self._waiting()
        settle(ticket)
        if isinstance(inp, ApproveInput):
            rec.emit(ev.LevelApproved(actor=inp.actor, level=lv.level, comment=inp.comment))
            return False
        if isinstance(inp, RejectInput):
            rec.emit(ev.LevelRejected(actor=inp.actor, level=lv.level, reason=inp.reason))
            raise OrderEnded(S.REJECTED, inp.reason, inp.actor)
        expire_at = workflow.now() + self._policy.timing.expire_after
        rec.emit(
            ev.ChangesRequested(
                actor=inp.actor, level=lv.level, reason=inp.reason, expire_at=expire_at
            )
        )
        self._refuse_pending("changes were requested")
        return True

    async def _deadline_passed(self, kind: str, lv: LevelState) -> None:
        rec, state = self._rec, self._rec.state
        step = f"L{lv.level}:r{state.revision}"
        if kind == "reminder":
            await rec.notify(
                "approval_reminder",
                f"level-{lv.level}-approvers@orderly.local",
                f"Order {state.id} waits for your approval",
                f"Order {state.id} ({state.total} {state.currency}) waits for level "
                f"{lv.level} ({lv.name}).",
                step=f"approval_reminder:{step}",
            )
            rec.emit(ev.ApprovalReminderSent(level=lv.level))
        elif kind == "escalation":
            deputy = lv.escalate_to if lv.escalate_to is not None else lv.level
            await rec.notify(
                "approval_escalated",
                f"level-{deputy}-approvers@orderly.local",
                f"Order {state.id} escalated to you",
                f"Level {lv.level} ({lv.name}) did not decide order {state.id} in time.",
                step=f"approval_escalated:{step}",
            )
            rec.emit(ev.ApprovalEscalated(level=lv.level, to_level=deputy))
        else:
            rec.emit(ev.ApprovalExpired(level=lv.level))
            raise OrderEnded(S.REJECTED, "approval expired", SYSTEM)

    async def _await_amendment(self) -> None:
        rec = self._rec
        expire_at = rec.state.approval.next_deadline
        assert expire_at is not None
        if not await rec.wait_for(lambda: bool(self.amendments), expire_at - workflow.now()):
            rec.emit(ev.ApprovalExpired())
            raise OrderEnded(S.REJECTED, "approval expired", SYSTEM)
        (amend, spec), ticket = self.amendments.take()
        try:
            old_total = rec.state.total
            self.spec = spec
            rec.emit(
                ev.Amended(
                    actor=amend.actor,
                    revision=rec.state.revision + 1,
                    lines=list(spec.lines),
                    shipping_address=spec.shipping_address,
                    old_total=old_total,
                    total=spec.total(),
                )
            )
            await self._stock.release()
            await self._stock.reserve(spec)
            if rec.state.total > old_total:
                self.credit = await self._check_credit()
        finally:
            settle(ticket)  # the amendment answers once stock and credit followed it

    # --- commands -----------------------------------------------------------------------------

    def _waiting(self) -> LevelState:
        lv = self._rec.state.approval.waiting()
        assert lv is not None
        return lv

    def _refusal(self, inp: DeciderInput, action: Action) -> ApplicationError | None:
        """403 (type Forbidden) for who may never decide; 409 for what is not possible now."""
        state = self._rec.state
        if action not in state.allowed_actions or state.approval.waiting() is None:
            return not_allowed(state, f"{action} is not allowed while the order is {state.status}")
        lv = self._waiting()
        found = check_decider(
            actor=inp.actor,
            actor_levels=frozenset(inp.actor_levels),
            current=lv.level,
            requested=inp.level,
            eligible=frozenset(lv.eligible_levels),
            conflicted=frozenset(a for a in (state.created_by, state.sales_rep) if a),
            approved_here=frozenset(a.by for a in lv.approvals),
            approved_elsewhere=frozenset(
                a.by for other in state.approval.levels if other is not lv for a in other.approvals
            ),
        )
        if found is None:
            return None
        kind, message = found
        if kind.forbidden:
            return ApplicationError(
                message, {"reason": kind.value}, type=FORBIDDEN, non_retryable=True
            )
        return not_allowed(state, message)

    def validate_decision(self, inp: DeciderInput, action: Action) -> None:
        refusal = self._refusal(inp, action)
        if refusal is not None:
            raise refusal

    def amended_spec(self, inp: AmendInput) -> OrderSpec:
        """The order as amended, validated as a new order would be (422 on a bad amendment)."""
        state = self._rec.state
        if Action.AMEND not in state.allowed_actions or self.amendments:
            refuse(state, Action.AMEND)
        if not (inp.lines or inp.shipping_address):
            raise invalid("body", "nothing to amend: give lines or shipping_address")
        data = self.spec.model_dump()
        if inp.lines:
            data["lines"] = [line.model_dump() for line in inp.lines]
        if inp.shipping_address:
            data["shipping_address"] = inp.shipping_address.model_dump()
        try:
            return OrderSpec.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise invalid(".".join(str(p) for p in first["loc"]) or "body", first["msg"]) from None
