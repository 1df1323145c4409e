"""Customer PII at rest: sealed in every table, readable through the vault, shredded on erasure."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from db import readmodel
from db.models import Base, CustomerKeyRow
from db.session import SessionFactory
from db.vault import ERASED, Vault
from domain.state import OrderState
from domain.status import OrderStatus as S
from security.keyring import KeyRing
from tests.conftest import Stack
from tests.factories import order_spec
from tests.helpers import deliver, start_order, wait_status
from tests.keys import TEST_KEYS, TEST_RING
from tests.unit.orders import reserved_order

PII = ("Ada Lovelace", "ada@example.com", "Analytical Row", "N1 9GU", "tok_visa")
VAULT = Vault(TEST_RING)


async def dump(sessions: SessionFactory) -> str:
    """Every value of every column of every table, as text."""
    parts: list[str] = []
    async with sessions() as session:
        for table in Base.metadata.sorted_tables:
            for row in await session.execute(select(table)):
                parts.extend(
                    json.dumps(v, default=str) if isinstance(v, dict | list) else str(v)
                    for v in row
                )
    return "\n".join(parts)


async def test_no_table_holds_customer_data_in_plain_text(stack: Stack) -> None:
    done = await start_order(stack)
    await wait_status(done, S.FULFILLING)
    await deliver(done)
    await wait_status(done, S.COMPLETED)
    big = await start_order(
        stack, order_spec(lines=[{"sku": "WIDGET-1", "quantity": 100, "unit_price": "60.00"}])
    )
    await wait_status(big, S.AWAITING_APPROVAL)
    text = await dump(stack.sessions)
    assert "pii1:" in text  # sealed values are there
    for secret in PII:
        assert secret not in text, secret
    # ... and readable through the vault.
    async with stack.sessions() as session:
        state = await readmodel.get_state(session, done.id, VAULT)
        events = await readmodel.order_events(session, done.id, VAULT)
    assert state is not None
    assert state.customer.name == "Ada Lovelace"
    assert state.shipping_address.line1 == "12 Analytical Row"
    received = events[0].event.model_dump(mode="json")
    assert received["spec"]["customer"]["email"] == "ada@example.com"
    mails = await stack.mailer.sent(done.id)
    assert mails
    assert {m.recipient for m in mails} == {"ada@example.com"}


async def test_seal_open_and_shred(sessions: SessionFactory) -> None:
    doc = {
        "customer": {"id": "C-1", "name": "Ada", "email": "a@b.co", "tier": "vip"},
        "shipping_address": {
            "name": "Ada",
            "line1": "1 Row",
            "line2": "",
            "city": "X",
            "postal_code": "N1",
            "country": "GB",
        },
        "lines": [{"sku": "W", "quantity": 2}],
        "total": "3.00",
    }
    async with sessions.begin() as session:
        sealed = await VAULT.seal(session, "C-1", doc)
        plain_only = await VAULT.seal(session, "C-1", {"lines": [], "total": "1"})
    assert "Ada" not in json.dumps(sealed)
    assert sealed["customer"]["tier"] == "vip"
    assert sealed["total"] == "3.00"
    assert sealed["shipping_address"]["line2"] == ""  # nothing to hide, nothing sealed
    assert sealed["customer"]["email"] == "erased@erased.example"
    assert "_pii" not in plain_only
    async with sessions() as session:
        assert await VAULT.open(session, sealed) == doc
        # A ring holding the same keys reads it; the data key is bound to the customer.
        other = Vault(KeyRing("test-2", TEST_KEYS))
        assert await other.open(session, sealed) == doc
        moved = {**sealed, "_pii": {**sealed["_pii"], "c": "C-2"}}
        assert (await VAULT.open(session, moved))["customer"]["name"] == ERASED
    async with sessions.begin() as session:
        text = await VAULT.seal_text(session, "C-1", "ada@example.com")
        assert await VAULT.shred(session, "C-1")
        assert not await VAULT.shred(session, "C-1")
    async with sessions() as session:
        opened = await VAULT.open(session, sealed)
        assert await VAULT.open_text(session, "C-1", text, "email") == "erased@erased.example"
        assert await session.scalar(select(CustomerKeyRow)) is None
    assert opened["customer"]["name"] == ERASED
    assert opened["customer"]["tier"] == "vip"
    assert opened["lines"] == doc["lines"]


async def test_an_erased_snapshot_is_still_a_valid_order(sessions: SessionFactory) -> None:
    doc = reserved_order().snapshot().model_dump(mode="json")
    customer_id = doc["customer"]["id"]
    async with sessions.begin() as session:
        sealed = await VAULT.seal(session, customer_id, doc)
        await VAULT.shred(session, customer_id)
    async with sessions() as session:
        state = OrderState.model_validate(await VAULT.open(session, sealed))
    assert state.customer.name == ERASED
    assert state.shipping_address.city == ERASED
    assert state.total == OrderState.model_validate(doc).total


@pytest.mark.parametrize("customer_id", ["C-1", "C-ünï"])
async def test_racing_sealers_share_one_data_key(
    sessions: SessionFactory, customer_id: str
) -> None:
    import asyncio

    async def seal() -> str:
        async with sessions.begin() as session:
            return await VAULT.seal_text(session, customer_id, "x")

    values = await asyncio.gather(*(seal() for _ in range(5)))
    async with sessions() as session:
        assert await VAULT.open_texts(session, [(customer_id, v) for v in values]) == ["x"] * 5
        keys = list(await session.scalars(select(CustomerKeyRow)))
    assert len(keys) == 1
