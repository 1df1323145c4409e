"""Prepay deadline on the dev server with short, real durations (settings, not code)."""

from __future__ import annotations

import pytest

from domain.status import OrderStatus
from tests.api.conftest import Api
from tests.api.flows import create, wait_status
from tests.factories import order_payload

S = OrderStatus


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"payment_deadline": "PT2S", "payment_reminder_after": "PT1S"}


async def test_prepay_reminds_then_auto_cancels_at_deadline(api: Api) -> None:
    order = await create(api, order_payload(payment={"type": "bank_transfer"}))
    waiting = await wait_status(api, order["id"], S.AWAITING_PAYMENT)
    assert waiting["allowed_actions"] == ["pay", "cancel"]
    cancelled = await wait_status(api, order["id"], S.CANCELLED, timeout=20)
    types = [e["type"] for e in cancelled["timeline"]]
    assert types.index("payment_reminder_sent") < types.index("payment_expired")
    assert cancelled["closure"]["reason"] == "payment deadline passed"
    sent = {m.kind for m in await api.stack.mailer.sent(order["id"], waiting_for="cancelled")}
    assert sent == {"payment_reminder", "cancelled"}
    assert [r.state for r in await api.stack.inventory.reservations(order["id"])] == ["released"]
