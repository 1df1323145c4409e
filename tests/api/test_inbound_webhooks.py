"""Signed inbound webhooks (Standard Webhooks): carriers' scans and payment providers' notices,
verified with the sender's secrets, acted on once per ``webhook-id``."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from api.app import create_app
from api.deps import route_rules
from db.models import AuditRow, InboundDeliveryRow
from domain.status import OrderStatus
from services.auth import PUBLIC
from tests.api.conftest import Api, services_for
from tests.api.flows import create, get, wait_status
from tests.factories import order_payload

S = OrderStatus


def _secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


NEW, OLD, PAYMENTS, STRANGER = _secret(), _secret(), _secret(), _secret()
CARRIER = "/inbound/carriers/acme-post"
PAYMENT = "/inbound/payments/paypro"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {
        "inbound_webhooks": {
            "acme-post": {"kind": "carrier", "secrets": [NEW, OLD]},
            "paypro": {"kind": "payment", "secrets": [PAYMENTS]},
        }
    }


def signed(
    body: dict[str, Any] | str,
    *,
    secret: str = NEW,
    webhook_id: str | None = None,
    at: datetime | None = None,
    extra_signatures: tuple[str, ...] = (),
) -> tuple[str, dict[str, str]]:
    """The body as sent and its Standard Webhooks headers, signed with ``secret``."""
    data = body if isinstance(body, str) else json.dumps(body)
    msg_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, at, data)
    return data, {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join((*extra_signatures, signature)),
        "content-type": "application/json",
    }


async def _send(api: Api, path: str, data: str, headers: dict[str, str]) -> Any:
    return await api.http.post(path, content=data.encode(), headers=headers)


async def _shippable(api: Api) -> tuple[str, str]:
    """An order waiting for the carrier's pick-up, and its tracking number."""
    order = await create(api, order_payload())
    ready = await wait_status(api, order["id"], S.FULFILLING)
    tracking = ready["shipment"]["tracking_number"]
    assert tracking
    return order["id"], tracking


def _scans(order: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in order["timeline"] if e["type"] in ("carrier_scan", "carrier_event_ignored")]


async def _deliveries(api: Api) -> list[InboundDeliveryRow]:
    async with api.stack.sessions() as session:
        return list(await session.scalars(select(InboundDeliveryRow)))


async def test_a_signed_carrier_scan_ships_the_order_once(api: Api) -> None:
    order_id, tracking = await _shippable(api)
    scan = {"order_id": order_id, "event": "picked_up", "tracking_number": tracking}
    data, headers = signed(scan)
    response = await _send(api, CARRIER, data, headers)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "webhook_id": headers["webhook-id"],
        "order_id": order_id,
        "duplicate": False,
    }
    shipped = await wait_status(api, order_id, S.SHIPPED)
    [entry] = _scans(shipped)
    assert entry["actor"] == "inbound:acme-post"

    # The same delivery again (re-signed later, as a sender's retry is): nothing done twice.
    data, again = signed(scan, webhook_id=headers["webhook-id"])
    replay = await _send(api, CARRIER, data, again)
    assert replay.status_code == 200, replay.text
    assert replay.json() == {
        "webhook_id": headers["webhook-id"],
        "order_id": order_id,
        "duplicate": True,
    }
    # A new delivery acts: the next scan arrives.
    data, other = signed({**scan, "event": "in_transit", "location": "Hub 7"})
    assert (await _send(api, CARRIER, data, other)).json()["duplicate"] is False
    order = await _until_scans(api, order_id, 2)
    assert [e["actor"] for e in _scans(order)] == ["inbound:acme-post"] * 2

    [row] = [d for d in await _deliveries(api) if d.webhook_id == headers["webhook-id"]]
    assert (row.sender, row.kind, row.state, row.order_id) == (
        "acme-post",
        "carrier",
        "done",
        order_id,
    )
    async with api.stack.sessions() as session:
        audited = list(
            await session.scalars(
                select(AuditRow.principal).where(AuditRow.action == "carrier_webhook")
            )
        )
    assert audited == ["inbound:acme-post"] * 3


async def _until_scans(api: Api, order_id: str, count: int) -> dict[str, Any]:
    for _ in range(200):
        order = await get(api, order_id)
        if len(_scans(order)) >= count:
            return order
        await asyncio.sleep(0.05)
    raise AssertionError(f"{order_id}: fewer than {count} scans")


async def test_rotation_accepts_the_old_and_the_new_secret(api: Api) -> None:
    order_id, tracking = await _shippable(api)
    scan = {"order_id": order_id, "event": "picked_up", "tracking_number": tracking}
    data, headers = signed(scan, secret=OLD)
    response = await _send(api, CARRIER, data, headers)
    assert response.status_code == 200, response.text
    await wait_status(api, order_id, S.SHIPPED)

    # During a rotation the sender signs with both: one valid signature suffices.
    wrong = Webhook(STRANGER).sign("x", datetime.now(UTC), "y")
    data, both = signed(
        {**scan, "event": "in_transit"}, secret=NEW, extra_signatures=(wrong, "v2,ignored")
    )
    assert (await _send(api, CARRIER, data, both)).status_code == 200
    await _until_scans(api, order_id, 2)


async def test_unsigned_or_badly_signed_deliveries_are_refused_and_nothing_is_done(
    api: Api,
) -> None:
    order_id, tracking = await _shippable(api)
    scan = {"order_id": order_id, "event": "picked_up", "tracking_number": tracking}

    unsigned = await api.http.post(CARRIER, json=scan)
    assert unsigned.status_code == 401
    assert unsigned.json()["error"]["message"] == (
        "unsigned delivery: missing header webhook-id, webhook-timestamp, webhook-signature"
    )
    # Refused before the body is read: garbage without a signature is a 401 too.
    garbage = await api.http.post(CARRIER, content=b"{not json")
    assert garbage.status_code == 401

    data, headers = signed(scan, secret=STRANGER)
    wrong = await _send(api, CARRIER, data, headers)
    assert wrong.status_code == 401
    assert "no signature of this sender matches" in wrong.json()["error"]["message"]

    data, headers = signed(scan)
    tampered = data.replace("picked_up", "delivered")
    changed = await _send(api, CARRIER, tampered, headers)
    assert changed.status_code == 401

    data, headers = signed(scan, at=datetime.now(UTC) - timedelta(minutes=6))
    stale = await _send(api, CARRIER, data, headers)
    assert stale.status_code == 401
    assert "webhook-timestamp is more than 5 minutes" in stale.json()["error"]["message"]
    data, headers = signed(scan, at=datetime.now(UTC) + timedelta(minutes=6))
    assert (await _send(api, CARRIER, data, headers)).status_code == 401

    data, headers = signed(scan)
    malformed = await _send(api, CARRIER, data, {**headers, "webhook-signature": "v1"})
    assert malformed.status_code == 401
    assert "malformed" in malformed.json()["error"]["message"]

    # A payment provider's secret does not sign for the carrier.
    data, headers = signed(scan, secret=PAYMENTS)
    assert (await _send(api, CARRIER, data, headers)).status_code == 401

    await asyncio.sleep(0.3)  # a scan would have moved the order by now
    order = await get(api, order_id)
    assert (order["status"], _scans(order)) == ("fulfilling", [])
    assert await _deliveries(api) == []


async def test_unknown_senders_are_not_found(api: Api) -> None:
    data, headers = signed({"order_id": "SO-1", "event": "picked_up"})
    for path in ("/inbound/carriers/nobody", "/inbound/payments/acme-post", "/inbound/payments/x"):
        response = await _send(api, path, data, headers)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "not_found"


async def test_a_signed_body_that_fails_validation_names_the_field(api: Api) -> None:
    order_id, tracking = await _shippable(api)
    data, headers = signed({"order_id": order_id, "event": "teleported"})
    response = await _send(api, CARRIER, data, headers)
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["error"]["fields"]] == ["event"]

    data, other = signed({"event": "picked_up", "tracking_number": tracking})
    response = await _send(api, CARRIER, data, other)
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["error"]["fields"]] == ["order_id"]

    data, broken = signed('{"order_id": ')
    response = await _send(api, CARRIER, data, broken)
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "body"

    # Nothing was recorded: the sender's corrected delivery under the same id acts.
    assert await _deliveries(api) == []
    fixed = {"order_id": order_id, "event": "picked_up", "tracking_number": tracking}
    data, retry = signed(fixed, webhook_id=headers["webhook-id"])
    assert (await _send(api, CARRIER, data, retry)).json()["duplicate"] is False
    await wait_status(api, order_id, S.SHIPPED)


async def test_a_delivery_whose_action_failed_can_be_retried(api: Api) -> None:
    order = await create(api, order_payload(payment={"type": "bank_transfer"}))
    await wait_status(api, order["id"], S.AWAITING_PAYMENT)
    scan = {"order_id": order["id"], "event": "picked_up"}
    data, headers = signed(scan)
    refused = await _send(api, CARRIER, data, headers)
    assert refused.status_code == 409, refused.text  # not shipping yet
    data, headers = signed({**scan, "order_id": "SO-20260101-ZZZZZ"}, webhook_id="msg-retry-1")
    missing = await _send(api, CARRIER, data, headers)
    assert missing.status_code == 404
    assert await _deliveries(api) == []
    # The sender retries the same delivery: it acts again (and fails again), not "duplicate".
    assert (await _send(api, CARRIER, data, headers)).status_code == 404


async def test_a_signed_payment_pays_the_order_once(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    order = await create(api, order_payload(payment={"type": "bank_transfer"}))
    waiting = await wait_status(api, order["id"], S.AWAITING_PAYMENT)
    token = f"bank-ref-{uuid.uuid4().hex}"
    notice = {"order_id": order["id"], "amount": str(waiting["total"]), "token": token}
    data, headers = signed(notice, secret=PAYMENTS)
    response = await _send(api, PAYMENT, data, headers)
    assert response.status_code == 200, response.text
    assert response.json()["duplicate"] is False
    paid = await wait_status(api, order["id"], S.FULFILLING, S.SHIPPED)
    received = [e for e in paid["timeline"] if e["type"] == "payment_received"]
    assert [e["actor"] for e in received] == ["inbound:paypro"]

    data, again = signed(notice, secret=PAYMENTS, webhook_id=headers["webhook-id"])
    replay = await _send(api, PAYMENT, data, again)
    assert replay.json()["duplicate"] is True
    after = await get(api, order["id"])
    assert len([e for e in after["timeline"] if e["type"] == "payment_received"]) == 1

    wrong_amount = {**notice, "amount": "0.01"}
    data, headers = signed(wrong_amount, secret=PAYMENTS)
    refused = await _send(api, PAYMENT, data, headers)
    assert refused.status_code in (409, 422), refused.text
    data, headers = signed({**notice, "amount": "-1"}, secret=PAYMENTS)
    invalid = await _send(api, PAYMENT, data, headers)
    assert invalid.status_code == 422
    assert invalid.json()["error"]["fields"][0]["field"] == "amount"
    assert token not in caplog.text  # bodies stay out of the logs


async def test_two_identical_deliveries_at_once_act_once(api: Api) -> None:
    order_id, tracking = await _shippable(api)
    scan = {"order_id": order_id, "event": "picked_up", "tracking_number": tracking}
    data, headers = signed(scan)
    answers = await asyncio.gather(*(_send(api, CARRIER, data, headers) for _ in range(4)))
    acted = [a for a in answers if a.status_code == 200 and a.json()["duplicate"] is False]
    others = [(a.status_code, a.json().get("duplicate")) for a in answers if a not in acted]
    assert len(acted) == 1, [a.text for a in answers]
    # Each other copy is a duplicate (the first was done) or "in progress" (retry later).
    assert all(o in ((200, True), (409, None)) for o in others), others
    await wait_status(api, order_id, S.SHIPPED)
    await asyncio.sleep(0.3)
    assert len(_scans(await get(api, order_id))) == 1


async def test_a_claim_in_progress_answers_conflict_and_a_stale_one_is_taken_over(
    api: Api,
) -> None:
    order_id, tracking = await _shippable(api)
    scan = {"order_id": order_id, "event": "picked_up", "tracking_number": tracking}
    data, headers = signed(scan)
    now = datetime.now(UTC)
    async with api.stack.sessions.begin() as session:
        session.add(
            InboundDeliveryRow(
                sender="acme-post",
                webhook_id=headers["webhook-id"],
                kind="carrier",
                state="acting",
                order_id=order_id,
                received_at=now,
                claimed_at=now,
            )
        )
    busy = await _send(api, CARRIER, data, headers)
    assert busy.status_code == 409
    assert busy.json()["error"]["code"] == "delivery_in_progress"
    assert (await get(api, order_id))["status"] == "fulfilling"

    # The request that claimed it died: after the lease, the sender's retry acts.
    async with api.stack.sessions.begin() as session:
        row = await session.get(InboundDeliveryRow, ("acme-post", headers["webhook-id"]))
        assert row is not None
        row.claimed_at = now - timedelta(minutes=10)
    taken = await _send(api, CARRIER, data, headers)
    assert taken.status_code == 200, taken.text
    assert taken.json()["duplicate"] is False
    await wait_status(api, order_id, S.SHIPPED)


async def test_the_routes_are_public_and_documented(api: Api) -> None:
    app = create_app(api.stack.settings, services=services_for(api.stack))
    rules = {(r.method, r.path): r.rule for r in route_rules(app)}
    assert rules[("POST", "/inbound/carriers/{sender}")] is PUBLIC
    assert rules[("POST", "/inbound/payments/{sender}")] is PUBLIC
    spec = (await api.http.get("/openapi.json")).json()
    operation = spec["paths"]["/inbound/carriers/{sender}"]["post"]
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert {"order_id", "event"} <= set(body["required"])
    assert "$ref" not in json.dumps(body)
