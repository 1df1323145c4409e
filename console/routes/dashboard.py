"""The manager's dashboard: orders and revenue over time, by region and tier, approval lead
times and on-time delivery, as inline SVG charts (console/charts.py) with their figures as
tables and CSV exports."""

from __future__ import annotations

import csv
import io

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.errors import STATUS
from console.auth import Manager, ServicesDep
from console.charts import Chart, Series, csv_rows, header, per_currency, render, rows
from console.i18n import Translate, translator
from console.web import finish, language_of, page, svg
from services.dashboard import RANGES, Dashboard, Figures, LeadTime, check_days
from services.errors import ServiceError, invalid

router = APIRouter(prefix="/console/dashboard", include_in_schema=False)

CHARTS = (
    "orders_per_day",
    "revenue_per_day",
    "orders_by_region",
    "revenue_by_region",
    "orders_by_tier",
    "revenue_by_tier",
    "approval_lead_times",
    "on_time_delivery",
)
LONG_TABLE = 12  # a chart with more categories keeps its table for screen readers only


def _unit(lead_times: list[LeadTime]) -> tuple[float, str]:
    """Seconds per unit and the unit's name for the lead-time chart, by its largest figure."""
    top = max((lt.p90_seconds for lt in lead_times), default=0.0)
    if top >= 7200:
        return 3600.0, "hours"
    if top >= 120:
        return 60.0, "minutes"
    return 1.0, "seconds"


def build_charts(f: Figures, t: Translate) -> dict[str, Chart]:
    """Every chart of the dashboard from the figures, in the viewer's language."""
    nothing = t("no orders in this period")

    def empty(text: str) -> str:
        return nothing if f.orders == 0 else text

    days = [d.day.isoformat() for d in f.per_day]
    day, orders, tier = t("Day"), t("Orders"), t("Customer tier")
    revenue_of = t("Revenue (per currency)")
    no_revenue = empty(t("no revenue in this period"))
    regions = [g.name for g in f.by_region]
    tiers = [g.name for g in f.by_tier]
    per, unit = _unit(f.lead_times)
    unit_label = t({"hours": "Hours", "minutes": "Minutes", "seconds": "Seconds"}[unit])
    levels = [
        t("Level {level}", level=lt.level) + (f" · {lt.name}" if lt.name else "")
        for lt in f.lead_times
    ]
    d = f.delivery
    charts = [
        Chart(
            "orders_per_day",
            t("Orders per day"),
            day,
            orders,
            days,
            [Series(orders, [x.orders for x in f.per_day])],
            kind="line",
            empty_text=nothing,
        ),
        Chart(
            "revenue_per_day",
            t("Revenue per day"),
            day,
            revenue_of,
            days,
            per_currency(days, {x.day.isoformat(): x.revenue for x in f.per_day}),
            kind="line",
            empty_text=no_revenue,
            decimals=2,
        ),
        Chart(
            "orders_by_region",
            t("Orders by region"),
            t("Region"),
            orders,
            regions,
            [Series(orders, [g.orders for g in f.by_region])],
            empty_text=nothing,
        ),
        Chart(
            "revenue_by_region",
            t("Revenue by region"),
            t("Region"),
            revenue_of,
            regions,
            per_currency(regions, {g.name: g.revenue for g in f.by_region}),
            empty_text=no_revenue,
            decimals=2,
        ),
        Chart(
            "orders_by_tier",
            t("Orders by customer tier"),
            tier,
            orders,
            tiers,
            [Series(orders, [g.orders for g in f.by_tier])],
            empty_text=nothing,
        ),
        Chart(
            "revenue_by_tier",
            t("Revenue by customer tier"),
            tier,
            revenue_of,
            tiers,
            per_currency(tiers, {g.name: g.revenue for g in f.by_tier}),
            empty_text=no_revenue,
            decimals=2,
        ),
        Chart(
            "approval_lead_times",
            t("Approval lead time per level"),
            t("Approval level"),
            unit_label,
            levels,
            [
                Series(t("Median (p50)"), [lt.p50_seconds / per for lt in f.lead_times]),
                Series(t("90th percentile (p90)"), [lt.p90_seconds / per for lt in f.lead_times]),
            ],
            empty_text=empty(t("no approval decisions in this period")),
            decimals=1,
            extra=[Series(t("Decisions"), [lt.decisions for lt in f.lead_times])],
        ),
        Chart(
            "on_time_delivery",
            t("On-time delivery"),
            t("Delivery"),
            orders,
            [t("On time"), t("Late"), t("Overdue, not delivered")],
            [Series(orders, [d.on_time, d.late, d.overdue])],
            empty_text=empty(t("no deliveries due in this period")),
        ),
    ]
    return {c.key: c for c in charts}


def _problem(request: Request, exc: ServiceError) -> Response:
    context = {"heading": "Dashboard", "message": exc.message, "back": "/console/dashboard"}
    return page(request, "error.html", context, status=STATUS[exc.kind])


@router.get("")
async def dashboard_page(
    request: Request, viewer: Manager, services: ServicesDep, days: str | None = None
) -> Response:
    """The dashboard for the last 7, 30 or 90 days."""
    try:
        figures = await Dashboard(services).figures(viewer.user.principal, check_days(days))
    except ServiceError as exc:
        return _problem(request, exc)
    t = translator(language_of(request, viewer))
    charts = build_charts(figures, t)
    panels = [
        {
            "chart": c,
            "svg": svg(render(c)),
            "header": header(c),
            "rows": rows(c),
            "long": len(c.categories) > LONG_TABLE,
        }
        for c in charts.values()
    ]
    rate = figures.delivery.rate
    context = {
        "figures": figures,
        "panels": panels,
        "ranges": RANGES,
        "on_time_pct": None if rate is None else f"{rate * 100:.0f}",
        "sla_days": services.settings.delivery_sla.total_seconds() / 86400,
    }
    return page(request, "dashboard.html", context, partial="dashboard_body.html")


@router.get("/export.csv")
async def dashboard_export(
    request: Request,
    viewer: Manager,
    services: ServicesDep,
    chart: str | None = None,
    days: str | None = None,
) -> Response:
    """The figures behind one chart as CSV (formula-like cells defused)."""
    try:
        if chart not in CHARTS:
            raise invalid("chart", f"must be one of {', '.join(CHARTS)}")
        figures = await Dashboard(services).figures(viewer.user.principal, check_days(days))
    except ServiceError as exc:
        return _problem(request, exc)
    built = build_charts(figures, translator(language_of(request, viewer)))[chart]
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(csv_rows(built))
    name = f"orderly-{chart}-{figures.days}d-{figures.end.isoformat()}.csv"
    response = Response(
        "\ufeff" + out.getvalue(),  # a BOM: spreadsheets then read the file as UTF-8
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
    return finish(request, response)
