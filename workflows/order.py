"""The order workflow: one durable execution per order, workflow id = order id.

Steps: credit check -> reserve stock -> approval chain when the policy asks -> capture payment
(or, for prepay, wait for the customer's payment until a deadline) -> book parcels -> carrier
scans -> completed. Cancellation, rejection and failures unwind the compensation stack.

Each concern is its own class (stock, approval, payment, shipping, compensation) over one
:class:`~workflows.recorder.Recorder`, which records the order's events and folds them into its
state. Update handlers only queue commands; the run loop decides on them where a workflow task
ends, so a replay takes the same steps whenever an update reached the original run.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.credit import CreditActivities
    from domain import events as ev
    from domain.policies import CreditOutcome, decide_credit
    from domain.state import OrderState
    from domain.status import TERMINAL, Action, OrderStatus
    from workflows.contracts import (
        AmendInput,
        ApproveInput,
        CancelInput,
        CarrierEventInput,
        CreditReportRequest,
        OrderRecord,
        PaymentInput,
        RejectInput,
        RequestChangesInput,
        ResolveCompensationInput,
        RetryCompensationInput,
        SplitShipmentInput,
        StartOrderInput,
    )

from workflows.approval import ApprovalChain
from workflows.closing import Compensation, Compensations, close
from workflows.payment import Payments
from workflows.recorder import (
    COMMAND_NOT_ALLOWED,
    FORBIDDEN,
    INVALID_COMMAND,
    SYSTEM,
    OrderEnded,
    Recorder,
    StepFailure,
    Ticket,
    error_message,
    not_allowed,
    outcome,
    refuse,
    settle,
)
from workflows.shipping import Shipping
from workflows.stock import Stock

S = OrderStatus
__all__ = ["COMMAND_NOT_ALLOWED", "FORBIDDEN", "INVALID_COMMAND", "OrderWorkflow"]


@workflow.defn(name="Order")
class OrderWorkflow:
    @workflow.init
    def __init__(self, inp: StartOrderInput) -> None:
        rec = self._rec = Recorder(inp)
        self._stock = Stock(rec)
        self._compensations = Compensations(rec)
        self._approval = ApprovalChain(rec, self._stock, self._check_credit)
        self._payments = Payments(rec)
        self._shipping = Shipping(rec, self._stock, self._compensations)

    # --- run ------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: StartOrderInput) -> OrderState:
        rec = self._rec
        try:
            await self._process()
        except OrderEnded as end:
            await self._close(end)
        except StepFailure as err:  # a forward step failed for good (non-retryable)
            await self._close(OrderEnded(S.FAILED, error_message(err), SYSTEM))
        except asyncio.CancelledError:
            # Cancelled through Temporal itself (operator): compensate, then report cancellation.
            await self._close(OrderEnded(S.CANCELLED, "workflow cancelled", SYSTEM))
            await rec.flush(final=True)
            raise
        await rec.flush(final=True)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return rec.state

    async def _process(self) -> None:
        rec, comp = self._rec, self._compensations
        self._approval.credit = await self._check_credit()
        comp.push(Compensation("release_stock", self._stock.release))
        await self._stock.reserve(rec.inp.spec)
        await self._approval.run()
        comp.push(Compensation("refund_payment", self._payments.refund_due))
        await self._payments.collect(self._approval.credit)
        comp.push(Compensation("cancel_shipment", self._shipping.cancel_parcels))
        await self._shipping.book_all()
        await self._shipping.follow()
        state = rec.state
        await rec.notify(
            "delivered",
            state.customer.email,
            f"Order {state.id} delivered",
            "Your order has been delivered.",
            step="delivered",
        )
        rec.emit(ev.Completed())

    async def _check_credit(self) -> CreditOutcome:
        """Run (or re-run, after an amendment) the credit check; a rejection ends the order."""
        rec = self._rec
        rec.emit(ev.CreditCheckStarted())
        # Projected first: the order (and its total) counts in the exposure of the customer's
        # other orders from now on, and lists show it at once.
        await rec.flush()
        state = rec.state
        report = await rec.call(
            CreditActivities.check_credit,
            CreditReportRequest(
                order_id=state.id, customer_id=state.customer.id, currency=state.currency
            ),
            local=True,
        )
        decision = decide_credit(
            score=report.score,
            credit_limit=report.credit_limit,
            open_exposure=report.open_exposure,
            order_total=state.total,
            rules=rec.policy.credit_rules,
        )
        rec.emit(ev.CreditChecked(actor="credit-policy", decision=decision))
        if decision.outcome is CreditOutcome.REJECT:
            raise OrderEnded(S.REJECTED, decision.reason, "credit-policy")
        return decision.outcome

    async def _close(self, end: OrderEnded) -> None:
        rec = self._rec
        # A lost workflow task may have reserved stock that this run never asked for.
        self._compensations.ensure_bottom(Compensation("release_stock", self._stock.release))
        await close(rec, self._compensations, end)
        for _, scan in self._shipping.scans:
            self._shipping.ignore(scan, f"the order is {rec.state.status}")
        self._shipping.scans.clear()
        closed = not_allowed(rec.state, f"the order is {rec.state.status}")
        if rec.cancel is not None and not rec.cancel[1].done:
            settle(rec.cancel[1], closed)
        for queue in (
            self._approval.decisions,
            self._approval.amendments,
            self._payments.payments,
            self._shipping.splits,
            self._compensations.decisions,
        ):
            queue.refuse_all(closed)

    def _closing_done(self) -> bool:
        status = self._rec.state.status
        return status in TERMINAL or status is S.NEEDS_ATTENTION

    async def _settled(self, ticket: Ticket) -> OrderState:
        await outcome(ticket)
        return self._rec.state

    # --- commands (updates: validators refuse at once; the run loop decides) --------------------

    @workflow.update
    async def approve(self, inp: ApproveInput) -> OrderState:
        """Approve at the current level."""
        return await self._settled(self._approval.submit(inp))

    @approve.validator
    def _validate_approve(self, inp: ApproveInput) -> None:
        self._approval.validate_decision(inp, Action.APPROVE)

    @workflow.update
    async def reject(self, inp: RejectInput) -> OrderState:
        """Reject at the current level: the order closes as rejected and compensates."""
        await outcome(self._approval.submit(inp))
        await workflow.wait_condition(self._closing_done)
        return self._rec.state

    @reject.validator
    def _validate_reject(self, inp: RejectInput) -> None:
        self._approval.validate_decision(inp, Action.REJECT)

    @workflow.update
    async def request_changes(self, inp: RequestChangesInput) -> OrderState:
        """Send the order back to sales to amend; the chain restarts after the amendment."""
        return await self._settled(self._approval.submit(inp))

    @request_changes.validator
    def _validate_request_changes(self, inp: RequestChangesInput) -> None:
        self._approval.validate_decision(inp, Action.REQUEST_CHANGES)

    @workflow.update
    async def amend(self, inp: AmendInput) -> OrderState:
        """Change lines or address of an order sent back for changes; it is re-priced."""
        return await self._settled(
            self._approval.amendments.put((inp, self._approval.amended_spec(inp)))
        )

    @amend.validator
    def _validate_amend(self, inp: AmendInput) -> None:
        self._approval.amended_spec(inp)

    @workflow.update
    async def cancel(self, inp: CancelInput) -> OrderState:
        """Cancel until the goods leave; answers once the order has closed (or needs support)."""
        ticket = Ticket()
        self._rec.cancel, self._rec.cancel_arrival = (inp, ticket), self._rec.arrival()
        await outcome(ticket)
        await workflow.wait_condition(self._closing_done)
        return self._rec.state

    @cancel.validator
    def _validate_cancel(self, inp: CancelInput) -> None:
        state = self._rec.state
        if Action.CANCEL not in state.allowed_actions or self._rec.cancel is not None:
            refuse(state, Action.CANCEL)

    @workflow.update
    async def pay(self, inp: PaymentInput) -> OrderState:
        """A prepay order's payment; answers once it is captured or declined."""
        return await self._settled(self._payments.payments.put(inp))

    @pay.validator
    def _validate_pay(self, inp: PaymentInput) -> None:
        self._payments.validate(inp)

    @workflow.update
    async def split_shipment(self, inp: SplitShipmentInput) -> OrderState:
        """Divide the order's units into parcels (before any parcel has moved)."""
        return await self._settled(self._shipping.splits.put(inp))

    @split_shipment.validator
    def _validate_split(self, inp: SplitShipmentInput) -> None:
        self._shipping.validate_split(inp)

    @workflow.update
    async def retry_compensation(self, inp: RetryCompensationInput) -> OrderState:
        """Support: run the refused compensation again."""
        return await self._settled(self._compensations.decisions.put(inp))

    @retry_compensation.validator
    def _validate_retry(self, inp: RetryCompensationInput) -> None:
        self._compensations.validate(Action.RETRY_COMPENSATION)

    @workflow.update
    async def resolve_compensation(self, inp: ResolveCompensationInput) -> OrderState:
        """Support: the refused compensation was settled by other means; the order closes."""
        return await self._settled(self._compensations.decisions.put(inp))

    @resolve_compensation.validator
    def _validate_resolve(self, inp: ResolveCompensationInput) -> None:
        self._compensations.validate(Action.RESOLVE_COMPENSATION)

    @workflow.signal
    def carrier_event(self, inp: CarrierEventInput) -> None:
        """Carrier scans arrive as signals: queued whatever the status, judged by the run loop."""
        self._shipping.scans.append((self._rec.arrival(), inp))

    # --- queries --------------------------------------------------------------------------------

    @workflow.query
    def state(self) -> OrderState:
        return self._rec.state

    @workflow.query
    def record(self) -> OrderRecord:
        """State and every event so far, for a live timeline."""
        return self._rec.record()
