"""Worker processes killed with SIGKILL while webhooks are being delivered: no event is lost,
and an event received twice carries the same webhook-id (what receivers de-duplicate on)."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from config import Settings
from tests.api.conftest import Api
from tests.api.flows import create
from tests.conftest import make_settings
from tests.e2e.conftest import Workers
from tests.factories import order_payload
from tests.helpers import eventually
from tests.http_servers import serve
from tests.test_devproxy import upstream

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
ORDERS = 6


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        activity_heartbeat="PT2S",
        activity_timeout="PT10S",
        webhook_allow_private=True,
        webhook_timeout="PT2S",
    )


@pytest.fixture
async def received() -> AsyncIterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """A slow receiver (0.2 s per delivery, so kills land mid-delivery): (msg id, body)."""
    got: list[tuple[str, dict[str, Any]]] = []

    async def hook(request: Request) -> Response:
        await asyncio.sleep(0.2)
        got.append((request.headers["webhook-id"], json.loads(await request.body())))
        return Response(status_code=204)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve(upstream(app)) as base:
        yield base, got


async def test_killed_workers_lose_no_webhook_and_duplicate_only_by_webhook_id(
    api_without_worker: Api,
    workers: Workers,
    received: tuple[str, list[tuple[str, dict[str, Any]]]],
) -> None:
    api = api_without_worker
    base, got = received
    workers.env.update(
        ORDERLY_WEBHOOK_ALLOW_PRIVATE="true",
        ORDERLY_WEBHOOK_POLL="PT0.05S",
        ORDERLY_WEBHOOK_TIMEOUT="PT2S",
        ORDERLY_WEBHOOK_RETRY_SCHEDULE='["PT0.5S", "PT1S", "PT2S", "PT5S", "PT10S"]',
    )
    hook = await api.http.post("/webhooks", json={"url": f"{base}/hook"}, headers=api.auth("root"))
    assert hook.status_code == 201, hook.text
    endpoint = hook.json()["id"]
    current = workers.start()
    orders = [(await create(api, order_payload()))["id"] for _ in range(ORDERS)]

    async def count() -> int:
        return len(got)

    # Kill the worker twice while deliveries are in flight.
    for kills in (1, 2):
        await eventually(
            count,
            lambda n, k=kills: n >= 4 * k,
            what="deliveries flowing",
            timeout=60,
        )
        workers.assert_running(current)
        workers.kill(current)
        current = workers.start()

    async def logged() -> dict[str, list[int]]:
        out = {}
        for order in orders:
            page = await api.http.get(
                "/events", params={"order_id": order}, headers=api.auth("support-1")
            )
            out[order] = [e["seq"] for e in page.json()["items"]]
        return out

    def delivered() -> dict[str, list[int]]:
        seen: dict[str, list[int]] = defaultdict(list)
        for _msg, body in got:
            data = body["data"]
            if data["seq"] not in seen[data["order_id"]]:
                seen[data["order_id"]].append(data["seq"])
        return seen

    async def both() -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        return await logged(), delivered()

    await eventually(
        both,
        lambda s: all(len(s[0][o]) >= 5 and s[1].get(o) == s[0][o] for o in orders),
        what=f"every event delivered after the kills\n{workers.output()}",
        timeout=120,
    )
    # None lost, each order's events first received in sequence; a duplicate is the same
    # event under the same webhook-id (same id -> same order and seq, and the same body).
    bodies: dict[str, dict[str, Any]] = {}
    for msg, body in got:
        assert msg == f"msg_{body['data']['order_id']}_{body['data']['seq']}"
        if msg in bodies:
            assert bodies[msg]["data"] == body["data"], msg
        bodies[msg] = body

    async def delivery_log() -> list[dict[str, Any]]:
        page = await api.http.get(
            f"/webhooks/{endpoint}/deliveries", params={"limit": 500}, headers=api.auth("root")
        )
        items: list[dict[str, Any]] = page.json()["items"]
        return items

    # A round records its answers after its batch: the receiver can be ahead of the log.
    log = await eventually(
        delivery_log,
        lambda ds: {d["status"] for d in ds} == {"delivered"},
        what="every delivery recorded delivered",
        timeout=60,
    )
    assert {d["status"] for d in log} == {"delivered"}
    assert len(log) == len({(d["order_id"], d["seq"]) for d in log})  # one row per event
