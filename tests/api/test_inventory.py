"""Stock levels and reorder points through the API (admin): what orders reserve shows up."""

from __future__ import annotations

from domain.status import OrderStatus
from tests.api.conftest import Api
from tests.api.flows import create, wait_status
from tests.factories import order_payload


async def test_stock_levels_reorder_points_and_what_orders_reserve(api: Api) -> None:
    root = api.auth("root")
    put = await api.http.put(
        "/inventory/INV-1", json={"on_hand": 10, "reorder_point": 5}, headers=root
    )
    assert put.status_code == 200, put.text
    assert put.json() == {
        "sku": "INV-1",
        "on_hand": 10,
        "reserved": 0,
        "available": 10,
        "reorder_point": 5,
        "below_reorder_point": False,
    }
    order = await create(
        api, order_payload(lines=[{"sku": "INV-1", "quantity": 7, "unit_price": "3.00"}])
    )
    await wait_status(api, order["id"], OrderStatus.FULFILLING)
    got = (await api.http.get("/inventory/INV-1", headers=root)).json()
    assert (got["reserved"], got["available"], got["below_reorder_point"]) == (7, 3, True)
    low = await api.http.get("/inventory", params={"below_reorder_point": "true"}, headers=root)
    assert [s["sku"] for s in low.json()] == ["INV-1"]
    everything = await api.http.get("/inventory", headers=root)
    assert {"INV-1", "WIDGET-1"} <= {s["sku"] for s in everything.json()}

    # Never below what open orders hold; nothing changed by a refused request.
    refused = await api.http.put("/inventory/INV-1", json={"on_hand": 5}, headers=root)
    assert refused.status_code == 422, refused.text
    assert "on_hand" in refused.text
    assert "7 units" in refused.text
    assert (await api.http.get("/inventory/INV-1", headers=root)).json()["on_hand"] == 10
    more = await api.http.put("/inventory/INV-1", json={"on_hand": 40}, headers=root)
    assert more.json()["available"] == 33
    assert more.json()["reorder_point"] is None  # not given: no longer kept
    assert more.json()["below_reorder_point"] is False

    for body, field in (({"on_hand": -1}, "on_hand"), ({"on_hand": 1, "extra": 2}, "extra")):
        bad = await api.http.put("/inventory/INV-1", json=body, headers=root)
        assert bad.status_code == 422, bad.text
        assert field in bad.text
    missing = await api.http.get("/inventory/NOPE-9", headers=root)
    assert missing.status_code == 404
    support = await api.http.get("/inventory/INV-1", headers=api.auth("support-1"))
    assert support.status_code == 403
