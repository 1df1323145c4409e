from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import activity

from activities.errors import as_application_errors
from integrations.payment import Charge, PaymentGateway
from workflows.contracts import CaptureRequest, ChargeResult, RefundRequest

T = TypeVar("T")


async def _heartbeating(call: Awaitable[T], every: float = 1.0) -> T:
    """Await a slow external call while heartbeating, so a dead worker is noticed quickly."""
    task = asyncio.ensure_future(call)
    while True:
        done, _ = await asyncio.wait({task}, timeout=every)
        if done:
            return task.result()
        activity.heartbeat()


class PaymentActivities:
    def __init__(self, gateway: PaymentGateway) -> None:
        self._gateway = gateway

    @activity.defn(name="capture_payment")
    async def capture_payment(self, req: CaptureRequest) -> ChargeResult:
        async with as_application_errors():
            charge = await _heartbeating(
                self._gateway.capture(
                    key=f"{req.order_id}:{req.step}",
                    order_id=req.order_id,
                    amount_minor=req.amount_minor,
                    currency=req.currency,
                    token=req.token,
                )
            )
        return _result(charge)

    @activity.defn(name="refund_payment")
    async def refund_payment(self, req: RefundRequest) -> ChargeResult:
        async with as_application_errors():
            charge = await _heartbeating(
                self._gateway.refund(
                    key=f"{req.order_id}:{req.step}",
                    order_id=req.order_id,
                    amount_minor=req.amount_minor,
                    currency=req.currency,
                )
            )
        return _result(charge)


def _result(charge: Charge) -> ChargeResult:
    return ChargeResult(reference=charge.reference, amount_minor=charge.amount_minor)
