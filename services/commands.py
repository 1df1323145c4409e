"""Commands on a running order: cancel, pay, split, carrier scans, support's decisions, and the
update machinery every command shares (approvals use it too)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from domain.events import ParcelLine
from domain.state import OrderState
from domain.status import Action
from services.auth import Principal
from services.context import Services
from services.errors import Kind, ServiceError, invalid, not_allowed, not_found, unavailable
from services.orders import Orders, Outcome
from workflows.contracts import (
    CancelInput,
    CarrierEventInput,
    CarrierEventType,
    PaymentInput,
    ResolveCompensationInput,
    RetryCompensationInput,
    SplitShipmentInput,
)
from workflows.order import COMMAND_NOT_ALLOWED, FORBIDDEN, INVALID_COMMAND, OrderWorkflow

A = TypeVar("A")


class Commands:
    def __init__(self, services: Services) -> None:
        self._settings = services.settings
        self._orders = Orders(services)

    async def cancel(
        self, order_id: str, principal: Principal, reason: str, key: str | None
    ) -> Outcome:
        inp = CancelInput(actor=principal.name, reason=reason)
        return await self.command(order_id, OrderWorkflow.cancel, inp, key, principal)

    async def pay(
        self, order_id: str, principal: Principal, amount: Decimal, token: str, key: str | None
    ) -> Outcome:
        inp = PaymentInput(actor=principal.name, amount=amount, token=token)
        return await self.command(order_id, OrderWorkflow.pay, inp, key, principal)

    async def split_shipment(
        self,
        order_id: str,
        principal: Principal,
        parcels: Sequence[Sequence[ParcelLine]],
        key: str | None,
    ) -> Outcome:
        inp = SplitShipmentInput(actor=principal.name, parcels=[list(p) for p in parcels])
        return await self.command(order_id, OrderWorkflow.split_shipment, inp, key, principal)

    async def retry_compensation(
        self, order_id: str, principal: Principal, key: str | None
    ) -> Outcome:
        inp = RetryCompensationInput(actor=principal.name)
        return await self.command(order_id, OrderWorkflow.retry_compensation, inp, key, principal)

    async def resolve_compensation(
        self, order_id: str, principal: Principal, note: str, key: str | None
    ) -> Outcome:
        inp = ResolveCompensationInput(actor=principal.name, note=note)
        update = OrderWorkflow.resolve_compensation
        return await self.command(order_id, update, inp, key, principal)

    async def carrier_event(
        self,
        order_id: str,
        principal: Principal,
        event: CarrierEventType,
        *,
        tracking_number: str | None = None,
        location: str | None = None,
        note: str | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        """A carrier scan: checked against the order's parcels, then signalled to the order."""
        await self._orders.visible(order_id, principal)
        state = await self._orders.last_known(order_id)
        behind = Action.SHIPMENT_EVENT not in state.allowed_actions or bool(
            tracking_number and state.parcel_by_tracking(tracking_number) is None
        )
        if behind and not state.status.is_terminal:
            # The read model may be a step behind (a status or a parcel since its last flush).
            state = await self._orders.live_state(order_id)
        if Action.SHIPMENT_EVENT not in state.allowed_actions:
            raise not_allowed(
                f"shipment events are not accepted while the order is {state.status}",
                state.status.value,
                [a.value for a in state.allowed_actions],
            )
        active = state.active_parcels()
        if tracking_number:
            if state.parcel_by_tracking(tracking_number) is None:
                raise invalid("tracking_number", "does not match the order's shipment")
        elif len(active) > 1:
            raise invalid(
                "tracking_number",
                f"required: the order ships in {len(active)} parcels "
                f"({', '.join(p.tracking_number for p in active)})",
            )
        inp = CarrierEventInput(
            actor=principal.name,
            event=event,
            tracking_number=tracking_number,
            location=location,
            note=note,
            occurred_at=occurred_at,
        )
        try:
            await self._orders.handle(order_id).signal(OrderWorkflow.carrier_event, inp)
        except RPCError as exc:
            raise await self._not_running(order_id, exc) from exc

    async def command(
        self,
        order_id: str,
        update: UpdateMethodMultiParam[[OrderWorkflow, A], OrderState],
        arg: A,
        key: str | None = None,
        principal: Principal | None = None,
    ) -> Outcome:
        """Run an update; the order afterwards, and whether it finished within the wait.

        A refused command (validator) never enters the order's history and maps to 409/422/403.
        With a client ``key`` the update id is derived from it (and the command and caller), so
        a retry after a lost answer is deduplicated by Temporal instead of applied twice.
        With ``principal``, an order it may not see is not found (``orders:own``).
        """
        await self._orders.visible(order_id, principal)
        handle = self._orders.handle(order_id)
        wait = self._settings.command_wait
        try:
            update_handle = await handle.start_update(
                update,
                arg,
                id=f"{update.__name__}:{arg.actor}:{key}" if key else None,  # type: ignore[attr-defined]
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                rpc_timeout=wait,
            )
        except WorkflowUpdateFailedError as exc:
            raise self._refused(exc) from exc
        except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
            # No worker took the command in time (e.g. all restarting); nothing was decided.
            raise unavailable(exc) from exc
        except RPCError as exc:
            raise await self._not_running(order_id, exc) from exc
        try:
            await asyncio.wait_for(update_handle.result(), timeout=wait.total_seconds())
            return Outcome(await self._orders.get(order_id), True)
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError, RPCError):
            # Accepted, but the outcome is not known yet (slow, or the engine is restarting).
            return Outcome(await self._orders.get(order_id), False)
        except WorkflowUpdateFailedError as exc:
            raise self._refused(exc) from exc

    @staticmethod
    def _refused(exc: WorkflowUpdateFailedError) -> ServiceError:
        cause = exc.cause
        if isinstance(cause, ApplicationError):
            details: dict[str, Any] = cause.details[0] if cause.details else {}
            if cause.type == COMMAND_NOT_ALLOWED:
                return not_allowed(
                    cause.message, details.get("status"), details.get("allowed_actions", [])
                )
            if cause.type == FORBIDDEN:
                return ServiceError(Kind.FORBIDDEN, cause.message)
            if cause.type == INVALID_COMMAND:
                return invalid(details.get("field", "body"), cause.message)
        return ServiceError(Kind.FAILED, f"the order could not process the command: {exc}")

    async def _not_running(self, order_id: str, exc: RPCError) -> ServiceError:
        if exc.status != RPCStatusCode.NOT_FOUND:
            return unavailable(exc)
        state = await self._orders.stored_state(order_id)
        if state is None:
            try:
                desc = await self._orders.handle(order_id).describe()
            except RPCError:
                return not_found(f"order {order_id}")
            if desc.status == WorkflowExecutionStatus.RUNNING:  # pragma: no cover - raced
                return unavailable(exc)
            return not_allowed("the order is closed", None, [])
        return not_allowed(f"the order is {state.status}", state.status.value, [])
