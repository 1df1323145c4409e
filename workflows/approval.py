"""The approval chain of an order: levels decided in order, reminders, escalation, expiry,
requests for changes and amendments. Mixed into ``OrderWorkflow``."""

from __future__ import annotations

from functools import partial

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from domain.approval import ApprovalPolicy, Timing, approval_chain, check_decider
    from domain.order import OrderSpec
    from domain.policies import CreditOutcome
    from domain.status import Action, OrderStatus
    from domain.view import (
        Approval,
        ApprovalDecision,
        LevelState,
        LevelStatus,
        LineView,
    )
    from workflows.contracts import (
        AmendInput,
        ApproveInput,
        DeciderInput,
        RejectInput,
        RequestChangesInput,
        StockLine,
        StockRequest,
    )

from workflows.recorder import (
    INVALID_COMMAND,
    SYSTEM,
    OrderEnded,
    OrderRecorder,
    StepFailure,
    error_message,
    error_type,
    refuse,
)

S = OrderStatus
FORBIDDEN = "Forbidden"


class ApprovalChain(OrderRecorder):
    """State: the current spec and revision, the credit outcome, pending commands."""

    _spec: OrderSpec
    _revision: int
    _credit: CreditOutcome
    _timings: dict[int, Timing]
    _rejection: RejectInput | None
    _changes: RequestChangesInput | None
    _amendment: tuple[AmendInput, OrderSpec] | None

    async def _check_credit(self) -> CreditOutcome:
        """Run (or re-run) the credit check; raises ``OrderEnded`` on rejection."""
        raise NotImplementedError

    def _init_chain(self) -> None:
        self._spec = self._inp.spec
        self._revision = 0
        self._credit = CreditOutcome.ACCEPT
        self._timings = {}
        self._rejection = None
        self._changes = None
        self._amendment = None

    @property
    def _policy(self) -> ApprovalPolicy:
        policy = self._inp.policy.approval
        assert policy is not None
        return policy

    # --- main loop --------------------------------------------------------------------------

    async def _run_chain(self) -> None:
        """Wait until every level the policy asks for has approved; amendments restart it.

        Raises ``OrderEnded`` on rejection or expiry.
        """
        keep = False
        while self._decide_chain(keep):
            if not await self._await_levels():
                break
            old_total = self._view.total
            await self._await_amendment()
            # Decisions stand only if the amended order does not cost more than they approved.
            keep = self._view.total <= old_total
        approval = self._view.approval
        approval.current_level, approval.next_deadline, approval.next_deadline_kind = (
            None,
            None,
            None,
        )
        if approval.levels:
            approval.decision = ApprovalDecision.APPROVED
            approval.approved_total = self._view.total

    def _decide_chain(self, keep: bool) -> bool:
        """Set the chain for the order as it is now; True if a level still has to decide."""
        view, policy = self._view, self._policy
        chain = approval_chain(
            policy,
            total=view.total,
            currency=view.currency,
            credit=self._credit,
            max_discount_pct=self._spec.max_discount_pct(),
            tier=view.customer.tier,
        )
        standing = {
            lv.level: lv
            for lv in view.approval.levels
            if keep and lv.status is LevelStatus.APPROVED
        }
        view.approval.levels = [
            standing.get(c.level)
            or LevelState(
                level=c.level,
                name=c.name,
                quorum=c.quorum,
                eligible_levels=[c.level],
                escalate_to=c.escalate_to,
            )
            for c in chain
        ]
        self._timings = {c.level: c.timing for c in chain}
        view.approval.required = view.approval.required or bool(chain)
        view.approval.policy_version = policy.version
        return any(lv.status is not LevelStatus.APPROVED for lv in view.approval.levels)

    async def _await_levels(self) -> bool:
        """Each level in order. False once all approved; True when changes were requested."""
        view = self._view
        for lv in view.approval.levels:
            if lv.status is LevelStatus.APPROVED:
                continue
            timing = self._timings[lv.level]
            now = workflow.now()
            lv.status, lv.waiting_since = LevelStatus.WAITING, now
            lv.remind_at = now + timing.reminder_after
            lv.escalate_at = now + timing.escalate_after
            lv.expire_at = now + timing.expire_after
            view.approval.current_level = lv.level
            message = f"Level {lv.level} ({lv.name}) to decide"
            data = {"level": str(lv.level)}
            if view.status is S.AWAITING_APPROVAL:
                self._event("approval_level_waiting", message, data=data)
            else:
                self._move(S.AWAITING_APPROVAL, "approval_requested", message, data=data)
            for kind, at in (
                ("reminder", lv.remind_at),
                ("escalation", lv.escalate_at),
                ("expiry", lv.expire_at),
            ):
                view.approval.next_deadline, view.approval.next_deadline_kind = at, kind
                decided = await self._wait_for(partial(self._level_done, lv), at - workflow.now())
                if decided:
                    break
                await self._deadline_passed(kind, lv)
            if self._changes is not None:
                lv.status = LevelStatus.PENDING
                return True
            if lv.status is LevelStatus.REJECTED:
                rejection = self._rejection
                assert rejection is not None
                raise OrderEnded(S.REJECTED, "rejected", rejection.reason, rejection.actor)
        return False

    def _level_done(self, lv: LevelState) -> bool:
        return lv.status is not LevelStatus.WAITING or self._changes is not None

    async def _deadline_passed(self, kind: str, lv: LevelState) -> None:
        view = self._view
        data = {"level": str(lv.level)}
        if kind == "reminder":
            await self._notify(
                "approval_reminder",
                f"level-{lv.level}-approvers@orderly.local",
                f"Order {view.id} waits for your approval",
                f"Order {view.id} of {view.customer.name} ({view.total} {view.currency}) waits "
                f"for level {lv.level} ({lv.name}).",
                step=f"approval_reminder:L{lv.level}:r{self._revision}",
            )
            self._event("approval_reminder_sent", f"Level {lv.level} approvers reminded", data=data)
        elif kind == "escalation":
            lv.escalated = True
            if lv.escalate_to is not None and lv.escalate_to not in lv.eligible_levels:
                lv.eligible_levels.append(lv.escalate_to)
            deputy = lv.escalate_to if lv.escalate_to is not None else lv.level
            await self._notify(
                "approval_escalated",
                f"level-{deputy}-approvers@orderly.local",
                f"Order {view.id} escalated to you",
                f"Level {lv.level} ({lv.name}) did not decide order {view.id} in time.",
                step=f"approval_escalated:L{lv.level}:r{self._revision}",
            )
            self._event(
                "approval_escalated",
                f"Level {lv.level} escalated to level {deputy}",
                data={**data, "to_level": str(deputy)},
            )
        else:
            raise OrderEnded(S.REJECTED, "approval_expired", "approval expired", SYSTEM)

    async def _await_amendment(self) -> None:
        view = self._view
        changes = self._changes
        assert changes is not None
        view.approval.current_level = None
        self._move(
            S.CHANGES_REQUESTED,
            "changes_requested",
            f"Changes requested: {changes.reason}",
            actor=changes.actor,
        )
        expire_at = workflow.now() + self._policy.timing.expire_after
        view.approval.next_deadline, view.approval.next_deadline_kind = expire_at, "expiry"
        if not await self._wait_for(
            lambda: self._amendment is not None, expire_at - workflow.now()
        ):
            raise OrderEnded(S.REJECTED, "approval_expired", "approval expired", SYSTEM)
        assert self._amendment is not None
        amend, spec = self._amendment
        self._amendment, self._changes = None, None
        old_total = view.total
        self._spec, self._revision = spec, self._revision + 1
        view.lines = [LineView(**ln.model_dump(), line_total=ln.total()) for ln in spec.lines]
        view.total, view.shipping_address = spec.total(), spec.shipping_address
        self._event(
            "amended",
            f"Amended: total {old_total} -> {view.total} {view.currency}",
            actor=amend.actor,
            data={"revision": str(self._revision)},
        )
        await self._activity("release_stock", StockRequest(order_id=view.id), int, local=True)
        await self._reserve_stock()
        if view.total > old_total:
            self._credit = await self._check_credit()

    async def _reserve_stock(self) -> None:
        view = self._view
        lines = [StockLine(sku=ln.sku, quantity=ln.quantity) for ln in self._spec.lines]
        request = StockRequest(order_id=view.id, lines=lines, revision=self._revision)
        try:
            await self._activity("reserve_stock", request, local=True)
        except StepFailure as err:
            if error_type(err) == "OutOfStock":
                raise OrderEnded(S.FAILED, "out_of_stock", error_message(err), "inventory") from err
            raise
        self._event("stock_reserved", f"Reserved {sum(ln.quantity for ln in lines)} units")

    # --- commands (called by the workflow's update handlers) --------------------------------

    def _current_level(self) -> LevelState:
        current = self._view.approval.current_level
        return next(lv for lv in self._view.approval.levels if lv.level == current)

    def _validate_decider(self, inp: DeciderInput, action: Action) -> None:
        """403 (type Forbidden) for who may never decide; 409 for what is not possible now."""
        self._require(action)
        view, lv = self._view, self._current_level()
        refusal = check_decider(
            actor=inp.actor,
            actor_levels=frozenset(inp.actor_levels),
            current=lv.level,
            requested=inp.level,
            eligible=frozenset(lv.eligible_levels),
            conflicted=frozenset(a for a in (view.created_by, view.sales_rep) if a),
            approved_here=frozenset(a.by for a in lv.approvals),
            approved_elsewhere=frozenset(
                a.by for other in view.approval.levels if other is not lv for a in other.approvals
            ),
        )
        if refusal is None:
            return
        kind, message = refusal
        if kind.forbidden:
            raise ApplicationError(
                message, {"reason": kind.value}, type=FORBIDDEN, non_retryable=True
            )
        refuse(view, action, message)

    async def _chain_approve(self, inp: ApproveInput) -> None:
        view, lv = self._view, self._current_level()
        at = workflow.now()
        lv.approvals.append(Approval(by=inp.actor, at=at, comment=inp.comment))
        view.approval.decided_by, view.approval.decided_at = inp.actor, at
        view.approval.comment = inp.comment
        done = len(lv.approvals) >= lv.quorum
        note = f" ({len(lv.approvals)}/{lv.quorum})" if lv.quorum > 1 else ""
        self._event(
            "approved",
            f"Level {lv.level} approved{note}" + (f": {inp.comment}" if inp.comment else ""),
            actor=inp.actor,
            data={"level": str(lv.level)},
        )
        if done:
            lv.status = LevelStatus.APPROVED
            level = lv.level
            await workflow.wait_condition(
                lambda: (
                    view.approval.current_level != level or view.status is not S.AWAITING_APPROVAL
                )
            )

    async def _chain_reject(self, inp: RejectInput) -> None:
        view, lv = self._view, self._current_level()
        self._rejection = inp
        lv.status = LevelStatus.REJECTED
        view.approval.decision = ApprovalDecision.REJECTED
        view.approval.decided_by, view.approval.decided_at = inp.actor, workflow.now()
        view.approval.comment = inp.reason
        await workflow.wait_condition(lambda: view.status.is_terminal)

    async def _chain_request_changes(self, inp: RequestChangesInput) -> None:
        self._changes = inp
        await workflow.wait_condition(lambda: self._view.status is not S.AWAITING_APPROVAL)

    def _amended_spec(self, inp: AmendInput) -> OrderSpec:
        """The order as amended, validated as a new order would be (422 on a bad amendment)."""
        self._require(Action.AMEND)
        data = self._spec.model_dump()
        if inp.lines:
            data["lines"] = [line.model_dump() for line in inp.lines]
        if inp.shipping_address:
            data["shipping_address"] = inp.shipping_address.model_dump()
        if not (inp.lines or inp.shipping_address):
            raise ApplicationError(
                "nothing to amend: give lines or shipping_address",
                {"field": "body"},
                type=INVALID_COMMAND,
                non_retryable=True,
            )
        try:
            return OrderSpec.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "body"
            raise ApplicationError(
                first["msg"], {"field": field}, type=INVALID_COMMAND, non_retryable=True
            ) from None

    async def _chain_amend(self, inp: AmendInput) -> None:
        self._amendment = (inp, self._amended_spec(inp))
        await workflow.wait_condition(
            lambda: self._view.status not in (S.CHANGES_REQUESTED, S.CREDIT_CHECK)
        )
