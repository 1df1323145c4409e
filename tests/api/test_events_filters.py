"""The ERP pull feed: GET /events filtered by order source and event type, paged with
``after=``, sees every matching event exactly once, in log order, and resumes after a crash."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from db.models import OrderEventRow
from domain.status import OrderStatus
from tests.api.conftest import Api, open_api
from tests.api.flows import create, wait_status
from tests.factories import order_payload

S = OrderStatus


async def _page(api: Api, **params: Any) -> dict[str, Any]:
    response = await api.http.get("/events", params=params, headers=api.auth("eshop"))
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def _pull(api: Api, after: int = 0, pages: int | None = None, **params: Any) -> Any:
    """Page through the feed from ``after``: the events seen and the cursor to resume from."""
    seen: list[dict[str, Any]] = []
    while pages is None or pages > 0:
        page = await _page(api, after=after, **params)
        seen += page["items"]
        if not page["items"]:
            assert page["next_after"] == after
            break
        assert page["next_after"] == page["items"][-1]["id"]
        after = page["next_after"]
        pages = None if pages is None else pages - 1
    return seen, after


async def _orders(api: Api) -> dict[str, str]:
    """Two orders each from erp, pos and eshop, at rest; order id -> source."""
    made: dict[str, str] = {}
    for source in ("erp", "pos", "eshop", "erp", "pos", "eshop"):
        ref = f"R-{uuid.uuid4().hex[:8]}"
        order = await create(api, order_payload(source=source, external_reference=ref))
        made[order["id"]] = source
    for order_id in made:
        await wait_status(api, order_id, S.FULFILLING)
    return made


async def test_source_filter_pages_through_every_event_once(api: Api) -> None:
    made = await _orders(api)
    everything, _ = await _pull(api, limit=1000)
    assert {e["order_id"] for e in everything} == set(made)

    erp, _ = await _pull(api, source="erp", limit=3)
    expected = [e for e in everything if made[e["order_id"]] == "erp"]
    assert len(expected) >= 8  # several pages of 3
    assert [(e["id"], e["order_id"], e["seq"]) for e in erp] == [
        (e["id"], e["order_id"], e["seq"]) for e in expected
    ]
    assert len({e["id"] for e in erp}) == len(erp)  # exactly once across pages

    several, _ = await _pull(api, source=["erp", "pos"], limit=4)
    assert [e["id"] for e in several] == [
        e["id"] for e in everything if made[e["order_id"]] in ("erp", "pos")
    ]
    assert await _pull(api, source="console") == ([], 0)

    # The rows carry the order's source (the filter is one indexed range read).
    async with api.stack.sessions() as session:
        sources = dict(
            (await session.execute(select(OrderEventRow.order_id, OrderEventRow.source))).all()
        )
    assert sources == made


async def test_type_and_source_filters_combine(api: Api) -> None:
    made = await _orders(api)
    everything, _ = await _pull(api, limit=1000)
    booked, _ = await _pull(api, source="pos", type="shipment_booked", limit=1)
    assert [e["id"] for e in booked] == [
        e["id"]
        for e in everything
        if e["type"] == "shipment_booked" and made[e["order_id"]] == "pos"
    ]
    assert len(booked) == 2
    both, _ = await _pull(api, type=["received", "shipment_booked"], limit=5)
    assert [e["id"] for e in both] == [
        e["id"] for e in everything if e["type"] in ("received", "shipment_booked")
    ]
    assert len(both) == 2 * len(made)


async def test_a_consumer_resumes_after_a_crash_where_it_stopped(api: Api) -> None:
    made = await _orders(api)
    first, cursor = await _pull(api, source="eshop", limit=2, pages=2)
    assert len(first) == 4
    # The consumer dies; a new process (a new client of the API) resumes from the stored cursor.
    async with open_api(api.stack) as restarted:
        rest, _ = await _pull(restarted, after=cursor, source="eshop", limit=2)
    everything, _ = await _pull(api, source="eshop", limit=1000)
    assert [e["id"] for e in first + rest] == [e["id"] for e in everything]
    assert {e["order_id"] for e in everything} == {o for o, s in made.items() if s == "eshop"}

    # New events after the consumer caught up come on the next pull, and only those.
    late = await create(api, order_payload(source="eshop", external_reference="R-late"))
    await wait_status(api, late["id"], S.FULFILLING)
    newer, _ = await _pull(api, after=everything[-1]["id"], source="eshop")
    assert {e["order_id"] for e in newer} == {late["id"]}
    assert newer[0]["type"] == "received"


async def test_unknown_sources_and_types_name_the_parameter(api: Api) -> None:
    response = await api.http.get(
        "/events", params={"source": ["erp", "fax"]}, headers=api.auth("eshop")
    )
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"].startswith("query.source")
    response = await api.http.get(
        "/events", params={"type": "teleported"}, headers=api.auth("eshop")
    )
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "query.type"
