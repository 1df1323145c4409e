"""The order workflow on a real Temporal dev server with real activities and databases."""

from __future__ import annotations

from decimal import Decimal

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from domain.status import Action, OrderStatus, RefundState
from tests.conftest import Stack
from tests.factories import order_spec
from tests.helpers import deliver, logged_types, start_order, wait_status
from workflows.contracts import ApproveInput, CancelInput, PaymentInput, RejectInput
from workflows.order import OrderWorkflow

S = OrderStatus


async def test_happy_path_completes_and_captures_once(stack: Stack) -> None:
    handle = await start_order(stack)
    view = await wait_status(handle, S.FULFILLING)
    assert view.parcels[0].tracking_number
    assert view.allowed_actions == [Action.CANCEL, Action.SPLIT_SHIPMENT, Action.SHIPMENT_EVENT]
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            OrderWorkflow.approve, ApproveInput(actor="lead-2", actor_levels=[1])
        )
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "CommandNotAllowed"
    assert cause.details[0] == {
        "status": "fulfilling",
        "allowed_actions": ["cancel", "split_shipment", "shipment_event"],
    }
    await deliver(handle)
    final = await handle.result()

    assert final.status is S.COMPLETED
    assert final.total == Decimal("39.98")
    assert final.payment.captured == Decimal("39.98")
    types = await logged_types(stack, final.id)
    assert types == [
        "received", "credit_check_started", "credit_checked", "stock_reserved", "confirmed",
        "payment_captured", "shipment_booked", "carrier_scan", "shipped", "carrier_scan",
        "carrier_scan", "delivered", "completed",
    ]  # fmt: skip
    assert final.seq == len(types)
    assert await stack.gateway.totals(final.id) == {"capture": 3998, "refund": 0}
    stock = await stack.inventory.stock("WIDGET-1")
    assert stock is not None
    assert (stock.on_hand, stock.reserved) == (998, 0)
    assert [r.state for r in await stack.inventory.reservations(final.id)] == ["shipped"]


async def test_approval_then_cancel_after_capture_refunds_exactly_once(stack: Stack) -> None:
    spec = order_spec(lines=[{"sku": "WIDGET-1", "quantity": 100, "unit_price": "60.00"}])
    handle = await start_order(stack, spec)
    waiting = await wait_status(handle, S.AWAITING_APPROVAL)
    assert waiting.allowed_actions == [
        Action.APPROVE,
        Action.REJECT,
        Action.REQUEST_CHANGES,
        Action.CANCEL,
    ]

    approved = await handle.execute_update(
        OrderWorkflow.approve, ApproveInput(actor="lead-1", actor_levels=[1])
    )
    assert approved.approval.decided_by == "lead-1"
    await wait_status(handle, S.FULFILLING)
    cancelled = await handle.execute_update(
        OrderWorkflow.cancel, CancelInput(actor="support-1", reason="customer changed mind")
    )
    assert cancelled.status is S.CANCELLED
    assert cancelled.payment.refunded == Decimal("6000.00")
    assert cancelled.payment.refund_state is RefundState.FULL
    assert cancelled.closure is not None
    assert cancelled.closure.by == "support-1"
    entries = await stack.gateway.entries(cancelled.id)
    assert [(e.kind, e.amount_minor) for e in entries] == [("capture", 600000), ("refund", 600000)]
    assert [r.state for r in await stack.inventory.reservations(cancelled.id)] == ["released"]
    shipment = await stack.carrier.get(cancelled.id)
    assert shipment is not None
    assert shipment.status == "cancelled"
    await handle.result()


async def test_reject_releases_held_stock_and_refuses_later_commands(stack: Stack) -> None:
    spec = order_spec(lines=[{"sku": "WIDGET-1", "quantity": 100, "unit_price": "60.00"}])
    handle = await start_order(stack, spec)
    await wait_status(handle, S.AWAITING_APPROVAL)
    rejected = await handle.execute_update(
        OrderWorkflow.reject, RejectInput(actor="lead-1", actor_levels=[1], reason="price too low")
    )
    assert rejected.status is S.REJECTED
    assert rejected.allowed_actions == []
    assert [r.state for r in await stack.inventory.reservations(rejected.id)] == ["released"]
    assert await stack.gateway.entries(rejected.id) == []
    await handle.result()
    with pytest.raises(RPCError, match="already completed"):
        await handle.execute_update(
            OrderWorkflow.approve, ApproveInput(actor="lead-2", actor_levels=[1])
        )


async def test_declined_card_fails_order_and_releases_stock(stack: Stack) -> None:
    handle = await start_order(stack, order_spec(payment={"type": "card", "token": "tok_decline"}))
    final = await handle.result()
    assert final.status is S.FAILED
    assert final.closure is not None
    assert "declined" in final.closure.reason
    assert [r.state for r in await stack.inventory.reservations(final.id)] == ["released"]
    assert await stack.gateway.totals(final.id) == {"capture": 0, "refund": 0}


async def test_out_of_stock_fails_order(stack: Stack) -> None:
    spec = order_spec(lines=[{"sku": "RARE-9", "quantity": 2, "unit_price": "10.00"}])
    final = await (await start_order(stack, spec)).result()
    assert final.status is S.FAILED
    assert final.closure is not None
    assert "RARE-9" in final.closure.reason
    assert await stack.gateway.entries(final.id) == []


async def test_low_score_rejects_and_exposure_forces_prepay(stack: Stack) -> None:
    await stack.bureau.set_profile("C-BAD", score=300, credit_limit=Decimal(1000))
    rejected = await (await start_order(stack, order_spec(customer_id="C-BAD"))).result()
    assert rejected.status is S.REJECTED
    assert rejected.credit is not None
    assert rejected.credit.outcome == "reject"

    await stack.bureau.set_profile("C-TIGHT", score=800, credit_limit=Decimal(30))
    handle = await start_order(stack, order_spec(customer_id="C-TIGHT"))
    waiting = await wait_status(handle, S.AWAITING_PAYMENT)
    assert waiting.payment.prepay
    assert waiting.payment.due_at is not None
    paid = await handle.execute_update(
        OrderWorkflow.pay, PaymentInput(actor="customer", amount=Decimal("39.98"), token="tok_visa")
    )
    assert paid.status in (S.PAID, S.FULFILLING)
    assert await stack.gateway.totals(paid.id) == {"capture": 3998, "refund": 0}
    await handle.cancel()


async def test_prepay_wrong_amount_is_refused_without_history(stack: Stack) -> None:
    handle = await start_order(stack, order_spec(payment={"type": "bank_transfer"}))
    await wait_status(handle, S.AWAITING_PAYMENT)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            OrderWorkflow.pay, PaymentInput(actor="customer", amount=Decimal("1.00"), token="tr_1")
        )
    assert isinstance(refused.value.cause, ApplicationError)
    assert refused.value.cause.type == "InvalidCommand"
    history = await handle.fetch_history()
    assert not [
        e
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    declined = await handle.execute_update(
        OrderWorkflow.pay,
        PaymentInput(actor="customer", amount=Decimal("39.98"), token="tok_decline"),
    )
    assert declined.status is S.AWAITING_PAYMENT
    assert declined.payment.declined_reason
    assert Action.PAY in declined.allowed_actions
    paid = await handle.execute_update(
        OrderWorkflow.pay, PaymentInput(actor="customer", amount=Decimal("39.98"), token="tok_ok")
    )
    assert paid.status in (S.PAID, S.FULFILLING)
    await handle.cancel()
