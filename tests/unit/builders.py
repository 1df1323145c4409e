"""Plain builders of valid order input for the domain unit tests (no I/O, no fixtures)."""

from __future__ import annotations

from typing import Any

from domain.order import OrderSpec


def line(sku: str = "WIDGET-1", quantity: int = 1, unit_price: str = "10.00") -> dict[str, Any]:
    return {"sku": sku, "quantity": quantity, "unit_price": unit_price}


def payload(**overrides: Any) -> dict[str, Any]:
    """A valid ``OrderSpec`` input; keyword arguments replace whole top-level fields."""
    data: dict[str, Any] = {
        "customer": {
            "id": "C-1",
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "tier": "standard",
            "region": "EU-WEST",
        },
        "lines": [line(quantity=2, unit_price="19.99")],
        "currency": "EUR",
        "shipping_address": {
            "name": "Ada Lovelace",
            "line1": "12 Analytical Row",
            "city": "London",
            "postal_code": "N1 9GU",
            "country": "GB",
        },
        "payment_method": {"type": "card", "token": "tok_visa"},
        "sales_rep": "rep-jane",
        "external_reference": "ESHOP-1",
    }
    data.update(overrides)
    return data


def spec(**overrides: Any) -> OrderSpec:
    return OrderSpec.model_validate(payload(**overrides))
