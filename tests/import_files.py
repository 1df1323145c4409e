"""Import files for tests: complete valid rows, CSV and XLSX bytes, and a big file of N orders."""

from __future__ import annotations

import csv
import io

from domain.import_formats import Sheet, write_xlsx
from domain.imports import COLUMN_NAMES


def row(**overrides: str) -> dict[str, str]:
    """A complete valid import row (order PO-1, one WIDGET-1 line, a new customer C-1)."""
    data = {
        "order_ref": "PO-1",
        "customer_id": "C-1",
        "customer_name": "Ada Lovelace",
        "customer_email": "ada@example.com",
        "customer_region": "EU-WEST",
        "customer_tier": "standard",
        "sku": "WIDGET-1",
        "quantity": "2",
        "unit_price": "19.99",
        "list_price": "",
        "currency": "EUR",
        "ship_name": "Ada Lovelace",
        "ship_line1": "12 Analytical Row",
        "ship_line2": "",
        "ship_city": "London",
        "ship_postal_code": "N1 9GU",
        "ship_country": "GB",
        "payment_type": "card",
        "payment_token": "tok_visa",
        "sales_rep": "rep-jane",
    }
    data.update(overrides)
    return data


def orders(
    n: int, *, prefix: str = "PO", lines: int = 1, customer: str = "C-IMP"
) -> list[dict[str, str]]:
    """``n`` valid orders of one or two rows (WIDGET-1, then GADGET-2), 50 customers."""
    skus = ("WIDGET-1", "GADGET-2")
    return [
        row(
            order_ref=f"{prefix}-{i}",
            customer_id=f"{customer}-{i % 50}",
            customer_email=f"{customer.lower()}-{i % 50}@example.com",
            sku=skus[j],
            quantity=str(j + 1),
        )
        for i in range(n)
        for j in range(min(lines, 2))
    ]


def csv_bytes(rows: list[dict[str, str]], header: list[str] | None = None) -> bytes:
    out = io.StringIO()
    names = header or list(COLUMN_NAMES)
    writer = csv.writer(out)
    writer.writerow(names)
    for r in rows:
        writer.writerow([r.get(n, "") for n in names])
    return out.getvalue().encode("utf-8")


def xlsx_bytes(rows: list[dict[str, str]], header: list[str] | None = None) -> bytes:
    names = header or list(COLUMN_NAMES)
    return write_xlsx([Sheet("orders", names, ([r.get(n, "") for n in names] for r in rows))])
