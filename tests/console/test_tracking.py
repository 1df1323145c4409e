"""The customer's tracking page: only the allowed fields of the one order its link names; an
expired link is 410, a tampered or unknown one 404, never another order; the customer's
emails carry a working link."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from api.app import create_app
from domain.status import OrderStatus
from security.keyring import KeyRing, new_key
from security.sealing import seal_data
from services.context import Services
from services.tracking import AAD, TrackingLinks, links_for
from tests.api.conftest import Api, open_api, services_for
from tests.api.flows import carrier, create, wait_status
from tests.conftest import Stack
from tests.factories import order_payload
from tests.keys import TEST_RING

S = OrderStatus
LINK = re.compile(r"(http://127\.0\.0\.1:8000)(/track/[A-Za-z0-9._-]+)")


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[Api]:
    async with open_api(stack) as opened:
        yield opened


def _paris() -> dict[str, Any]:
    body = order_payload()
    body["customer"].update(name="Blaise Pascal", email="blaise@example.fr")
    body["shipping_address"].update(
        name="Blaise Pascal", line1="4 Rue des Calculs", city="Paris", postal_code="75001"
    )
    body["shipping_address"]["country"] = "FR"
    return body


def _hidden(html: str) -> list[str]:
    """Customer data the page must never show, found in ``html``."""
    secrets = [
        "Ada Lovelace",
        "ada@example.com",
        "12 Analytical Row",
        "N1 9GU",
        "Blaise Pascal",
        "blaise@example.fr",
        "4 Rue des Calculs",
        "39.98",
        "WIDGET-1",
        "rep-jane",
    ]
    return [s for s in secrets if s in html]


async def test_the_link_shows_only_its_order_and_only_the_allowed_fields(api: Api) -> None:
    services = services_for(api.stack)
    links = links_for(services)
    london = await create(api, order_payload())
    paris = await create(api, _paris())
    await wait_status(api, london["id"], S.FULFILLING)
    await carrier(api, london["id"], "picked_up")
    shipped = await wait_status(api, london["id"], S.SHIPPED)
    await wait_status(api, paris["id"], S.FULFILLING)

    page = await api.http.get(f"/track/{links.token(london['id'])}")
    assert page.status_code == 200, page.text[:500]
    html = page.text
    assert london["id"] in html
    assert paris["id"] not in html
    assert 'data-stage="shipped"' in html
    assert "Your order is on its way" in html
    assert "London" in html
    assert "Paris" not in html
    assert _hidden(html) == []
    assert shipped["shipment"]["tracking_number"] in html
    assert "SIMEX" in html
    assert "Picked up by the carrier · Hub 7" in html
    assert "Expected by" in html
    assert page.headers["x-robots-tag"].startswith("noindex")
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert "/console/" not in html.replace("/console/static/", "")  # no staff navigation
    assert "<nav" not in html
    assert "<form" not in html

    other = await api.http.get(f"/track/{links.token(paris['id'])}")
    assert other.status_code == 200
    assert paris["id"] in other.text
    assert london["id"] not in other.text
    assert "Paris" in other.text
    assert 'data-stage="packed"' in other.text
    assert _hidden(other.text) == []

    # Prices only when the setting allows them.
    shown = services.settings.model_copy(update={"tracking_show_prices": True})
    priced_app = create_app(
        shown,
        services=Services(
            settings=shown,
            client=api.stack.client,
            sessions=api.stack.sessions,
            approval_policy=services.approval_policy,
        ),
    )
    transport = httpx.ASGITransport(app=priced_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://orderly.test") as http:
        priced = await http.get(f"/track/{links.token(london['id'])}")
    assert priced.status_code == 200
    assert "39.98 EUR" in priced.text


async def test_tampered_foreign_unknown_and_expired_links(bare_stack: Stack) -> None:
    services = services_for(bare_stack)
    app = create_app(bare_stack.settings, services=services)
    links = links_for(services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://orderly.test") as http:
        token = links.token("SO-20250101-ABCD")
        flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
        other_kind = seal_data(TEST_RING, b"orderly-console:v1", {"o": "SO-1", "e": 2**40})
        wrong_shape = seal_data(TEST_RING, AAD, {"o": 7, "e": "later"})
        for bad in (flipped, other_kind, wrong_shape, "nope", "x." + "A" * 3000, token):
            answer = await http.get(f"/track/{bad}")
            assert answer.status_code == 404, (bad, answer.status_code)
            assert "This tracking link is not valid" in answer.text
            assert "SO-20250101-ABCD" not in answer.text
            assert answer.headers["x-robots-tag"].startswith("noindex")
        expired = links.token("SO-20250101-ABCD", now=time.time() - 3600, ttl=timedelta(minutes=1))
        gone = await http.get(f"/track/{expired}")
        assert gone.status_code == 410
        assert "This tracking link has expired" in gone.text
        assert "SO-20250101-ABCD" not in gone.text
        assert gone.headers["referrer-policy"] == "no-referrer"
    # A link sealed by another key ring does not open here either.
    stranger = TrackingLinks(KeyRing("other", {"other": new_key()}), "http://x.test", timedelta(1))
    async with httpx.AsyncClient(transport=transport, base_url="http://orderly.test") as http:
        assert (await http.get(f"/track/{stranger.token('SO-1')}")).status_code == 404


async def test_customer_emails_carry_a_working_link(api: Api) -> None:
    order = await create(api, order_payload())
    await wait_status(api, order["id"], S.FULFILLING)
    await carrier(api, order["id"], "picked_up", "in_transit", "delivered")
    await wait_status(api, order["id"], S.COMPLETED)
    [mail] = [
        m
        for m in await api.stack.mailer.sent(order["id"], waiting_for="delivered")
        if m.kind == "delivered"
    ]
    assert mail.recipient == "ada@example.com"
    found = LINK.search(mail.body)
    assert found, mail.body
    greeting = f"Hello Ada Lovelace,\n\nYour order {order['id']} has been delivered."
    assert mail.body.startswith(greeting)
    assert mail.html is not None
    assert f'href="{found.group(0)}"' in mail.html
    page = await api.http.get(found.group(2))
    assert page.status_code == 200, page.text[:300]
    assert order["id"] in page.text
    assert 'data-stage="delivered"' in page.text
    assert "Delivered on" in page.text
