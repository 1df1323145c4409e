"""Reports through the API on both databases: orders run to completion on a real worker, then
the sales, operations and customers reports, their CSV/XLSX/PNG files, a background export, a
weekly subscription run once, the catalogue's categories; bad queries get 422 naming the
parameter."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from python_calamine import CalamineWorkbook
from sqlalchemy import update

from api.auth import Role, create_api_key
from db.models import ApiKeyRow
from domain.status import OrderStatus
from tests.api.conftest import Api
from tests.api.flows import carrier, create, wait_status
from tests.factories import order_payload
from tests.helpers import eventually

S = OrderStatus
PNG = b"\x89PNG\r\n\x1a\n"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
async def manager(api: Api) -> dict[str, str]:
    key = await create_api_key(api.stack.sessions, "sales-manager", [Role.MANAGER], [])
    async with api.stack.sessions.begin() as session:  # where the weekly report goes
        await session.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.principal == "sales-manager")
            .values(email="sales@example.com")
        )
    return {"Authorization": f"Bearer {key}"}


async def _completed(api: Api, customer_id: str, lines: list[dict[str, Any]]) -> str:
    order = await create(api, order_payload(customer_id=customer_id, lines=lines))
    await wait_status(api, order["id"], S.FULFILLING)
    await carrier(api, order["id"], "picked_up", "in_transit", "delivered")
    await wait_status(api, order["id"], S.COMPLETED)
    return str(order["id"])


def _range() -> dict[str, str]:
    today = datetime.now(UTC).date()
    return {
        "from": (today - timedelta(days=3)).isoformat(),
        "to": (today + timedelta(days=1)).isoformat(),
    }


async def _orders(api: Api) -> None:
    widget = {"sku": "WIDGET-1", "quantity": 2, "unit_price": "19.99"}
    gadget = {"sku": "GADGET-2", "quantity": 1, "unit_price": "5.00"}
    await _completed(api, "C-R1", [widget, gadget])
    await _completed(api, "C-R2", [widget])
    cancelled = await create(api, order_payload(customer_id="C-R3", lines=[widget]))
    response = await api.http.post(
        f"/orders/{cancelled['id']}/cancel",
        json={"reason": "customer changed their mind"},
        headers=api.auth("support-1"),
    )
    assert response.status_code in (200, 202), response.text
    await wait_status(api, cancelled["id"], S.CANCELLED)


async def test_reports_exports_and_subscriptions(api: Api, manager: dict[str, str]) -> None:
    await _orders(api)
    rng = _range()

    # The catalogue: a category regroups the SKU's lines, past ones included.
    put = await api.http.put(
        "/products/WIDGET-1",
        json={"name": "Widget", "category": "widgets"},
        headers=api.auth("support-1"),
    )
    assert put.status_code == 200, put.text

    sales = await api.http.get(
        "/reports/sales",
        params={**rng, "group_by": "category", "period": "month"},
        headers=manager,
    )
    assert sales.status_code == 200, sales.text
    body = sales.json()
    by_category = {}
    for row in body["rows"]:
        got = by_category.setdefault(row["groups"]["category"], [0, 0, Decimal(0)])
        got[0] += row["orders"]
        got[1] += row["units"]
        got[2] += Decimal(row["revenue"])
    assert by_category == {
        "widgets": [2, 4, Decimal("79.96")],
        "uncategorised": [1, 1, Decimal("5.00")],
    }
    assert [(t["currency"], t["orders"]) for t in body["totals"]] == [("EUR", 3)]
    assert any("per currency" in n for n in body["notes"])
    # By week over whole ISO weeks (read from the weekly per-SKU rollup): regrouped too.
    monday = datetime.now(UTC).date() - timedelta(days=datetime.now(UTC).weekday())
    weeks = {
        "from": (monday - timedelta(days=7)).isoformat(),
        "to": (monday + timedelta(days=7)).isoformat(),
    }
    weekly = await api.http.get(
        "/reports/sales",
        params={**weeks, "group_by": "category", "period": "week"},
        headers=manager,
    )
    assert weekly.status_code == 200, weekly.text
    per_week = {}
    for row in weekly.json()["rows"]:
        got = per_week.setdefault(row["groups"]["category"], [0, 0, Decimal(0)])
        got[0] += row["orders"]
        got[1] += row["units"]
        got[2] += Decimal(row["revenue"])
    assert per_week == by_category

    plain = (
        await api.http.get("/reports/sales", params={**rng, "period": "day"}, headers=manager)
    ).json()
    assert sum(r["orders"] for r in plain["rows"]) == 2  # the cancelled order is not sold
    assert sum(Decimal(r["revenue"]) for r in plain["rows"]) == Decimal("84.96")

    # Files: CSV with a header, typed XLSX, a PNG chart.
    got_csv = await api.http.get(
        "/reports/sales", params={**rng, "group_by": "sku", "format": "csv"}, headers=manager
    )
    assert got_csv.status_code == 200, got_csv.text
    assert got_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in got_csv.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(got_csv.content.decode("utf-8-sig"))))
    header = next(r for r in rows if r and r[0] == "Period")
    sku_col = header.index("Sku")
    units_col = header.index("Units")
    data = [r for r in rows[rows.index(header) + 1 :] if len(r) == len(header)]
    units: dict[str, int] = {}
    for r in data:
        units[r[sku_col]] = units.get(r[sku_col], 0) + int(r[units_col])
    assert units == {"WIDGET-1": 4, "GADGET-2": 1}

    got_xlsx = await api.http.get(
        "/reports/sales", params={**rng, "format": "xlsx"}, headers=manager
    )
    assert got_xlsx.headers["content-type"] == XLSX
    sheet = CalamineWorkbook.from_filelike(io.BytesIO(got_xlsx.content)).get_sheet_by_index(0)
    cells = sheet.to_python()
    head = next(i for i, r in enumerate(cells) if r and r[0] == "Period")
    revenue_col = cells[head].index("Revenue")
    assert sum(r[revenue_col] for r in cells[head + 1 :] if isinstance(r[revenue_col], float)) == (
        pytest.approx(84.96)
    )

    png = await api.http.get("/reports/sales", params={**rng, "format": "png"}, headers=manager)
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(PNG)

    # No data: an empty result and an empty chart, never an error.
    empty = await api.http.get(
        "/reports/sales", params={"from": "2001-01-01", "to": "2001-02-01"}, headers=manager
    )
    assert empty.status_code == 200
    assert empty.json()["rows"] == []
    empty_png = await api.http.get(
        "/reports/sales",
        params={"from": "2001-01-01", "to": "2001-02-01", "format": "png"},
        headers=manager,
    )
    assert empty_png.status_code == 200
    assert empty_png.content.startswith(PNG)

    # Operations and customers.
    ops = await api.http.get("/reports/operations", params=rng, headers=manager)
    assert ops.status_code == 200, ops.text
    o = ops.json()
    assert o["orders"] == 3
    stages = {s["stage"]: s for s in o["stages"]}
    assert stages["cycle"]["orders"] == 2
    assert stages["cycle"]["p50_hours"] is not None
    assert o["delivered"] == 2
    assert o["on_time"] == 2
    assert o["on_time_rate_pct"] == 100.0
    assert [(c["status"], c["reason"], c["orders"]) for c in o["closures"]] == [
        ("cancelled", "requested", 1)
    ]
    assert o["cancellation_rate_pct"] == pytest.approx(33.33)
    ops_csv = await api.http.get(
        "/reports/operations", params={**rng, "format": "csv"}, headers=manager
    )
    assert "orders created" in ops_csv.text

    cust = await api.http.get("/reports/customers", params=rng, headers=manager)
    assert cust.status_code == 200, cust.text
    c = cust.json()
    assert (c["customers"], c["new_customers"], c["returning_customers"]) == (2, 2, 0)
    assert [(t["customer_id"], Decimal(t["revenue"])) for t in c["top"]] == [
        ("C-R1", Decimal("44.98")),
        ("C-R2", Decimal("39.98")),
    ]
    assert c["frequency"]["1 order"] == 2
    assert "Ada" not in cust.text  # ids only: no personal data in a report

    # A background export: queued, rendered by a workflow, then downloaded.
    export = await api.http.post(
        "/reports/exports",
        json={"report": "sales", "format": "xlsx", "params": {**rng, "group_by": ["sku"]}},
        headers=manager,
    )
    assert export.status_code == 202, export.text
    export_id = export.json()["id"]
    done = await eventually(
        lambda: _json(api, f"/reports/exports/{export_id}", manager),
        lambda b: b["status"] in ("done", "failed"),
        timeout=30,
        what="the export is done",
    )
    assert done["status"] == "done", done
    assert done["progress_pct"] == 100.0
    assert done["rows_total"] == done["rows_done"] > 0
    file = await api.http.get(done["download"], headers=manager)
    assert file.status_code == 200
    assert file.headers["content-type"] == XLSX
    assert file.content[:2] == b"PK"
    other = await api.http.get(f"/reports/exports/{export_id}", headers=api.auth("support-1"))
    assert other.status_code == 403

    # A weekly subscription, run once now: its export lands under the subscription.
    sub = await api.http.post(
        "/reports/subscriptions",
        json={"report": "sales", "format": "csv", "params": {"group_by": ["region"]}},
        headers=manager,
    )
    assert sub.status_code == 201, sub.text
    sub_id = sub.json()["id"]
    run = await api.http.post(f"/reports/subscriptions/{sub_id}/run", headers=manager)
    assert run.status_code == 202, run.text
    listed = await eventually(
        lambda: _json(api, f"/reports/exports?subscription_id={sub_id}", manager),
        lambda b: bool(b) and b[0]["status"] == "done",
        timeout=30,
        what="the subscription's export",
    )
    week = listed[0]["params"]
    assert datetime.fromisoformat(week["to"]).weekday() == 0  # Monday to Monday
    assert (datetime.fromisoformat(week["to"]) - datetime.fromisoformat(week["from"])).days == 7

    # The subscriber is emailed a link to the file (their key's address).
    async def notices() -> Any:  # queued right after the export is marked done
        await api.stack.mailer.activities.pass_once()
        return await _json(api, "/notifications?kind=report_ready", api.auth("support-1"))

    [notice] = await eventually(
        notices, lambda ns: bool(ns) and ns[0]["status"] == "sent", what="the report email"
    )
    assert (notice["status"], notice["recipients"]) == ("sent", ["s***@example.com"])
    assert notice["subject"] == "Your sales report is ready"
    [mail] = await api.stack.mailer.activities.outbox.opened_by_key([notice["key"]])
    link = f"{api.stack.settings.public_base_url}/reports/exports/{listed[0]['id']}/file"
    assert f"Download: {link}" in mail.body
    assert f"{week['from']}/{week['to']}" in mail.body
    got = await api.http.get(link.removeprefix(api.stack.settings.public_base_url), headers=manager)
    assert got.status_code == 200
    gone = await api.http.delete(f"/reports/subscriptions/{sub_id}", headers=manager)
    assert gone.status_code == 204
    assert (await _json(api, "/reports/subscriptions", manager)) == []


async def _json(api: Api, url: str, headers: dict[str, str]) -> Any:
    response = await api.http.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


BAD = [
    ({"group_by": "planet"}, "group_by"),
    ({"group_by": "region,tier,sku"}, "group_by"),
    ({"from": "2020-01-01", "to": "2026-01-01"}, "to"),
    ({"from": "2026-02-01", "to": "2026-01-01"}, "to"),
    ({"convert_to": "USD"}, "convert_to"),
    ({"period": "fortnight"}, "period"),
    ({"format": "pdf"}, "format"),
    ({"top": "0", "group_by": "region"}, "top"),
    ({"group_by": "sku", "sales_rep": "rep-jane"}, "sku"),
]


async def test_bad_sales_queries_name_the_parameter(api: Api, manager: dict[str, str]) -> None:
    for params, field in BAD:
        response = await api.http.get("/reports/sales", params=params, headers=manager)
        assert response.status_code == 422, (params, response.text)
        fields = [f["field"] for f in response.json()["error"].get("fields", [])]
        assert field in fields or field in response.text, (params, response.text)


async def test_reports_are_for_managers(api: Api, manager: dict[str, str]) -> None:
    for who in ("support-1", "eshop", "lead-1"):
        response = await api.http.get("/reports/sales", headers=api.auth(who))
        assert response.status_code == 403, (who, response.text)
    assert (await api.http.get("/reports/sales", headers=manager)).status_code == 200
    assert (await api.http.get("/reports/sales", headers=api.auth("root"))).status_code == 200
    export = await api.http.post(
        "/reports/exports",
        json={"report": "sales", "format": "csv", "params": {"planet": 1}},
        headers=manager,
    )
    assert export.status_code == 422
    assert "planet" in export.text
