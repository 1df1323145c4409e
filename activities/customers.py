"""Classification activities: count the customers, and classify one page of them by RFM.

The figures come from the ``orders`` read model over the 12 months before the run's ``as_of``
(orders cancelled, rejected or failed are no purchases). A proposed promotion is applied or left
as a suggestion per settings (``domain.customers.classification_step``); every change writes a
``customer_changes`` row with actor ``classifier``. A page is one transaction, so a retried
activity finds its own changes made and does nothing twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from db.models import CustomerChangeRow, CustomerRow, OrderRow
from db.session import SessionFactory
from domain.customers import (
    WINDOW_DAYS,
    ChangeType,
    RfmFigures,
    RfmThresholds,
    Step,
    classification_step,
    propose_tier,
)
from domain.order import CustomerTier
from domain.status import OrderStatus

if TYPE_CHECKING:
    from config import Settings

CLASSIFIER = "classifier"
NO_PURCHASE = [s.value for s in (OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.FAILED)]
HEARTBEAT_EVERY = 50


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True)


class ClassifyProgress(_Contract):
    """How far a classification run is (the workflow's ``progress`` query)."""

    total: int = Field(default=0, description="Customers when the run started.")
    scanned: int = 0
    proposals: int = Field(default=0, description="Customers whose figures call for another tier.")
    applied: int = Field(default=0, description="Promotions applied.")
    suggested: int = 0
    withdrawn: int = Field(default=0, description="Suggestions that no longer hold.")
    runs: int = Field(default=1, description="Workflow runs so far (continue-as-new).")
    done: bool = False


class ClassifyInput(_Contract):
    """A classification run; the schedule starts it with the defaults."""

    as_of: datetime | None = Field(default=None, description="None: when the run starts.")
    batch_size: int = Field(default=500, ge=1, le=5000)
    batches_per_run: int = Field(default=200, ge=1, description="Then continue as new.")
    activity_timeout: timedelta = timedelta(minutes=5)
    heartbeat_timeout: timedelta = timedelta(seconds=30)
    after: str | None = Field(default=None, description="Carried over: last customer id done.")
    progress: ClassifyProgress | None = Field(default=None, description="Carried over.")


class ClassifyBatch(_Contract):
    after: str | None
    limit: int
    as_of: datetime


class ClassifyBatchResult(_Contract):
    scanned: int
    proposals: int
    applied: int
    suggested: int
    withdrawn: int
    last_id: str | None = Field(description="The page's last customer; None: no customers left.")


class CountCustomers(_Contract):
    pass


def _recency(as_of: datetime, last: datetime | None) -> int | None:
    return None if last is None else max(0, (as_of - last).days)


class CustomerActivities:
    def __init__(
        self, sessions: SessionFactory, thresholds: RfmThresholds, *, auto_promote: bool
    ) -> None:
        self._sessions, self._thresholds, self._auto = sessions, thresholds, auto_promote

    @classmethod
    def from_settings(cls, settings: Settings, sessions: SessionFactory) -> CustomerActivities:
        thresholds = RfmThresholds(
            vip_min_orders=settings.rfm_vip_min_orders,
            vip_min_spend=settings.rfm_vip_min_spend,
            vip_max_recency_days=settings.rfm_vip_max_recency_days,
        )
        return cls(sessions, thresholds, auto_promote=settings.rfm_auto_promote)

    @activity.defn(name="count_customers")
    async def count_customers(self, _: CountCustomers) -> int:
        async with self._sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(CustomerRow)) or 0)

    @activity.defn(name="classify_customers")
    async def classify_customers(self, req: ClassifyBatch) -> ClassifyBatchResult:
        """Classify the next ``limit`` customers after ``after`` (by id), in one transaction."""
        counts = dict.fromkeys(("proposals", "applied", "suggested", "withdrawn"), 0)
        async with self._sessions.begin() as session:
            stmt = select(CustomerRow.id, CustomerRow.tier, CustomerRow.suggested_tier)
            if req.after is not None:
                stmt = stmt.where(CustomerRow.id > req.after)
            page = list(await session.execute(stmt.order_by(CustomerRow.id).limit(req.limit)))
            figures = await self._figures(session, [c.id for c in page], req.as_of)
            for n, customer in enumerate(page):
                if n % HEARTBEAT_EVERY == 0:
                    activity.heartbeat(n)
                current = CustomerTier(customer.tier)
                suggested = (
                    CustomerTier(customer.suggested_tier) if customer.suggested_tier else None
                )
                mine = figures.get(customer.id, RfmFigures(recency_days=None, orders=0))
                proposal = propose_tier(mine, self._thresholds)
                if proposal.tier is not current:
                    counts["proposals"] += 1
                step = classification_step(
                    current, suggested, proposal.tier, auto_promote=self._auto
                )
                if step is Step.NONE:
                    continue
                done = await self._take(
                    session,
                    customer.id,
                    current,
                    suggested,
                    step,
                    proposal.tier,
                    proposal.detail(mine),
                )
                if done:
                    key = {Step.APPLY: "applied", Step.SUGGEST: "suggested"}.get(step, "withdrawn")
                    counts[key] += 1
        return ClassifyBatchResult(
            scanned=len(page), last_id=page[-1].id if page else None, **counts
        )

    async def _figures(
        self, session: AsyncSession, ids: list[str], as_of: datetime
    ) -> dict[str, RfmFigures]:
        """Recency, frequency and spend per currency of ``ids`` over the window."""
        if not ids:
            return {}
        rows = await session.execute(
            select(
                OrderRow.customer_id,
                OrderRow.currency,
                func.count(),
                func.sum(OrderRow.total),
                func.max(OrderRow.created_at),
            )
            .where(OrderRow.customer_id.in_(ids))
            .where(OrderRow.created_at > as_of - timedelta(days=WINDOW_DAYS))
            .where(OrderRow.created_at <= as_of)
            .where(OrderRow.status.not_in(NO_PURCHASE))
            .group_by(OrderRow.customer_id, OrderRow.currency)
        )
        acc: dict[str, tuple[int, dict[str, Decimal], datetime | None]] = {}
        for customer_id, currency, count, total, last in rows:
            orders, spend, latest = acc.get(customer_id, (0, {}, None))
            spend[currency] = Decimal(total or 0)
            latest = last if latest is None or (last and last > latest) else latest
            acc[customer_id] = (orders + int(count), spend, latest)
        return {
            cid: RfmFigures(recency_days=_recency(as_of, last), orders=orders, spend=spend)
            for cid, (orders, spend, last) in acc.items()
        }

    @staticmethod
    async def _take(
        session: AsyncSession,
        customer_id: str,
        current: CustomerTier,
        suggested: CustomerTier | None,
        step: Step,
        proposed: CustomerTier,
        rfm: dict[str, Any],
    ) -> bool:
        """Apply ``step`` unless someone changed the tier or the suggestion meanwhile."""
        now = datetime.now(UTC)
        values: dict[str, str | None]
        detail: dict[str, object]
        if step is Step.APPLY:
            values = {"tier": proposed.value, "suggested_tier": None}
            change = ChangeType.TIER_CHANGED
            detail = {"from": current.value, "to": proposed.value, "rfm": rfm}
        elif step is Step.SUGGEST:
            values = {"suggested_tier": proposed.value}
            change = ChangeType.TIER_SUGGESTED
            detail = {"from": current.value, "to": proposed.value, "rfm": rfm}
        else:
            values = {"suggested_tier": None}
            change = ChangeType.TIER_SUGGESTED
            detail = {
                "from": current.value,
                "to": None,
                "withdrawn": suggested.value if suggested else None,
                "rfm": rfm,
            }
        unchanged_suggestion = (
            CustomerRow.suggested_tier.is_(None)
            if suggested is None
            else CustomerRow.suggested_tier == suggested.value
        )
        result = await session.execute(
            update(CustomerRow)
            .where(CustomerRow.id == customer_id)
            .where(CustomerRow.tier == current.value)
            .where(unchanged_suggestion)
            .values(**values, updated_at=now)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return False
        session.add(
            CustomerChangeRow(
                customer_id=customer_id,
                at=now,
                actor=CLASSIFIER,
                change=change.value,
                detail=detail,
            )
        )
        return True
