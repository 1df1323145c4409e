"""Payment of an order: capture at once, or wait for a prepay customer; refunds."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.payment import PaymentActivities
    from domain import events as ev
    from domain.money import from_minor, to_minor
    from domain.policies import CreditOutcome, requires_prepayment
    from domain.status import Action, OrderStatus
    from workflows.contracts import CaptureRequest, PaymentInput, RefundRequest

from workflows.recorder import (
    COMPENSATION_RETRY,
    SYSTEM,
    Commands,
    OrderEnded,
    Recorder,
    StepFailure,
    error_message,
    error_type,
    invalid,
    refuse,
    settle,
)

S = OrderStatus


class Payments:
    def __init__(self, rec: Recorder) -> None:
        self._rec = rec
        self._token = rec.inp.spec.payment_method.token  # never recorded in an event
        self.payments: Commands[PaymentInput] = Commands()

    async def collect(self, credit: CreditOutcome) -> None:
        if requires_prepayment(self._rec.inp.spec, credit):
            await self._await_prepayment()
        else:
            await self._capture("capture", self._token)

    def validate(self, inp: PaymentInput) -> None:
        state = self._rec.state
        if Action.PAY not in state.allowed_actions or self.payments:
            refuse(state, Action.PAY, None if not self.payments else "a payment is being processed")
        if inp.amount != state.total:
            raise invalid(
                "amount", f"amount must equal the order total {state.total} {state.currency}"
            )

    async def _await_prepayment(self) -> None:
        rec, policy = self._rec, self._rec.policy
        started = workflow.now()
        deadline = started + policy.payment_deadline
        rec.emit(ev.PaymentRequested(amount=rec.state.total, due_at=deadline))
        reminder_at = started + policy.payment_reminder_after
        reminded = policy.payment_reminder_after >= policy.payment_deadline
        attempt = 0
        while True:
            until = deadline if reminded else reminder_at
            if await rec.wait_for(lambda: bool(self.payments), until - workflow.now()):
                payment, ticket = self.payments.take()
                attempt += 1
                rec.emit(ev.PaymentReceived(actor=payment.actor, amount=payment.amount))
                try:
                    await self._capture(f"capture-{attempt}", payment.token, actor=payment.actor)
                    return
                except OrderEnded as declined:
                    rec.emit(ev.PaymentDeclined(actor=payment.actor, reason=declined.reason))
                finally:
                    settle(ticket)
            elif not reminded:
                reminded = True
                state = rec.state
                await rec.notify(
                    "payment_reminder",
                    state.customer.email,
                    f"Payment due for order {state.id}",
                    f"Please pay {state.total} {state.currency} by {deadline.isoformat()}.",
                    step="payment_reminder",
                )
                rec.emit(ev.PaymentReminderSent())
            else:
                rec.emit(ev.PaymentExpired())
                raise OrderEnded(S.CANCELLED, "payment deadline passed", SYSTEM)

    async def _capture(self, step: str, token: str, actor: str = SYSTEM) -> None:
        """Capture the total; a decline raises ``OrderEnded`` (failed) after recording it."""
        rec, state = self._rec, self._rec.state
        rec.before_step()
        try:
            charge = await rec.call(
                PaymentActivities.capture_payment,
                CaptureRequest(
                    order_id=state.id,
                    step=step,
                    amount_minor=to_minor(state.total, state.currency),
                    currency=state.currency,
                    token=token,
                ),
                heartbeat=True,
            )
        except StepFailure as err:
            if error_type(err) == "PaymentDeclined":
                if not state.payment.prepay:
                    rec.emit(ev.PaymentDeclined(actor="payment-gateway", reason=error_message(err)))
                raise OrderEnded(S.FAILED, error_message(err), "payment-gateway") from err
            raise
        rec.emit(
            ev.PaymentCaptured(
                actor=actor,
                amount=from_minor(charge.amount_minor, state.currency),
                reference=charge.reference,
            )
        )

    async def refund_due(self) -> None:
        """Refund what was captured and not yet refunded (a compensation)."""
        rec, state = self._rec, self._rec.state
        due = to_minor(state.payment.captured, state.currency) - to_minor(
            state.payment.refunded, state.currency
        )
        if due <= 0:
            return
        charge = await rec.call(
            PaymentActivities.refund_payment,
            RefundRequest(
                order_id=state.id, step="refund", amount_minor=due, currency=state.currency
            ),
            heartbeat=True,
            retry=COMPENSATION_RETRY,
        )
        rec.emit(
            ev.PaymentRefunded(
                amount=from_minor(charge.amount_minor, state.currency), reference=charge.reference
            )
        )
