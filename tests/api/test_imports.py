"""Spreadsheet imports through the API, on a real Temporal server and database: the template
round trip, the two modes, a dry run, re-imports creating nothing new, the report, cancel."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from typing import Any

import pytest
from python_calamine import CalamineWorkbook

from domain.order import OrderSource
from domain.status import OrderStatus
from tests.api.conftest import Api
from tests.api.flows import get, wait_status
from tests.api.test_templates import set_price
from tests.helpers import eventually
from tests.import_files import csv_bytes, orders, row, xlsx_bytes

FINAL = {"completed", "blocked", "cancelled", "failed"}


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    # Imports start many orders: the replay test checks the import workflow in the strict
    # sandbox; here the orders' own workflows need not re-import their code each time.
    return {"strict_sandbox": False, "import_batch_size": 20}


async def submit(
    api: Api, data: bytes, filename: str = "orders.csv", who: str = "eshop", **form: str
) -> dict[str, Any]:
    res = await api.http.post(
        "/imports", files={"file": (filename, data)}, data=form, headers=api.auth(who)
    )
    assert res.status_code == 202, res.text
    body: dict[str, Any] = res.json()
    assert res.headers["Location"] == f"/imports/{body['id']}"
    return body


async def finished(
    api: Api, import_id: str, who: str = "eshop", timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        res = await api.http.get(f"/imports/{import_id}", headers=api.auth(who))
        assert res.status_code == 200, res.text
        body: dict[str, Any] = res.json()
        if body["status"] in FINAL:
            return body
        assert time.monotonic() < deadline, f"import still {body['status']}: {body}"
        await asyncio.sleep(0.2)


async def report_rows(api: Api, import_id: str, who: str = "eshop") -> list[dict[str, str]]:
    res = await api.http.get(f"/imports/{import_id}/report.csv", headers=api.auth(who))
    assert res.status_code == 200, res.text
    assert res.headers["content-disposition"].startswith("attachment;")
    return list(csv.DictReader(io.StringIO(res.content.decode("utf-8-sig"))))


async def test_template_round_trip_imports_its_example_order(api: Api) -> None:
    res = await api.http.get("/imports/template.xlsx", headers=api.auth("eshop"))
    assert res.status_code == 200
    book = CalamineWorkbook.from_filelike(io.BytesIO(res.content))
    assert len(book.sheet_names) == 2  # the columns, and the sheet that documents them
    done = await finished(api, (await submit(api, res.content, "filled.xlsx"))["id"])
    assert done["status"] == "completed", done
    assert done["counts"]["started"] == done["counts"]["orders_valid"] == 1
    assert done["progress"] == 1.0
    listed = await api.http.get(f"/imports/{done['id']}/orders", headers=api.auth("eshop"))
    [order] = listed.json()
    assert order["status"] == "started"
    assert order["order_id"]
    got = await api.http.get(f"/orders/{order['order_id']}", headers=api.auth("support-1"))
    assert got.json()["source"] == OrderSource.IMPORT.value
    assert got.json()["external_reference"] == order["order_ref"]


async def test_reimport_and_overlap_create_no_duplicates(api: Api) -> None:
    first = await finished(api, (await submit(api, csv_bytes(orders(6, prefix="OV"))))["id"])
    assert first["counts"]["started"] == 6
    # The same file again, and a file that overlaps it by three orders.
    again = await finished(api, (await submit(api, csv_bytes(orders(6, prefix="OV"))))["id"])
    assert again["status"] == "completed"
    assert again["counts"]["orders_skipped"] == 6
    assert again["counts"]["started"] == 0
    rows = await report_rows(api, again["id"])
    assert {r["code"] for r in rows} == {"already_imported"}
    assert all(r["message"].startswith("already imported as SO-") for r in rows)
    overlap = orders(9, prefix="OV")[3:]
    third = await finished(api, (await submit(api, xlsx_bytes(overlap), "more.xlsx"))["id"])
    assert third["counts"]["orders_skipped"] == 3
    assert third["counts"]["started"] == 3

    async def listed() -> list[str]:
        found = await api.http.get(
            "/orders", params={"source": "import", "limit": 100}, headers=api.auth("support-1")
        )
        return sorted(
            o["external_reference"]
            for o in found.json()["items"]
            if o["external_reference"].startswith("OV-")
        )

    # "started" counts a started workflow; the list shows it once its first event is projected.
    wanted = sorted(f"OV-{i}" for i in range(9))
    refs = await eventually(listed, lambda got: len(got) >= len(wanted), what="9 orders listed")
    assert refs == wanted


async def test_all_or_nothing_starts_nothing_and_skip_invalid_starts_the_rest(api: Api) -> None:
    good = orders(3, prefix="MIX")
    bad = [row(order_ref="MIX-BAD", sku="NOPE-1"), row(order_ref="MIX-BAD2", quantity="0")]
    data = csv_bytes(good + bad)
    blocked = await finished(api, (await submit(api, data))["id"])
    assert blocked["status"] == "blocked"
    assert blocked["counts"]["started"] == 0
    assert blocked["counts"]["orders_invalid"] == 2
    rows = await report_rows(api, blocked["id"])
    problems = {(r["row"], r["column"], r["code"]) for r in rows}
    assert problems == {("5", "sku", "unknown_sku"), ("6", "quantity", "invalid_quantity")}
    bad_row = next(r for r in rows if r["code"] == "unknown_sku")
    assert bad_row["[order_ref]"] == "MIX-BAD"
    assert bad_row["value"] == "NOPE-1"

    skipped = await finished(api, (await submit(api, data, mode="skip-invalid"))["id"])
    assert skipped["status"] == "completed"
    assert skipped["counts"]["started"] == 3
    assert skipped["counts"]["orders_invalid"] == 2


async def test_dry_run_reports_and_starts_nothing(api: Api) -> None:
    done = await finished(
        api, (await submit(api, csv_bytes(orders(2, prefix="DRY")), dry_run="true"))["id"]
    )
    assert done["dry_run"] is True
    assert done["status"] == "completed"
    assert done["counts"]["orders_valid"] == 2
    assert done["counts"]["to_start"] == 0
    assert done["counts"]["started"] == 0
    found = await api.http.get(
        "/orders",
        params={"external_reference": "DRY-0", "source": "import"},
        headers=api.auth("support-1"),
    )
    assert found.json()["items"] == []


def _zip_bomb() -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
        z.writestr("xl/worksheets/sheet1.xml", b"<sheetData>" + b" " * (300 * 2**20))
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        ("empty.csv", b"", 422, "empty"),
        ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, 415, "not_a_spreadsheet"),
        ("big.csv", b"a" * (50 * 2**20 + 1), 413, "too_large"),
        (
            "wide.csv",
            (",".join(f"c{i}" for i in range(200)) + "\n1\n").encode(),
            422,
            "too_many_columns",
        ),
        ("headless.csv", b"PO-1,C-1,Ada\nPO-2,C-2,Bob\n", 422, None),
        ("formula.csv", csv_bytes([row(customer_name="=HYPERLINK(1)")]), 202, None),
        ("bomb.xlsx", _zip_bomb(), 422, None),
    ],
    ids=[
        "empty",
        "not-a-spreadsheet",
        "50-MB",
        "200-columns",
        "no-header",
        "formula-text",
        "zip-bomb",
    ],
)
async def test_bad_files_are_refused_with_the_reason_and_nothing_stored(
    api: Api, name: str, data: bytes, status: int, code: str | None
) -> None:
    before = (await api.http.get("/imports", headers=api.auth("eshop"))).json()["items"]
    res = await api.http.post("/imports", files={"file": (name, data)}, headers=api.auth("eshop"))
    assert res.status_code == status, res.text
    if status == 202:  # a CSV cell is text, never a formula: the row is only validated
        return
    error = res.json()["error"]
    if code is not None:
        assert error["code"] == code
    assert error["fields"][0]["field"] == "file"
    assert error["message"].startswith("file: ")
    after = (await api.http.get("/imports", headers=api.auth("eshop"))).json()["items"]
    assert after == before


async def test_bad_options_are_422_naming_the_field(api: Api) -> None:
    res = await api.http.post(
        "/imports",
        files={"file": ("a.csv", csv_bytes([row()]))},
        data={"mode": "best-effort"},
        headers=api.auth("eshop"),
    )
    assert res.status_code == 422
    assert res.json()["error"]["fields"][0]["field"] == "mode"


async def test_imports_are_their_uploaders_and_support_sees_all(api: Api) -> None:
    mine = await submit(api, csv_bytes(orders(1, prefix="OWN")), who="eshop")
    assert (
        await api.http.get(f"/imports/{mine['id']}", headers=api.auth("support-1"))
    ).status_code == 200
    other = await api.http.get(f"/imports/{mine['id']}", headers=api.auth("root"))
    assert other.status_code == 200
    refused = await api.http.get("/imports", headers=api.auth("lead-1"))
    assert refused.status_code == 403  # approvers do not import
    await finished(api, mine["id"])


async def test_cancel_stops_between_batches_and_reports_the_rest(api: Api) -> None:
    started = await submit(api, csv_bytes(orders(100, prefix="CAN")))
    # Cancel as soon as it is starting orders (100 orders are five batches of 20).
    deadline = time.monotonic() + 60
    while True:
        body = (await api.http.get(f"/imports/{started['id']}", headers=api.auth("eshop"))).json()
        if body["status"] != "validating":
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    res = await api.http.post(f"/imports/{started['id']}/cancel", headers=api.auth("eshop"))
    assert res.status_code == 200, res.text
    done = await finished(api, started["id"])
    c = done["counts"]
    if done["status"] == "completed":  # it got through before the cancel landed
        assert c["started"] == 100
        return
    assert done["status"] == "cancelled"
    assert c["started"] + c["cancelled"] == 100
    assert c["cancelled"] > 0
    again = await api.http.post(f"/imports/{started['id']}/cancel", headers=api.auth("eshop"))
    assert again.status_code == 409
    rows = await report_rows(api, done["id"])
    assert sum(r["code"] == "cancelled" for r in rows) == c["cancelled"]


async def test_blank_prices_come_from_the_price_list_and_a_discount_needs_approval(
    api: Api,
) -> None:
    await set_price(api, "WIDGET-1", "30.00")
    rows = [
        row(order_ref="PL-LIST", unit_price=""),  # priced from the list: 30.00
        row(order_ref="PL-DISC", unit_price="20.00"),  # a third off the list price
    ]
    done = await finished(api, (await submit(api, csv_bytes(rows)))["id"])
    assert done["counts"]["started"] == 2, done
    listed = await api.http.get(f"/imports/{done['id']}/orders", headers=api.auth("eshop"))
    ids = {o["order_ref"]: o["order_id"] for o in listed.json()}
    listed_order = (await get(api, ids["PL-LIST"])).get("lines")
    assert [(ln["unit_price"], ln["list_price"]) for ln in listed_order] == [("30.00", "30.00")]
    discounted = await wait_status(api, ids["PL-DISC"], OrderStatus.AWAITING_APPROVAL)
    assert 2 in [lv["level"] for lv in discounted["approval"]["levels"]]  # the discount level
