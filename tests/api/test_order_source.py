"""Every order has a source; (source, external_reference) is unique in the database, and a
second create with a pair answers with the order that holds it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from db.models import OrderReferenceRow, OrderRow
from domain.order import OrderSource
from domain.status import OrderStatus
from services.auth import Role, Scope, create_api_key
from services.orders import Orders
from tests.api.conftest import Api, services_for
from tests.api.flows import create, get, wait_status
from tests.factories import order_payload
from tests.helpers import eventually

S = OrderStatus


def _ref() -> str:
    return f"PO-{uuid.uuid4().hex[:10]}"


async def _post(api: Api, payload: dict[str, Any], who: str = "eshop", **headers: str) -> Any:
    return await api.http.post("/orders", json=payload, headers={**api.auth(who), **headers})


async def _listed(api: Api, **params: str) -> list[dict[str, Any]]:
    response = await api.http.get("/orders", params=params, headers=api.auth("support-1"))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _rows_with(api: Api, reference: str) -> int:
    async with api.stack.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(OrderRow)
            .where(OrderRow.external_reference == reference)
        )
    return int(count or 0)


async def test_a_second_create_with_the_pair_answers_with_the_first_order(api: Api) -> None:
    ref = _ref()
    first = await _post(api, order_payload(source="erp", external_reference=ref))
    assert first.status_code == 201, first.text
    order = first.json()
    assert (order["source"], order["external_reference"]) == ("erp", ref)

    # Another caller, another body: still the first order, answered 200 as a replay is.
    other_body = order_payload(
        source="erp",
        external_reference=ref,
        lines=[{"sku": "GADGET-2", "quantity": 1, "unit_price": "5.00"}],
    )
    again = await _post(api, other_body, who="root")
    assert again.status_code == 200, again.text
    assert again.headers["location"] == f"/orders/{order['id']}"
    body = again.json()
    assert body["id"] == order["id"]
    assert [ln["sku"] for ln in body["lines"]] == ["WIDGET-1"]
    assert body["created_by"] == "eshop"

    async with api.stack.sessions() as session:
        claim = await session.get(OrderReferenceRow, ("erp", ref))
    assert claim is not None
    assert claim.order_id == order["id"]
    found = await Orders(services_for(api.stack)).by_reference(OrderSource.ERP, ref)
    assert found == order["id"]
    assert await Orders(services_for(api.stack)).by_reference(OrderSource.POS, ref) is None

    await wait_status(api, order["id"], S.FULFILLING)
    assert await _rows_with(api, ref) == 1


async def test_concurrent_creates_with_one_pair_make_one_order(api: Api) -> None:
    ref = _ref()
    payloads = [
        order_payload(source="eshop", external_reference=ref, customer_id=f"C-RACE-{i}")
        for i in range(6)
    ]
    answers = await asyncio.gather(*(_post(api, p) for p in payloads))
    assert sorted(a.status_code for a in answers) == [200] * 5 + [201], [a.text for a in answers]
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1
    [order_id] = ids
    winner = next(a.json() for a in answers if a.status_code == 201)
    # Every answer shows the order as it runs, not the loser's own body.
    assert {a.json()["customer"]["id"] for a in answers} == {winner["customer"]["id"]}

    await wait_status(api, order_id, S.FULFILLING)
    assert await _rows_with(api, ref) == 1
    listed = await _listed(api, external_reference=ref)
    assert [o["id"] for o in listed] == [order_id]
    # Only one workflow was ever started for the pair.
    ours = [
        wf.id
        async for wf in api.stack.client.list_workflows(
            f"TaskQueue = '{api.stack.settings.task_queue}'"
        )
    ]
    assert ours == [order_id]


async def test_other_sources_or_no_reference_are_other_orders(api: Api) -> None:
    ref = _ref()
    eshop = await create(api, order_payload(source="eshop", external_reference=ref))
    pos = await create(api, order_payload(source="pos", external_reference=ref))
    assert eshop["id"] != pos["id"]
    assert (eshop["source"], pos["source"]) == ("eshop", "pos")

    # Without a reference nothing is claimed: the same body twice is two orders.
    bare = order_payload(external_reference=None)
    one, two = await create(api, bare), await create(api, bare)
    assert one["id"] != two["id"]
    assert one["source"] == "api"  # the default

    for order in (eshop, pos, one, two):
        await wait_status(api, order["id"], S.FULFILLING)
    by_ref = {o["id"] for o in await _listed(api, external_reference=ref)}
    assert by_ref == {eshop["id"], pos["id"]}
    [listed] = await _listed(api, external_reference=ref, source="pos")
    assert (listed["id"], listed["source"], listed["external_reference"]) == (pos["id"], "pos", ref)
    assert await _listed(api, external_reference=ref, source="erp") == []
    api_ids = {o["id"] for o in await _listed(api, source="api")}
    assert {one["id"], two["id"]} <= api_ids
    assert eshop["id"] not in api_ids
    async with api.stack.sessions() as session:
        stored = await session.get(OrderRow, pos["id"])
    assert stored is not None
    assert stored.source == "pos"


async def test_bad_filters_name_the_parameter(api: Api) -> None:
    response = await api.http.get(
        "/orders", params={"source": "fax"}, headers=api.auth("support-1")
    )
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "query.source"
    response = await api.http.get(
        "/orders", params={"external_reference": "x" * 65}, headers=api.auth("support-1")
    )
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "query.external_reference"
    bad = await _post(api, order_payload(source="fax"))
    assert bad.status_code == 422
    assert bad.json()["error"]["fields"][0]["field"] == "source"


async def test_idempotency_key_and_reference_agree(api: Api) -> None:
    ref = _ref()
    payload = order_payload(source="erp", external_reference=ref)
    first = await _post(api, payload, **{"Idempotency-Key": f"k-{ref}"})
    assert first.status_code == 201, first.text
    replay = await _post(api, payload, **{"Idempotency-Key": f"k-{ref}"})
    assert (replay.status_code, replay.json()["id"]) == (200, first.json()["id"])
    other_key = await _post(api, payload, **{"Idempotency-Key": f"k2-{ref}"})
    assert (other_key.status_code, other_key.json()["id"]) == (200, first.json()["id"])
    # The other key now names that order too: its replay gives the same answer.
    again = await _post(api, payload, **{"Idempotency-Key": f"k2-{ref}"})
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    changed = await _post(
        api, {**payload, "sales_rep": "someone-else"}, **{"Idempotency-Key": f"k-{ref}"}
    )
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "idempotency_conflict"


async def test_a_claim_whose_start_never_happened_is_completed_by_the_next_create(
    api: Api,
) -> None:
    """A create that stopped between its claim and the workflow start lost nothing: the
    next create with the pair starts the claimed order (under the claimed id)."""
    ref = _ref()
    claimed_id = f"SO-{datetime.now(UTC):%Y%m%d}-{uuid.uuid4().hex[:5].upper()}"
    async with api.stack.sessions.begin() as session:
        session.add(
            OrderReferenceRow(
                source="eshop",
                external_reference=ref,
                order_id=claimed_id,
                created_by="eshop",
                created_at=datetime.now(UTC) - timedelta(minutes=1),  # its call died since
            )
        )
    response = await _post(api, order_payload(source="eshop", external_reference=ref))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == claimed_id
    running = await wait_status(api, claimed_id, S.FULFILLING)
    assert running["external_reference"] == ref
    again = await _post(api, order_payload(source="eshop", external_reference=ref))
    assert (again.status_code, again.json()["id"]) == (200, claimed_id)


async def test_an_own_orders_key_never_gets_another_callers_order(api: Api) -> None:
    ref = _ref()
    scopes = [Scope.ORDERS_OWN, Scope.ORDERS_CREATE, Scope.ORDERS_READ]
    shop = await create_api_key(api.stack.sessions, "shop-own-ref", [Role.SYSTEM], scopes=scopes)
    theirs = await create(api, order_payload(source="eshop", external_reference=ref))
    response = await api.http.post(
        "/orders",
        json=order_payload(source="eshop", external_reference=ref),
        headers={"Authorization": f"Bearer {shop}"},
    )
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "reference_taken"
    assert theirs["id"] not in response.text
    # Its own reference works as for anyone.
    mine = await api.http.post(
        "/orders",
        json=order_payload(source="eshop", external_reference=_ref()),
        headers={"Authorization": f"Bearer {shop}"},
    )
    assert mine.status_code == 201, mine.text


async def test_the_source_is_in_the_order_and_its_projection(api: Api) -> None:
    order = await create(api, order_payload(source="import", external_reference=_ref()))
    await eventually(
        lambda: get(api, order["id"]),
        lambda body: body["source"] == "import" and body["status"] == "fulfilling",
        what="order projected",
    )
    async with api.stack.sessions() as session:
        row = await session.get(OrderRow, order["id"])
    assert row is not None
    assert row.source == "import"


async def test_a_refused_create_claims_nothing(api: Api) -> None:
    customer_id = f"C-{uuid.uuid4().hex[:8]}"
    await create(api, order_payload(customer_id=customer_id))  # the master: ada@example.com
    ref = _ref()
    impostor = order_payload(customer_id=customer_id, source="erp", external_reference=ref)
    impostor["customer"]["email"] = "eve@example.com"
    refused = await _post(api, impostor)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "customer_mismatch"
    assert await Orders(services_for(api.stack)).by_reference(OrderSource.ERP, ref) is None
    corrected = await _post(
        api, order_payload(customer_id=customer_id, source="erp", external_reference=ref)
    )
    assert corrected.status_code == 201, corrected.text
