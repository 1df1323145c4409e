"""The Analytics workflow on a seeded history: it finds a planted bundle (desk, chair, lamp),
forecasts every SKU with its backtest error, and the read service serves both; the workflow's
schedule is kept by the worker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from activities.reports import AnalyticsInput
from config import load_policy
from db.models import DemandForecastRow, ProductRuleRow
from services.analytics import Analytics
from services.auth import Principal, Role
from services.demo_seed import SeedOptions, seed_demo
from tests.conftest import Stack
from workflows.client import order_policy
from workflows.reports import (
    ANALYTICS_SCHEDULE_ID,
    AnalyticsWorkflow,
    ensure_analytics_schedule,
)

MANAGER = Principal(name="mgr", roles=frozenset({Role.MANAGER}))
SUPPORT = Principal(name="sup", roles=frozenset({Role.SUPPORT}))


async def test_analytics_finds_the_planted_rule_and_forecasts_each_sku(stack: Stack) -> None:
    settings = stack.settings
    policy = order_policy(settings, load_policy(settings.approval_policy_file))
    now = datetime.now(UTC)
    await seed_demo(stack.sessions, SeedOptions(orders=1500, months=14, seed=3), policy, now=now)

    rules, forecasts = await stack.client.execute_workflow(
        AnalyticsWorkflow.run,
        AnalyticsInput(as_of=now),
        id=f"analytics-test-{now.timestamp()}",
        task_queue=settings.task_queue,
        execution_timeout=timedelta(minutes=5),
    )
    assert rules.baskets > 1000
    assert rules.rules > 0
    assert forecasts.series > 0
    async with stack.sessions() as session:
        stored_rules = await session.scalar(select(func.count()).select_from(ProductRuleRow))
        stored = list(await session.scalars(select(DemandForecastRow)))
    assert stored_rules == rules.rules
    assert len(stored) == forecasts.series
    # 14 months of weekly history: last year's same week or the recent mean, never nothing.
    assert {f.method for f in stored} <= {"seasonal_naive", "naive", "holt_winters"}
    assert all(len(f.points) == settings.forecast_horizon_weeks for f in stored)
    assert all(f.backtest_smape is not None for f in stored if f.history_weeks > 20)

    analytics = Analytics(stack.sessions)
    office = await analytics.recommendations(SUPPORT, skus=["FUR-CHAIR-ERGO", "FUR-LAMP-LED"])
    assert office.suggestions, office
    best = office.suggestions[0]
    assert best.sku == "FUR-DESK-ELEC"  # the "home office" bundle's third piece
    assert best.because.confidence > 0.8
    assert best.because.lift > 5
    assert best.name is not None  # from the seeded catalogue
    held = await analytics.recommendations(SUPPORT, skus=["FUR-DESK-ELEC", "FUR-CHAIR-ERGO"])
    assert "FUR-DESK-ELEC" not in [s.sku for s in held.suggestions]  # never what is held

    printers = await analytics.forecasts(MANAGER, ["PRN-LASER-M200"])
    assert [(f.sku, f.region) for f in printers] == [("PRN-LASER-M200", "*")]
    week = printers[0].points[0]
    assert 0 <= week.lower <= week.quantity <= week.upper
    assert week.quantity > 0  # a steady seller

    # Low stock: the printer's stock does not cover four weeks of its forecast, the rest does.
    levels = {f.sku: 100_000 for f in stored}
    await stack.inventory.set_stock({**levels, "PRN-LASER-M200": 3})
    low = await Analytics(stack.sessions, stack.inventory).replenishment(MANAGER, cover_weeks=4)
    assert [r.sku for r in low] == ["PRN-LASER-M200"]
    assert low[0].reorder >= low[0].demand - 3 > 0
    assert low[0].available == 3

    # Running it again replaces the tables, it does not add to them.
    again, _ = await stack.client.execute_workflow(
        AnalyticsWorkflow.run,
        AnalyticsInput(as_of=now),
        id=f"analytics-test-again-{now.timestamp()}",
        task_queue=settings.task_queue,
    )
    async with stack.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ProductRuleRow)) == again.rules


async def test_the_analytics_schedule_is_created_then_left_as_it_is(stack: Stack) -> None:
    schedule_id = f"{ANALYTICS_SCHEDULE_ID}-{stack.settings.task_queue}"
    kwargs = {"task_queue": stack.settings.task_queue, "schedule_id": schedule_id}
    assert await ensure_analytics_schedule(stack.client, cron="30 3 * * *", **kwargs) == "created"
    assert await ensure_analytics_schedule(stack.client, cron="30 3 * * *", **kwargs) == "unchanged"
    assert await ensure_analytics_schedule(stack.client, cron="0 4 * * *", **kwargs) == "updated"
    desc = await stack.client.get_schedule_handle(schedule_id).describe()
    assert "0 4 * * *" in (desc.schedule.state.note or "")
    await stack.client.get_schedule_handle(schedule_id).delete()
