"""The import pages over HTTP, on a real Temporal server and database: a CSV uploaded through
the console form runs to completed with its orders linked; a bad file is refused with the
reason (4xx) and nothing stored; the reports and templates download; cancel and its 409; who
may open the pages."""

from __future__ import annotations

import asyncio
import csv
import html
import io
import re
import uuid
from collections.abc import AsyncIterator

import pytest
from python_calamine import CalamineWorkbook
from sqlalchemy import func, select

from console.i18n import ZH
from console.routes import imports as import_pages
from console.routes.imports import LOOK, ORDER_LOOK
from db.models import ImportRow
from domain.order import OrderSource
from services.imports import Imports
from tests.conftest import Stack
from tests.console import Console, ConsoleClient, app_client, open_console
from tests.helpers import eventually
from tests.import_files import csv_bytes, orders, row, xlsx_bytes


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    # Imports start many orders: the replay test checks the import workflow in the strict
    # sandbox; here the orders' own workflows need not re-import their code each time.
    return {"strict_sandbox": False}


USERS = {
    "imp-support": (["support"], []),
    "imp-system": (["system"], []),
    "imp-approver": (["approver"], [1]),
}
_IMPORT = re.compile(r"^/console/imports/(IMP-[0-9A-Z]{10})$")
_ORDER_LINK = re.compile(r'href="/console/orders/(SO-[0-9A-Z-]+)"')
_STATUS = re.compile(r'class="badge [a-z]+ import-status" data-status="([a-z]+)"')
_PROBLEM = re.compile(r'id="upload-problem">\s*<p><strong>[^<]+</strong>([^<]+)</p>')
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
async def console(stack: Stack) -> AsyncIterator[Console]:
    async with open_console(stack, USERS) as opened:
        yield opened


def prefix() -> str:
    return f"CI{uuid.uuid4().hex[:6].upper()}"


async def upload(
    client: ConsoleClient,
    data: bytes,
    filename: str = "orders.csv",
    mode: str | None = "all-or-nothing",
    **form: str,
) -> str:
    """Upload through the form; the new import's id (from the redirect to its page)."""
    answer = await client.post(
        "/console/imports", {"mode": mode, **form}, files={"file": (filename, data)}
    )
    assert answer.status_code == 303, answer.text[:2000]
    found = _IMPORT.match(answer.headers["location"])
    assert found, answer.headers["location"]
    return found.group(1)


async def final_live(client: ConsoleClient, import_id: str) -> str:
    """Poll the live part (as the page does) until the import has ended; its HTML."""

    async def probe() -> str:
        answer = await client.get(
            f"/console/imports/{import_id}/live", headers={"HX-Request": "true"}
        )
        assert answer.status_code == 200, answer.text[:1000]
        return answer.text

    def ended(text: str) -> bool:
        found = _STATUS.search(text)
        return found is not None and found.group(1) in ("completed", "blocked", "cancelled")

    return await eventually(probe, ended, timeout=60, what=f"import {import_id} to end")


def count(live: str, name: str) -> int:
    found = re.search(rf'id="count-{name}">(\d+)<', live)
    assert found is not None, live
    return int(found.group(1))


async def stored_imports(stack: Stack) -> int:
    async with stack.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(ImportRow)) or 0)


async def test_an_uploaded_csv_runs_to_completed_and_links_its_orders(console: Console) -> None:
    support = await console.user("imp-support")
    form = await support.get("/console/imports")
    assert form.status_code == 200
    assert 'enctype="multipart/form-data"' in form.text
    assert 'href="/console/imports/template.xlsx"' in form.text
    assert 'href="/console/imports"' in form.text  # the nav item
    refs = prefix()
    import_id = await upload(support, csv_bytes(orders(3, prefix=refs)), "week-12.csv")

    opened = await support.get(f"/console/imports/{import_id}")
    assert opened.status_code == 200
    assert f"Import {import_id}" in opened.text
    assert "week-12.csv" in opened.text
    assert '<progress id="import-progress"' in opened.text
    assert 'for="import-progress"' in opened.text  # the bar has a label
    if 'data-status="completed"' not in opened.text:  # still running: it polls itself
        assert f'hx-get="/console/imports/{import_id}/live" hx-trigger="every 1s"' in opened.text

    live = await final_live(support, import_id)
    assert 'data-status="completed"' in live
    assert 'value="100"' in live
    assert "hx-trigger" not in live  # final: the polling stops
    assert 'id="import-orders" aria-labelledby="orders-heading" hx-swap-oob="true"' in live
    assert '<div id="import-cancel" hx-swap-oob="true">' in live  # the Cancel button goes
    assert count(live, "started") == 3

    page = await support.get(f"/console/imports/{import_id}")
    order_ids = _ORDER_LINK.findall(page.text)
    assert len(order_ids) == 3
    assert page.text.count('data-outcome="started"') == 3
    assert "cancel-import" not in page.text
    for order_id in order_ids:
        got = await console.api.http.get(
            f"/orders/{order_id}", headers=console.api.auth("support-1")
        )
        assert got.status_code == 200
        assert got.json()["source"] == OrderSource.IMPORT.value
        assert got.json()["external_reference"].startswith(f"{refs}-")
        assert got.json()["created_by"] == "imp-support"
        assert (await support.get(f"/console/orders/{order_id}")).status_code == 200

    listed = await support.get("/console/imports")
    assert f'href="/console/imports/{import_id}"' in listed.text
    assert f'id="progress-{import_id}" class="progress" max="100" value="100"' in listed.text
    assert 'hx-trigger="every 2s"' not in listed.text  # nothing runs: the list stops polling
    table = await support.get("/console/imports", headers={"HX-Request": "true"})
    assert table.text.startswith('<div id="imports-table">')  # htmx gets only the table
    assert import_id in table.text


async def test_a_bad_file_is_refused_with_the_reason_and_nothing_is_stored(
    console: Console, stack: Stack
) -> None:
    support = await console.user("imp-support")
    cases = [
        (b"%PDF-1.7\x00\x01\x02 binary", "orders.pdf", 415),
        (b"", "empty.csv", 422),
        (b"order_ref,sku\nPO-1,WIDGET-1\n", "short.csv", 422),  # required columns missing
    ]
    for data, name, status in cases:
        answer = await support.post(
            "/console/imports", {"mode": "skip-invalid"}, files={"file": (name, data)}
        )
        assert answer.status_code == status, (name, answer.text[:1000])
        assert 'id="upload-problem"' in answer.text
        problem = _PROBLEM.search(answer.text)
        assert problem is not None, answer.text[:1000]
        assert problem.group(1).strip()
        assert 'value="skip-invalid" checked' in answer.text  # the choice is kept
    without_mode = await support.post(
        "/console/imports", {"mode": None}, files={"file": ("a.csv", csv_bytes([row()]))}
    )
    assert without_mode.status_code == 422
    assert "Choose how the import treats invalid orders." in without_mode.text
    without_file = await support.post("/console/imports", {"mode": "all-or-nothing"})
    assert without_file.status_code == 422
    assert "Choose a CSV or XLSX file to upload." in without_file.text
    assert await stored_imports(stack) == 0
    assert "No imports yet." in (await support.get("/console/imports")).text


async def test_a_file_over_the_limit_is_refused_413(
    console: Console, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_pages, "MAX_BYTES", 1000)  # the real limit is 50 MiB
    support = await console.user("imp-support")
    data = csv_bytes(orders(20, prefix=prefix()))
    assert len(data) > 1000
    answer = await support.post(
        "/console/imports", {"mode": "all-or-nothing"}, files={"file": ("big.csv", data)}
    )
    assert answer.status_code == 413
    assert "more than 1,000 bytes" in answer.text
    assert await stored_imports(stack) == 0


async def test_the_missing_column_is_named(console: Console) -> None:
    support = await console.user("imp-support")
    data = csv_bytes([row()], header=[c for c in row() if c != "ship_city"])
    answer = await support.post(
        "/console/imports", {"mode": "all-or-nothing"}, files={"file": ("x.csv", data)}
    )
    assert answer.status_code == 422
    assert "ship_city" in html.unescape(answer.text)


async def test_reports_and_templates_download(console: Console) -> None:
    support = await console.user("imp-support")
    refs = prefix()
    rows = [*orders(2, prefix=refs), row(order_ref=f"{refs}-BAD", sku="NOPE-1")]
    import_id = await upload(support, xlsx_bytes(rows), "mixed.xlsx", mode="skip-invalid")
    live = await final_live(support, import_id)
    assert 'data-status="completed"' in live
    assert count(live, "invalid") == 1
    assert count(live, "started") == 2

    report = await support.get(f"/console/imports/{import_id}/report.csv")
    assert report.status_code == 200
    assert report.headers["content-type"] == "text/csv; charset=utf-8"
    assert report.headers["content-disposition"] == 'attachment; filename="mixed-report.csv"'
    problems = list(csv.DictReader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert [(p["code"], p["value"]) for p in problems] == [("unknown_sku", "NOPE-1")]
    assert problems[0]["[order_ref]"] == f"{refs}-BAD"

    book = await support.get(f"/console/imports/{import_id}/report.xlsx")
    assert book.status_code == 200
    assert book.headers["content-type"] == XLSX
    sheet = CalamineWorkbook.from_filelike(io.BytesIO(book.content))
    cells = [c for r in sheet.get_sheet_by_index(0).to_python() for c in r]
    assert "unknown_sku" in cells
    assert f"{refs}-BAD" in cells

    template = await support.get("/console/imports/template.csv")
    assert template.status_code == 200
    assert template.content == Imports.template("csv")
    assert template.headers["content-type"] == "text/csv; charset=utf-8"
    xlsx = await support.get("/console/imports/template.xlsx")
    assert xlsx.headers["content-type"] == XLSX
    assert len(CalamineWorkbook.from_filelike(io.BytesIO(xlsx.content)).sheet_names) == 2
    assert (await support.get("/console/imports/template.pdf")).status_code == 404
    assert (await support.get("/console/imports/IMP-0000000000")).status_code == 404
    assert (await support.get("/console/imports/nope/report.csv")).status_code == 404


async def test_cancel_stops_the_import_and_then_answers_409(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Imports, "batch_size", 2)  # many small batches: time to cancel
    support = await console.user("imp-support")
    import_id = await upload(support, csv_bytes(orders(80, prefix=prefix())))
    page_url = f"/console/imports/{import_id}"
    for _ in range(600):
        opened = await support.get(page_url)
        if 'data-status="starting"' in opened.text:
            break
        await asyncio.sleep(0.05)
    assert 'id="cancel-import"' in opened.text
    answer = await support.post(f"{page_url}/cancel")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{page_url}?done=cancel"
    notice = await support.get(answer.headers["location"])
    assert "Cancel requested" in notice.text
    live = await final_live(support, import_id)
    assert 'data-status="cancelled"' in live
    started, cancelled = count(live, "started"), count(live, "cancelled")
    assert cancelled > 0
    assert started + cancelled == 80

    again = await support.post(f"{page_url}/cancel")
    assert again.status_code == 409
    assert "This import has already ended; there is nothing to cancel." in again.text
    missing_csrf = await support.post(f"{page_url}/cancel", {"csrf_token": None})
    assert missing_csrf.status_code == 403


async def test_who_may_open_the_import_pages(console: Console, stack: Stack) -> None:
    approver = await console.user("imp-approver")
    for path in ("/console/imports", "/console/imports/template.csv"):
        assert (await approver.get(path)).status_code == 403
    refused = await approver.post(
        "/console/imports", {"mode": "all-or-nothing"}, files={"file": ("a.csv", b"x")}
    )
    assert refused.status_code == 403
    assert await stored_imports(stack) == 0
    assert 'href="/console/imports"' not in (await approver.get("/console/orders")).text

    system = await console.user("imp-system")
    mine = await upload(system, csv_bytes(orders(1, prefix=prefix())))
    support = await console.user("imp-support")
    theirs = await upload(support, csv_bytes(orders(1, prefix=prefix())))
    listed = (await system.get("/console/imports")).text
    assert mine in listed  # systems see their own imports
    assert theirs not in listed
    assert (await system.get(f"/console/imports/{theirs}")).status_code == 404
    assert mine in (await support.get("/console/imports")).text  # support sees everyone's
    async with app_client(console.app) as anonymous:
        answer = await anonymous.get("/console/imports")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/console/sign-in")


def test_every_status_word_has_a_chinese_entry() -> None:
    words = [word for _, _, word in (*LOOK.values(), *ORDER_LOOK.values())]
    assert [w for w in words if w not in ZH] == []
