"""The sales report reads the rollups and gives the same figures as the raw rows; bad queries
get an error naming the parameter."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from db.session import SessionFactory
from domain.status import OrderStatus
from services.auth import Principal, Role
from services.errors import ServiceError
from services.reports import Reports, parse_sales_query
from tests.conftest import make_settings
from tests.test_rollup import _project, _received, _step

MANAGER = Principal(name="mgr", roles=frozenset({Role.MANAGER}))
SUPPORT = Principal(name="sup", roles=frozenset({Role.SUPPORT}))


async def _orders(sessions: SessionFactory) -> None:
    a, logged = _received("SO-S1", customer_id="C-S1")  # 50 EUR, 3 units
    await _project(sessions, a, logged)
    b, logged = _received("SO-S2", customer_id="C-S2", currency="USD", tier="vip")
    await _project(sessions, b, logged)
    c, logged = _received("SO-S3", customer_id="C-S3")
    await _project(sessions, c, logged)
    await _project(sessions, c, _step(c, OrderStatus.CANCELLED))  # not sold


async def test_sales_by_month_and_tier_from_rollup_equal_raw(
    sessions: SessionFactory, database_url: str
) -> None:
    await _orders(sessions)
    settings = make_settings(database_url)
    reports = Reports(sessions, settings)
    query = parse_sales_query(
        start=date(2026, 11, 1),
        end=date(2026, 12, 1),
        group_by=["tier"],
        period="month",
        settings=settings,
    )
    rollup = await reports.sales(MANAGER, query)
    raw = await reports.sales(MANAGER, query, basis="raw")
    got = [(r.period, r.groups, r.currency, r.figures) for r in rollup.rows]
    assert got == [(r.period, r.groups, r.currency, r.figures) for r in raw.rows]
    assert [(p, g, c, f.orders, f.units, f.revenue) for p, g, c, f in got] == [
        ("2026-11", {"tier": "standard"}, "EUR", 1, 3, Decimal(50)),
        ("2026-11", {"tier": "vip"}, "USD", 1, 3, Decimal(50)),
    ]
    assert rollup.totals["EUR"].average_order_value == Decimal("50.00")

    by_sku = parse_sales_query(
        start=date(2026, 11, 1),
        end=date(2026, 12, 1),
        group_by=["sku"],
        period="week",
        currency=["EUR"],
        settings=settings,
    )
    rows = (await reports.sales(MANAGER, by_sku)).rows
    raw_rows = (await reports.sales(MANAGER, by_sku, basis="raw")).rows
    assert [(r.period, r.groups["sku"], r.figures.units) for r in rows] == [
        ("2026-W49", "GADGET-9", 1),
        ("2026-W49", "WIDGET-1", 2),
    ]
    assert [r.figures for r in rows] == [r.figures for r in raw_rows]

    with pytest.raises(ServiceError):
        await reports.sales(SUPPORT, query)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"group_by": ["planet"]}, "group_by"),
        ({"group_by": ["region", "tier", "sku"]}, "group_by"),
        ({"start": date(2020, 1, 1), "end": date(2026, 1, 2)}, "to"),
        ({"start": date(2026, 2, 1), "end": date(2026, 1, 1)}, "to"),
        ({"convert_to": "EUR"}, "convert_to"),
        ({"period": "fortnight"}, "period"),
        ({"top": 5}, "top"),
    ],
)
def test_bad_queries_name_the_parameter(kwargs: dict, field: str, database_url: str) -> None:
    values = {"start": date(2026, 1, 1), "end": date(2026, 2, 1), **kwargs}
    with pytest.raises(ServiceError) as err:
        parse_sales_query(settings=make_settings(database_url), **values)
    assert err.value.extra["fields"][0]["field"] == field


async def test_top_groups_ranked_in_sql_are_those_the_whole_report_ranks_first(
    sessions: SessionFactory, database_url: str
) -> None:
    from datetime import UTC, datetime

    from config import load_policy
    from services.demo_seed import SeedOptions, seed_demo
    from workflows.client import order_policy

    settings = make_settings(database_url)
    policy = order_policy(settings, load_policy(settings.approval_policy_file))
    now = datetime(2026, 12, 1, tzinfo=UTC)
    await seed_demo(sessions, SeedOptions(orders=400, months=3, seed=5), policy, now=now)
    reports = Reports(sessions, settings)
    cases = [
        (["sku"], date(2026, 9, 1), date(2026, 12, 1)),  # whole months: ranked by month
        (["sku"], date(2026, 9, 10), date(2026, 11, 20)),  # days, a month, days
        (["region", "tier"], date(2026, 9, 1), date(2026, 12, 1)),
    ]
    for group_by, start, end in cases:
        every = parse_sales_query(
            start=start, end=end, period="week", group_by=group_by, settings=settings
        )
        top = parse_sales_query(
            start=start, end=end, period="week", group_by=group_by, top=5, settings=settings
        )
        for basis in ("rollup", "raw"):
            whole = await reports.sales(MANAGER, every, basis=basis)  # type: ignore[arg-type]
            ranks: dict[tuple[str, ...], tuple[Decimal, int]] = {}
            for r in whole.rows:
                g = tuple(r.groups.values())
                revenue, units = ranks.get(g, (Decimal(0), 0))
                ranks[g] = (revenue + r.figures.revenue, units + r.figures.units)
            first = sorted(ranks, key=lambda g: (-ranks[g][0], -ranks[g][1], g))[:5]
            expected = [r for r in whole.rows if tuple(r.groups.values()) in first]
            got = await reports.sales(MANAGER, top, basis=basis)  # type: ignore[arg-type]
            assert len(first) == 5
            assert [(r.period, r.groups, r.currency, r.figures) for r in got.rows] == [
                (r.period, r.groups, r.currency, r.figures) for r in expected
            ], (group_by, basis)


async def test_per_sku_months_and_quarters_from_the_monthly_rollup_equal_raw(
    sessions: SessionFactory, database_url: str
) -> None:
    """Whole months come from sales_monthly_sku, the edge days from sales_daily_sku."""
    from datetime import UTC, datetime

    from config import load_policy
    from services.demo_seed import SeedOptions, seed_demo
    from workflows.client import order_policy

    settings = make_settings(database_url)
    policy = order_policy(settings, load_policy(settings.approval_policy_file))
    now = datetime(2026, 12, 1, tzinfo=UTC)
    await seed_demo(sessions, SeedOptions(orders=300, months=5, seed=11), policy, now=now)
    reports = Reports(sessions, settings)
    for period, group_by, start, end in [
        ("month", ["sku"], date(2026, 7, 17), date(2026, 11, 9)),
        ("quarter", ["category", "region"], date(2026, 7, 1), date(2026, 12, 1)),
        ("month", ["category"], date(2026, 8, 3), date(2026, 8, 28)),  # inside one month
    ]:
        query = parse_sales_query(
            start=start, end=end, period=period, group_by=group_by, compare=True,
            settings=settings,
        )  # fmt: skip
        rollup = await reports.sales(MANAGER, query)
        raw = await reports.sales(MANAGER, query, basis="raw")
        assert rollup.rows, (period, group_by)
        got = [(r.period, r.groups, r.currency, r.figures, r.previous) for r in rollup.rows]
        assert got == [(r.period, r.groups, r.currency, r.figures, r.previous) for r in raw.rows]


async def test_per_sku_weeks_from_the_weekly_rollup_equal_raw(
    sessions: SessionFactory, database_url: str
) -> None:
    """Whole ISO weeks come from sales_weekly_sku (no region or tier asked), the edge days from
    sales_daily_sku; a query by region or tier reads the daily table; all equal the raw rows."""
    from datetime import UTC, datetime

    from config import load_policy
    from services.demo_seed import SeedOptions, seed_demo
    from services.sales_sql import SalesWeeklySkuRow, _pieces
    from workflows.client import order_policy

    settings = make_settings(database_url)
    policy = order_policy(settings, load_policy(settings.approval_policy_file))
    now = datetime(2026, 12, 1, tzinfo=UTC)
    await seed_demo(sessions, SeedOptions(orders=300, months=4, seed=5), policy, now=now)
    reports = Reports(sessions, settings)
    cases = [  # (group_by, filters, weekly table read)
        (["sku"], {}, True),
        (["category"], {"status": ["completed", "delivered", "cancelled"]}, True),
        (["sku"], {"category": ["printing"]}, True),
        (["sku", "region"], {}, False),
        (["category"], {"tier": ["standard"]}, False),
    ]
    for group_by, filters, weekly in cases:
        # Wednesday to Friday: edge days on both sides of the whole weeks.
        query = parse_sales_query(
            start=date(2026, 8, 12), end=date(2026, 11, 20), period="week", group_by=group_by,
            filters=filters, compare=True, settings=settings,
        )  # fmt: skip
        tables = [t for _, _, t in _pieces(query, query.start, query.end, "rollup")]
        assert (SalesWeeklySkuRow in tables) is weekly, (group_by, filters)
        rollup = await reports.sales(MANAGER, query)
        raw = await reports.sales(MANAGER, query, basis="raw")
        assert rollup.rows, (group_by, filters)
        got = [(r.period, r.groups, r.currency, r.figures, r.previous) for r in rollup.rows]
        assert got == [(r.period, r.groups, r.currency, r.figures, r.previous) for r in raw.rows]
    top = parse_sales_query(
        start=date(2026, 8, 12), end=date(2026, 11, 20), period="week", group_by=["sku"], top=3,
        settings=settings,
    )  # fmt: skip
    ranked = await reports.sales(MANAGER, top)
    assert len({r.groups["sku"] for r in ranked.rows}) == 3
    raw_top = await reports.sales(MANAGER, top, basis="raw")
    assert [(r.period, r.groups, r.figures) for r in ranked.rows] == [
        (r.period, r.groups, r.figures) for r in raw_top.rows
    ]


def test_week_segments_cut_whole_iso_weeks_from_the_edge_days() -> None:
    from services.sales_sql import week_segments

    # 2026-08-12 is a Wednesday, 2026-08-17 and 2026-11-16 Mondays.
    assert week_segments(date(2026, 8, 12), date(2026, 11, 20)) == [
        (date(2026, 8, 12), date(2026, 8, 17), False),
        (date(2026, 8, 17), date(2026, 11, 16), True),
        (date(2026, 11, 16), date(2026, 11, 20), False),
    ]
    assert week_segments(date(2026, 8, 17), date(2026, 8, 31)) == [
        (date(2026, 8, 17), date(2026, 8, 31), True)
    ]
    assert week_segments(date(2026, 8, 12), date(2026, 8, 20)) == [  # no whole week
        (date(2026, 8, 12), date(2026, 8, 20), False)
    ]
    assert week_segments(date(2026, 12, 30), date(2027, 1, 11)) == [  # over a year's end
        (date(2026, 12, 30), date(2027, 1, 4), False),
        (date(2027, 1, 4), date(2027, 1, 11), True),
    ]


def test_month_segments_cut_whole_months_from_the_edge_days() -> None:
    from services.sales_sql import month_segments

    assert month_segments(date(2026, 1, 15), date(2026, 4, 10)) == [
        (date(2026, 1, 15), date(2026, 2, 1), False),
        (date(2026, 2, 1), date(2026, 4, 1), True),
        (date(2026, 4, 1), date(2026, 4, 10), False),
    ]
    assert month_segments(date(2025, 12, 1), date(2026, 1, 1)) == [
        (date(2025, 12, 1), date(2026, 1, 1), True)
    ]
    assert month_segments(date(2026, 3, 2), date(2026, 3, 30)) == [
        (date(2026, 3, 2), date(2026, 3, 30), False)
    ]
    assert month_segments(date(2026, 3, 2), date(2026, 4, 3)) == [  # no whole month
        (date(2026, 3, 2), date(2026, 4, 3), False)
    ]
    assert month_segments(date(2026, 12, 5), date(2027, 2, 1)) == [
        (date(2026, 12, 5), date(2027, 1, 1), False),
        (date(2027, 1, 1), date(2027, 2, 1), True),
    ]
