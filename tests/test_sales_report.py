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
