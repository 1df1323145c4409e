"""The order workflow: one durable execution per order, workflow id = order id.

Steps: credit check -> approval when required -> reserve stock -> capture payment (or, for
prepay, wait for the customer's payment until a deadline) -> book shipment -> carrier events ->
completed. Cancellation, rejection and failures unwind the compensation stack in reverse.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.policies import CreditOutcome, approval_required, decide_credit, requires_prepayment
    from domain.status import Action, OrderStatus
    from domain.view import ApprovalDecision, OrderView, TimelineEvent
    from workflows.contracts import (
        AmendInput,
        ApproveInput,
        CancelInput,
        CarrierEventInput,
        CreditReportRequest,
        CreditReportResult,
        PaymentInput,
        RejectInput,
        RequestChangesInput,
        ShipmentRequest,
        ShipmentResult,
        StartOrderInput,
    )

from workflows.approval import FORBIDDEN, ApprovalChain
from workflows.closing import Closing
from workflows.fulfilment import Fulfilment
from workflows.recorder import (
    COMMAND_NOT_ALLOWED,
    INVALID_COMMAND,
    SYSTEM,
    OrderEnded,
    StepFailure,
    error_message,
    refuse,
)

S = OrderStatus
# Orders started from here on project only when they wait and run cheap steps locally.
LEAN_STEPS = "lean-steps-2026-11"
# ... and project a fixed number of times, whatever update handlers did meanwhile.
STEADY_PROJECTION = "steady-projection-2026-11"
# ... and decide only where a workflow task ends, so a replay takes the same steps whenever a
# signal or update reached the original run (chaos found both kinds of race): carrier scans are
# queued and judged by the run loop; a cancel is honoured before a regular activity or when
# waiting, never between local activities; a closing order always releases its stock.
DECIDE_AT_TASK_END = "decide-at-task-end-2026-11"
__all__ = ["COMMAND_NOT_ALLOWED", "FORBIDDEN", "INVALID_COMMAND", "OrderWorkflow"]


@workflow.defn(name="Order")
class OrderWorkflow(ApprovalChain, Fulfilment, Closing):
    @workflow.init
    def __init__(self, inp: StartOrderInput) -> None:
        self._inp = inp
        self._view = OrderView.new(inp.order_id, inp.spec, inp.created_by, inp.created_at)
        self._unprojected: list[TimelineEvent] = []
        self._cancel: CancelInput | None = None
        self._approval: ApproveInput | RejectInput | None = None
        self._payments: list[PaymentInput] = []
        self._payments_settled = 0
        self._carrier_events: list[CarrierEventInput] = []
        self._compensations: list[str] = []
        self._captured_minor = 0
        self._refunded_minor = 0
        self._init_chain()

    @property
    def _chained(self) -> bool:
        """Multi-level approval; orders started before chains keep the single-level rule."""
        return self._inp.policy.approval is not None

    def _actions(self, status: OrderStatus) -> list[Action]:
        actions = super()._actions(status)
        return actions if self._chained else [a for a in actions if a is not Action.REQUEST_CHANGES]

    # --- run ------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: StartOrderInput) -> OrderView:
        # New orders record one patch marker, which implies the two before it.
        newest = self._decide_at_task_end = workflow.patched(DECIDE_AT_TASK_END)
        self._lean = newest or workflow.patched(LEAN_STEPS)
        self._steady = newest or (self._lean and workflow.patched(STEADY_PROJECTION))
        self._event(
            "received",
            f"Order received: {self._view.total} {self._view.currency}",
            actor=inp.created_by,
        )
        try:
            await self._process()
        except OrderEnded as end:
            await self._close(end)
        except StepFailure as err:  # a step failed for good (non-retryable)
            await self._close(OrderEnded(S.FAILED, "step_failed", error_message(err), SYSTEM))
        except asyncio.CancelledError:
            # Cancelled through Temporal itself (operator): compensate, then report cancellation.
            await self._close(OrderEnded(S.CANCELLED, "cancelled", "workflow cancelled", SYSTEM))
            if self._steady:
                self._drop_carrier_events()
                await self._flush()
            raise
        self._drop_carrier_events()
        await self._flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._view

    async def _check_credit(self) -> CreditOutcome:
        view, policy = self._view, self._inp.policy
        self._move(S.CREDIT_CHECK, "credit_check_started", "Credit check started")
        await self._checkpoint()
        report = await self._activity(
            "check_credit",
            CreditReportRequest(
                order_id=view.id, customer_id=view.customer.id, currency=view.currency
            ),
            CreditReportResult,
            local=True,
        )
        decision = decide_credit(
            score=report.score,
            credit_limit=report.credit_limit,
            open_exposure=report.open_exposure,
            order_total=view.total,
            rules=policy.credit_rules,
        )
        view.credit = decision
        if decision.outcome is CreditOutcome.REJECT:
            raise OrderEnded(S.REJECTED, "credit_rejected", decision.reason, "credit-policy")
        self._event(
            "credit_checked",
            f"Credit {decision.outcome}: {decision.reason}",
            data={"outcome": decision.outcome.value, "score": str(decision.score)},
        )
        await self._checkpoint()
        return decision.outcome

    async def _process(self) -> None:
        view, policy = self._view, self._inp.policy

        # 1. Credit check
        self._credit = await self._check_credit()

        # 2-3. Approval and stock. Chains hold the stock while approvers decide.
        if self._chained:
            self._compensations.append("release_stock")
            await self._reserve_stock()
            await self._checkpoint()
            await self._run_chain()
            self._move(S.CONFIRMED, "confirmed", "Order confirmed")
            await self._checkpoint()
        else:
            if approval_required(view.total, policy.approval_threshold):
                await self._await_approval()
            self._move(S.CONFIRMED, "confirmed", "Order confirmed")
            await self._checkpoint()
            self._compensations.append("release_stock")
            await self._reserve_stock()
        await self._checkpoint()
        spec = self._spec

        # 4. Payment
        self._compensations.append("refund_payment")
        if requires_prepayment(spec, self._credit):
            await self._await_prepayment()
        else:
            await self._capture("capture", spec.payment_method.token)
        await self._checkpoint()

        # 5. Shipment
        self._compensations.append("cancel_shipment")
        self._before_step()
        booking = await self._activity(
            "book_shipment",
            ShipmentRequest(
                order_id=view.id, country=spec.shipping_address.country, parcels=len(spec.lines)
            ),
            ShipmentResult,
        )
        view.shipment.carrier, view.shipment.tracking_number = (
            booking.carrier,
            booking.tracking_number,
        )
        self._move(
            S.FULFILLING,
            "shipment_booked",
            f"Shipment booked with {booking.carrier}: {booking.tracking_number}",
            data={"tracking_number": booking.tracking_number},
        )
        await self._checkpoint()

        # 6. Carrier events until delivered
        await self._follow_carrier()
        await self._notify(
            "delivered",
            spec.customer.email,
            f"Order {view.id} delivered",
            "Your order has been delivered.",
        )
        self._move(S.COMPLETED, "completed", "Order completed")

    async def _await_approval(self) -> None:
        view, policy = self._view, self._inp.policy
        view.approval.required = True
        self._move(
            S.AWAITING_APPROVAL,
            "approval_requested",
            f"Approval required: total above {policy.approval_threshold} {view.currency}",
        )
        decided = await self._wait_for(
            lambda: self._approval is not None, policy.approval_reminder_after
        )
        if not decided:
            await self._notify(
                "approval_reminder",
                "approvers@orderly.local",
                f"Order {view.id} waits for your approval",
                f"Order {view.id} of {view.customer.name} ({view.total} "
                f"{view.currency}) is waiting for approval.",
            )
            self._event("approval_reminder_sent", "Approvers reminded")
            await self._wait_for(lambda: self._approval is not None)
        decision = self._approval
        if isinstance(decision, RejectInput):
            raise OrderEnded(S.REJECTED, "rejected", decision.reason, decision.actor)

    # --- commands -------------------------------------------------------------------------------

    @workflow.update
    async def approve(self, inp: ApproveInput) -> OrderView:
        """Approve at the current level (or the order's single level on pre-chain orders)."""
        if self._chained:
            await self._chain_approve(inp)
            return self._view
        self._approval = inp
        self._view.approval.decision = ApprovalDecision.APPROVED
        self._view.approval.decided_by, self._view.approval.decided_at = inp.actor, workflow.now()
        self._view.approval.comment = inp.comment
        self._event(
            "approved", "Approved" + (f": {inp.comment}" if inp.comment else ""), actor=inp.actor
        )
        await workflow.wait_condition(lambda: self._view.status is not S.AWAITING_APPROVAL)
        return self._view

    @approve.validator
    def _validate_approve(self, inp: ApproveInput) -> None:
        if self._chained:
            self._validate_decider(inp, Action.APPROVE)
        else:
            self._require(Action.APPROVE)

    @workflow.update
    async def reject(self, inp: RejectInput) -> OrderView:
        """Reject at the current level: the order closes as rejected and compensates."""
        if self._chained:
            await self._chain_reject(inp)
            return self._view
        self._approval = inp
        self._view.approval.decision = ApprovalDecision.REJECTED
        self._view.approval.decided_by, self._view.approval.decided_at = inp.actor, workflow.now()
        self._view.approval.comment = inp.reason
        await workflow.wait_condition(lambda: self._view.status.is_terminal)
        return self._view

    @reject.validator
    def _validate_reject(self, inp: RejectInput) -> None:
        if self._chained:
            self._validate_decider(inp, Action.REJECT)
        else:
            self._require(Action.REJECT)

    @workflow.update
    async def request_changes(self, inp: RequestChangesInput) -> OrderView:
        """Send the order back to sales to amend; the chain restarts after the amendment."""
        await self._chain_request_changes(inp)
        return self._view

    @request_changes.validator
    def _validate_request_changes(self, inp: RequestChangesInput) -> None:
        self._validate_decider(inp, Action.REQUEST_CHANGES)

    @workflow.update
    async def amend(self, inp: AmendInput) -> OrderView:
        """Change lines or address of an order sent back for changes; it is re-priced."""
        await self._chain_amend(inp)
        return self._view

    @amend.validator
    def _validate_amend(self, inp: AmendInput) -> None:
        self._amended_spec(inp)

    @workflow.update
    async def cancel(self, inp: CancelInput) -> OrderView:
        self._cancel = inp
        self._view.allowed_actions = self._actions(self._view.status)
        self._event("cancel_requested", f"Cancellation requested: {inp.reason}", actor=inp.actor)
        await workflow.wait_condition(lambda: self._view.status.is_terminal)
        return self._view

    @cancel.validator
    def _validate_cancel(self, inp: CancelInput) -> None:
        self._require(Action.CANCEL)

    @workflow.update
    async def pay(self, inp: PaymentInput) -> OrderView:
        self._payments.append(inp)
        ticket = self._payments_settled + len(self._payments)
        self._view.allowed_actions = [a for a in self._view.allowed_actions if a is not Action.PAY]
        self._event(
            "payment_received",
            f"Payment of {inp.amount} {self._view.currency} received",
            actor=inp.actor,
        )
        await workflow.wait_condition(
            lambda: self._payments_settled >= ticket or self._view.status.is_terminal
        )
        self._view.allowed_actions = self._actions(self._view.status)
        return self._view

    @pay.validator
    def _validate_pay(self, inp: PaymentInput) -> None:
        self._require(Action.PAY)
        if self._payments:
            refuse(self._view, Action.PAY, "a payment for this order is being processed")
        if inp.amount != self._view.total:
            raise ApplicationError(
                f"amount must equal the order total {self._view.total} {self._view.currency}",
                {"field": "amount"},
                type=INVALID_COMMAND,
                non_retryable=True,
            )

    @workflow.signal
    def carrier_event(self, inp: CarrierEventInput) -> None:
        """Carrier scans arrive as signals: fire and forget, processed in order by ``run``."""
        if self._decide_at_task_end and not self._view.status.is_terminal:
            self._carrier_events.append(inp)  # judged by _follow_carrier or dropped on closing
        elif not self._decide_at_task_end and Action.SHIPMENT_EVENT in self._view.allowed_actions:
            self._carrier_events.append(inp)
        else:
            self._event(
                "carrier_event_ignored",
                f"Carrier event {inp.event} ignored while {self._view.status}",
                actor=inp.actor,
            )

    @workflow.query
    def state(self) -> OrderView:
        return self._view
