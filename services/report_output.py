"""Every report as a table (CSV/XLSX) and a chart (PNG): the one place that decides their
columns, so the API's downloads and the background exports give the same files."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Literal

from services.report_files import (
    Chart,
    Column,
    Panel,
    Progress,
    Series,
    Table,
    render_png,
    write_csv,
    write_xlsx,
)
from services.report_operations import CustomersReport, OperationsReport
from services.reports import SalesReport

Format = Literal["csv", "xlsx", "png"]
FORMATS: tuple[Format, ...] = ("csv", "xlsx", "png")
CHART_GROUPS = 8  # a chart draws the largest groups; the table has them all


def render(fmt: Format, table: Table, chart: Chart, *, progress: Progress | None = None) -> bytes:
    if fmt == "png":
        return render_png(chart)
    out = io.BytesIO()
    (write_csv if fmt == "csv" else write_xlsx)(table, out, progress=progress)
    return out.getvalue()


# --- sales ----------------------------------------------------------------------------------------


def _group_label(groups: dict[str, str]) -> str:
    return " / ".join(v or "(none)" for v in groups.values()) or "all"


def sales_table(report: SalesReport) -> Table:
    q = report.query
    columns = [
        Column("period", "Period"),
        Column("period_start", "Period start", "date"),
        *(Column(d.value, d.value.replace("_", " ").capitalize()) for d in q.group_by),
        Column("currency", "Currency"),
        Column("orders", "Orders", "int"),
        Column("units", "Units", "int"),
        Column("revenue", "Revenue", "money"),
        Column("refunds", "Refunds", "money"),
        Column("net", "Net revenue", "money"),
        Column("average_order_value", "Average order value", "money"),
    ]
    if q.compare:
        columns += [
            Column("previous_revenue", "Previous period revenue", "money"),
            Column("change_pct", "Change", "percent"),
        ]

    def rows() -> Iterator[Sequence[object]]:
        for r in report.rows:
            f = r.figures
            row: list[object] = [
                r.period,
                r.period_start,
                *(r.groups[d.value] for d in q.group_by),
                r.currency,
                f.orders,
                f.units,
                f.revenue,
                f.refunds,
                f.net,
                f.average_order_value,
            ]
            if q.compare:
                prev = r.previous.revenue if r.previous is not None else None
                change = None if r.change_pct is None else round(r.change_pct, 1)
                row += [prev, change]
            yield row

    return Table(
        title=f"Sales {q.start.isoformat()} to {q.end.isoformat()} by {q.period.value}",
        columns=tuple(columns),
        rows=rows(),
        notes=tuple(report.notes),
    )


def sales_chart(report: SalesReport) -> Chart:
    """Revenue per period, one line per group (the largest ``CHART_GROUPS``), one panel per
    currency."""
    q = report.query
    periods = sorted({r.period_start for r in report.rows})
    labels = {r.period_start: r.period for r in report.rows}
    by_currency: dict[str, dict[str, dict[object, Decimal]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for r in report.rows:
        by_currency[r.currency][_group_label(r.groups)][r.period_start] = r.figures.revenue
    panels = []
    for currency in sorted(by_currency):
        groups = by_currency[currency]
        largest = sorted(groups, key=lambda g: (-sum(groups[g].values()), g))[:CHART_GROUPS]
        panels.append(
            Panel(
                title=currency,
                series=tuple(
                    Series(g, tuple(float(groups[g].get(p, 0)) for p in periods)) for g in largest
                ),
            )
        )
    by = " by " + " and ".join(d.value for d in q.group_by) if q.group_by else ""
    return Chart(
        title=f"Revenue per {q.period.value}{by}",
        x_label=q.period.value.capitalize(),
        y_label="Revenue ("
        + (q.convert_to or (panels[0].title if len(panels) == 1 else "per currency"))
        + ")",
        categories=tuple(labels[p] for p in periods),
        panels=tuple(panels),
        kind="bar" if len(periods) <= 2 else "line",
    )


# --- operations -----------------------------------------------------------------------------------


def operations_table(report: OperationsReport) -> Table:
    def rows() -> Iterator[Sequence[object]]:
        yield ("summary", "orders created", report.orders, None, None, None)
        for s in report.stages:
            yield ("stage time", s.label, s.orders, s.p50_hours, s.p90_hours, None)
        for lt in report.approval_levels:
            name = f"level {lt.level}" + (f" ({lt.name})" if lt.name else "")
            yield (
                "approval lead time",
                name,
                lt.decisions,
                round(lt.p50_seconds / 3600, 2),
                round(lt.p90_seconds / 3600, 2),
                None,
            )
        yield ("delivery", "on time", report.on_time, None, None, report.on_time_rate_pct)
        yield ("delivery", "late", report.late, None, None, None)
        for c in report.closures:
            yield ("closed unsold", f"{c.status}: {c.reason}", c.orders, None, None, c.rate_pct)
        yield ("refunds", "refunded orders", report.refunded_orders, None, None,
               report.refund_rate_pct)  # fmt: skip
        for stuck in report.stuck:
            yield ("stuck", stuck.status, stuck.orders, stuck.oldest_hours, None, None)

    return Table(
        title=f"Operations {report.range.start.isoformat()} to {report.range.end.isoformat()}",
        columns=(
            Column("section", "Section"),
            Column("item", "Item"),
            Column("orders", "Orders", "int"),
            Column("p50_hours", "p50 (hours; stuck: oldest)", "decimal"),
            Column("p90_hours", "p90 (hours)", "decimal"),
            Column("rate_pct", "Rate", "percent"),
        ),
        rows=rows(),
        notes=tuple(report.notes),
    )


def operations_chart(report: OperationsReport) -> Chart:
    stages = [s for s in report.stages if s.orders]
    return Chart(
        title="Order stage times",
        x_label="Stage",
        y_label="Hours",
        categories=tuple(s.stage for s in stages),
        panels=(
            Panel(
                "hours",
                (
                    Series("p50", tuple(s.p50_hours for s in stages)),
                    Series("p90", tuple(s.p90_hours for s in stages)),
                ),
            ),
        )
        if stages
        else (),
        kind="bar",
    )


# --- customers ------------------------------------------------------------------------------------


def customers_table(report: CustomersReport) -> Table:
    def rows() -> Iterator[Sequence[object]]:
        yield ("summary", "customers", None, None, report.customers, None, None)
        yield ("summary", "new", None, None, report.new_customers, None, None)
        yield ("summary", "returning", None, None, report.returning_customers, None, None)
        for band, n in report.frequency:
            yield ("frequency", band, None, None, n, None, None)
        for b in report.bands:
            yield ("recency x frequency", f"{b.recency} / {b.frequency}", None, None,
                   b.customers, None, None)  # fmt: skip
        for t in report.top:
            yield ("top customer", t.customer_id, t.currency, t.orders, None, t.revenue,
                   t.last_order)  # fmt: skip

    return Table(
        title=f"Customers {report.range.start.isoformat()} to {report.range.end.isoformat()}",
        columns=(
            Column("section", "Section"),
            Column("item", "Item"),
            Column("currency", "Currency"),
            Column("orders", "Orders", "int"),
            Column("customers", "Customers", "int"),
            Column("revenue", "Revenue", "money"),
            Column("last_order", "Last order", "datetime"),
        ),
        rows=rows(),
        notes=tuple(report.notes),
    )


def customers_chart(report: CustomersReport) -> Chart:
    return Chart(
        title="Customers by purchase frequency",
        x_label="Orders in the range",
        y_label="Customers",
        categories=tuple(band for band, _ in report.frequency) if report.customers else (),
        panels=(
            Panel(
                "customers", (Series("customers", tuple(float(n) for _, n in report.frequency)),)
            ),
        )
        if report.customers
        else (),
        kind="bar",
    )
