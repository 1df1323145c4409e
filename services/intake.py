"""Many referenced orders at once (an import's batch): the same outcome as one
:meth:`services.orders.Orders.create` per order, with the database work done per batch.

Per batch: one transaction takes every order's tier and region from its customer's master
record (creating unknown customers), one claims every (source, external_reference) pair, then
the workflows start concurrently. An order whose pair was claimed before (by an earlier import,
say), or whose start runs into anything unusual, goes through ``Orders.create`` one by one,
which knows every such case; so the batch never decides differently from a single create.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, tuple_
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from db.models import OrderReferenceRow
from db.upsert import insert_for
from domain.order import CustomerTier, OrderSpec
from services.auth import Principal
from services.context import Services
from services.customers import Customers
from services.errors import Kind, ServiceError, unavailable
from services.orders import (
    CREATION_MEMO,
    ID_ATTEMPTS,
    Orders,
    customer_mismatch,
    new_order_id_at,
    reference_token,
)
from workflows.client import order_policy
from workflows.contracts import OrderPolicy, StartOrderInput
from workflows.order import OrderWorkflow


@dataclass(frozen=True)
class Started:
    order_id: str
    created: bool  # False: the pair's order existed (created by an earlier call)


Outcome = Started | ServiceError


class Intake:
    def __init__(self, services: Services, *, concurrency: int = 128) -> None:
        self._s = services
        self._orders = Orders(services)
        self._concurrency = concurrency

    async def create_referenced(
        self, specs: Sequence[OrderSpec], principal: Principal
    ) -> list[Outcome]:
        """Start each spec (every one has an ``external_reference``); outcomes in order.
        Raises only when the engine or the database is unavailable (retry the batch)."""
        assert all(s.external_reference is not None for s in specs)
        outcomes: list[Outcome | None] = [None] * len(specs)
        mastered = await self._with_masters(specs, principal.name, outcomes)
        now = datetime.now(UTC)
        fresh = await self._claim(mastered, principal.name, now)
        policy = order_policy(self._s.settings, self._s.approval_policy)
        gate = asyncio.Semaphore(self._concurrency)

        async def one(i: int, spec: OrderSpec) -> None:
            async with gate:
                order_id = fresh.get(i)
                for _ in range(ID_ATTEMPTS if order_id is not None else 0):
                    assert order_id is not None
                    assert spec.external_reference is not None
                    if await self._start(order_id, spec, principal, now, policy):
                        outcomes[i] = Started(order_id, True)
                        return
                    # Our own fresh claim, so the id belongs to another order: move the claim.
                    order_id = await self._orders.move_reference(
                        spec.source.value, spec.external_reference, order_id, new_order_id_at(now)
                    )
                try:  # claimed before this batch: the single create sorts it out
                    order, created = await self._orders.create(spec, principal, None)
                except ServiceError as exc:
                    if exc.kind is Kind.UNAVAILABLE:
                        raise
                    outcomes[i] = exc
                else:
                    outcomes[i] = Started(order.id, created)

        await asyncio.gather(*(one(i, spec) for i, spec in mastered.items()))
        return [o if o is not None else ServiceError(Kind.FAILED, "not started") for o in outcomes]

    async def _with_masters(
        self, specs: Sequence[OrderSpec], actor: str, outcomes: list[Outcome | None]
    ) -> dict[int, OrderSpec]:
        """Each spec with tier and region from its customer's master (one transaction);
        a spec naming a known customer with another email gets the refusal single creates get."""
        customers = Customers(self._s)
        async with self._s.sessions.begin() as session:
            masters = {}
            for spec in specs:
                if spec.customer.id not in masters:
                    masters[spec.customer.id] = await customers.ensure_for_order(
                        session, spec.customer, actor=actor
                    )
            rows = list(masters.values())
            emails = await self._s.vault.open_texts(
                session, [(r.id, r.email) for r in rows], "email"
            )
        on_file = {r.id: (r, email) for r, email in zip(rows, emails, strict=True)}
        mastered = {}
        for i, spec in enumerate(specs):
            master, email = on_file[spec.customer.id]
            if email.casefold() != spec.customer.email.casefold():
                outcomes[i] = customer_mismatch(master.id)
                continue
            customer = spec.customer.model_copy(
                update={"tier": CustomerTier(master.tier), "region": master.region}
            )
            mastered[i] = spec.model_copy(update={"customer": customer})
        return mastered

    async def _claim(
        self, specs: dict[int, OrderSpec], actor: str, now: datetime
    ) -> dict[int, str]:
        """Claim every pair not claimed yet (one transaction): index -> new order id."""
        wanted = {
            i: (s.source.value, str(s.external_reference), new_order_id_at(now))
            for i, s in specs.items()
        }
        if not wanted:
            return {}
        async with self._s.sessions.begin() as session:
            stmt = insert_for(session, OrderReferenceRow).values(
                [
                    {
                        "source": source,
                        "external_reference": ref,
                        "order_id": order_id,
                        "created_by": actor,
                        "created_at": now,
                    }
                    for source, ref, order_id in wanted.values()
                ]
            )
            await session.execute(
                stmt.on_conflict_do_nothing(index_elements=["source", "external_reference"])
            )
            found = await session.execute(
                select(
                    OrderReferenceRow.source,
                    OrderReferenceRow.external_reference,
                    OrderReferenceRow.order_id,
                ).where(
                    tuple_(OrderReferenceRow.source, OrderReferenceRow.external_reference).in_(
                        [(s, r) for s, r, _ in wanted.values()]
                    )
                )
            )
            held = {(source, ref): order_id for source, ref, order_id in found}
        return {
            i: order_id
            for i, (source, ref, order_id) in wanted.items()
            if held.get((source, ref)) == order_id
        }

    async def _start(
        self,
        order_id: str,
        spec: OrderSpec,
        principal: Principal,
        at: datetime,
        policy: OrderPolicy,
    ) -> bool:
        """Start the order of a fresh claim; False when the id belongs to another order."""
        assert spec.external_reference is not None
        inp = StartOrderInput(
            order_id=order_id,
            spec=spec,
            created_by=principal.name,
            created_at=at,
            policy=policy,
        )
        try:
            await self._s.client.start_workflow(
                OrderWorkflow.run,
                inp,
                id=order_id,
                task_queue=self._s.settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                memo={CREATION_MEMO: reference_token(spec.source.value, spec.external_reference)},
            )
        except WorkflowAlreadyStartedError:
            return False
        except RPCError as exc:
            raise unavailable(exc) from exc
        return True
