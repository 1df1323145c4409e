"""The console's order page over HTTP, on the real stack (worker, dev server, databases): the
facts, the actions each role may take, decisions and their refusals, cancel with a reason
code and the refund, CSRF, and the live stream fed by the event log."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from console.routes import orders as order_page
from domain.status import OrderStatus
from services import events
from tests.api.conftest import Api
from tests.api.flows import carrier, create, get, wait_status
from tests.conftest import Stack
from tests.console import Console, ConsoleClient, add_user, open_console, sign_in_http
from tests.factories import order_payload
from tests.helpers import eventually

S = OrderStatus
USERS: dict[str, tuple[list[str], list[int]]] = {
    "c-lead": (["approver"], [1]),
    "c-lead-b": (["approver"], [1]),
    "c-manager": (["approver"], [2]),
    "c-finance": (["approver"], [3]),
    "c-rep": (["approver"], [1, 2]),  # sells the orders made with sales_rep="c-rep"
    "c-support": (["support"], []),
    "c-boss": (["manager"], []),  # reads the console in Chinese
}
_ACTION = re.compile(r'(?:form)?action="/console/orders/[A-Za-z0-9-]+/([a-z-]+)"')


@pytest.fixture
async def console(stack: Stack) -> AsyncIterator[Console]:
    async with open_console(stack, USERS, {"c-boss": "zh"}) as opened:
        yield opened


def actions(html: str) -> set[str]:
    """The order actions the page offers as forms and buttons."""
    return set(_ACTION.findall(html))


async def roomy(api: Api, payload: dict[str, Any]) -> dict[str, Any]:
    await api.stack.bureau.set_profile(
        payload["customer"]["id"], score=900, credit_limit=Decimal(10_000_000)
    )
    return payload


def needs_level_1(**extra: Any) -> dict[str, Any]:
    """6,000 EUR: level 1 (team lead) only."""
    lines = [{"sku": "WIDGET-1", "quantity": 100, "unit_price": "60.00"}]
    return order_payload(lines=lines, **extra)


async def waiting_at(api: Api, order_id: str, level: int) -> dict[str, Any]:
    return await eventually(
        lambda: get(api, order_id),
        lambda o: o["status"] == "awaiting_approval" and o["approval"]["current_level"] == level,
        what=f"{order_id} waiting at level {level}",
    )


async def test_the_page_shows_what_an_approver_needs(console: Console) -> None:
    api = console.api
    lines = [
        {"sku": "WIDGET-1", "quantity": 100, "unit_price": "60.00", "list_price": "80.00"},
        {"sku": "GADGET-2", "quantity": 2, "unit_price": "10.00", "list_price": "10.50"},
    ]
    customer = "C-PAGE-1"
    earlier = await create(api, await roomy(api, order_payload(customer_id=customer)))
    order = await create(api, order_payload(customer_id=customer, lines=lines))
    await waiting_at(api, order["id"], 1)
    lead = await console.user("c-lead")

    answer = await lead.get(f"/console/orders/{order['id']}")
    assert answer.status_code == 200, answer.text
    html = answer.text
    assert 'data-status="awaiting_approval"' in html
    assert "awaiting approval" in html
    assert "Ada Lovelace" in html
    assert "EU-WEST" in html
    assert "standard" in html
    assert "6,020.00 EUR" in html  # the total, with its currency
    assert "25.0 %" in html
    assert "above 15 %" in html
    assert "4.8 %" in html  # 10 against 10.50: a discount within the policy
    assert html.count("discount-flag") == 1
    assert "Level 1" in html
    assert "team lead" in html
    assert "sales manager" in html
    assert 'aria-current="step"' in html
    assert "Next deadline: reminder" in html
    assert "Credit decision" in html
    assert "accept" in html
    assert f'href="/console/orders/{earlier["id"]}"' in html  # the customer's recent orders
    ui = api.stack.settings.temporal_ui_origin
    assert f'href="{ui}/namespaces/default/workflows/{order["id"]}"' in html
    assert f'data-live="/console/orders/{order["id"]}/live?after=' in html
    assert actions(html) == {"approve", "reject", "request-changes"}
    seqs = [int(s) for s in re.findall(r'data-seq="(\d+)"', html)]
    assert seqs == sorted(seqs, reverse=True)
    assert len(seqs) >= 3

    panel = await lead.get(f"/console/orders/{order['id']}/panel", headers={"HX-Request": "true"})
    assert panel.status_code == 200
    assert "<html" not in panel.text
    assert 'data-status="awaiting_approval"' in panel.text

    missing = await lead.get("/console/orders/SO-20990101-NOPE1")
    assert missing.status_code == 404
    assert "There is no such order." in missing.text
    malformed = await lead.get("/console/orders/SO%20%3Cb%3E/panel")
    assert malformed.status_code == 404
    assert "There is no such order." in malformed.text


async def test_each_role_gets_its_actions_only(console: Console) -> None:
    api = console.api
    order = await create(api, await roomy(api, needs_level_1()))
    await waiting_at(api, order["id"], 1)
    path = f"/console/orders/{order['id']}"
    support, boss, finance = (
        await console.user("c-support"),
        await console.user("c-boss"),
        await console.user("c-finance"),
    )

    assert actions((await support.get(path)).text) == {"cancel"}
    in_chinese = (await boss.get(path)).text
    assert actions(in_chinese) == set()
    assert "待审批" in in_chinese
    assert "审批链" in in_chinese
    other_level = (await finance.get(path)).text
    assert actions(other_level) == set()
    assert "Level 1 (team lead) decides now; you hold levels: 3." in other_level

    refused = await support.post(f"{path}/approve", {"comment": "sure"})
    assert refused.status_code == 403
    assert "approver" in refused.text
    not_held = await finance.post(f"{path}/approve", {"comment": "sure"})
    assert not_held.status_code == 403
    assert "may not decide level 1" in not_held.text
    assert (await get(api, order["id"]))["approval"]["levels"][0]["approvals"] == []


async def test_decisions_and_their_refusals(console: Console) -> None:
    api = console.api
    lead, lead_b, rep = (
        await console.user("c-lead"),
        await console.user("c-lead-b"),
        await console.user("c-rep"),
    )
    own = await create(api, await roomy(api, needs_level_1(sales_rep="c-rep")))
    await waiting_at(api, own["id"], 1)
    self_approval = await rep.post(f"/console/orders/{own['id']}/approve", {})
    assert self_approval.status_code == 403
    assert "c-rep created or sells this order and may not approve it" in self_approval.text

    order = await create(api, await roomy(api, needs_level_1()))
    path = f"/console/orders/{order['id']}"
    await waiting_at(api, order["id"], 1)
    empty = await lead.post(f"{path}/reject", {"reason": "  ", "key": "k" * 20})
    assert empty.status_code == 422
    assert "reason: required" in empty.text
    assert (await get(api, order["id"]))["status"] == "awaiting_approval"

    form = {"comment": "fine\nby me", "key": "approve-key-0123456789"}
    approved = await lead.post(f"{path}/approve", form)
    assert approved.status_code == 303, approved.text
    assert approved.headers["location"] == f"{path}?done=approve"
    again = await lead.post(f"{path}/approve", form)  # a double submit of the same form
    assert again.status_code == 303, again.text
    shown = await lead.get(approved.headers["location"])
    assert "Approved." in shown.text
    assert "approved by c-lead" in shown.text
    assert "“fine by me”" in shown.text
    body = await get(api, order["id"])
    assert [e["actor"] for e in body["timeline"] if e["type"] == "approved"] == ["c-lead"]

    late = await lead_b.post(f"{path}/approve", {})
    assert late.status_code == 409
    assert "approve is not allowed while the order is" in late.text
    assert "Allowed now:" in late.text

    sent_back = await create(api, await roomy(api, needs_level_1()))
    await waiting_at(api, sent_back["id"], 1)
    changes = await lead.post(
        f"/console/orders/{sent_back['id']}/request-changes", {"reason": "split the lines"}
    )
    assert changes.status_code == 303, changes.text
    page = await lead.get(f"/console/orders/{sent_back['id']}")
    assert 'data-status="changes_requested"' in page.text

    rejected = await create(api, await roomy(api, needs_level_1()))
    await waiting_at(api, rejected["id"], 1)
    no = await lead.post(f"/console/orders/{rejected['id']}/reject", {"reason": "margin too thin"})
    assert no.status_code == 303, no.text
    closed = await wait_status(api, rejected["id"], S.REJECTED)
    assert closed["closure"]["reason"] == "margin too thin"


async def test_support_cancels_a_paid_order_and_sees_the_refund(console: Console) -> None:
    api = console.api
    order = await create(api, order_payload())
    paid = await wait_status(api, order["id"], S.FULFILLING)
    assert Decimal(paid["payment"]["captured"]) == Decimal("39.98")
    support = await console.user("c-support")
    path = f"/console/orders/{order['id']}"

    bad = await support.post(f"{path}/cancel", {"reason_code": "bored"})
    assert bad.status_code == 422
    assert "reason_code: choose one of customer_request" in bad.text
    assert (await get(api, order["id"]))["status"] == "fulfilling"

    done = await support.post(
        f"{path}/cancel", {"reason_code": "customer_request", "note": "called in"}
    )
    assert done.status_code == 303, done.text
    cancelled = await wait_status(api, order["id"], S.CANCELLED)
    assert cancelled["closure"]["reason"] == "customer_request: called in"
    html = (await support.get(path)).text
    assert 'data-status="cancelled"' in html
    assert '<dd class="refunded">39.98 EUR</dd>' in html
    assert "fully refunded" in html
    assert actions(html) == set()


async def test_support_settles_a_refused_refund_by_hand(console: Console) -> None:
    api = console.api
    order = await create(
        api, order_payload(payment={"type": "card", "token": "tok_refund_refused"})
    )
    await wait_status(api, order["id"], S.FULFILLING)
    support = await console.user("c-support")
    path = f"/console/orders/{order['id']}"
    assert (await support.post(f"{path}/cancel", {"reason_code": "duplicate"})).status_code == 303
    await wait_status(api, order["id"], S.NEEDS_ATTENTION)
    html = (await support.get(path)).text
    assert "Needs attention" in html
    assert "refund_payment" in html
    assert actions(html) == {"retry-compensation", "resolve-compensation"}

    empty = await support.post(f"{path}/resolve-compensation", {"note": ""})
    assert empty.status_code == 422
    assert "note: required" in empty.text
    settled = await support.post(f"{path}/resolve-compensation", {"note": "refunded by bank"})
    assert settled.status_code == 303, settled.text
    closed = await wait_status(api, order["id"], S.CANCELLED)
    assert closed["attention"] is None


async def test_a_form_without_its_csrf_token_changes_nothing(console: Console) -> None:
    api = console.api
    order = await create(api, await roomy(api, needs_level_1()))
    await waiting_at(api, order["id"], 1)
    lead, support = await console.user("c-lead"), await console.user("c-support")
    path = f"/console/orders/{order['id']}"

    forged = await lead.post(f"{path}/approve", {"csrf_token": None, "comment": "forged"})
    assert forged.status_code == 403
    wrong = await support.post(f"{path}/cancel", {"csrf_token": "x", "reason_code": "other"})
    assert wrong.status_code == 403
    body = await get(api, order["id"])
    assert body["status"] == "awaiting_approval"
    assert body["approval"]["levels"][0]["approvals"] == []


# --- live stream over real HTTP --------------------------------------------------------------


@asynccontextmanager
async def served(app: FastAPI, graceful: float = 30) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    """``app`` on a loopback port (as the browser tests' ``live`` fixture serves it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, timeout_graceful_shutdown=int(graceful)
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(15):
            while not server.started:
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", server
    finally:
        server.should_exit = True
        await task
        sock.close()


async def _signed_in(base_url: str, console: Console, name: str) -> ConsoleClient:
    roles, levels = USERS[name]
    await add_user(console.api.stack.sessions, name, roles, levels)
    return await sign_in_http(httpx.AsyncClient(base_url=base_url), name)


async def _next_event(lines: AsyncIterator[str]) -> tuple[str, str]:
    """(event name, id) of the next event on the stream; comments are skipped."""
    name, ident = "message", ""
    async for line in lines:
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("id:"):
            ident = line.split(":", 1)[1].strip()
        elif line == "" and ident:
            return name, ident
    raise AssertionError("the stream ended without an event")


async def test_the_live_stream_sends_an_event_after_a_carrier_scan(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = console.api
    order = await create(api, order_payload())
    await wait_status(api, order["id"], S.FULFILLING)
    seq = max(e["seq"] for e in (await get(api, order["id"]))["timeline"])
    async with served(console.app) as (base_url, _):
        support = await _signed_in(base_url, console, "c-support")
        url = f"/console/orders/{order['id']}/live?after={seq}"
        async with support.http.stream("GET", url, timeout=10) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["x-accel-buffering"] == "no"
            lines = stream.aiter_lines()
            await carrier(api, order["id"], "picked_up")
            async with asyncio.timeout(10):
                name, ident = await _next_event(lines)
        assert name == "order-event"
        assert int(ident) > seq
        panel = await support.get(f"/console/orders/{order['id']}/panel")
        assert 'data-status="shipped"' in panel.text
        assert "picked_up" in panel.text
        # The browser reconnects with Last-Event-ID: nothing new, so nothing is sent again.
        last = max(e["seq"] for e in (await get(api, order["id"]))["timeline"])
        services = console.app.state.services
        await eventually(
            lambda: events.last_seq(services, order["id"]),
            lambda logged: logged == last,
            what="the event log to catch up",
        )
        monkeypatch.setattr(order_page, "STREAM_SECONDS", 1.5)
        headers = {"Last-Event-ID": str(last)}
        async with support.http.stream("GET", url, headers=headers, timeout=10) as again:
            text = (await again.aread()).decode()
        assert text.startswith("retry:")
        assert "event: order-event" not in text
        await support.http.aclose()


async def test_a_stream_ends_with_its_client_and_never_holds_shutdown(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = await create(console.api, order_payload())
    loop = asyncio.get_running_loop()
    async with served(console.app) as (base_url, server):
        support = await _signed_in(base_url, console, "c-support")
        url = f"/console/orders/{order['id']}/live"
        async with support.http.stream("GET", url, timeout=10) as stream:
            assert stream.status_code == 200
            await anext(stream.aiter_lines())
            assert len(server.server_state.tasks) == 1
        await eventually(
            lambda: asyncio.sleep(0.05, result=len(server.server_state.tasks)),
            lambda n: n == 0,
            timeout=5,
            what="the stream's task to end once its client left",
        )
        # A client that never leaves: the stream still ends on its own (bounded lifetime).
        monkeypatch.setattr(order_page, "STREAM_SECONDS", 2.0)
        stuck = await support.http.send(support.http.build_request("GET", url), stream=True)
        assert stuck.status_code == 200
        stopping = loop.time()
        server.should_exit = True  # uvicorn waits for open connections (up to 30 s here)
        await eventually(
            lambda: asyncio.sleep(0.05, result=len(server.server_state.tasks)),
            lambda n: n == 0,
            timeout=10,
            what="the open stream to end",
        )
        assert loop.time() - stopping < 5
        await stuck.aclose()
        await support.http.aclose()
