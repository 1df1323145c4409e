"""Outbound webhooks end to end: a real HTTP receiver (uvicorn on loopback), the real engine
and worker. Proves ordering per order, retries with the same webhook-id, signatures that the
Standard Webhooks library verifies, final failures, 410, the dead letter, redelivery, replay,
secret rotation, and that no customer data is sent."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db.models import ApiKeyRow
from tests.api.conftest import Api
from tests.api.flows import create
from tests.factories import order_payload
from tests.helpers import eventually
from tests.http_servers import serve
from tests.test_devproxy import upstream


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {
        "webhook_allow_private": True,  # the receiver is on loopback
        "webhook_retry_schedule": [0.3, 0.3, 0.3],
        "webhook_poll": timedelta(milliseconds=50),
    }


@dataclass
class Request_:
    path: str
    headers: dict[str, str]
    body: str
    status: int

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)["data"]
        return data

    @property
    def msg_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """Records every request in arrival order; ``answer[path]`` decides each status."""

    base: str = ""
    seen: list[Request_] = field(default_factory=list)
    answer: dict[str, Callable[[dict[str, str]], int]] = field(default_factory=dict)

    def ok(self, path: str) -> list[Request_]:
        return [r for r in self.seen if r.path == path and 200 <= r.status < 300]

    def at(self, path: str) -> list[Request_]:
        return [r for r in self.seen if r.path == path]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def hook(request: Request) -> Response:
        path = request.path_params["name"]
        headers = {k.lower(): v for k, v in request.headers.items()}
        status = rec.answer.get(path, lambda _h: 200)(headers)
        body = (await request.body()).decode()
        rec.seen.append(Request_(path, headers, body, status))
        extra = {"retry-after": "0"} if status == 503 else {}
        return Response(status_code=status, headers=extra)

    app = Starlette(routes=[Route("/hook/{name}", hook, methods=["POST"])])
    async with serve(upstream(app)) as base:
        rec.base = base
        yield rec


async def subscribe(api: Api, url: str, **extra: Any) -> dict[str, Any]:
    response = await api.http.post(
        "/webhooks", json={"url": url, **extra}, headers=api.auth("root")
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def log_seqs(api: Api, order_id: str) -> list[int]:
    page = await api.http.get(
        "/events", params={"order_id": order_id, "limit": 1000}, headers=api.auth("support-1")
    )
    assert page.status_code == 200, page.text
    return [e["seq"] for e in page.json()["items"]]


async def deliveries(api: Api, endpoint: str, **params: Any) -> list[dict[str, Any]]:
    page = await api.http.get(
        f"/webhooks/{endpoint}/deliveries",
        params={"limit": 500, **params},
        headers=api.auth("root"),
    )
    assert page.status_code == 200, page.text
    items: list[dict[str, Any]] = page.json()["items"]
    return items


def verify(secret: str, request: Request_) -> dict[str, Any]:
    verified: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return verified


async def test_events_arrive_signed_in_order_per_order_and_a_failing_one_holds_back_only_its_own(
    api: Api, receiver: Receiver
) -> None:
    first: list[str] = []  # the first webhook-id seen: its first two attempts fail

    def flaky(headers: dict[str, str]) -> int:
        if not first:
            first.append(headers["webhook-id"])
        failing = headers["webhook-id"] == first[0]
        tries = sum(1 for r in receiver.seen if r.msg_id == first[0])
        return 500 if failing and tries < 2 else 200

    receiver.answer["flaky"] = flaky
    hook = await subscribe(api, f"{receiver.base}/hook/flaky", description="ERP")
    secret = hook["secret"]
    shown = (await api.http.get(f"/webhooks/{hook['id']}", headers=api.auth("root"))).json()
    assert "secret" not in shown
    assert shown["secrets"][0]["prefix"].startswith("whsec_")
    assert shown["enabled"] is True

    a = await create(api, order_payload())
    b = await create(api, order_payload())
    orders = [a["id"], b["id"]]

    async def state() -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        logged = {o: await log_seqs(api, o) for o in orders}
        got: dict[str, list[int]] = defaultdict(list)
        for r in receiver.ok("flaky"):
            got[r.data["order_id"]].append(r.data["seq"])
        return logged, dict(got)

    await eventually(
        state,
        lambda s: all(len(s[0][o]) >= 3 and s[1].get(o) == s[0][o] for o in orders),
        what="every logged event delivered once, in sequence",
    )
    requests = receiver.at("flaky")
    # Signed: the Standard Webhooks library verifies every request with the endpoint's secret.
    for r in requests:
        body = verify(secret, r)
        assert body["data"]["order_id"] in orders
        assert r.msg_id == f"msg_{body['data']['order_id']}_{body['data']['seq']}"
        assert body["type"]
        assert body["timestamp"]
        # Thin payloads: no customer data in any body.
        assert "Ada Lovelace" not in r.body
        assert "ada@example.com" not in r.body
        assert "Analytical Row" not in r.body
    # The failing event: three attempts, the same webhook-id each time.
    attempts = [r for r in requests if r.msg_id == first[0]]
    assert [r.status for r in attempts] == [500, 500, 200]
    held = attempts[0].data["order_id"]
    other = next(o for o in orders if o != held)
    # Ordered per order: every request of an order (failures too) in seq order.
    for order in orders:
        seqs = [r.data["seq"] for r in requests if r.data["order_id"] == order]
        assert seqs == sorted(seqs), (order, seqs)
    # Only its own order waited: the other order's first event went through meanwhile.
    first_ok = requests.index(attempts[-1])
    assert any(r.data["order_id"] == other and r.status == 200 for r in requests[:first_ok]), (
        "the other order's events waited behind the failing one"
    )

    # The delivery log tells the same story.
    # A round records its answers after its batch: the receiver can be ahead of the log.
    log = await eventually(
        lambda: deliveries(api, hook["id"], order_id=held),
        lambda ds: all(d["status"] == "delivered" for d in ds),
        what="the delivery log recorded",
    )
    head = next(d for d in log if d["webhook_id"] == first[0])
    assert head["status"] == "delivered"
    assert head["attempts"] == 3
    assert head["last_status_code"] == 200
    assert head["last_latency_ms"] is not None
    assert all(d["status"] == "delivered" for d in log)

    # Replay since a cursor: the receiver gets those events again, same webhook-ids.
    cursor = min(d["cursor"] for d in log)
    again = await api.http.post(
        f"/webhooks/{hook['id']}/replay", json={"after": cursor}, headers=api.auth("root")
    )
    assert again.status_code == 200, again.text
    assert again.json()["deliveries"] >= len(log) - 1
    later = {d["webhook_id"] for d in log if d["cursor"] > cursor}

    def twice() -> set[str]:
        counts: dict[str, int] = defaultdict(int)
        for r in receiver.ok("flaky"):
            counts[r.msg_id] += 1
        return {m for m, n in counts.items() if n >= 2}

    async def probe() -> set[str]:
        return twice()

    await eventually(probe, lambda got: later <= got, what="the replayed events again")


async def test_final_failures_gone_dead_letter_redelivery_and_rotation(
    api: Api, receiver: Receiver
) -> None:
    async with api.stack.sessions.begin() as session:  # the owner's address, for the notice
        await session.execute(
            update(ApiKeyRow).where(ApiKeyRow.principal == "root").values(email="root@example.com")
        )
    busy = {"on": True}
    receiver.answer["bad"] = lambda _h: 400
    receiver.answer["gone"] = lambda _h: 410
    receiver.answer["busy"] = lambda _h: 503 if busy["on"] else 200
    bad = await subscribe(api, f"{receiver.base}/hook/bad")
    gone = await subscribe(api, f"{receiver.base}/hook/gone")
    flaky = await subscribe(api, f"{receiver.base}/hook/busy", event_types=["received"])
    order = await create(api, order_payload())

    # 4xx: final at once, never retried; the order's next events still go out.
    seqs = await eventually(
        lambda: log_seqs(api, order["id"]), lambda s: len(s) >= 3, what="three events"
    )
    await eventually(
        lambda: deliveries(api, bad["id"]),
        lambda ds: len(ds) >= len(seqs) and all(d["status"] == "failed" for d in ds),
        what="every delivery to the 400 endpoint failed",
    )
    await asyncio.sleep(1.0)  # longer than the whole retry schedule
    counts: dict[str, int] = defaultdict(int)
    for r in receiver.at("bad"):
        counts[r.msg_id] += 1
    assert counts
    assert set(counts.values()) == {1}, counts
    assert all(d["attempts"] == 1 for d in await deliveries(api, bad["id"]))

    # 410: the endpoint is disabled and its workflow ends.
    async def gone_view() -> dict[str, Any]:
        got: dict[str, Any] = (
            await api.http.get(f"/webhooks/{gone['id']}", headers=api.auth("root"))
        ).json()
        return got

    view = await eventually(gone_view, lambda v: not v["enabled"], what="410 disables")
    assert "410" in view["disabled_reason"]
    handle = api.stack.client.get_workflow_handle(f"webhook-{gone['id']}")
    assert await asyncio.wait_for(handle.result(), 30) == "disabled"
    assert len(receiver.at("gone")) == 1  # nothing more was sent to it
    # Its owner (the principal who created it) is told by email.
    notices = await api.http.get(
        "/notifications", params={"kind": "webhook_disabled"}, headers=api.auth("support-1")
    )
    [notice] = notices.json()
    assert notice["recipients"] == ["r***@example.com"]
    assert notice["subject"] == f"Webhook endpoint {gone['id']} disabled"
    assert notice["order_id"] is None

    # 503 with Retry-After through the whole schedule: the dead letter.
    dead = await eventually(
        lambda: deliveries(api, flaky["id"]),
        lambda ds: len(ds) == 1 and ds[0]["status"] == "dead",
        what="the dead letter",
    )
    assert dead[0]["type"] == "received"
    assert dead[0]["attempts"] == 4
    assert dead[0]["last_status_code"] == 503
    assert dead[0]["next_attempt_at"] is None

    # A rotated secret: both sign during the overlap; redelivery of the dead one succeeds.
    old_secret = flaky["secret"]
    rotated = await api.http.post(
        f"/webhooks/{flaky['id']}/rotate-secret",
        json={"overlap_seconds": 3600},
        headers=api.auth("root"),
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != old_secret
    assert len(rotated.json()["secrets"]) == 2
    busy["on"] = False
    again = await api.http.post(
        f"/webhooks/{flaky['id']}/deliveries/{dead[0]['id']}/redeliver", headers=api.auth("root")
    )
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "pending"
    assert again.json()["attempts"] == 0
    await eventually(
        lambda: deliveries(api, flaky["id"]),
        lambda ds: ds[0]["status"] == "delivered",
        what="the redelivery",
    )
    last = receiver.ok("busy")[-1]
    assert last.headers["webhook-signature"].count("v1,") == 2
    assert verify(new_secret, last) == verify(old_secret, last)
    assert last.msg_id == dead[0]["webhook_id"]

    # Enabled again (at a working URL): a new delivery workflow, the failed ones redeliverable.
    fixed = await api.http.patch(
        f"/webhooks/{gone['id']}",
        json={"url": f"{receiver.base}/hook/fine", "enabled": True},
        headers=api.auth("root"),
    )
    assert fixed.status_code == 200
    assert fixed.json()["disabled_reason"] is None
    [failed] = [d for d in await deliveries(api, gone["id"]) if d["status"] == "failed"]
    assert failed["last_status_code"] == 410
    assert failed["attempts"] == 1
    await api.http.post(
        f"/webhooks/{gone['id']}/deliveries/{failed['id']}/redeliver", headers=api.auth("root")
    )
    await eventually(
        lambda: deliveries(api, gone["id"]),
        lambda ds: all(d["status"] == "delivered" for d in ds) and len(ds) >= len(seqs),
        what="the re-enabled endpoint catching up",
    )
    # (a redelivery is sent when asked, so the redelivered first event may come after later ones)
    got = {r.data["seq"] for r in receiver.ok("fine")}
    assert set(seqs) <= got

    # Deleted: gone with its log; its workflow ends.
    deleted = await api.http.delete(f"/webhooks/{bad['id']}", headers=api.auth("root"))
    assert deleted.status_code == 204
    missing = await api.http.get(f"/webhooks/{bad['id']}", headers=api.auth("root"))
    assert missing.status_code == 404
    handle = api.stack.client.get_workflow_handle(f"webhook-{bad['id']}")
    assert await asyncio.wait_for(handle.result(), 60) == "gone"


@pytest.mark.parametrize(
    ("body", "field_", "reason"),
    [
        ({"url": "ftp://example.com/x"}, "url", "http"),
        ({"url": "https://u:p@example.com/x"}, "url", "credentials"),
        (
            {"url": "https://example.com/x", "event_types": ["shipped", "nope"]},
            "event_types",
            "nope",
        ),
        ({"url": "x" * 2001}, "url", "2000"),
    ],
)
async def test_bad_subscriptions_are_422_naming_the_field(
    api: Api, body: dict[str, Any], field_: str, reason: str
) -> None:
    response = await api.http.post("/webhooks", json=body, headers=api.auth("root"))
    assert response.status_code == 422, response.text
    assert field_ in response.text
    assert reason in response.text
    listed = await api.http.get("/webhooks", headers=api.auth("root"))
    assert listed.json()["items"] == []  # nothing was created
    for path in ("/webhooks/WH-NOPE", "/webhooks/WH-NOPE/deliveries"):
        assert (await api.http.get(path, headers=api.auth("root"))).status_code == 404
