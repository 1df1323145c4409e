"""The manager's dashboard: its figures for a known set of orders (created through the API,
driven by the simulators), the page with its SVG charts, the CSV export, and who may see it."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from api.app import create_app
from domain.status import OrderStatus
from services.auth import Principal, Role
from services.dashboard import Dashboard, lead_times_of, percentile
from tests.api.conftest import Api, open_api, services_for
from tests.api.flows import carrier, create, get, wait_status
from tests.conftest import Stack
from tests.console import ConsoleClient, add_user, sign_in_http
from tests.factories import order_payload
from tests.helpers import eventually

S = OrderStatus
MANAGER = Principal(name="boss-manager", roles=frozenset({Role.MANAGER}))
TRICKY_REGION = "=SUM(A1)"  # a spreadsheet would run this: the export must defuse it


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[Api]:
    async with open_api(stack) as opened:
        yield opened


@asynccontextmanager
async def console(
    app: Any, username: str, roles: list[str], stack: Stack
) -> AsyncIterator[ConsoleClient]:
    await add_user(stack.sessions, username, roles)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://orderly.test") as http:
        yield await sign_in_http(http, username)


def _at(order: dict[str, Any], kind: str) -> datetime:
    return next(datetime.fromisoformat(e["at"]) for e in order["timeline"] if e["type"] == kind)


async def _known_orders(api: Api) -> dict[str, dict[str, Any]]:
    """Four orders: delivered (EUR), VIP in another region (USD), cancelled (EUR), and a
    big one approved at level 1 (EUR)."""
    vip = order_payload(currency="USD")
    vip["customer"]["region"] = TRICKY_REGION
    made = await api.http.post(
        "/customers",
        json={**vip["customer"], "tier": "vip", "region": TRICKY_REGION},
        headers=api.auth("support-1"),
    )
    assert made.status_code == 201, made.text
    big = order_payload(lines=[{"sku": "WIDGET-1", "quantity": 100, "unit_price": "60.00"}])
    await api.stack.bureau.set_profile(
        big["customer"]["id"], score=900, credit_limit=Decimal(1_000_000)
    )
    orders = {
        "delivered": await create(api, order_payload()),
        "vip": await create(api, vip),
        "cancelled": await create(api, order_payload()),
        "approved": await create(api, big),
    }
    await wait_status(api, orders["delivered"]["id"], S.FULFILLING)
    await carrier(api, orders["delivered"]["id"], "picked_up", "in_transit", "delivered")
    await wait_status(api, orders["cancelled"]["id"], S.FULFILLING)
    cancel = await api.http.post(
        f"/orders/{orders['cancelled']['id']}/cancel",
        json={"reason": "changed mind"},
        headers=api.auth("support-1"),
    )
    assert cancel.status_code == 200, cancel.text
    await wait_status(api, orders["approved"]["id"], S.AWAITING_APPROVAL)
    approve = await api.http.post(
        f"/orders/{orders['approved']['id']}/approve", json={}, headers=api.auth("lead-1")
    )
    assert approve.status_code in (200, 202), approve.text
    await wait_status(api, orders["vip"]["id"], S.FULFILLING)
    await wait_status(api, orders["approved"]["id"], S.FULFILLING)
    await wait_status(api, orders["delivered"]["id"], S.COMPLETED)
    return {k: await get(api, v["id"]) for k, v in orders.items()}


async def test_figures_match_the_orders_and_the_page_shows_them(api: Api) -> None:
    orders = await _known_orders(api)
    services = services_for(api.stack)

    # The projection of the last events may trail the API's answer by a moment.
    async def figures() -> Any:
        return await Dashboard(services).figures(MANAGER, 7)

    f = await eventually(
        figures,
        lambda f: f.delivery.on_time == 1 and f.lead_times and f.orders == 4,
        what="dashboard figures",
    )
    today = datetime.now(UTC).date()
    assert f.days == 7
    assert len(f.per_day) == 7
    assert f.per_day[-1].day == today
    assert f.per_day[-1].orders == 4
    assert sum(d.orders for d in f.per_day) == 4
    # Revenue per currency, never summed; the cancelled order counts as an order, not revenue.
    assert f.per_day[-1].revenue == {
        "EUR": Decimal("39.98") + Decimal("6000"),
        "USD": Decimal("39.98"),
    }
    regions = {g.name: (g.orders, g.revenue) for g in f.by_region}
    assert regions == {
        "EU-WEST": (3, {"EUR": Decimal("6039.98")}),
        TRICKY_REGION: (1, {"USD": Decimal("39.98")}),
    }
    assert {g.name: g.orders for g in f.by_tier} == {"standard": 3, "vip": 1}
    assert f.currencies == ["EUR", "USD"]
    # Approval lead time: one decision at level 1, as long as the order's own timeline says.
    [lead] = f.lead_times
    approved = orders["approved"]
    waited = (_at(approved, "approved") - _at(approved, "approval_requested")).total_seconds()
    assert (lead.level, lead.name, lead.decisions) == (1, "team_lead", 1)
    assert abs(lead.p50_seconds - waited) < 0.01
    assert abs(lead.p90_seconds - waited) < 0.01
    # Delivered well within the SLA; the others are not due yet.
    assert (f.delivery.on_time, f.delivery.late, f.delivery.overdue) == (1, 0, 0)
    assert f.delivery.rate == 1.0

    app = create_app(api.stack.settings, services=services)
    async with console(app, "mia-manager", ["manager"], api.stack) as mgr:
        answer = await mgr.get("/console/dashboard?days=7")
        assert answer.status_code == 200, answer.text[:500]
        html = answer.text
        assert html.count("<svg") == 8
        assert html.count('role="img"') == 8
        assert '<title id="chart-orders_per_day-title">Orders per day</title>' in html
        assert re.search(r'<dd data-figure="orders">\s*4\s*</dd>', html)
        assert "100 % within 7 days of confirmation" in html
        assert "<rect" in html
        assert "no orders in this period" not in html
        assert TRICKY_REGION in html  # as text (escaped where needed), in the table
        # The figures as a table for screen readers, with headers.
        assert '<th scope="col"' in html
        assert "6,039.98" in html  # revenue by region, EUR
        assert 'value="7" selected' in html

        export = await mgr.get("/console/dashboard/export.csv?chart=orders_by_region&days=7")
        assert export.status_code == 200
        assert export.headers["content-type"].startswith("text/csv")
        assert "attachment" in export.headers["content-disposition"]
        table = list(csv.reader(io.StringIO(export.text.lstrip("\ufeff"))))
        assert table[0] == ["Region", "Orders"]
        assert sorted(table[1:]) == [["'" + TRICKY_REGION, "1"], ["EU-WEST", "3"]]
        money = await mgr.get("/console/dashboard/export.csv?chart=revenue_per_day&days=7")
        rows = list(csv.reader(io.StringIO(money.text.lstrip("\ufeff"))))
        assert rows[0] == ["Day", "EUR", "USD"]
        assert rows[-1] == [today.isoformat(), "6039.98", "39.98"]
        lead_csv = await mgr.get("/console/dashboard/export.csv?chart=approval_lead_times")
        lead_rows = list(csv.reader(io.StringIO(lead_csv.text.lstrip("\ufeff"))))
        assert lead_rows[0][-1] == "Decisions"
        assert lead_rows[1][0] == "Level 1 · team_lead"
        assert lead_rows[1][-1] == "1"

        partial = await mgr.get("/console/dashboard?days=30", headers={"HX-Request": "true"})
        assert partial.status_code == 200
        assert partial.text.lstrip().startswith('<div id="dashboard-body">')
        assert "<html" not in partial.text


async def test_empty_period_bad_input_and_who_may_see_it(bare_stack: Stack) -> None:
    app = create_app(bare_stack.settings, services=services_for(bare_stack))
    async with console(app, "max-manager", ["manager"], bare_stack) as mgr:
        empty = await mgr.get("/console/dashboard")
        assert empty.status_code == 200
        assert empty.text.count("<svg") == 8
        # Every chart says so, in the SVG and beside it.
        assert empty.text.count("no orders in this period") >= 16
        assert 'value="30" selected' in empty.text
        bad = await mgr.get("/console/dashboard?days=5")
        assert bad.status_code == 422
        assert "days: must be one of 7, 30, 90" in bad.text
        unknown = await mgr.get("/console/dashboard/export.csv?chart=secrets")
        assert unknown.status_code == 422
        assert "chart: must be one of" in unknown.text
        csv_empty = await mgr.get("/console/dashboard/export.csv?chart=orders_by_tier&days=90")
        assert csv_empty.status_code == 200
        assert list(csv.reader(io.StringIO(csv_empty.text.lstrip("\ufeff")))) == [
            ["Customer tier", "Orders"]
        ]
    async with console(app, "sue-support", ["support"], bare_stack) as support:
        for path in ("/console/dashboard", "/console/dashboard/export.csv?chart=orders_per_day"):
            refused = await support.get(path)
            assert refused.status_code == 403, path
            assert "<svg" not in refused.text
    async with console(app, "ann-admin", ["admin"], bare_stack) as admin:
        assert (await admin.get("/console/dashboard")).status_code == 200


def test_lead_time_ends_at_the_approval_that_reaches_the_quorum() -> None:
    def at(minutes: int) -> datetime:
        return datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)

    def event(kind: str, minutes: int, **payload: Any) -> SimpleNamespace:
        return SimpleNamespace(type=kind, at=at(minutes), payload=payload)

    chain = {"levels": [{"level": 1, "name": "lead", "quorum": 2}, {"level": 2, "name": "mgr"}]}
    first = [
        event("approval_chain_decided", 0, **chain),
        event("approval_requested", 0, level=1),
        event("approved", 10, level=1),  # one of two
        event("approved", 30, level=1),  # the quorum: level 1 decided after 30 min
        event("approval_requested", 30, level=2),
        event("level_rejected", 90, level=2),  # decided after 60 min
    ]
    second = [
        event("approval_chain_decided", 0, **chain),
        event("approval_requested", 0, level=1),
        event("changes_requested", 50, level=1),  # a decision too
        event("approval_requested", 60, level=1),  # waits again: not decided yet
    ]
    one, two = lead_times_of([first, second])
    assert (one.level, one.name, one.decisions) == (1, "lead", 2)
    assert one.p50_seconds == 40 * 60  # between 30 and 50 minutes
    assert one.p90_seconds == 48 * 60
    assert (two.level, two.decisions, two.p50_seconds) == (2, 1, 3600)
    assert percentile([5.0], 90) == 5.0
