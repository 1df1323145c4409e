"""What the order routes do: start workflows idempotently, read state, send commands."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from temporalio.client import (
    Client,
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

from api.errors import ApiError, not_found
from config import Settings
from db import readmodel
from db.models import IdempotencyKeyRow
from db.session import SessionFactory
from domain.approval import ApprovalPolicy
from domain.order import OrderSpec, new_order_id
from domain.status import OrderStatus
from domain.view import OrderView
from workflows.client import order_policy
from workflows.contracts import StartOrderInput
from workflows.order import COMMAND_NOT_ALLOWED, FORBIDDEN, INVALID_COMMAND, OrderWorkflow

OrderHandle = WorkflowHandle[OrderWorkflow, OrderView]
log = logging.getLogger("orderly.api")


def _unavailable(exc: Exception) -> ApiError:
    return ApiError(503, "unavailable", f"order engine unavailable, retry later: {exc}")


# Memo key on each order workflow: which create call started it (see Orders.create).
CREATION_MEMO = "creation"
ID_ATTEMPTS = 8


class _IdTaken(Exception):
    """The generated order id already belongs to another order."""


def _new_id(now: datetime) -> str:
    return new_order_id(now.date(), random.SystemRandom())


def _ids_exhausted() -> ApiError:
    return ApiError(503, "unavailable", "could not allocate a free order id, retry later")


class Orders:
    """Per-request facade over the Temporal client and the read model."""

    def __init__(
        self,
        client: Client,
        sessions: SessionFactory,
        settings: Settings,
        approval_policy: ApprovalPolicy,
    ) -> None:
        self._client, self._sessions, self._settings = client, sessions, settings
        self._approval_policy = approval_policy

    def handle(self, order_id: str) -> OrderHandle:
        return self._client.get_workflow_handle_for(OrderWorkflow.run, order_id)

    # --- create -------------------------------------------------------------------------------

    async def create(
        self, spec: OrderSpec, created_by: str, idempotency_key: str | None
    ) -> tuple[OrderView, bool]:
        """Start an order; returns its view and whether it was created by this call.

        With an idempotency key the key is recorded before the workflow starts, so a retry after
        any failure finds the same order id and (re)starts it: nothing accepted is lost. Order
        ids are short and random, so one can already belong to another order: then the order
        gets a fresh id (and the key follows it), never the other order's.
        """
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
                raise ApiError(
                    409,
                    "idempotency_conflict",
                    "Idempotency-Key was already used with a different request body",
                ) from None
            order_id, at, created = found.order_id, found.created_at, False
            if await self._read_model(order_id) is not None and await self._started_by(
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
        """Whether the order with this id was started by the create call that holds ``token``
        (orders started before tokens existed, or no longer kept by the engine, count as such)."""
        try:
            desc = await self.handle(order_id).describe()
            started_with = await desc.memo_value(CREATION_MEMO, None)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return True
            raise _unavailable(exc) from exc
        return started_with is None or started_with == token

    async def _start(
        self, order_id: str, spec: OrderSpec, created_by: str, at: datetime, token: str
    ) -> OrderView:
        inp = StartOrderInput(
            order_id=order_id,
            spec=spec,
            created_by=created_by,
            created_at=at,
            policy=order_policy(self._settings, self._approval_policy),
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
            raise _unavailable(exc) from exc
        view = OrderView.new(order_id, spec, created_by, at)
        async with self._sessions.begin() as session:
            await readmodel.project(session, view, [])  # no-op if the workflow projected first
        return view

    # --- read ---------------------------------------------------------------------------------

    async def _read_model(self, order_id: str) -> OrderView | None:
        async with self._sessions() as session:
            return await readmodel.get_order(session, order_id)

    async def last_known(self, order_id: str) -> OrderView:
        """The read model's last projection (no timeline); the engine only if it has none yet.

        For cheap checks before a signal; it can be a step behind (an order projects when it
        waits), so a negative answer should be confirmed with :meth:`get`.
        """
        async with self._sessions() as session:
            row = await readmodel.get_row(session, order_id)
        if row is not None:
            return OrderView.model_validate(row.snapshot)
        return await self.get(order_id)

    async def wait(self, order_id: str, statuses: set[OrderStatus], timeout: float) -> OrderView:
        """Long poll: the live view once the order rests in one of ``statuses`` or has closed,
        or when ``timeout`` seconds have passed, whichever comes first.

        Watches the read model (one indexed read per check, backing off to 0.5 s), which records
        every resting and terminal status, so the engine is asked once, at the end.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pause = 0.05
        while True:
            async with self._sessions() as session:
                current = await readmodel.get_status(session, order_id)
            if current is None or current in statuses or current.is_terminal:
                break
            left = deadline - loop.time()
            if left <= 0:
                break
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 1.5, 0.5)
        return await self.get(order_id)

    async def get(self, order_id: str) -> OrderView:
        """Live state from the workflow; the read model once the order is closed."""
        async with self._sessions() as session:
            row = await readmodel.get_row(session, order_id)
            if row is not None and row.closed:
                view = await readmodel.get_order(session, order_id)
                assert view is not None
                return view
        try:
            return await self.handle(order_id).query(
                OrderWorkflow.state, rpc_timeout=timedelta(seconds=5)
            )
        except RPCError as exc:
            if row is None:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    raise not_found(f"order {order_id}") from exc
                raise _unavailable(exc) from exc
        except WorkflowQueryFailedError as exc:
            # The worker could not answer (e.g. its replay of the order failed): the order's
            # own tasks are retried by Temporal; the caller gets the last projection meanwhile.
            log.warning("query of %s failed: %s", order_id, exc)
            if row is None:
                raise _unavailable(exc) from exc
        # The engine cannot answer now (or no longer keeps it): serve the last projection.
        fallback = await self._read_model(order_id)
        assert fallback is not None
        return fallback

    # --- commands -----------------------------------------------------------------------------

    async def command(
        self, order_id: str, update: Any, arg: Any, key: str | None = None
    ) -> tuple[OrderView, bool]:
        """Run an update; returns the view and whether the command finished within the wait.

        A refused command (validator) never enters the order's history and maps to 409/422/403.
        With a client ``key`` the update id is derived from it (and the command and caller), so
        a retry after a lost answer is deduplicated by Temporal instead of applied twice.
        """
        handle = self.handle(order_id)
        try:
            update_handle = await handle.start_update(
                update,
                arg,
                id=f"{update.__name__}:{arg.actor}:{key}" if key else None,
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                rpc_timeout=self._settings.command_wait,
            )
        except WorkflowUpdateFailedError as exc:
            raise self._refused(exc) from exc
        except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
            # No worker took the command in time (e.g. all restarting); nothing was decided.
            raise _unavailable(exc) from exc
        except RPCError as exc:
            raise await self._not_running(order_id, exc) from exc
        try:
            view: OrderView = await asyncio.wait_for(
                update_handle.result(), timeout=self._settings.command_wait.total_seconds()
            )
            return view, True
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError, RPCError):
            # Accepted, but the outcome is not known yet (slow, or the engine is restarting).
            return await self.get(order_id), False
        except WorkflowUpdateFailedError as exc:
            raise self._refused(exc) from exc

    async def signal(self, order_id: str, signal: Any, arg: Any) -> None:
        try:
            await self.handle(order_id).signal(signal, arg)
        except RPCError as exc:
            raise await self._not_running(order_id, exc) from exc

    @staticmethod
    def _refused(exc: WorkflowUpdateFailedError) -> ApiError:
        cause = exc.cause
        if isinstance(cause, ApplicationError):
            details: dict[str, Any] = cause.details[0] if cause.details else {}
            if cause.type == COMMAND_NOT_ALLOWED:
                return ApiError(
                    409,
                    "command_not_allowed",
                    cause.message,
                    status=details.get("status"),
                    allowed_actions=details.get("allowed_actions", []),
                )
            if cause.type == FORBIDDEN:
                return ApiError(403, "forbidden", cause.message)
            if cause.type == INVALID_COMMAND:
                field = details.get("field", "body")
                return ApiError(
                    422,
                    "invalid_input",
                    f"{field}: {cause.message}",
                    fields=[{"field": field, "reason": cause.message}],
                )
        return ApiError(502, "command_failed", f"the order could not process the command: {exc}")

    async def _not_running(self, order_id: str, exc: RPCError) -> ApiError:
        if exc.status != RPCStatusCode.NOT_FOUND:
            return _unavailable(exc)
        view = await self._read_model(order_id)
        if view is None:
            try:
                desc = await self.handle(order_id).describe()
            except RPCError:
                return not_found(f"order {order_id}")
            if desc.status == WorkflowExecutionStatus.RUNNING:  # pragma: no cover - raced
                return _unavailable(exc)
            return ApiError(409, "command_not_allowed", "the order is closed", allowed_actions=[])
        return ApiError(
            409,
            "command_not_allowed",
            f"the order is {view.status}",
            status=view.status.value,
            allowed_actions=[],
        )
