"""Draw the README's two example charts from a seeded demo history:
``.venv/bin/python docs/make_demo_charts.py`` (about a minute; writes docs/charts/*.png).

It seeds 50,000 orders over 18 months (``orderly seed-demo``'s defaults) into a throwaway SQLite
database, runs the analytics steps, and renders the charts with the same code as the API's
``format=png``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Settings, load_policy  # noqa: E402
from db.models import Base  # noqa: E402
from db.session import make_engine, make_sessionmaker  # noqa: E402
from domain.forecast import forecast, week_start, weekly_series  # noqa: E402
from services.auth import Principal, Role  # noqa: E402
from services.demo_seed import SeedOptions, seed_demo  # noqa: E402
from services.report_files import Chart, Panel, Series, render_png  # noqa: E402
from services.report_output import sales_chart  # noqa: E402
from services.reports import Reports, parse_sales_query  # noqa: E402
from workflows.client import order_policy  # noqa: E402

OUT = ROOT / "docs" / "charts"
MANAGER = Principal(name="docs", roles=frozenset({Role.MANAGER}))
SKU = "PRN-LASER-M200"


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/demo.db"
        engine = make_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        sessions = make_sessionmaker(engine)
        settings = Settings(database_url=url)
        now = datetime(2026, 12, 1, tzinfo=UTC)
        policy = order_policy(settings, load_policy(settings.approval_policy_file))
        await seed_demo(sessions, SeedOptions(), policy, now=now)
        reports = Reports(sessions, settings)

        by_region = parse_sales_query(
            start=date(2025, 12, 1),
            end=date(2026, 12, 1),
            group_by=["region"],
            currency=["EUR"],
            settings=settings,
        )
        report = await reports.sales(MANAGER, by_region)
        (OUT / "revenue-by-region.png").write_bytes(render_png(sales_chart(report)))

        weekly = parse_sales_query(
            start=date(2025, 6, 2),
            end=week_start(now.date()),
            period="week",
            filters={"sku": [SKU]},
            settings=settings,
        )
        units: dict[date, float] = {}
        for row in (await reports.sales(MANAGER, weekly)).rows:
            units[row.period_start] = units.get(row.period_start, 0) + row.figures.units
        series = weekly_series(units, start=weekly.start, end=weekly.end - timedelta(days=1))
        f = forecast(series, horizon=12, backtest_weeks=8)
        history = list(series.quantities)
        n_hist, n_fc = len(history), len(f.points)
        labels = [w.isoformat() for w in series.weeks] + [p.week.isoformat() for p in f.points]
        gap: list[float | None] = [None] * n_hist
        chart = Chart(
            title=(
                f"{SKU}: weekly units and a 12-week forecast ({f.method}, "
                f"backtest sMAPE {f.backtest_smape:.0f} %)"
            ),
            x_label="Week",
            y_label="Units",
            categories=tuple(labels),
            panels=(
                Panel(
                    "units",
                    (
                        Series("ordered", (*history, *([None] * n_fc))),
                        Series("forecast", (*gap, *(p.quantity for p in f.points))),
                    ),
                ),
            ),
            bands=(
                (
                    "forecast",
                    (*([float("nan")] * n_hist), *(p.lower for p in f.points)),
                    (*([float("nan")] * n_hist), *(p.upper for p in f.points)),
                ),
            ),
        )
        (OUT / "forecast-printer.png").write_bytes(render_png(chart))
        await engine.dispose()
    print(f"wrote {OUT}/revenue-by-region.png and forecast-printer.png")  # noqa: T201


if __name__ == "__main__":
    asyncio.run(main())
