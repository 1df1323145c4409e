"""Erasing a customer's personal data on request (the retention rule).

A customer's PII is erased once none of their orders is open (an open order still needs the
name and address to ship and to bill). Erasure shreds the customer's data key, so every sealed
copy (master record, order snapshots, events, mails) becomes unreadable at once, and deletes the
engine's histories of their closed orders. The business figures stay: order ids, statuses,
totals, lines, region, tier and the event types.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, Field
from sqlalchemy import select
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.service import RPCError, RPCStatusCode

from db.models import OrderRow
from db.vault import placeholder
from domain.customers import ChangeType
from services.auth import Principal
from services.context import Services
from services.customers import Customers, change_row
from services.errors import Kind, ServiceError, unavailable

SHOWN_OPEN_ORDERS = 20


class ErasureResult(BaseModel):
    customer_id: str
    erased_at: datetime
    data_key_shredded: bool = Field(description="False: no data key was left (erased before).")
    orders_kept: int = Field(description="Orders whose business figures stay.")
    workflows_deleted: int = Field(description="Closed order histories deleted in the engine.")


class Erasure:
    """``DELETE /customers/{id}/pii``: crypto-shredding, idempotent."""

    def __init__(self, services: Services) -> None:
        self._s = services
        self._sessions, self._vault = services.sessions, services.vault

    async def erase_pii(self, customer_id: str, principal: Principal) -> ErasureResult:
        """Crypto-shred the customer's PII (see the retention rule above). Safe to repeat: a
        second call finds no key and no histories left, and answers with zero counts."""
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            row = await Customers.row(session, customer_id)
            orders = list(
                await session.execute(
                    select(OrderRow.id, OrderRow.closed)
                    .where(OrderRow.customer_id == customer_id)
                    .order_by(OrderRow.created_at, OrderRow.id)
                )
            )
            still_open = [o.id for o in orders if not o.closed]
            if still_open:
                shown = ", ".join(still_open[:SHOWN_OPEN_ORDERS])
                more = len(still_open) - SHOWN_OPEN_ORDERS
                raise ServiceError(
                    Kind.CONFLICT,
                    f"customer {customer_id} has {len(still_open)} open order(s): {shown}"
                    + (f" and {more} more" if more > 0 else "")
                    + "; they need the customer's data to ship and bill: erase once closed",
                    code="open_orders",
                )
            shredded = await self._vault.shred(session, customer_id)
            row.name, row.email, row.phone = placeholder("name"), placeholder("email"), None
            row.erased_at = row.updated_at = now
            detail = {"data_key_shredded": shredded, "orders_kept": len(orders)}
            session.add(change_row(customer_id, principal.name, ChangeType.PII_ERASED, detail, now))
        deleted = await self._delete_histories([o.id for o in orders])
        return ErasureResult(
            customer_id=customer_id,
            erased_at=now,
            data_key_shredded=shredded,
            orders_kept=len(orders),
            workflows_deleted=deleted,
        )

    async def _delete_histories(self, order_ids: Sequence[str]) -> int:
        """Delete the closed orders' executions (their histories hold the PII under the
        payload key, which is not the customer's); already gone ones are skipped."""
        client, deleted = self._s.client, 0
        for order_id in order_ids:
            request = DeleteWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=order_id),
            )
            try:
                await client.workflow_service.delete_workflow_execution(request)
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    continue
                raise unavailable(exc) from exc  # the database part is done: retry is safe
            deleted += 1
        return deleted
