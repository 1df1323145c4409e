"""What the analytics run computed, as people ask for it: demand forecasts per SKU (and
region), "customers who order X also order Y" per SKU, basket or customer, and the product
catalogue (name, category) the reports group by.

Forecasts and rules are recomputed by the AnalyticsWorkflow on a Temporal Schedule, never per
request; these reads only look them up.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select, update

from db.models import (
    DemandForecastRow,
    OrderLineRow,
    OrderRow,
    ProductRow,
    ProductRuleRow,
    SalesDailySkuRow,
    SalesMonthlySkuRow,
    SalesWeeklySkuRow,
)
from db.session import SessionFactory
from db.upsert import insert_for
from domain.basket import Rule, suggest
from domain.replenishment import WeekDemand, replenishment
from domain.reporting import SOLD_STATUSES
from integrations.inventory import SimulatedInventory
from services.auth import Principal, Role
from services.context import Services
from services.errors import Kind, ServiceError, invalid, not_found
from services.reports import Reports

ALL_REGIONS = "*"
MAX_SKUS = 50
CUSTOMER_HISTORY = timedelta(days=365)
CATALOGUE_READERS = frozenset({Role.SUPPORT, Role.MANAGER, Role.SYSTEM, Role.ADMIN})
CATALOGUE_WRITERS = frozenset({Role.SUPPORT, Role.ADMIN})


class ForecastPointView(BaseModel):
    week: str = Field(description="Monday of the week (ISO date).")
    quantity: float
    lower: float
    upper: float


class ForecastView(BaseModel):
    model_config = ConfigDict(frozen=True)
    sku: str
    region: str = Field(description="'*': all regions.")
    method: str = Field(description="holt_winters | seasonal_naive | naive | none")
    history_weeks: int
    backtest_weeks: int
    backtest_smape: float | None = Field(
        description="sMAPE (%) of the same method on the last backtest_weeks weeks held out: "
        "how far to trust the forecast (None: too little history to test)."
    )
    points: list[ForecastPointView]
    interval: str = "80 % prediction interval (lower, upper)"
    computed_at: datetime


class RuleView(BaseModel):
    antecedent: list[str]
    consequent: str
    support: float
    confidence: float
    lift: float
    orders: int


class SuggestionView(BaseModel):
    sku: str
    name: str | None
    because: RuleView


class Recommendations(BaseModel):
    held: list[str] = Field(description="The SKUs the suggestions start from.")
    suggestions: list[SuggestionView]
    computed_at: datetime | None = Field(description="When the rules were computed (None: never).")


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    category: str = Field(
        min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$", description="e.g. printers"
    )


class ProductView(BaseModel):
    sku: str
    name: str
    category: str
    updated_at: datetime


def _rule(row: ProductRuleRow) -> Rule:
    return Rule(
        antecedent=tuple(row.antecedent),
        consequent=row.consequent,
        support=row.support,
        confidence=row.confidence,
        lift=row.lift,
        orders=row.orders,
    )


def _rule_view(r: Rule) -> RuleView:
    return RuleView(
        antecedent=list(r.antecedent),
        consequent=r.consequent,
        support=round(r.support, 6),
        confidence=round(r.confidence, 4),
        lift=round(r.lift, 3),
        orders=r.orders,
    )


class ReplenishmentView(BaseModel):
    sku: str
    name: str | None
    available: int = Field(description="On hand and not reserved.")
    demand: float = Field(description="Forecast units over the cover weeks.")
    demand_upper: float = Field(description="Upper bound of the forecast interval, summed.")
    weeks_of_cover: float | None
    reorder: int = Field(description="Units to order now: the shortfall against demand_upper.")
    method: str
    backtest_smape: float | None


class StockLevels(Protocol):
    async def available(self, skus: Sequence[str]) -> dict[str, int]: ...


class Analytics:
    def __init__(self, sessions: SessionFactory, stock: StockLevels | None = None) -> None:
        self._sessions = sessions
        self._stock = stock

    @classmethod
    def of(cls, services: Services) -> Analytics:
        """Over the stock levels of the inventory the worker uses (the simulator here; swap it
        with the worker's in worker.build_activities)."""
        return cls(services.sessions, SimulatedInventory(services.sessions))

    async def replenishment(
        self, principal: Principal, *, cover_weeks: int = 4, only_low: bool = True
    ) -> list[ReplenishmentView]:
        """Low-stock suggestions: the forecast (all regions) against the stock available."""
        Reports.allow(principal)
        if not 1 <= cover_weeks <= 26:
            raise invalid("weeks", "must be between 1 and 26")
        if self._stock is None:
            raise ServiceError(Kind.UNAVAILABLE, "no inventory is connected")
        async with self._sessions() as session:
            rows = list(
                await session.scalars(
                    select(DemandForecastRow).where(DemandForecastRow.region == ALL_REGIONS)
                )
            )
        available = await self._stock.available([r.sku for r in rows])
        names = await self._names([r.sku for r in rows])
        out = []
        for r in rows:
            weeks = [WeekDemand(p["quantity"], p["upper"]) for p in r.points]
            if not weeks:
                continue
            got = replenishment(r.sku, available[r.sku], weeks, cover_weeks=cover_weeks)
            if only_low and not got.low:
                continue
            out.append(
                ReplenishmentView(
                    sku=r.sku,
                    name=names.get(r.sku),
                    available=got.available,
                    demand=got.demand,
                    demand_upper=got.demand_upper,
                    weeks_of_cover=got.weeks_of_cover,
                    reorder=got.reorder,
                    method=r.method,
                    backtest_smape=r.backtest_smape,
                )
            )
        return sorted(out, key=lambda v: (-v.reorder, v.weeks_of_cover or 0.0, v.sku))

    async def forecasts(
        self, principal: Principal, skus: list[str], region: str = ALL_REGIONS
    ) -> list[ForecastView]:
        Reports.allow(principal)
        if len(skus) > MAX_SKUS:
            raise invalid("sku", f"at most {MAX_SKUS} SKUs")
        stmt = select(DemandForecastRow).where(DemandForecastRow.region == region)
        if skus:
            stmt = stmt.where(DemandForecastRow.sku.in_(skus))
        async with self._sessions() as session:
            rows = list(await session.scalars(stmt.order_by(DemandForecastRow.sku).limit(500)))
        return [
            ForecastView(
                sku=r.sku,
                region=r.region,
                method=r.method,
                history_weeks=r.history_weeks,
                backtest_weeks=r.backtest_weeks,
                backtest_smape=r.backtest_smape,
                points=[ForecastPointView(**p) for p in r.points],
                computed_at=r.computed_at,
            )
            for r in rows
        ]

    async def _rules(self) -> tuple[list[Rule], datetime | None]:
        async with self._sessions() as session:
            rows = list(await session.scalars(select(ProductRuleRow)))
        return [_rule(r) for r in rows], max((r.computed_at for r in rows), default=None)

    async def recommendations(
        self,
        principal: Principal,
        *,
        skus: list[str] | None = None,
        customer_id: str | None = None,
        limit: int = 5,
    ) -> Recommendations:
        """Suggestions for a basket (``skus``) or for what a customer bought in the last year
        (staff who take orders and managers; no scoped keys)."""
        if not principal.has_any({Role.SUPPORT, Role.MANAGER, Role.SYSTEM, Role.ADMIN}):
            raise ServiceError(Kind.FORBIDDEN, "recommendations are for staff and systems")
        if (skus is None) == (customer_id is None):
            raise invalid("sku", "give sku (the basket) or customer_id, not both")
        if not 1 <= limit <= 20:
            raise invalid("limit", "must be between 1 and 20")
        held = list(dict.fromkeys(skus or []))
        if len(held) > MAX_SKUS:
            raise invalid("sku", f"at most {MAX_SKUS} SKUs")
        if customer_id is not None:
            since = datetime.now(UTC) - CUSTOMER_HISTORY
            async with self._sessions() as session:
                held = list(
                    await session.scalars(
                        select(OrderLineRow.sku)
                        .join(OrderRow, OrderRow.id == OrderLineRow.order_id)
                        .where(
                            OrderRow.customer_id == customer_id,
                            OrderRow.created_at >= since,
                            OrderRow.status.in_(SOLD_STATUSES),
                        )
                        .group_by(OrderLineRow.sku)
                        .order_by(func.count().desc(), OrderLineRow.sku)
                        .limit(MAX_SKUS)
                    )
                )
        rules, computed = await self._rules()
        found = suggest(rules, held, limit=limit)
        names = await self._names([s.sku for s in found])
        return Recommendations(
            held=sorted(held),
            suggestions=[
                SuggestionView(sku=s.sku, name=names.get(s.sku), because=_rule_view(s.rule))
                for s in found
            ],
            computed_at=computed,
        )

    async def rules_for(self, principal: Principal, sku: str, limit: int = 20) -> list[RuleView]:
        """The rules that start from ``sku`` alone or end in it."""
        Reports.allow(principal)
        rules, _ = await self._rules()
        mine = [r for r in rules if r.consequent == sku or sku in r.antecedent]
        return [_rule_view(r) for r in mine[:limit]]

    async def _names(self, skus: list[str]) -> dict[str, str]:
        if not skus:
            return {}
        async with self._sessions() as session:
            result = await session.execute(
                select(ProductRow.sku, ProductRow.name).where(ProductRow.sku.in_(skus))
            )
            return {row[0]: row[1] for row in result}

    # --- the catalogue ---

    async def products(self, principal: Principal, *, category: str | None = None) -> list[Any]:
        if not principal.has_any(CATALOGUE_READERS):
            raise ServiceError(Kind.FORBIDDEN, "the catalogue is for staff and systems")
        stmt = select(ProductRow).order_by(ProductRow.sku)
        if category is not None:
            stmt = stmt.where(ProductRow.category == category)
        async with self._sessions() as session:
            rows = list(await session.scalars(stmt.limit(5000)))
        return [
            ProductView(sku=r.sku, name=r.name, category=r.category, updated_at=r.updated_at)
            for r in rows
        ]

    async def put_product(self, principal: Principal, sku: str, body: ProductIn) -> ProductView:
        """Create or replace a product; a new category regroups the SKU's past lines and
        rollup rows too (one category per SKU, in the same transaction)."""
        if not principal.has_any(CATALOGUE_WRITERS):
            raise ServiceError(Kind.FORBIDDEN, "the catalogue is kept by support")
        now = datetime.now(UTC)
        values = {"sku": sku, "name": body.name, "category": body.category, "updated_at": now}
        async with self._sessions.begin() as session:
            stmt = insert_for(session, ProductRow).values(**values)
            await session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["sku"],
                    set_={k: v for k, v in values.items() if k != "sku"},
                )
            )
            for table in (OrderLineRow, SalesDailySkuRow, SalesMonthlySkuRow, SalesWeeklySkuRow):
                await session.execute(
                    update(table)
                    .where(table.sku == sku, table.category != body.category)
                    .values(category=body.category)
                )
        return ProductView(**values)

    async def product(self, principal: Principal, sku: str) -> ProductView:
        if not principal.has_any(CATALOGUE_READERS):
            raise ServiceError(Kind.FORBIDDEN, "the catalogue is for staff and systems")
        async with self._sessions() as session:
            row = await session.get(ProductRow, sku)
        if row is None:
            raise not_found(f"product {sku}")
        return ProductView(
            sku=row.sku, name=row.name, category=row.category, updated_at=row.updated_at
        )
