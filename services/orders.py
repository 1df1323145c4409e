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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from temporalio.client import (
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from db import readmodel
from db.models import IdempotencyKeyRow, OrderReferenceRow, OrderRow
from domain.order import CustomerTier, OrderSource, OrderSpec, new_order_id
from domain.state import LoggedEvent, OrderState
from domain.status import RESTING, TERMINAL, OrderStatus
from services.auth import Principal
from services.context import Services
from services.customers import Customers
from services.errors import Kind, ServiceError, invalid, not_found, unavailable
from services.views import (
    OrderDetail,
    OrderPage,
    OrderSummary,
    Timeline,
    order_detail,
)
from workflows.client import order_policy
from workflows.contracts import (
    OrderRecord,
    StartOrderInput,
)
from workflows.order import OrderWorkflow
from workflows.recorder import Recorder

OrderHandle = WorkflowHandle[OrderWorkflow, OrderState]
log = logging.getLogger("orderly.services")
A = TypeVar("A")

# Memo key on each order workflow: which create call started it (see Orders.create).
CREATION_MEMO = "creation"
ID_ATTEMPTS = 8
CLAIM_GRACE = 5.0  # seconds a fresh reference claim has to start its order (see create)
MAX_WAIT = 60.0


class _IdTaken(Exception):
    """The generated order id already belongs to another order."""


def new_order_id_at(now: datetime) -> str:
    return new_order_id(now.date(), random.SystemRandom())


def reference_token(source: str, reference: str) -> str:
    """The creation memo of the order holding (source, reference): any create call with the
    pair recognises (and completes) that order as its own."""
    return hashlib.sha256(f"ref\0{source}\0{reference}".encode()).hexdigest()[:32]


def customer_mismatch(customer_id: str) -> ServiceError:
    # Naming a known (say VIP) customer's id must not buy its tier or credit limit.
    return ServiceError(
        Kind.CONFLICT,
        f"customer.email: customer {customer_id} is on record with another email address; "
        "an order for a known customer must state its email (support changes it under "
        f"/customers/{customer_id}); a customer whose data was erased needs a new id",
        code="customer_mismatch",
    )


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
    order_id: str | None = None  # exact
    external_reference: str | None = None  # exact
    source: OrderSource | None = None


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

        With an ``external_reference``, the pair (source, external_reference) is claimed the same
        way (table ``order_references``, unique in the database) before the workflow starts: a
        second create with the pair, from any caller and with any body, answers with the first
        order (not created); if the first call stopped before its order started, the second
        one starts it, with its own body. An ``orders:own`` key gets a conflict instead of an
        order it did not create.
        """
        created_by = principal.name
        now = datetime.now(UTC)
        if idempotency_key is None and spec.external_reference is None:
            token = uuid.uuid4().hex
            for _ in range(ID_ATTEMPTS):
                try:
                    return await self._start(
                        new_order_id_at(now), spec, created_by, now, token
                    ), True
                except _IdTaken:
                    continue
            raise _ids_exhausted()
        if idempotency_key is None:
            order_id, at, created = new_order_id_at(now), now, True
        else:
            claimed = await self._claim_key(spec, principal, idempotency_key, now)
            if isinstance(claimed, OrderDetail):
                return claimed, False
            order_id, at, created = claimed
        if spec.external_reference is not None:
            return await self._create_referenced(
                spec, principal, idempotency_key, (order_id, at, created), now
            )
        assert idempotency_key is not None
        token = self._key_token(created_by, idempotency_key)
        # The first attempt may have stopped before the order started: (re)start it now.
        for _ in range(ID_ATTEMPTS):
            try:
                return await self._start(order_id, spec, created_by, at, token), created
            except _IdTaken:
                order_id = new_order_id_at(now)
                await self._follow_key(created_by, idempotency_key, order_id)
        raise _ids_exhausted()

    @staticmethod
    def _key_token(created_by: str, idempotency_key: str) -> str:
        return hashlib.sha256(f"{created_by}\0{idempotency_key}".encode()).hexdigest()[:32]

    async def _claim_key(
        self, spec: OrderSpec, principal: Principal, idempotency_key: str, now: datetime
    ) -> OrderDetail | tuple[str, datetime, bool]:
        """Record the key (order id, time, created True), or find it: (its order id, time,
        False), or the order itself if that call started it. A different body: 409."""
        created_by = principal.name
        # Without "source" when it is the default: keys recorded before it existed still match.
        dumped = spec.model_dump_json(
            exclude={"source"} if spec.source is OrderSource.API else None
        )
        request_hash = hashlib.sha256(dumped.encode()).hexdigest()
        row = IdempotencyKeyRow(
            principal=created_by,
            key=idempotency_key,
            request_hash=request_hash,
            order_id=new_order_id_at(now),
            created_at=now,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
            return row.order_id, now, True
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
        token = self._key_token(created_by, idempotency_key)
        if await self.stored_state(found.order_id) is not None and await self._started_by(
            found.order_id, token
        ):
            return await self.get(found.order_id, principal)
        return found.order_id, found.created_at, False

    async def _follow_key(self, created_by: str, idempotency_key: str, order_id: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(IdempotencyKeyRow)
                .where(IdempotencyKeyRow.principal == created_by)
                .where(IdempotencyKeyRow.key == idempotency_key)
                .values(order_id=order_id)
            )

    async def _create_referenced(
        self,
        spec: OrderSpec,
        principal: Principal,
        idempotency_key: str | None,
        claim: tuple[str, datetime, bool],
        now: datetime,
    ) -> tuple[OrderDetail, bool]:
        """Claim (source, external_reference) for the order, or find the order holding it;
        then (re)start that order. Whoever holds the pair started it: the memo token derives
        from the pair, so any create call with it recognises (and completes) the order."""
        assert spec.external_reference is not None
        source, reference = spec.source.value, spec.external_reference
        order_id, at, created = claim
        # Refusals first (a known customer with another email): a refused create claims nothing.
        spec = await self._with_master(spec, principal.name)
        token = reference_token(source, reference)
        row = OrderReferenceRow(
            source=source,
            external_reference=reference,
            order_id=order_id,
            created_by=principal.name,
            created_at=at,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            async with self._sessions() as session:
                found = await session.get(OrderReferenceRow, (source, reference))
            if found is None:  # pragma: no cover - the row that collided is gone
                raise
            order_id, at, created = found.order_id, found.created_at, False
            if idempotency_key is not None:
                await self._follow_key(principal.name, idempotency_key, order_id)
            if await self._claim_started(order_id, token, at):
                return await self._holder(order_id, principal), False
        for _ in range(ID_ATTEMPTS):
            try:
                order, fresh = await self._launch(
                    order_id, spec, principal.name, at, token, mastered=True
                )
                break
            except _IdTaken:
                order_id = await self.move_reference(
                    source, reference, order_id, new_order_id_at(now)
                )
                if idempotency_key is not None:
                    await self._follow_key(principal.name, idempotency_key, order_id)
        else:
            raise _ids_exhausted()
        if created and fresh:
            return order, True
        # Started by another call holding the pair: the order as it is (maybe with its body).
        return await self._holder(order_id, principal), created

    async def _claim_started(self, order_id: str, token: str, claimed_at: datetime) -> bool:
        """Whether the order of another call's claim has started. A young claim is given
        ``CLAIM_GRACE`` to start (its call is normally milliseconds from it), so concurrent
        creates answer with the claimer's order rather than start it with their own body."""
        while True:
            if await self.stored_state(order_id) is not None or await self._running_with(
                order_id, token
            ):
                return True
            age = (datetime.now(UTC) - claimed_at).total_seconds()
            if age >= CLAIM_GRACE:
                return False  # the claiming call stopped before the start: complete it
            await asyncio.sleep(min(0.05, CLAIM_GRACE - age))

    async def _running_with(self, order_id: str, token: str) -> bool:
        """Whether the engine has the order, started by a create call holding ``token``."""
        try:
            desc = await self.handle(order_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise unavailable(exc) from exc
        return bool(await desc.memo_value(CREATION_MEMO, None) == token)

    async def move_reference(self, source: str, reference: str, old: str, fresh: str) -> str:
        """The reference's order id after ``old`` turned out taken: ``fresh``, unless another
        call moved it first (then the id it chose)."""
        async with self._sessions.begin() as session:
            moved = await session.execute(
                update(OrderReferenceRow)
                .where(OrderReferenceRow.source == source)
                .where(OrderReferenceRow.external_reference == reference)
                .where(OrderReferenceRow.order_id == old)
                .values(order_id=fresh)
            )
            if moved.rowcount:  # type: ignore[attr-defined]
                return fresh
            current = await session.get(OrderReferenceRow, (source, reference))
        if current is None:  # pragma: no cover - claims are never deleted
            raise _ids_exhausted()
        return current.order_id

    async def _holder(self, order_id: str, principal: Principal) -> OrderDetail:
        """The order holding a reference, as the caller may see it."""
        try:
            return await self.get(order_id, principal)
        except ServiceError as exc:
            if exc.kind is Kind.NOT_FOUND and principal.owner is not None:
                raise ServiceError(
                    Kind.CONFLICT,
                    "external_reference: another order of this source already has this reference",
                    code="reference_taken",
                ) from None
            raise

    async def by_reference(self, source: OrderSource, external_reference: str) -> str | None:
        """The id of the order holding (source, external_reference), if any (it may not
        have started yet: a create with the same pair completes it)."""
        async with self._sessions() as session:
            found = await session.get(OrderReferenceRow, (source.value, external_reference))
        return found.order_id if found else None

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

    async def _with_master(self, spec: OrderSpec, actor: str) -> OrderSpec:
        """The spec with tier and region from the customer's master record (created from the
        order's customer fields, tier standard, if unknown): never the body's. The body must
        state the master's email, so a guessed id of another customer is refused (409)."""
        async with self._sessions.begin() as session:
            master = await Customers(self._s).ensure_for_order(session, spec.customer, actor=actor)
            on_file = await self._s.vault.open_text(session, master.id, master.email, "email")
            fields = {"tier": CustomerTier(master.tier), "region": master.region}
        if on_file.casefold() != spec.customer.email.casefold():
            raise customer_mismatch(master.id)
        return spec.model_copy(update={"customer": spec.customer.model_copy(update=fields)})

    async def _start(
        self, order_id: str, spec: OrderSpec, created_by: str, at: datetime, token: str
    ) -> OrderDetail:
        return (await self._launch(order_id, spec, created_by, at, token))[0]

    async def _launch(
        self,
        order_id: str,
        spec: OrderSpec,
        created_by: str,
        at: datetime,
        token: str,
        *,
        mastered: bool = False,
    ) -> tuple[OrderDetail, bool]:
        """Start the order's workflow: the order as received, and whether this call started
        it (False: a call holding the same token had). ``mastered``: ``spec`` has been through
        :meth:`_with_master` already."""
        if not mastered:
            spec = await self._with_master(spec, created_by)
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
            fresh = False  # a retry of a start that went through
        except RPCError as exc:
            raise unavailable(exc) from exc
        else:
            fresh = True
        # The order as received: the workflow's own first event, built the same way here.
        record = Recorder(inp).record()
        return order_detail(record.state, record.events), fresh

    # --- read ---------------------------------------------------------------------------------

    async def stored_state(self, order_id: str) -> OrderState | None:
        async with self._sessions() as session:
            return await readmodel.get_state(session, order_id, self._s.vault)

    async def _stored(self, order_id: str, row: OrderRow | None = None) -> OrderDetail | None:
        """The read model's last projection (``row``, if read already) with the logged events."""
        async with self._sessions() as session:
            row = row or await readmodel.get_row(session, order_id)
            if row is None:
                return None
            events = await readmodel.order_events(session, order_id, self._s.vault)
            state = OrderState.model_validate(await self._s.vault.open(session, row.snapshot))
        return order_detail(state, [LoggedEvent(status=e.status, event=e.event) for e in events])

    async def last_known(self, order_id: str) -> OrderState:
        """The read model's last projection; the engine only if it has none yet. Cheap checks
        before a signal; it can be a step behind, so confirm a negative answer with the engine."""
        state = await self.stored_state(order_id)
        return state if state is not None else await self.live_state(order_id)

    async def _record(self, order_id: str) -> OrderRecord:
        """State and events from the running workflow (raises for the caller to fall back)."""
        result: OrderRecord = await self.handle(order_id).query(
            OrderWorkflow.record, rpc_timeout=timedelta(seconds=5)
        )
        return result

    async def live_state(self, order_id: str) -> OrderState:
        """The running workflow's state; the last projection if the engine cannot answer."""
        try:
            return (await self._record(order_id)).state
        except (RPCError, WorkflowQueryFailedError) as exc:
            stored = await self.stored_state(order_id)
            if stored is not None:
                return stored
            if isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND:
                raise not_found(f"order {order_id}") from exc
            raise unavailable(exc) from exc

    async def visible(self, order_id: str, principal: Principal | None) -> None:
        """404 for an order an ``orders:own`` key's principal did not create (never say that
        it exists); nothing for other callers."""
        if principal is None or principal.owner is None:
            return
        async with self._sessions() as session:
            row = await readmodel.get_row(session, order_id)
        created_by = row.created_by if row else (await self.live_state(order_id)).created_by
        if created_by != principal.owner:
            raise not_found(f"order {order_id}")

    async def get(self, order_id: str, principal: Principal | None = None) -> OrderDetail:
        """Live state and timeline from the workflow; the read model once the order is closed,
        or when the engine cannot answer. With ``principal``: only an order it may see."""
        await self.visible(order_id, principal)
        async with self._sessions() as session:
            row = await readmodel.get_row(session, order_id)
        if row is not None and row.closed:
            stored = await self._stored(order_id, row)
            assert stored is not None
            return stored
        try:
            record = await self._record(order_id)
            return order_detail(record.state, record.events)
        except RPCError as exc:
            if row is None and exc.status == RPCStatusCode.NOT_FOUND:
                raise not_found(f"order {order_id}") from exc
            failure: Exception = exc
        except WorkflowQueryFailedError as exc:
            # The worker could not answer (e.g. its replay of the order failed): the order's
            # own tasks are retried by Temporal; the caller gets the last projection meanwhile.
            log.warning("query of %s failed: %s", order_id, exc)
            failure = exc
        fallback = await self._stored(order_id) if row is not None else None
        if fallback is None:  # not projected yet: the order as it was received
            fallback = await self._as_received(order_id, failure)
        return fallback

    async def _as_received(self, order_id: str, failure: Exception) -> OrderDetail:
        """The order rebuilt from its workflow's input (one history read, no worker needed),
        for an order the worker has not answered for yet and the read model does not hold."""
        try:
            async for event in self.handle(order_id).fetch_history_events(page_size=1):
                started = event.workflow_execution_started_event_attributes
                [inp] = await self._client.data_converter.decode(
                    started.input.payloads, [StartOrderInput]
                )
                record = Recorder(inp).record()
                return order_detail(record.state, record.events)
        except RPCError as exc:
            raise unavailable(exc) from failure
        raise unavailable(failure)

    async def timeline(self, order_id: str, principal: Principal | None = None) -> Timeline:
        order = await self.get(order_id, principal)
        return Timeline(order_id=order.id, events=order.timeline)

    async def wait(
        self,
        order_id: str,
        statuses: set[OrderStatus],
        timeout: float,
        principal: Principal | None = None,
    ) -> OrderDetail:
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
        await self.visible(order_id, principal)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(timeout, MAX_WAIT)
        pause, known = 0.05, False
        while True:
            async with self._sessions() as session:
                current = await readmodel.get_status(session, order_id)
            if current is None and not known:
                await self.live_state(order_id)  # 404 for an unknown order
                known = True  # started, not projected yet: keep watching
            elif current is not None and (current in statuses or current.is_terminal):
                break
            left = deadline - loop.time()
            if left <= 0:
                break
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 1.5, 0.5)
        return await self.get(order_id)

    async def list(
        self,
        flt: OrderFilter,
        *,
        limit: int,
        cursor: str | None,
        principal: Principal | None = None,
    ) -> OrderPage:
        """Newest first, from the read model, with a keyset cursor (an ``orders:own`` key's
        principal: only the orders it created)."""
        try:
            async with self._sessions() as session:
                rows, next_cursor = await readmodel.list_orders(
                    session,
                    readmodel.OrderFilter(
                        status=flt.status,
                        customer_id=flt.customer_id,
                        created_from=flt.created_from,
                        created_to=flt.created_to,
                        created_by=principal.owner if principal else None,
                        order_id=flt.order_id,
                        external_reference=flt.external_reference,
                        source=flt.source.value if flt.source else None,
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
                source=OrderSource(r.source),
                external_reference=r.external_reference,
            )
            for r in rows
        ]
        return OrderPage(items=items, next_cursor=next_cursor)
