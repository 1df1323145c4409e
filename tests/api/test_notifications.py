"""The email outbox through the API (support): sent and failed emails with masked addresses,
and a resend of a failed one once its cause is fixed."""

from __future__ import annotations

from domain.status import OrderStatus
from integrations.mail import Message
from tests.api.conftest import Api
from tests.api.flows import carrier, create, wait_status
from tests.factories import order_payload


async def test_support_sees_sent_and_failed_emails_and_resends_one(api: Api) -> None:
    support = api.auth("support-1")
    order = await create(api, order_payload())
    await wait_status(api, order["id"], OrderStatus.FULFILLING)
    await carrier(api, order["id"], "picked_up", "in_transit", "delivered")
    await wait_status(api, order["id"], OrderStatus.COMPLETED)
    await api.stack.mailer.sent(order["id"], waiting_for="delivered")

    listed = await api.http.get("/notifications", params={"order_id": order["id"]}, headers=support)
    assert listed.status_code == 200, listed.text
    [mail] = listed.json()
    assert mail["kind"] == "delivered"
    assert mail["status"] == "sent"
    assert mail["recipients"] == ["a***@example.com"]  # never the whole address
    assert mail["subject"] == f"Order {order['id']} delivered"
    assert "ada@example.com" not in listed.text

    # Two emails that failed: one with an address (the server refused it), one without.
    outbox = api.stack.mailer.activities.outbox
    refused = Message(
        f"{order['id']}:99:cancelled", order["id"], "cancelled", "ada@example.com", "s", "b",
        status="failed", last_error="550 <address> mailbox unavailable",
    )  # fmt: skip
    nobody = Message(
        f"{order['id']}:98:approval_reminder", order["id"], "approval_reminder", "", "s", "b",
        status="failed", last_error="no approver of level 1 has an address",
    )  # fmt: skip
    await outbox.add_many([refused, nobody], owner=order["customer"]["id"])
    failed = await api.http.get("/notifications", params={"status": "failed"}, headers=support)
    assert {(n["key"], n["last_error"]) for n in failed.json()} == {
        (refused.key, refused.last_error),
        (nobody.key, nobody.last_error),
    }

    again = await api.http.post(f"/notifications/{refused.key}/resend", headers=support)
    assert again.status_code == 200, again.text
    assert (again.json()["status"], again.json()["attempts"]) == ("pending", 0)
    await api.stack.mailer.sent(order["id"])  # sent on the next pass
    sent = await api.http.get("/notifications", params={"kind": "cancelled"}, headers=support)
    assert [(n["key"], n["status"], n["attempts"]) for n in sent.json()] == [
        (refused.key, "sent", 1)
    ]

    # What cannot be resent, and bad input: named, nothing changed.
    for key, code, reason in (
        (refused.key, 409, "is sent, not failed"),
        (nobody.key, 409, "has no recipient"),
        ("SO-nope:1:delivered", 404, "SO-nope:1:delivered"),
    ):
        answer = await api.http.post(f"/notifications/{key}/resend", headers=support)
        assert answer.status_code == code, answer.text
        assert reason in answer.text
    for params, name in (({"status": "lost"}, "status"), ({"kind": "spam"}, "kind")):
        bad = await api.http.get("/notifications", params=params, headers=support)
        assert bad.status_code == 422, bad.text
        assert name in bad.text
    forbidden = await api.http.get("/notifications", headers=api.auth("eshop"))
    assert forbidden.status_code == 403
