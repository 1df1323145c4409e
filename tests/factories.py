"""Builders of valid requests and specs; tests change only what they are about."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from domain.order import OrderSpec


def order_payload(
    *,
    customer_id: str | None = None,
    lines: list[dict[str, Any]] | None = None,
    currency: str = "EUR",
    payment: dict[str, str] | None = None,
    tier: str = "standard",
    **extra: Any,
) -> dict[str, Any]:
    """A JSON body for ``POST /orders`` (amounts as strings, as clients send them)."""
    return {
        "customer": {
            "id": customer_id or f"C-{uuid.uuid4().hex[:8]}",
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "tier": tier,
            "region": "EU-WEST",
        },
        "lines": lines or [{"sku": "WIDGET-1", "quantity": 2, "unit_price": "19.99"}],
        "currency": currency,
        "shipping_address": {
            "name": "Ada Lovelace",
            "line1": "12 Analytical Row",
            "city": "London",
            "postal_code": "N1 9GU",
            "country": "GB",
        },
        "payment_method": payment or {"type": "card", "token": "tok_visa"},
        "sales_rep": "rep-jane",
        "external_reference": f"ESHOP-{uuid.uuid4().hex[:6]}",
        **extra,
    }


def order_spec(**kwargs: Any) -> OrderSpec:
    return OrderSpec.model_validate(order_payload(**kwargs))


def big_order(**kwargs: Any) -> dict[str, Any]:
    """An order above the default approval threshold (5,000)."""
    return order_payload(
        lines=[{"sku": "WIDGET-1", "quantity": 100, "unit_price": "60.00"}], **kwargs
    )


TOTAL_OF_DEFAULT = Decimal("39.98")
