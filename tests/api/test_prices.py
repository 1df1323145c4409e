"""The price list through the HTTP API: rows per SKU and currency with half-open validity,
replacement of a row, overlaps refused, validation naming the field, and who may do what."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api


async def put(
    api: Api, sku: str, body: dict[str, Any], who: str = "support-1", status: int = 201
) -> dict[str, Any]:
    response = await api.http.put(f"/prices/{sku}", json=body, headers=api.auth(who))
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def listing(api: Api, who: str = "support-1", **params: str) -> dict[str, Any]:
    response = await api.http.get("/prices", params=params, headers=api.auth(who))
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def price(list_price: str, valid_from: str, valid_to: str | None = None, **extra: Any) -> Any:
    return {
        "currency": "EUR",
        "list_price": list_price,
        "valid_from": valid_from,
        "valid_to": valid_to,
        **extra,
    }


async def test_rows_are_created_replaced_and_found_by_moment(api: Api) -> None:
    first = await put(api, "WIDGET-1", price("19.99", "2026-01-01T00:00:00Z", "2026-07-01"))
    assert first | {"id": None, "updated_at": None} == {
        "id": None,
        "sku": "WIDGET-1",
        "currency": "EUR",
        "list_price": "19.99",
        "valid_from": "2026-01-01T00:00:00Z",
        "valid_to": "2026-07-01T00:00:00Z",
        "updated_at": None,
        "updated_by": "support-1",
    }
    # The next period starts where the first ends (half-open: no overlap).
    second = await put(api, "WIDGET-1", price("21.50", "2026-07-01T00:00:00Z"))
    # The same start again replaces that row: a correction, 200.
    fixed = await put(api, "WIDGET-1", price("19.49", "2026-01-01", "2026-07-01"), status=200)
    assert (fixed["id"], fixed["list_price"]) == (first["id"], "19.49")
    await put(api, "WIDGET-1", price("25", "2026-01-01", currency="USD"), who="root")
    await put(api, "GADGET-2", price("5.00", "2020-01-01"))

    everything = await listing(api)
    assert [(p["sku"], p["currency"], p["list_price"]) for p in everything["items"]] == [
        ("GADGET-2", "EUR", "5.00"),
        ("WIDGET-1", "EUR", "19.49"),
        ("WIDGET-1", "EUR", "21.50"),
        ("WIDGET-1", "USD", "25.00"),
    ]
    at_end = await listing(api, sku="WIDGET-1", currency="EUR", at="2026-06-30T23:59:59.999999Z")
    assert [p["id"] for p in at_end["items"]] == [first["id"]]
    at_start = await listing(api, sku="WIDGET-1", currency="EUR", at="2026-07-01T00:00:00Z")
    assert [p["id"] for p in at_start["items"]] == [second["id"]]
    before = await listing(api, sku="WIDGET-1", at="2025-12-31T23:59:59Z")
    assert before["items"] == []
    # A system reads (e-shop showing prices), with a zone of its own.
    shop = await listing(api, who="eshop", sku="WIDGET-1", at="2026-03-01T01:00:00+01:00")
    assert [p["currency"] for p in shop["items"]] == ["EUR", "USD"]


async def test_an_overlapping_period_is_refused_with_the_row_it_overlaps(api: Api) -> None:
    await put(api, "WIDGET-1", price("10.00", "2026-01-01", "2026-02-01"))
    await put(api, "WIDGET-1", price("12.00", "2026-03-01"))
    for body in (
        price("11.00", "2026-01-15"),  # inside the first, open-ended across both
        price("11.00", "2025-12-01", "2026-01-02"),  # ends inside the first
        price("11.00", "2026-02-15", "2026-03-02"),  # runs into the open-ended one
        price("11.00", "2027-01-01"),  # inside the open-ended one
    ):
        response = await api.http.put("/prices/WIDGET-1", json=body, headers=api.auth("support-1"))
        assert response.status_code == 409, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == "price_overlap"
        assert error["fields"][0]["field"] == "valid_from"
        assert "overlaps the EUR price" in error["message"]
        assert "end that one first" in error["message"]
    # The gap between them is free; ending the open-ended row makes room after it.
    await put(api, "WIDGET-1", price("11.00", "2026-02-01", "2026-03-01"))
    await put(api, "WIDGET-1", price("12.00", "2026-03-01", "2027-01-01"), status=200)
    await put(api, "WIDGET-1", price("13.00", "2027-01-01"))
    rows = (await listing(api, sku="WIDGET-1"))["items"]
    assert [p["list_price"] for p in rows] == ["10.00", "11.00", "12.00", "13.00"]


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (price("1.00", "2026-01-01", currency="XXX"), "currency", "unknown or unsupported"),
        (price("1.00", "2026-01-01", currency="eur"), "currency", "unknown or unsupported"),
        (price("1.005", "2026-01-01"), "list_price", "EUR allows at most 2 decimal places"),
        (price("10.5", "2026-01-01", currency="JPY"), "list_price", "at most 0 decimal places"),
        (price("-1.00", "2026-01-01"), "list_price", "must not be negative"),
        (price("NaN", "2026-01-01"), "list_price", "finite"),
        (price("1e30", "2026-01-01"), "list_price", "no more than 14 digits"),
        (price("1.00", "2026-02-01", "2026-01-01"), "valid_to", "must be after valid_from"),
        (price("1.00", "2026-02-01", "2026-02-01"), "valid_to", "must be after valid_from"),
        (price("1.00", "not a date"), "valid_from", "datetime"),
        ({"currency": "EUR", "list_price": "1.00"}, "valid_from", "Field required"),
        (price("1.00", "2026-01-01", unit_price="1.00"), "unit_price", "Extra inputs"),
    ],
)
async def test_bad_rows_name_the_field(api: Api, body: Any, field: str, reason: str) -> None:
    response = await api.http.put("/prices/WIDGET-1", json=body, headers=api.auth("support-1"))
    assert response.status_code == 422, response.text
    [problem] = response.json()["error"]["fields"]
    assert problem["field"] == field
    assert reason.lower() in problem["reason"].lower()
    assert (await listing(api))["items"] == []


async def test_bad_skus_and_queries_are_refused(api: Api) -> None:
    for sku in ("-LEADING", "x" * 65, "WITH%20SPACE"):
        response = await api.http.put(
            f"/prices/{sku}", json=price("1.00", "2026-01-01"), headers=api.auth("support-1")
        )
        assert response.status_code == 422, (sku, response.text)
        assert response.json()["error"]["fields"][0]["field"] == "path.sku"
    # A SKU may hold a slash (the catalogue allows it).
    slashed = await put(api, "BOLT/M8", price("0.10", "2026-01-01"))
    assert slashed["sku"] == "BOLT/M8"
    assert [p["sku"] for p in (await listing(api, sku="BOLT/M8"))["items"]] == ["BOLT/M8"]
    for params in ({"at": "yesterday"}, {"currency": "euro"}, {"cursor": "!!"}, {"limit": "0"}):
        response = await api.http.get("/prices", params=params, headers=api.auth("support-1"))
        assert response.status_code == 422, (params, response.text)


async def test_pages_follow_the_cursor(api: Api) -> None:
    for n in range(5):
        await put(api, f"SKU-{n}", price(f"{n}.00", "2026-01-01"))
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await listing(api, **params)
        seen += [p["sku"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"SKU-{n}" for n in range(5)]


async def test_who_may_read_and_change_prices(api: Api) -> None:
    body = price("1.00", "2026-01-01")
    for who, status in (("eshop", 403), ("boss", 403), ("support-1", 201), ("root", 200)):
        response = await api.http.put("/prices/WIDGET-1", json=body, headers=api.auth(who))
        assert response.status_code == status, (who, response.text)
    for who, status in (("eshop", 200), ("support-1", 200), ("root", 200), ("boss", 403)):
        response = await api.http.get("/prices", headers=api.auth(who))
        assert response.status_code == status, (who, response.text)
    assert (await api.http.get("/prices")).status_code == 401
