"""Reports for managers (and admins): sales, operations, customers — as JSON or as a CSV, XLSX
or PNG file — background exports, weekly subscriptions, demand forecasts and recommendations;
and the product catalogue the reports group by."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from api.deps import ServicesDep, allow
from api.routes.orders import ERRORS
from services.analytics import (
    ALL_REGIONS,
    Analytics,
    ForecastView,
    ProductIn,
    ProductView,
    Recommendations,
    ReplenishmentView,
    RuleView,
)
from services.auth import Principal, Role
from services.dashboard import LeadTime
from services.report_exports import (
    ExportView,
    File,
    Prepared,
    ReportExports,
    SubscriptionView,
    prepare,
)
from services.report_operations import (
    CustomersReport,
    OperationsReport,
    OperationsReports,
)
from services.reports import Reports, SalesReport, Totals

router = APIRouter(prefix="/reports", tags=["reports"], responses=ERRORS)
products_router = APIRouter(prefix="/products", tags=["products"], responses=ERRORS)
# Reports read every order's figures; no scope covers them yet, so keys with scopes are refused.
Manager = Annotated[Principal, Depends(allow(Role.MANAGER, scope=None, own=False))]
Staff = Annotated[
    Principal, Depends(allow(Role.SUPPORT, Role.MANAGER, Role.SYSTEM, scope=None, own=False))
]
CatalogueWriter = Annotated[Principal, Depends(allow(Role.SUPPORT, scope=None, own=False))]
ReportFormat = Literal["json", "csv", "xlsx", "png"]
FormatQuery = Annotated[
    ReportFormat,
    Query(alias="format", description="json, or a file: csv, xlsx, png (a chart per currency)"),
]
FromQuery = Annotated[date | None, Query(alias="from", description="First day (UTC), inclusive.")]
ToQuery = Annotated[date | None, Query(description="Last day (UTC), exclusive. Default: today+1.")]
Values = Annotated[list[str] | None, Query(description="Repeat or comma-separate.")]
Sku = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$", description="SKU")
]
ExportId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Z0-9-]+$")]
FILES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/csv": {},
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {},
            "image/png": {},
        },
        "description": "The report (JSON), or its file when ``format`` asks for one.",
    }
}


def _reports(services: ServicesDep) -> ReportExports:
    return ReportExports(services.sessions, services.settings, services.client)


ExportsDep = Annotated[ReportExports, Depends(_reports)]


def _file(file: File) -> Response:
    return Response(
        content=file.content,
        media_type=file.content_type,
        headers={"Content-Disposition": f'attachment; filename="{file.name}"'},
    )


# --- JSON shapes ----------------------------------------------------------------------------------


class FiguresOut(BaseModel):
    orders: int
    units: int
    revenue: Decimal
    refunds: Decimal
    net: Decimal
    average_order_value: Decimal | None


def _figures(t: Totals) -> FiguresOut:
    return FiguresOut(
        orders=t.orders,
        units=t.units,
        revenue=t.revenue,
        refunds=t.refunds,
        net=t.net,
        average_order_value=t.average_order_value,
    )


class SalesRowOut(FiguresOut):
    period: str
    period_start: date
    groups: dict[str, str]
    currency: str
    previous: FiguresOut | None = Field(description="The same group in the previous period.")
    change_pct: float | None = Field(description="Revenue change against the previous period.")


class CurrencyTotals(FiguresOut):
    currency: str


class SalesOut(BaseModel):
    query: dict[str, JsonValue]
    basis: str = Field(description="rollup: the daily rollups; raw: the order rows.")
    notes: list[str]
    totals: list[CurrencyTotals] = Field(description="Per currency: never summed across them.")
    rows: list[SalesRowOut]


def sales_out(report: SalesReport) -> SalesOut:
    return SalesOut(
        query=report.query.params(),
        basis=report.basis,
        notes=report.notes,
        totals=[
            CurrencyTotals(currency=c, **_figures(t).model_dump())
            for c, t in sorted(report.totals.items())
        ],
        rows=[
            SalesRowOut(
                period=r.period,
                period_start=r.period_start,
                groups=r.groups,
                currency=r.currency,
                previous=None if r.previous is None else _figures(r.previous),
                change_pct=None if r.change_pct is None else round(r.change_pct, 2),
                **_figures(r.figures).model_dump(),
            )
            for r in report.rows
        ],
    )


class StageOut(BaseModel):
    stage: str
    label: str
    orders: int
    p50_hours: float | None
    p90_hours: float | None


class LevelOut(BaseModel):
    level: int
    name: str
    decisions: int
    p50_hours: float
    p90_hours: float


class ClosureOut(BaseModel):
    status: str
    reason: str = Field(description="domain.reporting.close_reason_code")
    orders: int
    rate_pct: float


class StuckOut(BaseModel):
    status: str
    orders: int
    oldest_hours: float


class OperationsOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    start: date = Field(serialization_alias="from")
    to: date
    orders: int
    stages: list[StageOut]
    approval_levels: list[LevelOut]
    delivered: int
    on_time: int
    late: int
    on_time_rate_pct: float | None
    closures: list[ClosureOut]
    cancellation_rate_pct: float | None
    refunded_orders: int
    refund_rate_pct: float | None
    stuck: list[StuckOut]
    stuck_after_hours: float
    notes: list[str]


def _level(lt: LeadTime) -> LevelOut:
    return LevelOut(
        level=lt.level,
        name=lt.name,
        decisions=lt.decisions,
        p50_hours=round(lt.p50_seconds / 3600, 2),
        p90_hours=round(lt.p90_seconds / 3600, 2),
    )


def operations_out(r: OperationsReport) -> OperationsOut:
    return OperationsOut(
        start=r.range.start,
        to=r.range.end,
        orders=r.orders,
        stages=[StageOut(**vars(s)) for s in r.stages],
        approval_levels=[_level(lt) for lt in r.approval_levels],
        delivered=r.delivered,
        on_time=r.on_time,
        late=r.late,
        on_time_rate_pct=r.on_time_rate_pct,
        closures=[ClosureOut(**vars(c)) for c in r.closures],
        cancellation_rate_pct=r.cancellation_rate_pct,
        refunded_orders=r.refunded_orders,
        refund_rate_pct=r.refund_rate_pct,
        stuck=[StuckOut(**vars(s)) for s in r.stuck],
        stuck_after_hours=r.stuck_after_hours,
        notes=r.notes,
    )


class TopCustomerOut(BaseModel):
    customer_id: str
    currency: str
    orders: int
    revenue: Decimal
    last_order: datetime


class BandOut(BaseModel):
    recency: str
    frequency: str
    customers: int


class CustomersOut(BaseModel):
    start: date = Field(serialization_alias="from")
    to: date
    customers: int
    new_customers: int
    returning_customers: int
    top: list[TopCustomerOut]
    frequency: dict[str, int] = Field(description="Band -> customers.")
    bands: list[BandOut] = Field(description="Recency x frequency (RFM).")
    notes: list[str]


def customers_out(r: CustomersReport) -> CustomersOut:
    return CustomersOut(
        start=r.range.start,
        to=r.range.end,
        customers=r.customers,
        new_customers=r.new_customers,
        returning_customers=r.returning_customers,
        top=[TopCustomerOut(**vars(t)) for t in r.top],
        frequency=dict(r.frequency),
        bands=[BandOut(**vars(b)) for b in r.bands],
        notes=r.notes,
    )


# --- reports --------------------------------------------------------------------------------------


async def _answer(
    prepared: Prepared, fmt: ReportFormat, principal: Principal, exports: ReportExports
) -> Response | None:
    if fmt == "json":
        return None
    return _file(await exports.render_now(principal, prepared, fmt))


@router.get("/sales", response_model=SalesOut, responses=FILES)
async def sales_report(
    principal: Manager,
    services: ServicesDep,
    exports: ExportsDep,
    start: FromQuery = None,
    to: ToQuery = None,
    period: Annotated[
        Literal["day", "week", "month", "quarter"] | None, Query(description="Default: month.")
    ] = None,
    group_by: Annotated[
        list[str] | None,
        Query(description="Up to two of region, tier, sku, category, sales_rep, source, status."),
    ] = None,
    region: Values = None,
    tier: Values = None,
    sku: Values = None,
    category: Values = None,
    sales_rep: Values = None,
    source: Values = None,
    status: Annotated[
        list[str] | None, Query(description="Default: the sold statuses (not cancelled ...).")
    ] = None,
    currency: Values = None,
    convert_to: Annotated[
        str | None,
        Query(pattern=r"^[A-Za-z]{3}$", description="Convert with the configured rate table."),
    ] = None,
    compare: Annotated[bool, Query(description="Add the previous period of equal length.")] = False,
    top: Annotated[int | None, Query(description="Keep the top N groups by revenue.")] = None,
    fmt: FormatQuery = "json",
) -> Any:
    """Revenue, orders, units and average order value per period, by up to two dimensions;
    money per currency (or converted, stated in ``notes``). Reads the daily rollups."""
    filters = {
        "region": region,
        "tier": tier,
        "sku": sku,
        "category": category,
        "sales_rep": sales_rep,
        "source": source,
        "status": status,
    }
    params: dict[str, Any] = {
        "from": start.isoformat() if start else None,
        "to": to.isoformat() if to else None,
        "period": period,
        "group_by": group_by or [],
        "filters": {k: v for k, v in filters.items() if v},
        "currency": currency or [],
        "convert_to": convert_to,
        "compare": compare,
        "top": top,
    }
    prepared = prepare("sales", params, services.settings)
    file = await _answer(prepared, fmt, principal, exports)
    if file is not None:
        return file
    report = await Reports(services.sessions, services.settings).sales(principal, prepared.query)
    return sales_out(report)


@router.get("/operations", response_model=OperationsOut, responses=FILES)
async def operations_report(
    principal: Manager,
    services: ServicesDep,
    exports: ExportsDep,
    start: FromQuery = None,
    to: ToQuery = None,
    fmt: FormatQuery = "json",
) -> Any:
    """Stage times (p50/p90), approval lead time per level, on-time delivery, cancellations and
    refunds by reason, stuck orders (default: the last 90 days)."""
    params = {"from": start.isoformat() if start else None, "to": to.isoformat() if to else None}
    prepared = prepare("operations", params, services.settings)
    file = await _answer(prepared, fmt, principal, exports)
    if file is not None:
        return file
    report = await OperationsReports(services.sessions, services.settings).operations(
        principal, prepared.query
    )
    return operations_out(report)


@router.get("/customers", response_model=CustomersOut, responses=FILES)
async def customers_report(
    principal: Manager,
    services: ServicesDep,
    exports: ExportsDep,
    start: FromQuery = None,
    to: ToQuery = None,
    top: Annotated[int, Query(description="Top customers per currency (1-500).")] = 20,
    fmt: FormatQuery = "json",
) -> Any:
    """Top customers per currency, new vs returning, frequency and recency bands (RFM); by
    customer id only."""
    params = {
        "from": start.isoformat() if start else None,
        "to": to.isoformat() if to else None,
        "top": top,
    }
    prepared = prepare("customers", params, services.settings)
    file = await _answer(prepared, fmt, principal, exports)
    if file is not None:
        return file
    report = await OperationsReports(services.sessions, services.settings).customers(
        principal, prepared.query, top=top
    )
    return customers_out(report)


# --- background exports and subscriptions --------------------------------------------------------


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    report: Literal["sales", "operations", "customers"]
    format: Literal["csv", "xlsx", "png"]
    params: dict[str, JsonValue] = Field(
        default_factory=dict,
        description='The report\'s parameters as for GET /reports/{report}, e.g. {"from": '
        '"2026-01-01", "group_by": ["sku"], "filters": {"region": ["EU-West"]}}.',
    )


@router.post("/exports", status_code=status.HTTP_202_ACCEPTED, response_model=ExportView)
async def request_export(
    body: ExportRequest, principal: Manager, exports: ExportsDep
) -> ExportView:
    """Render a report in the background (a workflow); poll the export, then download it."""
    return await exports.request(principal, body.report, body.format, body.params)


@router.get("/exports", response_model=list[ExportView])
async def list_exports(
    principal: Manager,
    exports: ExportsDep,
    subscription_id: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[ExportView]:
    """Your exports, newest first (admins: everyone's)."""
    return await exports.exports(principal, subscription_id=subscription_id, limit=limit)


@router.get("/exports/{export_id}", response_model=ExportView)
async def get_export(export_id: ExportId, principal: Manager, exports: ExportsDep) -> ExportView:
    """An export's status and progress (rows written of the total)."""
    return await exports.get(principal, export_id)


@router.get("/exports/{export_id}/file", response_class=Response, responses=FILES)
async def download_export(export_id: ExportId, principal: Manager, exports: ExportsDep) -> Response:
    """The exported file (409 until the export is done)."""
    return _file(await exports.file(principal, export_id))


class SubscriptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    report: Literal["sales", "operations", "customers"] = "sales"
    format: Literal["csv", "xlsx", "png"] = "xlsx"
    params: dict[str, JsonValue] = Field(
        default_factory=dict, description="As for an export, without from/to (the last week)."
    )


@router.post("/subscriptions", status_code=status.HTTP_201_CREATED, response_model=SubscriptionView)
async def subscribe(
    body: SubscriptionRequest, principal: Manager, exports: ExportsDep
) -> SubscriptionView:
    """A weekly report (Mondays 06:00 UTC, the week just ended), stored for download."""
    return await exports.subscribe(principal, body.report, body.format, body.params)


@router.get("/subscriptions", response_model=list[SubscriptionView])
async def list_subscriptions(principal: Manager, exports: ExportsDep) -> list[SubscriptionView]:
    return await exports.subscriptions(principal)


@router.post(
    "/subscriptions/{subscription_id}/run",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=None,
)
async def run_subscription(
    subscription_id: ExportId, principal: Manager, exports: ExportsDep
) -> None:
    """Run the subscription once now (for the week just ended)."""
    await exports.run_subscription_now(principal, subscription_id)


@router.delete(
    "/subscriptions/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT, response_model=None
)
async def unsubscribe(subscription_id: ExportId, principal: Manager, exports: ExportsDep) -> None:
    await exports.unsubscribe(principal, subscription_id)


# --- forecasts and recommendations ---------------------------------------------------------------


def _analytics(services: ServicesDep) -> Analytics:
    return Analytics.of(services)


AnalyticsDep = Annotated[Analytics, Depends(_analytics)]


@router.get("/forecasts", response_model=list[ForecastView])
async def forecasts(
    principal: Manager,
    analytics: AnalyticsDep,
    sku: Values = None,
    region: Annotated[str, Query(max_length=64, description="'*': all regions.")] = ALL_REGIONS,
) -> list[ForecastView]:
    """Weekly demand forecasts with an 80 % interval and the backtest error (sMAPE)."""
    skus = [s.strip() for v in sku or [] for s in v.split(",") if s.strip()]
    return await analytics.forecasts(principal, skus, region)


@router.get("/replenishment", response_model=list[ReplenishmentView])
async def replenishment(
    principal: Manager,
    analytics: AnalyticsDep,
    weeks: Annotated[int, Query(ge=1, le=26, description="Weeks the stock must cover.")] = 4,
    only_low: Annotated[bool, Query(description="Only SKUs that need ordering.")] = True,
) -> list[ReplenishmentView]:
    """Low-stock suggestions: reorder the shortfall of available stock against the forecast's
    upper bound over ``weeks`` (the next analytics run refreshes the forecasts)."""
    return await analytics.replenishment(principal, cover_weeks=weeks, only_low=only_low)


@router.get("/rules/{sku}", response_model=list[RuleView])
async def rules_for_sku(sku: Sku, principal: Manager, analytics: AnalyticsDep) -> list[RuleView]:
    """Association rules that start from or lead to ``sku``."""
    return await analytics.rules_for(principal, sku)


@router.get("/recommendations", response_model=Recommendations)
async def recommendations(
    principal: Staff,
    analytics: AnalyticsDep,
    sku: Values = None,
    customer_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=20)] = 5,
) -> Recommendations:
    """ "Customers who order X also order Y": for a basket (``sku``) or a customer's last year."""
    skus = None if sku is None else [s.strip() for v in sku for s in v.split(",") if s.strip()]
    return await analytics.recommendations(
        principal, skus=skus, customer_id=customer_id, limit=limit
    )


# --- the catalogue ------------------------------------------------------------------------------


@products_router.get("", response_model=list[ProductView])
async def list_products(
    principal: Staff,
    analytics: AnalyticsDep,
    category: Annotated[str | None, Query(max_length=64)] = None,
) -> list[ProductView]:
    return await analytics.products(principal, category=category)


@products_router.get("/{sku}", response_model=ProductView)
async def get_product(sku: Sku, principal: Staff, analytics: AnalyticsDep) -> ProductView:
    return await analytics.product(principal, sku)


@products_router.put("/{sku}", response_model=ProductView)
async def put_product(
    sku: Sku, body: ProductIn, principal: CatalogueWriter, analytics: AnalyticsDep
) -> ProductView:
    """Create or replace a product's name and category (the reports' product dimension)."""
    return await analytics.put_product(principal, sku, body)
