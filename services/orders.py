"""Use cases on orders: create (idempotently), read, list, and the commands on a running order.

Every client (API, console, import, CLI) goes through here. This layer owns the idempotency
rows and the read-model fallback; the projection activity is the only writer of the read model.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from db import readmodel
from db.models import IdempotencyKeyRow
from domain.events import ParcelLine
from domain.order import OrderSpec, new_order_id
from domain.state import LoggedEvent, OrderState
from domain.status import RESTING, TERMINAL, Action, OrderStatus
from services.auth import Principal
from services.context import Services
from services.errors import Kind, ServiceError, invalid, not_allowed, not_found, unavailable
from services.views import (
    OrderDetail,
    OrderPage,
    OrderSummary,
    Timeline,
    order_detail,
)
from workflows.client import order_policy
from workflows.contracts import (
    CancelInput,
    CarrierEventInput,
    CarrierEventType,
    OrderRecord,
    PaymentInput,
    ResolveCompensationInput,
    RetryCompensationInput,
    SplitShipmentInput,
    StartOrderInput,
)
from workflows.order import COMMAND_NOT_ALLOWED, FORBIDDEN, INVALID_COMMAND, OrderWorkflow
from workflows.recorder import Recorder

OrderHandle = WorkflowHandle[OrderWorkflow, OrderState]
log = logging.getLogger("orderly.services")
A = TypeVar("A")

# Memo key on each order workflow: which create call started it (see Orders.create).
CREATION_MEMO = "creation"
ID_ATTEMPTS = 8
MAX_WAIT = 60.0


class _IdTaken(Exception):
    """The generated order id already belongs to another order."""


def _new_id(now: datetime) -> str:
    return new_order_id(now.date(), random.SystemRandom())


def _ids_exhausted() -> ServiceError:
    return ServiceError(Kind.UNAVAILABLE, "could not allocate a free order id, retry later")


@dataclass(frozen=True)
class Outcome:
    """A command's answer: the order now, and whether the command finished within the wait."""

    order: OrderDetail
    finished: bool


@dataclass(frozen=True)
class OrderFilter:
    status: OrderStatus | None = None
    customer_id: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


class Orders:
    """Orders as clients use them."""

    def __init__(self, services: Services) -> None:
        self._s = services
        self._client, self._sessions, self._settings = (
            services.client,
            services.sessions,
            services.settings,
        )

    def handle(self, order_id: str) -> OrderHandle:
        return self._client.get_workflow_handle_for(OrderWorkflow.run, order_id)

    # --- create -------------------------------------------------------------------------------

    async def create(
        self, spec: OrderSpec, principal: Principal, idempotency_key: str | None
    ) -> tuple[OrderDetail, bool]:
        """Start an order; returns it and whether this call created it.

        With an idempotency key the key is recorded before the workflow starts, so a retry after
        any failure finds the same order id and (re)starts it: nothing accepted is lost. Order
        ids are short and random, so one can already belong to another order: then the order
        gets a fresh id (and the key follows it), never the other order's.
        """
        created_by = principal.name
        now = datetime.now(UTC)
        if idempotency_key is None:
            token = uuid.uuid4().hex
            for _ in range(ID_ATTEMPTS):
                try:
                    return await self._start(_new_id(now), spec, created_by, now, token), True
                except _IdTaken:
                    continue
            raise _ids_exhausted()
        request_hash = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()
        token = hashlib.sha256(f"{created_by}\0{idempotency_key}".encode()).hexdigest()[:32]
        row = IdempotencyKeyRow(
            principal=created_by,
            key=idempotency_key,
            request_hash=request_hash,
            order_id=_new_id(now),
            created_at=now,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
            order_id, at, created = row.order_id, now, True
        except IntegrityError:
            async with self._sessions() as session:
                found = await session.get(IdempotencyKeyRow, (created_by, idempotency_key))
            if found is None:  # pragma: no cover - the row that collided is gone
                raise
            if found.request_hash != request_hash:
                raise ServiceError(
                    Kind.CONFLICT,
                    "Idempotency-Key was already used with a different request body",
                    code="idempotency_conflict",
                ) from None
            order_id, at, created = found.order_id, found.created_at, False
            if await self._stored_state(order_id) is not None and await self._started_by(
                order_id, token
            ):
                return await self.get(order_id), False
        # The first attempt may have stopped before the order started: (re)start it now.
        for _ in range(ID_ATTEMPTS):
            try:
                return await self._start(order_id, spec, created_by, at, token), created
            except _IdTaken:
                order_id = _new_id(now)
                async with self._sessions.begin() as session:
                    await session.execute(
                        update(IdempotencyKeyRow)
                        .where(IdempotencyKeyRow.principal == created_by)
                        .where(IdempotencyKeyRow.key == idempotency_key)
                        .values(order_id=order_id)
                    )
        raise _ids_exhausted()

    async def _started_by(self, order_id: str, token: str) -> bool:
        """Whether the order with this id was started by the create call holding ``token``
        (an order the engine no longer keeps counts as such: the read model has it)."""
        try:
            desc = await self.handle(order_id).describe()
            started_with = await desc.memo_value(CREATION_MEMO, None)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return True
            raise unavailable(exc) from exc
        return bool(started_with == token)

    async def _start(
        self, order_id: str, spec: OrderSpec, created_by: str, at: datetime, token: str
    ) -> OrderDetail:
        inp = StartOrderInput(
            order_id=order_id,
            spec=spec,
            created_by=created_by,
            created_at=at,
            policy=order_policy(self._settings, self._s.approval_policy),
        )
        try:
            await self._client.start_workflow(
                OrderWorkflow.run,
                inp,
                id=order_id,
                task_queue=self._settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                memo={CREATION_MEMO: token},
            )
        except WorkflowAlreadyStartedError:
            if not await self._started_by(order_id, token):
                raise _IdTaken(order_id) from None
            # else: a retry of a start that went through
        except RPCError as exc:
            raise unavailable(exc) from exc
        # The order as received: the workflow's own first event, built the same way here.
        record = Recorder(inp).record()
        return order_detail(record.state, record.events)

    # --- read ---------------------------------------------------------------------------------

    async def _stored_state(self, order_id: str) -> OrderState | None:
        async with self._sessions() as session:
            return await readmodel.get_state(session, order_id)

    async def _stored(self, order_id: str) -> OrderDetail | None:
        """The read model's last projection with the logged events."""
        async with self._sessions() as session:
            state = await readmodel.get_state(session, order_id)
            if state is None:
                return None
            events = await readmodel.order_events(session, order_id)
        return order_detail(state, [LoggedEvent(status=e.status, event=e.event) for e in events])

    async def last_known(self, order_id: str) -> OrderState:
        """The read model's last projection; the engine only if it has none yet. Cheap checks
        before a signal; it can be a step behind, so confirm a negative answer with the engine."""
        state = await self._stored_state(order_id)
        return state if state is not None else await self._live_state(order_id)

    async def _record(self, order_id: str) -> OrderRecord:
        """State and events from the running workflow (raises for the caller to fall back)."""
        result: OrderRecord = await self.handle(order_id).query(
            OrderWorkflow.record, rpc_timeout=timedelta(seconds=5)
        )
        return result

    async def _live_state(self, order_id: str) -> OrderState:
        """The running workflow's state; the last projection if the engine cannot answer."""
        try:
            return (await self._record(order_id)).state
        except (RPCError, WorkflowQueryFailedError) as exc:
            stored = await self._stored_state(order_id)
            if stored is not None:
                return stored
            if isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND:
                raise not_found(f"order {order_id}") from exc
            raise unavailable(exc) from exc

    async def get(self, order_id: str) -> OrderDetail:
        """Live state and timeline from the workflow; the read model once the order is closed,
        or when the engine cannot answer."""
        async with self._sessions() as session:
            row = await readmodel.get_row(session, order_id)
        if row is not None and row.closed:
            stored = await self._stored(order_id)
            assert stored is not None
            return stored
        try:
            record = await self._record(order_id)
            return order_detail(record.state, record.events)
        except RPCError as exc:
            if row is None:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    raise not_found(f"order {order_id}") from exc
                raise unavailable(exc) from exc
        except WorkflowQueryFailedError as exc:
            # The worker could not answer (e.g. its replay of the order failed): the order's
            # own tasks are retried by Temporal; the caller gets the last projection meanwhile.
            log.warning("query of %s failed: %s", order_id, exc)
            if row is None:
                raise unavailable(exc) from exc
        fallback = await self._stored(order_id)
        assert fallback is not None
        return fallback

    async def timeline(self, order_id: str) -> Timeline:
        order = await self.get(order_id)
        return Timeline(order_id=order.id, events=order.timeline)

    async def wait(self, order_id: str, statuses: set[OrderStatus], timeout: float) -> OrderDetail:
        """Long poll: the order once it rests in one of ``statuses`` or has closed, or when
        ``timeout`` seconds have passed. Watches the read model (which records every resting and
        terminal status), so the engine is asked once, at the end."""
        passing = sorted(statuses - RESTING - TERMINAL)
        if passing:
            raise invalid(
                "query.wait_for",
                f"{', '.join(passing)}: orders pass through without waiting there; "
                f"wait for one of {', '.join(sorted(RESTING | TERMINAL))}",
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(timeout, MAX_WAIT)
        pause, known = 0.05, False
        while True:
            async with self._sessions() as session:
                current = await readmodel.get_status(session, order_id)
            if current is None and not known:
                await self._live_state(order_id)  # 404 for an unknown order
                known = True  # started, not projected yet: keep watching
            elif current is not None and (current in statuses or current.is_terminal):
                break
            left = deadline - loop.time()
            if left <= 0:
                break
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 1.5, 0.5)
        return await self.get(order_id)

    async def list(self, flt: OrderFilter, *, limit: int, cursor: str | None) -> OrderPage:
        """Newest first, from the read model, with a keyset cursor."""
        try:
            async with self._sessions() as session:
                rows, next_cursor = await readmodel.list_orders(
                    session,
                    readmodel.OrderFilter(
                        status=flt.status,
                        customer_id=flt.customer_id,
                        created_from=flt.created_from,
                        created_to=flt.created_to,
                    ),
                    limit=limit,
                    cursor=cursor,
                )
        except readmodel.BadCursor as exc:
            raise invalid("cursor", str(exc)) from exc
        items = [
            OrderSummary(
                id=r.id,
                status=OrderStatus(r.status),
                customer_id=r.customer_id,
                customer_tier=r.customer_tier,
                region=r.region,
                currency=r.currency,
                total=r.total,
                created_by=r.created_by,
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
            for r in rows
        ]
        return OrderPage(items=items, next_cursor=next_cursor)

    # --- commands -----------------------------------------------------------------------------

    async def cancel(
        self, order_id: str, principal: Principal, reason: str, key: str | None
    ) -> Outcome:
        inp = CancelInput(actor=principal.name, reason=reason)
        return await self.command(order_id, OrderWorkflow.cancel, inp, key)

    async def pay(
        self, order_id: str, principal: Principal, amount: Decimal, token: str, key: str | None
    ) -> Outcome:
        inp = PaymentInput(actor=principal.name, amount=amount, token=token)
        return await self.command(order_id, OrderWorkflow.pay, inp, key)

    async def split_shipment(
        self,
        order_id: str,
        principal: Principal,
        parcels: Sequence[Sequence[ParcelLine]],
        key: str | None,
    ) -> Outcome:
        inp = SplitShipmentInput(actor=principal.name, parcels=[list(p) for p in parcels])
        return await self.command(order_id, OrderWorkflow.split_shipment, inp, key)

    async def retry_compensation(
        self, order_id: str, principal: Principal, key: str | None
    ) -> Outcome:
        inp = RetryCompensationInput(actor=principal.name)
        return await self.command(order_id, OrderWorkflow.retry_compensation, inp, key)

    async def resolve_compensation(
        self, order_id: str, principal: Principal, note: str, key: str | None
    ) -> Outcome:
        inp = ResolveCompensationInput(actor=principal.name, note=note)
        return await self.command(order_id, OrderWorkflow.resolve_compensation, inp, key)

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
        state = await self.last_known(order_id)
        if Action.SHIPMENT_EVENT not in state.allowed_actions and not state.status.is_terminal:
            state = await self._live_state(order_id)  # the read model may be a step behind
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
            await self.handle(order_id).signal(OrderWorkflow.carrier_event, inp)
        except RPCError as exc:
            raise await self._not_running(order_id, exc) from exc

    async def command(
        self,
        order_id: str,
        update: UpdateMethodMultiParam[[OrderWorkflow, A], OrderState],
        arg: A,
        key: str | None = None,
    ) -> Outcome:
        """Run an update; the order afterwards, and whether it finished within the wait.

        A refused command (validator) never enters the order's history and maps to 409/422/403.
        With a client ``key`` the update id is derived from it (and the command and caller), so
        a retry after a lost answer is deduplicated by Temporal instead of applied twice.
        """
        handle = self.handle(order_id)
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
            return Outcome(await self.get(order_id), True)
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError, RPCError):
            # Accepted, but the outcome is not known yet (slow, or the engine is restarting).
            return Outcome(await self.get(order_id), False)
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
        state = await self._stored_state(order_id)
        if state is None:
            try:
                desc = await self.handle(order_id).describe()
            except RPCError:
                return not_found(f"order {order_id}")
            if desc.status == WorkflowExecutionStatus.RUNNING:  # pragma: no cover - raced
                return unavailable(exc)
            return not_allowed("the order is closed", None, [])
        return not_allowed(f"the order is {state.status}", state.status.value, [])
