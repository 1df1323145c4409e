"""HTTP-level helpers for end-to-end tests."""

from __future__ import annotations

from typing import Any

from domain.status import OrderStatus
from tests.api.conftest import Api
from tests.helpers import eventually


async def get(api: Api, order_id: str, who: str = "support-1") -> dict[str, Any]:
    response = await api.http.get(f"/orders/{order_id}", headers=api.auth(who))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_status(
    api: Api, order_id: str, *statuses: OrderStatus, timeout: float = 30
) -> dict[str, Any]:
    wanted = {s.value for s in statuses}
    return await eventually(
        lambda: get(api, order_id),
        lambda body: body["status"] in wanted,
        timeout=timeout,
        what=f"{order_id} in {sorted(wanted)}",
    )


async def create(
    api: Api, payload: dict[str, Any], who: str = "eshop", **headers: str
) -> dict[str, Any]:
    response = await api.http.post("/orders", json=payload, headers={**api.auth(who), **headers})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def carrier(api: Api, order_id: str, *events: str) -> None:
    for event in events:
        response = await api.http.post(
            f"/orders/{order_id}/shipment-events",
            json={"event": event, "location": "Hub 7"},
            headers=api.auth("eshop"),
        )
        assert response.status_code == 202, response.text
