"""The approver's inbox and the order search over HTTP, on the real stack: what an approver may
decide, oldest first, the level and tier filters, paging; search by status, customer, external
reference, created dates and exact id; bad filter values → 422 naming the field."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from console.routes import inbox as inbox_route
from tests.api.conftest import Api
from tests.api.flows import create, get
from tests.conftest import Stack
from tests.console import Console, open_console
from tests.factories import order_payload
from tests.helpers import eventually

USERS: dict[str, tuple[list[str], list[int]]] = {
    "i-boss": (["approver"], [1, 2]),
    "i-manager": (["approver"], [2]),
    "i-support": (["support"], []),
    "i-chief": (["manager"], []),
}
_ORDER_LINK = re.compile(r'href="/console/orders/(SO-[0-9A-Z-]+)"')


@pytest.fixture
async def console(stack: Stack) -> AsyncIterator[Console]:
    async with open_console(stack, USERS) as opened:
        yield opened


def linked(html: str) -> list[str]:
    """The order ids the page links to, in page order."""
    return _ORDER_LINK.findall(html)


def priced(total: str, customer_id: str | None = None, **extra: Any) -> dict[str, Any]:
    lines = [{"sku": "WIDGET-1", "quantity": 100, "unit_price": total}]
    return order_payload(lines=lines, customer_id=customer_id, **extra)


async def roomy(api: Api, payload: dict[str, Any]) -> dict[str, Any]:
    """No credit review: the approval chain depends on the amount only."""
    await api.stack.bureau.set_profile(
        payload["customer"]["id"], score=900, credit_limit=Decimal(10_000_000)
    )
    return payload


async def waiting_at(api: Api, order_id: str, level: int) -> None:
    await eventually(
        lambda: get(api, order_id),
        lambda o: o["status"] == "awaiting_approval" and o["approval"]["current_level"] == level,
        what=f"{order_id} waiting at level {level}",
    )


async def vip_customer(api: Api) -> str:
    customer_id = f"C-VIP-{uuid.uuid4().hex[:6]}"
    body = {
        "id": customer_id,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "region": "EU-WEST",
        "tier": "vip",
    }
    answer = await api.http.post("/customers", json=body, headers=api.auth("support-1"))
    assert answer.status_code == 201, answer.text
    return customer_id


async def test_the_inbox_lists_what_the_approver_may_decide_oldest_first(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = console.api
    # A: 6,000 EUR standard → level 1. V: 25,000 EUR VIP → level 1 (VIP relief drops level 2).
    # B: 25,000 EUR standard → levels 1 and 2; approved at 1, so it waits at level 2, last.
    a = await create(api, await roomy(api, priced("60.00")))
    await waiting_at(api, a["id"], 1)
    v = await create(api, await roomy(api, priced("250.00", await vip_customer(api))))
    await waiting_at(api, v["id"], 1)
    b = await create(api, await roomy(api, priced("250.00")))
    await waiting_at(api, b["id"], 1)
    approved = await api.http.post(
        f"/orders/{b['id']}/approve", json={}, headers=api.auth("lead-1")
    )
    assert approved.status_code == 200, approved.text
    await waiting_at(api, b["id"], 2)
    mine = {a["id"], v["id"], b["id"]}

    boss = await console.user("i-boss")

    async def listed(query: str = "") -> list[str]:
        answer = await boss.get(f"/console/inbox{query}")
        assert answer.status_code == 200, answer.text
        return [o for o in linked(answer.text) if o in mine]

    everything = await eventually(
        listed, lambda ids: len(ids) == 3, what="the three orders in the inbox"
    )
    assert everything == [a["id"], v["id"], b["id"]]  # oldest wait first
    page = (await boss.get("/console/inbox")).text
    assert "6,000.00 EUR" in page
    assert "25,000.00 EUR" in page
    assert "Ada Lovelace" in page
    assert ">vip<" in page
    assert "1 · team lead" in page
    assert "2 · sales manager" in page
    assert "(reminder)" in page  # the next deadline's kind

    assert await listed("?level=1") == [a["id"], v["id"]]
    assert await listed("?level=2") == [b["id"]]
    assert await listed("?tier=vip") == [v["id"]]
    assert await listed("?level=1&tier=standard") == [a["id"]]
    filtered = await boss.get("/console/inbox?level=2")
    assert 'value="2" selected' in filtered.text  # the form shows the filter in force

    # htmx asks for the table only; the answer varies on HX-Request (history restore: whole)
    part = await boss.get("/console/inbox?level=2", headers={"HX-Request": "true"})
    assert part.status_code == 200
    assert "<html" not in part.text
    assert "<table" in part.text
    assert linked(part.text) == [b["id"]]
    assert part.headers["vary"] == "HX-Request"
    restore = await boss.get(
        "/console/inbox?level=2",
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in restore.text

    # paging with the cursor
    monkeypatch.setattr(inbox_route, "PAGE_SIZE", 2)
    first = await boss.get("/console/inbox")
    assert linked(first.text) == [a["id"], v["id"]]
    nxt = re.search(r'href="(/console/inbox\?cursor=[^"]+)"', first.text)
    assert nxt is not None, first.text
    second = await boss.get(nxt.group(1).replace("&amp;", "&"))
    assert linked(second.text) == [b["id"]]

    # a level-2 approver sees only B; a support user may not open the inbox at all
    manager = await console.user("i-manager")
    assert [o for o in linked((await manager.get("/console/inbox")).text) if o in mine] == [b["id"]]
    support = await console.user("i-support")
    refused = await support.get("/console/inbox")
    assert refused.status_code == 403
    assert "approver" in refused.text


async def test_inbox_filters_are_checked_and_an_empty_inbox_says_so(console: Console) -> None:
    manager = await console.user("i-manager")
    empty = await manager.get("/console/inbox")
    assert empty.status_code == 200
    assert "All caught up" in empty.text

    bad_level = await manager.get("/console/inbox?level=seven")
    assert bad_level.status_code == 422
    assert "<code>level</code>" in bad_level.text
    assert "must be one of the levels" in bad_level.text
    # to htmx, the partial with the problem (base.html's htmx-config swaps 422 answers in)
    bad_tier = await manager.get("/console/inbox?tier=gold", headers={"HX-Request": "true"})
    assert bad_tier.status_code == 422
    assert "<code>tier</code>" in bad_tier.text
    assert "<html" not in bad_tier.text
    bad_cursor = await manager.get("/console/inbox?cursor=bm9wZQ")
    assert bad_cursor.status_code == 422
    assert "<code>cursor</code>" in bad_cursor.text


async def test_search_by_status_customer_reference_dates_and_exact_id(console: Console) -> None:
    api = console.api
    tag = uuid.uuid4().hex[:6].upper()
    small_customer, big_customer = f"C-S-{tag}", f"C-B-{tag}"
    small = await create(
        api,
        await roomy(api, order_payload(customer_id=small_customer, external_reference=f"R1-{tag}")),
    )
    big = await create(
        api, await roomy(api, priced("60.00", big_customer, external_reference=f"R2-{tag}"))
    )
    await waiting_at(api, big["id"], 1)
    chief = await console.user("i-chief")  # a manager: staff may search

    async def found(query: str) -> list[str]:
        answer = await chief.get(f"/console/orders?{query}")
        assert answer.status_code == 200, answer.text
        return [o for o in linked(answer.text) if o in (small["id"], big["id"])]

    await eventually(
        lambda: found(f"customer_id={small_customer}"),
        lambda ids: ids == [small["id"]],
        what="the small order in the read model",
    )
    assert await found(f"customer_id={big_customer}") == [big["id"]]
    assert await found(f"external_reference=R2-{tag}") == [big["id"]]
    assert await found(f"external_reference=R1-{tag}") == [small["id"]]
    assert await found(f"external_reference=R1-{tag}&customer_id={big_customer}") == []
    assert await found(f"status=awaiting_approval&customer_id={big_customer}") == [big["id"]]
    assert await found(f"status=awaiting_approval&customer_id={small_customer}") == []

    today = datetime.now(UTC).date()
    yesterday, tomorrow = today - timedelta(days=1), today + timedelta(days=1)
    both = f"external_reference=R2-{tag}"
    assert await found(f"{both}&created_from={today}&created_to={today}") == [big["id"]]
    assert await found(f"{both}&created_to={yesterday}") == []
    assert await found(f"{both}&created_from={tomorrow}") == []

    # newest first, with the status as a word and the total with its currency
    page = await chief.get(f"/console/orders?created_from={today}")
    ids = [o for o in linked(page.text) if o in (small["id"], big["id"])]
    assert ids == [big["id"], small["id"]]
    assert ">awaiting approval</span>" in page.text
    assert "6,000.00 EUR" in page.text

    # the exact id opens the order page (lower case is fine); htmx gets a whole-page redirect
    jump = await chief.get(f"/console/orders?order_id={big['id'].lower()}")
    assert jump.status_code == 303
    assert jump.headers["location"] == f"/console/orders/{big['id']}"
    hx = await chief.get(f"/console/orders?order_id={big['id']}", headers={"HX-Request": "true"})
    assert hx.headers.get("hx-redirect") == f"/console/orders/{big['id']}"
    missing = await chief.get("/console/orders?order_id=SO-20990101-ZZZZZ")
    assert missing.status_code == 200
    assert "No order has the id SO-20990101-ZZZZZ." in missing.text

    part = await chief.get(f"/console/orders?{both}", headers={"HX-Request": "true"})
    assert "<html" not in part.text
    assert linked(part.text) == [big["id"]]
    assert part.headers["vary"] == "HX-Request"


async def test_search_refuses_bad_filters_naming_the_field(console: Console) -> None:
    support = await console.user("i-support")
    for query, name in [
        ("status=lost", "status"),
        ("created_from=2026-13-01", "created_from"),
        ("created_from=2026-12-02&created_to=2026-12-01", "created_to"),
        ("order_id=SO%20%3Cscript%3E", "order_id"),
        ("customer_id=" + "x" * 65, "customer_id"),
        ("cursor=bm9wZQ", "cursor"),
    ]:
        answer = await support.get(f"/console/orders?{query}")
        assert answer.status_code == 422, (query, answer.status_code)
        assert f"<code>{name}</code>" in answer.text, query
    part = await support.get("/console/orders?status=lost", headers={"HX-Request": "true"})
    assert part.status_code == 422
    assert "<code>status</code>" in part.text
    assert "<html" not in part.text
