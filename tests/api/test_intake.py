"""The batched create of referenced orders decides as single creates do: new pairs start,
a pair claimed before answers with its order, a known customer with another email is refused,
the same pair twice in a batch is one order."""

from __future__ import annotations

import pytest

from domain.order import OrderSource
from services import intake
from services.auth import Principal, Role
from services.errors import ServiceError
from services.intake import Intake, Started
from tests.api.conftest import Api, services_for
from tests.api.flows import create
from tests.factories import order_spec

ESHOP = Principal(name="eshop", roles=frozenset({Role.SYSTEM}))


def spec(ref: str, customer: str = "C-INTAKE", email: str = "c-intake@example.com") -> object:
    base = order_spec(customer_id=customer)
    return base.model_copy(
        update={
            "external_reference": ref,
            "source": OrderSource.IMPORT,
            "customer": base.customer.model_copy(update={"email": email}),
        }
    )


async def test_batch_outcomes_match_single_creates(api: Api) -> None:
    earlier = await create(
        api,
        {**order_spec(customer_id="C-INTAKE").model_dump(mode="json"),
         "customer": {**order_spec(customer_id="C-INTAKE").customer.model_dump(mode="json"),
                      "email": "c-intake@example.com"},
         "external_reference": "IN-OLD", "source": "import"},
    )  # fmt: skip
    specs = [
        spec("IN-1"),
        spec("IN-OLD"),
        spec("IN-2", email="someone-else@example.com"),  # C-INTAKE is known by now
        spec("IN-3"),
        spec("IN-3"),
    ]
    outcomes = await Intake(services_for(api.stack)).create_referenced(specs, ESHOP)  # type: ignore[arg-type]
    first, old, mismatch, third, third_again = outcomes
    assert isinstance(first, Started)
    assert first.created
    assert old == Started(earlier["id"], False)
    assert isinstance(mismatch, ServiceError)
    assert mismatch.code == "customer_mismatch"
    assert isinstance(third, Started)
    assert isinstance(third_again, Started)
    assert third.order_id == third_again.order_id
    assert [third.created, third_again.created].count(True) == 1
    for order_id in (first.order_id, third.order_id):
        got = await api.http.get(f"/orders/{order_id}", headers=api.auth("support-1"))
        assert got.status_code == 200, got.text
        assert got.json()["source"] == "import"
    # Again, as a retried batch would: nothing new.
    again = await Intake(services_for(api.stack)).create_referenced(specs[:1], ESHOP)  # type: ignore[arg-type]
    assert again == [Started(first.order_id, False)]


async def test_an_id_taken_by_another_order_moves_the_claim(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = await create(api, order_spec().model_dump(mode="json"))
    real = intake.new_order_id_at
    draws = iter([other["id"]])
    monkeypatch.setattr(intake, "new_order_id_at", lambda now: next(draws, None) or real(now))
    [outcome] = await Intake(services_for(api.stack)).create_referenced([spec("IN-CLASH")], ESHOP)  # type: ignore[list-item]
    assert isinstance(outcome, Started)
    assert outcome.created
    assert outcome.order_id != other["id"]
    got = await api.http.get(f"/orders/{outcome.order_id}", headers=api.auth("support-1"))
    assert got.json()["external_reference"] == "IN-CLASH"
    mine = await api.http.get(f"/orders/{other['id']}", headers=api.auth("support-1"))
    assert mine.json()["external_reference"] != "IN-CLASH"  # the other order is untouched
