"""The sales report: revenue, orders, units and average order value per period and by up to
two dimensions, with filters and the previous period for comparison.

It reads the rollups (services.sales_sql), so its cost grows with days x dimension values, not
with orders. ``basis="raw"`` runs the same query on ``orders``/``order_lines`` instead (the
benchmark's comparison, and the tests' proof that both agree). Money is per currency unless
the query converts it with the configured rate table, which the report then states.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, NamedTuple

from config import Settings
from domain.reporting import Dimension, period_label, periods_between, previous_range
from services import sales_sql
from services.auth import Principal, Role
from services.errors import Kind, ServiceError, invalid
from services.sales_query import Basis, SalesQuery, Totals, parse_sales_query

__all__ = ["Reports", "SalesQuery", "SalesReport", "SalesRow", "Totals", "parse_sales_query"]


class SalesRow(NamedTuple):
    """One report row (a named tuple: a report holds thousands of them)."""

    period: str
    period_start: date
    groups: dict[str, str]
    currency: str
    figures: Totals
    previous: Totals | None = None

    @property
    def change_pct(self) -> float | None:
        """Revenue change against the previous period in percent (None without one)."""
        if self.previous is None or not self.previous.revenue:
            return None
        return float((self.figures.revenue - self.previous.revenue) / self.previous.revenue * 100)


@dataclass(frozen=True)
class SalesReport:
    query: SalesQuery
    rows: list[SalesRow]
    totals: dict[str, Totals]  # per currency
    notes: list[str]
    basis: Basis = "rollup"


class Reports:
    """Report queries, for managers and admins."""

    def __init__(self, sessions: Any, settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings

    @staticmethod
    def allow(principal: Principal) -> None:
        if not principal.has_any({Role.MANAGER, Role.ADMIN}):
            raise ServiceError(Kind.FORBIDDEN, "reports need the role manager")

    async def sales(
        self, principal: Principal, query: SalesQuery, *, basis: Basis = "rollup"
    ) -> SalesReport:
        self.allow(principal)
        async with self._sessions() as session:
            only = None
            if query.top and not query.convert_to:
                # Rank the groups in SQL first, then fetch per period only the top ones.
                only = await sales_sql.ranked(
                    session, query, query.start, query.end, basis, query.top
                )
            current = await sales_sql.grouped(
                session, query, query.start, query.end, basis, only=only
            )
            previous: dict[tuple[Any, ...], Totals] = {}
            if query.compare:
                p_start, p_end = previous_range(query.start, query.end)
                previous = await sales_sql.grouped(session, query, p_start, p_end, basis, only=only)
        return self._assemble(query, current, previous, basis, ranked=only is not None)

    def _assemble(
        self,
        query: SalesQuery,
        current: dict[tuple[Any, ...], Totals],
        previous: dict[tuple[Any, ...], Totals],
        basis: Basis,
        *,
        ranked: bool = False,
    ) -> SalesReport:
        """Report rows in (period, groups, currency) order; ``ranked``: ``current`` holds only
        the top groups already (ranked in SQL)."""
        notes = _notes(query, self._settings)
        if query.convert_to:
            current = self._convert(current, query.convert_to)
            previous = self._convert(previous, query.convert_to)
        keep = _top_groups(current, query.top) if query.top and not ranked else None
        periods = periods_between(query.start, query.end, query.period)
        index = {p: i for i, p in enumerate(periods)}
        prev_index: dict[date, int] = {}
        if query.compare:
            p_start, p_end = previous_range(query.start, query.end)
            prev_index = {p: i for i, p in enumerate(periods_between(p_start, p_end, query.period))}
        prev_by_slot: dict[tuple[Any, ...], Totals] = {}
        for (start, groups, currency), prev_totals in previous.items():
            slot = prev_index.get(start)
            if slot is not None:
                prev_by_slot[(slot, groups, currency)] = prev_totals
        rows: list[SalesRow] = []
        sums: dict[str, list[Any]] = {}
        names = [d.value for d in query.group_by]
        labels: dict[date, str] = {}
        empty = Totals()
        for key in sorted(current):
            start, groups, currency = key
            if keep is not None and groups not in keep:
                continue
            figures = current[key]
            label = labels.get(start)
            if label is None:
                label = labels[start] = period_label(start, query.period)
            prev = None
            if query.compare:
                prev = prev_by_slot.get((index.get(start), groups, currency), empty)
            rows.append(
                SalesRow(
                    period=label,
                    period_start=start,
                    groups=dict(zip(names, groups, strict=True)),
                    currency=currency,
                    figures=figures,
                    previous=prev,
                )
            )
            t = sums.setdefault(currency, [0, 0, Decimal(0), Decimal(0)])
            t[0] += figures.orders
            t[1] += figures.units
            t[2] += figures.revenue
            t[3] += figures.refunds
        totals = {c: Totals(*t) for c, t in sums.items()}
        return SalesReport(query=query, rows=rows, totals=totals, notes=notes, basis=basis)

    def _convert(
        self, figures: dict[tuple[Any, ...], Totals], target: str
    ) -> dict[tuple[Any, ...], Totals]:
        rates = {**self._settings.report_rates, self._settings.report_rate_base: Decimal(1)}
        out: dict[tuple[Any, ...], Totals] = defaultdict(Totals)
        for (start, groups, currency), t in figures.items():
            if currency not in rates:
                raise invalid("convert_to", f"no rate for {currency}, which the report holds")
            factor = rates[currency] / rates[target]
            key = (start, groups, target)
            out[key] = out[key].plus(t.orders, t.units, t.revenue * factor, t.refunds * factor)
        return dict(out)


def _top_groups(figures: dict[tuple[Any, ...], Totals], top: int) -> set[tuple[str, ...]]:
    """The ``top`` groups by revenue over the whole range (for the ranking only, amounts in
    different currencies are added as numbers; a tie goes to units, then the group's name)."""
    revenue: dict[tuple[str, ...], tuple[Decimal, int]] = {}
    for (_, groups, _), t in figures.items():
        r, u = revenue.get(groups, (Decimal(0), 0))
        revenue[groups] = (r + t.revenue, u + t.units)
    ranked = sorted(revenue, key=lambda g: (-revenue[g][0], -revenue[g][1], g))
    return set(ranked[:top])


def _notes(query: SalesQuery, settings: Settings) -> list[str]:
    notes = [
        "Orders count on the UTC day they were created, under their current status.",
        "Statuses: "
        + (
            ", ".join(query.filters[Dimension.STATUS])
            if Dimension.STATUS in query.filters
            else "sold orders only (cancelled, rejected, failed and needs-attention left out)"
        )
        + ".",
    ]
    if query.convert_to:
        as_of = f" as of {settings.report_rates_as_of}" if settings.report_rates_as_of else ""
        rates = ", ".join(f"{c} {r}" for c, r in sorted(settings.report_rates.items()))
        notes.append(
            f"Money converted to {query.convert_to} with the configured rates{as_of} "
            f"({settings.report_rate_base} per unit: {rates})."
        )
    else:
        notes.append("Money is per currency; never summed across currencies.")
    if query.by_line:
        notes.append(
            "Per-SKU figures: 'orders' counts the orders holding the SKU (an order with two "
            "SKUs counts under each); refunds are shared over an order's lines by value."
        )
    return notes
