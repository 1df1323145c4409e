""" "Start from template" on the new-order form, on the real stack: the form is prefilled from an
active template with prices from the price list at that moment, the card token stays sealed,
and submitting creates the order through ``Templates.use``, so it records the template's id and
version; a template edited or archived meanwhile, or unknown, is refused with the reason."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest

from tests.api.conftest import Api
from tests.api.flows import get
from tests.api.test_templates import LONG_AGO, create_template, set_price, template_body
from tests.conftest import Stack
from tests.console import Console, ConsoleClient, open_console

USERS: dict[str, tuple[list[str], list[int]]] = {"tpl-sales": (["support"], [])}


class _Form(HTMLParser):
    """The fields of ``#order-form`` as a browser would post them (inputs and selects)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self.readonly: set[str] = set()
        self._inside, self._select = False, ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._inside = a.get("id") == "order-form"
        elif self._inside and tag == "input" and a.get("name") and a.get("type") != "submit":
            self.fields.append((a["name"], a.get("value", "")))
            if "readonly" in a:
                self.readonly.add(a["name"])
        elif self._inside and tag == "select":
            self._select = a.get("name", "")
        elif self._inside and tag == "option" and self._select and "selected" in a:
            self.fields.append((self._select, a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = ""
        elif tag == "form":
            self._inside = False


def form_of(html: str) -> tuple[dict[str, Any], set[str]]:
    """The form's fields (repeated names as lists) and the names of its read-only inputs."""
    parser = _Form()
    parser.feed(html)
    fields: dict[str, Any] = {}
    for name, value in parser.fields:
        if name in ("sku", "quantity", "unit_price", "list_price"):
            fields.setdefault(name, []).append(value)
        else:
            fields[name] = value
    return fields, parser.readonly


@pytest.fixture
async def console(stack: Stack) -> AsyncIterator[Console]:
    async with open_console(stack, USERS) as opened:
        yield opened


async def prices_now(api: Api, widget: str) -> None:
    """WIDGET-1 at ``widget`` from now on (19.99 before), GADGET-2 at 100.00."""
    now = datetime.now(UTC).isoformat()
    await set_price(api, "WIDGET-1", "19.99", LONG_AGO, now)
    await set_price(api, "WIDGET-1", widget, now)
    await set_price(api, "GADGET-2", "100.00")


async def open_form(sales: ConsoleClient, template_id: str) -> tuple[dict[str, Any], str]:
    page = await sales.get("/console/orders/new", params={"template": template_id})
    assert page.status_code == 200, page.text[:2000]
    fields, _ = form_of(page.text)
    return fields, page.text


async def test_the_form_is_prefilled_and_the_order_records_the_template(
    console: Console,
) -> None:
    api, sales = console.api, await console.user("tpl-sales")
    await prices_now(api, "23.45")
    customer = f"C-{uuid.uuid4().hex[:8]}"
    made = await create_template(api, template_body(customer, sales_rep="rep-jane"))
    archived = await create_template(api, template_body(name="Old bundle"))
    res = await api.http.post(f"/templates/{archived['id']}/archive", headers=api.auth("support-1"))
    assert res.status_code == 200

    blank = await sales.get("/console/orders/new")
    assert f'<option value="{made["id"]}">' in blank.text  # the picker lists active ones
    assert archived["id"] not in blank.text

    page = await sales.get("/console/orders/new", params={"template": made["id"]})
    assert page.status_code == 200, page.text[:2000]
    fields, readonly = form_of(page.text)
    assert fields["template.id"] == made["id"]
    assert fields["template.version"] == "1"
    assert (fields["customer.id"], fields["customer.email"]) == (customer, "ada@example.com")
    assert fields["shipping_address.city"] == "London"
    assert fields["shipping_address.postal_code"] == "N1 9GU"
    assert fields["payment_method.type"] == "card"
    assert fields["sales_rep"] == "rep-jane"
    assert fields["currency"] == "EUR"
    # priced from the list now: the new WIDGET-1 price, GADGET-2 10 % off its list price
    assert fields["sku"] == ["WIDGET-1", "GADGET-2"]
    assert fields["quantity"] == ["2", "1"]
    assert fields["unit_price"] == ["23.45", "90.00"]
    assert fields["list_price"] == ["23.45", "100.00"]
    assert {"sku", "unit_price", "list_price", "currency", "sales_rep"} <= readonly
    assert "quantity" not in readonly
    total = re.search(r'id="order-total"[^>]*>([^<]+)<', page.text)
    assert total is not None
    assert total.group(1) == "136.90 EUR"  # 2 x 23.45 + 90.00
    assert fields["payment_method.token"] == ""  # the token is never put in the page
    assert "tok_visa_4242" not in page.text
    assert "****4242" in page.text
    assert "Code for the gate: 1234" in page.text  # the template's notes, shown
    assert 'id="add-line"' not in page.text

    fields["quantity"] = ["2", "3"]
    fields["external_reference"] = f"TPL-FORM-{customer}"
    first = await sales.post("/console/orders/new", fields)
    assert first.status_code == 303, first.text[:2000]
    target = first.headers["location"]
    assert re.fullmatch(r"/console/orders/SO-\d{8}-[0-9A-Z]{5}", target)
    again = await sales.post("/console/orders/new", fields)  # the double click
    assert (again.status_code, again.headers["location"]) == (303, target)

    order = await get(api, target.rsplit("/", 1)[1])
    assert order["template"] == {"id": made["id"], "version": 1}
    assert order["source"] == "console"
    assert order["created_by"] == "tpl-sales"
    assert order["external_reference"] == f"TPL-FORM-{customer}"
    assert order["sales_rep"] == "rep-jane"
    assert order["customer"]["id"] == customer
    assert order["payment_method"] == {"type": "card", "token": "****4242"}  # the template's
    assert [
        (ln["sku"], ln["quantity"], ln["unit_price"], ln["list_price"]) for ln in order["lines"]
    ] == [
        ("WIDGET-1", 2, "23.45", "23.45"),
        ("GADGET-2", 3, "90.00", "100.00"),
    ]
    assert order["total"] == "316.90"


async def test_overrides_a_zero_quantity_and_an_edited_template(console: Console) -> None:
    api, sales = console.api, await console.user("tpl-sales")
    await prices_now(api, "19.99")
    made = await create_template(api, template_body())
    old, _ = await open_form(sales, made["id"])
    res = await api.http.patch(
        f"/templates/{made['id']}",
        json={"name": "Weekly restock v2"},
        headers=api.auth("support-1"),
    )
    assert res.status_code == 200
    stale = await sales.post("/console/orders/new", old)
    assert stale.status_code == 409
    assert "it is at version 2 now" in stale.text

    fields, _ = await open_form(sales, made["id"])
    assert fields["template.version"] == "2"
    fields["quantity"] = ["4", "0"]  # 0 leaves GADGET-2 out
    fields["shipping_address.city"] = "Cambridge"
    fields["payment_method.type"] = "bank_transfer"
    created = await sales.post("/console/orders/new", fields)
    assert created.status_code == 303, created.text[:2000]
    order = await get(api, created.headers["location"].rsplit("/", 1)[1])
    assert order["template"] == {"id": made["id"], "version": 2}
    assert [(ln["sku"], ln["quantity"]) for ln in order["lines"]] == [("WIDGET-1", 4)]
    assert order["shipping_address"]["city"] == "Cambridge"
    assert order["payment_method"]["type"] == "bank_transfer"

    bad, _ = await open_form(sales, made["id"])
    bad["quantity"] = ["-1", "1"]
    bad["customer.email"] = "not an email"
    refused = await sales.post("/console/orders/new", bad)
    assert refused.status_code == 422
    assert "lines[0].quantity" in refused.text
    assert "customer.email" in refused.text


async def test_templates_that_cannot_be_used_are_refused(console: Console) -> None:
    api, sales = console.api, await console.user("tpl-sales")
    unknown = await sales.get("/console/orders/new", params={"template": "TPL-NOPE0000"})
    assert unknown.status_code == 404
    assert "template TPL-NOPE0000" in unknown.text
    made = await create_template(api, template_body())
    no_price = await sales.get("/console/orders/new", params={"template": made["id"]})
    assert no_price.status_code == 200  # the form opens and names what is missing
    assert "This template cannot be used as it is:" in no_price.text
    assert "no list price in EUR valid now" in no_price.text
    fields, _ = form_of(no_price.text)
    refused = await sales.post("/console/orders/new", fields)
    assert refused.status_code == 422
    assert "no list price in EUR valid now" in refused.text
    res = await api.http.post(f"/templates/{made['id']}/archive", headers=api.auth("support-1"))
    assert res.status_code == 200
    archived = await sales.get("/console/orders/new", params={"template": made["id"]})
    assert archived.status_code == 409
    assert "is archived" in archived.text
    after = await sales.post("/console/orders/new", fields)
    assert after.status_code == 409
    assert "The template was archived after this form was opened." in after.text
