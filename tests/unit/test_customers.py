"""The customer master model and the RFM classification rule."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from domain.customers import (
    CustomerIn,
    CustomerPatch,
    RfmFigures,
    RfmThresholds,
    Step,
    classification_step,
    propose_tier,
)
from domain.order import CustomerTier

STD, VIP = CustomerTier.STANDARD, CustomerTier.VIP
RULES = RfmThresholds(
    vip_min_orders=12,
    vip_min_spend={"EUR": Decimal(50000), "*": Decimal(40000)},
    vip_max_recency_days=90,
)


def record(**extra: Any) -> dict[str, Any]:
    return {"id": "C-1", "name": "Ada", "email": "ada@example.com", "region": "EU", **extra}


def figures(recency: int | None = 10, orders: int = 12, **spend: str) -> RfmFigures:
    return RfmFigures(
        recency_days=recency,
        orders=orders,
        spend={c: Decimal(v) for c, v in (spend or {"EUR": "50000"}).items()},
    )


def test_a_record_defaults_to_standard_without_tags_or_limit() -> None:
    c = CustomerIn.model_validate(record())
    assert (c.tier, c.credit_limit, c.tags, c.phone) == (STD, None, [], None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tier", "gold"),
        ("tier", "VIP"),
        ("email", "not-an-email"),
        ("credit_limit", "-1"),
        ("credit_limit", "1.00001"),
        ("tags", ["ok", "\x00bad"]),
        ("tags", [f"t{i}" for i in range(21)]),
        ("phone", "call me"),
        ("nickname", "Ada"),
        ("name", "Ada\u202eLovelace"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        CustomerIn.model_validate(record(**{field: value}))
    assert field in str(info.value)


def test_tags_are_kept_once_in_order() -> None:
    assert CustomerIn.model_validate(record(tags=["b", "a", "b"])).tags == ["b", "a"]


def test_a_patch_names_what_it_changes_and_null_only_where_it_means_removal() -> None:
    assert CustomerPatch(credit_limit=None).model_fields_set == {"credit_limit"}
    assert CustomerPatch(phone=None).model_fields_set == {"phone"}
    for bad in ({}, {"tier": None}, {"name": None}, {"tier": "platinum"}):
        with pytest.raises(ValidationError):
            CustomerPatch.model_validate(bad)


def test_vip_needs_recency_frequency_and_spend() -> None:
    proposal = propose_tier(figures(), RULES)
    assert proposal.tier is VIP
    assert (proposal.recency, proposal.frequency, proposal.monetary) == (True, True, True)
    detail = proposal.detail(figures())
    assert detail["met"] == ["recency", "frequency", "monetary"]
    assert detail["spend"] == {"EUR": "50000"}


@pytest.mark.parametrize(
    ("fig", "missing"),
    [
        (figures(recency=91), "recency"),
        (figures(recency=None, orders=0, EUR="0"), "recency"),
        (figures(orders=11), "frequency"),
        (figures(EUR="49999.99"), "monetary"),
    ],
)
def test_missing_one_criterion_keeps_standard(fig: RfmFigures, missing: str) -> None:
    proposal = propose_tier(fig, RULES)
    assert proposal.tier is STD
    assert missing not in proposal.detail(fig)["met"]


def test_spend_is_judged_per_currency_never_summed() -> None:
    # 30,000 EUR + 30,000 USD is not 60,000 of anything.
    assert propose_tier(figures(EUR="30000", USD="30000"), RULES).tier is STD
    # A currency without its own threshold uses "*".
    assert propose_tier(figures(USD="40000"), RULES).tier is VIP
    no_wildcard = RfmThresholds(vip_min_spend={"EUR": Decimal(1)})
    assert propose_tier(figures(USD="1000000"), no_wildcard).tier is STD


def test_boundaries_are_inclusive() -> None:
    assert propose_tier(figures(recency=90, orders=12, EUR="50000"), RULES).tier is VIP


@pytest.mark.parametrize(
    ("current", "suggested", "proposed", "auto", "step"),
    [
        (STD, None, VIP, True, Step.APPLY),
        (STD, None, VIP, False, Step.SUGGEST),
        (STD, VIP, VIP, False, Step.NONE),  # already suggested: not again
        (STD, VIP, VIP, True, Step.APPLY),  # auto-promotion turned on since
        (VIP, None, STD, True, Step.SUGGEST),  # demotion: never automatic
        (VIP, STD, STD, True, Step.NONE),
        (STD, VIP, STD, False, Step.WITHDRAW),  # the figures fell back
        (VIP, None, VIP, False, Step.NONE),
        (STD, None, STD, True, Step.NONE),
    ],
)
def test_classification_step(
    current: CustomerTier,
    suggested: CustomerTier | None,
    proposed: CustomerTier,
    auto: bool,
    step: Step,
) -> None:
    assert classification_step(current, suggested, proposed, auto_promote=auto) is step
