"""Report activities: render a background export (services.report_exports), and the analytics
run's two steps — association rules over recent baskets and weekly demand forecasts per SKU
(domain.basket, domain.forecast) — each replacing its table as a whole, so a retry redoes the
same work and leaves one result."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, insert, select
from temporalio import activity
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from config import Settings
from db.models import DemandForecastRow, OrderLineRow, OrderRow, ProductRuleRow
from db.models import SalesDailySkuRow as D
from db.session import SessionFactory
from db.vault import Vault
from domain.basket import rules as find_rules
from domain.forecast import Forecast, WeeklySeries, forecast, week_start, weekly_series
from domain.reporting import SOLD_STATUSES
from integrations.mail import MailOutbox, Renderer
from services.report_exports import ExportView, ReportExports

ALL_REGIONS = "*"
FORECAST_WEEKS = 156  # at most three years of weekly history feed a forecast
HEARTBEAT_EVERY = 50


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True)


class ExportInput(_Contract):
    """A background export (``export_id``) or a subscription's weekly run (``subscription_id``)."""

    export_id: str | None = None
    subscription_id: str | None = None


class OpenWeek(_Contract):
    subscription_id: str
    at: datetime = Field(description="When the schedule fired: the export covers the week before.")


class RunExport(_Contract):
    export_id: str


class AnalyticsInput(_Contract):
    as_of: datetime | None = Field(default=None, description="None: when the run starts.")


class RulesInput(_Contract):
    as_of: datetime


class RulesResult(_Contract):
    baskets: int
    rules: int


class ForecastInput(_Contract):
    as_of: datetime
    by_region: bool = Field(default=True, description="Also one forecast per SKU and region.")


class ForecastResult(_Contract):
    series: int
    methods: dict[str, int]


class ReportActivities:
    def __init__(self, sessions: SessionFactory, settings: Settings, vault: Vault) -> None:
        self._sessions = sessions
        self._settings = settings
        self._exports = ReportExports(sessions, settings, None)
        self._outbox = MailOutbox(sessions, vault)
        self._renderer = Renderer()

    @activity.defn
    async def open_week_export(self, inp: OpenWeek) -> str | None:
        return await self._exports.open_for_week(inp.subscription_id, inp.at)

    @activity.defn
    async def run_export(self, inp: RunExport) -> ExportView:
        def beat(done: int, total: int | None) -> None:
            activity.heartbeat(done, total)

        view = await self._exports.produce(inp.export_id, beat)
        if view.status == "done" and view.subscription_id is not None:
            await self._tell_subscriber(view)
        return view

    async def _tell_subscriber(self, view: ExportView) -> None:
        """Email the subscriber (their principal's address) a link to the week's file: once
        per export."""
        period = "/".join(str(view.params[k]) for k in ("from", "to") if view.params.get(k))
        values = {
            "report": view.report,
            "period": period or view.report,
            "rows": view.rows_done,
            "format": view.format.upper(),
            "link": f"{self._settings.public_base_url}{view.download}",
        }
        async with self._sessions.begin() as session:
            await self._outbox.queue_for_principal(
                session,
                self._renderer,
                principal=view.created_by,
                kind="report_ready",
                key=f"report:{view.id}",
                values=values,
            )

    # --- analytics ---

    @activity.defn
    async def compute_rules(self, inp: RulesInput) -> RulesResult:
        """Association rules over the sold orders of the last ``rules_history_days``."""
        s = self._settings
        since = inp.as_of - timedelta(days=s.rules_history_days)
        baskets: dict[str, set[str]] = defaultdict(set)
        async with self._sessions() as session:
            result = await session.stream(
                select(OrderLineRow.order_id, OrderLineRow.sku)
                .join(OrderRow, OrderRow.id == OrderLineRow.order_id)
                .where(
                    OrderRow.created_at >= since,
                    OrderRow.created_at < inp.as_of,
                    OrderRow.status.in_(SOLD_STATUSES),
                )
            )
            async for order_id, sku in result:
                baskets[order_id].add(sku)
        activity.heartbeat(len(baskets))
        found = await asyncio.to_thread(
            find_rules,
            list(baskets.values()),
            min_support=s.rules_min_support,
            min_confidence=s.rules_min_confidence,
            min_lift=s.rules_min_lift,
        )
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            await session.execute(delete(ProductRuleRow))
            if found:
                await session.execute(
                    insert(ProductRuleRow),
                    [
                        {
                            "antecedent": list(r.antecedent),
                            "consequent": r.consequent,
                            "support": r.support,
                            "confidence": r.confidence,
                            "lift": r.lift,
                            "orders": r.orders,
                            "computed_at": now,
                        }
                        for r in found
                    ],
                )
        return RulesResult(baskets=len(baskets), rules=len(found))

    @activity.defn
    async def compute_forecasts(self, inp: ForecastInput) -> ForecastResult:
        """Weekly demand per SKU (all regions, and per region) from the per-SKU rollup, up to
        the last full week before ``as_of``; one forecast each, replacing the table."""
        end_week = week_start(inp.as_of.astimezone(UTC).date())  # this week is not over yet
        start_week = end_week - timedelta(weeks=FORECAST_WEEKS)
        weekly: dict[tuple[str, str], dict[date, float]] = defaultdict(lambda: defaultdict(float))
        async with self._sessions() as session:
            result = await session.stream(
                select(D.day, D.region, D.sku, func.sum(D.units))
                .where(D.day >= start_week, D.day < end_week, D.status.in_(SOLD_STATUSES))
                .group_by(D.day, D.region, D.sku)
            )
            async for day, region, sku, units in result:
                d = day if isinstance(day, date) else date.fromisoformat(str(day))
                week = week_start(d)
                weekly[(sku, ALL_REGIONS)][week] += float(units or 0)
                if inp.by_region:
                    weekly[(sku, region)][week] += float(units or 0)
        last = end_week - timedelta(days=1)
        series = {
            key: weekly_series(points, start=start_week, end=last) for key, points in weekly.items()
        }
        results: dict[tuple[str, str], Forecast] = {}
        keys = sorted(series)
        for i in range(0, len(keys), HEARTBEAT_EVERY):  # the fits run off the event loop
            chunk = {k: series[k] for k in keys[i : i + HEARTBEAT_EVERY]}
            results |= await asyncio.to_thread(self._forecast_all, chunk)
            activity.heartbeat(i + len(chunk), len(keys))
        now = datetime.now(UTC)
        methods: dict[str, int] = defaultdict(int)
        rows: list[dict[str, Any]] = []
        for (sku, region), f in results.items():
            methods[f.method] += 1
            rows.append(
                {
                    "sku": sku,
                    "region": region,
                    "method": f.method,
                    "history_weeks": f.history_weeks,
                    "backtest_weeks": f.backtest_weeks,
                    "backtest_smape": f.backtest_smape,
                    "points": [
                        {
                            "week": p.week.isoformat(),
                            "quantity": round(p.quantity, 2),
                            "lower": round(p.lower, 2),
                            "upper": round(p.upper, 2),
                        }
                        for p in f.points
                    ],
                    "computed_at": now,
                }
            )
        async with self._sessions.begin() as session:
            await session.execute(delete(DemandForecastRow))
            for i in range(0, len(rows), 1000):
                await session.execute(insert(DemandForecastRow), rows[i : i + 1000])
        return ForecastResult(series=len(rows), methods=dict(methods))

    def _forecast_all(
        self, series: dict[tuple[str, str], WeeklySeries]
    ) -> dict[tuple[str, str], Forecast]:
        s = self._settings
        # Small fits run fastest on one BLAS thread (bench/reports.py: several times slower
        # with the default of one per core).
        with threadpool_limits(limits=1):
            return self._fits(series, s)

    @staticmethod
    def _fits(
        series: dict[tuple[str, str], WeeklySeries], s: Settings
    ) -> dict[tuple[str, str], Forecast]:
        return {
            key: forecast(
                one, horizon=s.forecast_horizon_weeks, backtest_weeks=s.forecast_backtest_weeks
            )
            for key, one in series.items()
        }
