"""Approval policy: the chain of levels an order needs, who may decide, credit review, discounts."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from config import load_policy
from domain.approval import (
    ApprovalPolicy,
    ChainLevel,
    Refusal,
    Timing,
    approval_chain,
    check_decider,
)
from domain.order import CustomerTier, OrderLine, OrderSpec
from domain.policies import CreditOutcome, CreditRules, decide_credit
from tests.unit.builders import line, payload, spec

POLICY_FILE = Path(__file__).resolve().parents[2] / "approval-policy.yaml"
POLICY = load_policy(POLICY_FILE)
ACCEPT, REVIEW = CreditOutcome.ACCEPT, CreditOutcome.REVIEW
PREPAY, REJECT = CreditOutcome.PREPAY, CreditOutcome.REJECT
STANDARD, VIP = CustomerTier.STANDARD, CustomerTier.VIP
HOURS = timedelta(hours=1)
TIMING = Timing(reminder_after=8 * HOURS, escalate_after=24 * HOURS, expire_after=72 * HOURS)
VIP_TIMING = Timing(reminder_after=4 * HOURS, escalate_after=12 * HOURS, expire_after=36 * HOURS)


def _chain(
    total: str,
    currency: str = "EUR",
    *,
    credit: CreditOutcome = ACCEPT,
    discount: str = "0",
    tier: CustomerTier = STANDARD,
    policy: ApprovalPolicy = POLICY,
) -> list[ChainLevel]:
    return approval_chain(
        policy,
        total=Decimal(total),
        currency=currency,
        credit=credit,
        max_discount_pct=Decimal(discount),
        tier=tier,
    )


def _levels(total: str, currency: str = "EUR", **kwargs: Any) -> list[int]:
    return [c.level for c in _chain(total, currency, **kwargs)]


_L1, _L2 = {"level": 1, "name": "lead"}, {"level": 2, "name": "manager"}


def _policy(**overrides: Any) -> ApprovalPolicy:
    data: dict[str, Any] = {
        "version": "t1",
        "levels": [_L1, _L2],
        "thresholds": {"EUR": {1: "100", 2: "1000"}},
    }
    data.update(overrides)
    return ApprovalPolicy.model_validate(data)


# --- amount thresholds -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "currency", "expected"),
    [
        ("0", "EUR", []),
        ("5000", "EUR", []),
        ("5000.00", "EUR", []),
        ("5000.01", "EUR", [1]),
        ("20000", "EUR", [1]),
        ("20000.01", "EUR", [1, 2]),
        ("100000", "EUR", [1, 2]),
        ("100000.01", "EUR", [1, 2, 3]),
        ("9999999", "EUR", [1, 2, 3]),
        ("5500", "USD", []),  # EUR would need level 1
        ("5500.01", "USD", [1]),
        ("22000", "USD", [1]),
        ("22000.01", "USD", [1, 2]),
        ("110000", "USD", [1, 2]),
        ("110000.01", "USD", [1, 2, 3]),
        ("4300.01", "GBP", [1]),
        ("17000.01", "GBP", [1, 2]),
        ("86000.01", "GBP", [1, 2, 3]),
        ("5000", "JPY", []),  # not listed: "*"
        ("5001", "JPY", [1]),
        ("20001", "JPY", [1, 2]),
        ("100001", "JPY", [1, 2, 3]),
    ],
)
def test_levels_at_and_around_every_threshold(
    total: str, currency: str, expected: list[int]
) -> None:
    assert _levels(total, currency) == expected


@pytest.mark.parametrize(
    ("total", "currency", "expected"),
    [("0", "USD", [1, 2]), ("1", "JPY", [1, 2]), ("150", "EUR", [1])],
)
def test_currency_without_thresholds_or_wildcard_needs_every_level(
    total: str, currency: str, expected: list[int]
) -> None:
    assert _levels(total, currency, policy=_policy()) == expected


@pytest.mark.parametrize("total", ["10", "6000", "25000", "60000", "150000"])
@pytest.mark.parametrize("credit", list(CreditOutcome))
@pytest.mark.parametrize("discount", ["0", "40"])
@pytest.mark.parametrize("tier", list(CustomerTier))
def test_chain_is_sorted_without_duplicates(
    total: str, credit: CreditOutcome, discount: str, tier: CustomerTier
) -> None:
    levels = _levels(total, credit=credit, discount=discount, tier=tier)
    assert levels == sorted(set(levels))


# --- VIP ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "currency", "standard", "vip"),
    [
        ("4000", "EUR", [], []),
        ("6000", "EUR", [1], []),
        ("25000", "EUR", [1, 2], [1]),
        ("49999.99", "EUR", [1, 2], [1]),
        ("50000", "EUR", [1, 2], [1, 2]),  # at the relief amount: no relief
        ("50000.01", "EUR", [1, 2], [1, 2]),
        ("150000", "EUR", [1, 2, 3], [1, 2, 3]),
        ("54999.99", "USD", [1, 2], [1]),
        ("55000", "USD", [1, 2], [1, 2]),
        ("25000", "JPY", [1, 2], [1]),  # relief from "*"
    ],
)
def test_vip_relief_below_amount(
    total: str, currency: str, standard: list[int], vip: list[int]
) -> None:
    assert _levels(total, currency, tier=STANDARD) == standard
    assert _levels(total, currency, tier=VIP) == vip


@pytest.mark.parametrize(("tier", "expected"), [(STANDARD, TIMING), (VIP, VIP_TIMING)])
def test_vip_timing_is_scaled(tier: CustomerTier, expected: Timing) -> None:
    assert [c.timing for c in _chain("60000", tier=tier)] == [expected, expected]


# --- credit review and discounts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "credit", "discount", "expected"),
    [
        ("10", REVIEW, "0", [3]),  # review adds finance even to a small order
        ("6000", REVIEW, "0", [1, 3]),
        ("150000", REVIEW, "0", [1, 2, 3]),
        ("10", ACCEPT, "0", []),
        ("10", PREPAY, "0", []),
        ("6000", PREPAY, "0", [1]),
        ("10", ACCEPT, "15", []),  # exactly the max discount
        ("10", ACCEPT, "15.01", [2]),
        ("10", ACCEPT, "-20", []),  # markup
        ("6000", ACCEPT, "40", [1, 2]),
        ("25000", ACCEPT, "40", [1, 2]),  # level 2 once
        ("10", REVIEW, "40", [2, 3]),
        ("150000", REVIEW, "40", [1, 2, 3]),
    ],
)
def test_credit_review_and_discount_add_levels(
    total: str, credit: CreditOutcome, discount: str, expected: list[int]
) -> None:
    assert _levels(total, credit=credit, discount=discount) == expected


def test_credit_review_without_review_level_adds_nothing() -> None:
    assert _levels("150", credit=REVIEW, policy=_policy()) == [1]


def test_chain_levels_carry_rule_and_timing_override() -> None:
    fast = {"reminder_after": "PT1H", "escalate_after": "PT2H", "expire_after": "PT3H"}
    assert TIMING == Timing()  # the policy's default timing: 8h, 24h, 72h
    policy = _policy(
        levels=[
            {"level": 1, "name": "lead", "quorum": 2, "escalate_to": 2, "timing": fast},
            {"level": 2, "name": "manager"},
        ],
    )
    first, second = _chain("5000", policy=policy)
    assert first == ChainLevel(level=1, name="lead", quorum=2, escalate_to=2, timing=Timing(**fast))
    assert second == ChainLevel(level=2, name="manager", quorum=1, escalate_to=None, timing=TIMING)
    vip_first = _chain("5000", tier=VIP, policy=policy)[0]  # relief_below is empty: no relief
    assert vip_first.timing.reminder_after == timedelta(minutes=30)


# --- who may decide ----------------------------------------------------------------------------

_ALLOWED: dict[str, Any] = {
    "actor": "bob",
    "actor_levels": frozenset({1}),
    "current": 1,
    "requested": None,
    "eligible": frozenset({1}),
    "conflicted": frozenset({"rep"}),
    "approved_here": frozenset({"carol"}),
    "approved_elsewhere": frozenset({"dave"}),
}
# Each row also breaks every later rule, so the row shows which refusal wins.
_OUT = {"requested": 2}
_LEVEL = {"actor_levels": frozenset({3})}
_SELF = {"conflicted": frozenset({"bob"})}
_SECOND = {"approved_elsewhere": frozenset({"bob"})}
_HERE = {"approved_here": frozenset({"bob"})}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({**_OUT, **_LEVEL, **_SELF, **_SECOND, **_HERE}, Refusal.OUT_OF_ORDER),
        ({**_LEVEL, **_SELF, **_SECOND, **_HERE}, Refusal.NOT_YOUR_LEVEL),
        ({**_SELF, **_SECOND, **_HERE}, Refusal.SELF_APPROVAL),
        ({**_SECOND, **_HERE}, Refusal.SECOND_LEVEL),
        (_HERE, Refusal.ALREADY_DECIDED),
        ({"requested": 1}, None),  # the current level, requested explicitly
        ({}, None),
        ({"actor_levels": frozenset({2}), "eligible": frozenset({1, 2})}, None),  # escalated
        ({"actor_levels": frozenset({2})}, Refusal.NOT_YOUR_LEVEL),  # deputy, not escalated
    ],
)
def test_check_decider(overrides: dict[str, Any], expected: Refusal | None) -> None:
    result = check_decider(**{**_ALLOWED, **overrides})
    assert (None if result is None else result[0]) is expected
    assert result is None or result[1]  # a message for the caller


@pytest.mark.parametrize("refusal", list(Refusal))
def test_refusal_forbidden(refusal: Refusal) -> None:
    forbidden = {Refusal.NOT_YOUR_LEVEL, Refusal.SELF_APPROVAL, Refusal.SECOND_LEVEL}
    assert refusal.forbidden is (refusal in forbidden)


# --- credit review outcome ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "exposure", "total", "ratio", "expected"),
    [
        (800, "700.00", "100.00", "0.8", ACCEPT),  # exactly 80%
        (800, "700.00", "100.01", "0.8", REVIEW),
        (800, "0", "1000.00", "0.8", REVIEW),  # exactly the limit
        (800, "900.00", "100.01", "0.8", PREPAY),  # over the limit: prepay beats review
        (500, "700.00", "200.00", "0.8", PREPAY),  # score band: prepay beats review
        (399, "700.00", "200.00", "0.8", REJECT),
        (800, "999.00", "1.00", None, ACCEPT),
        (800, "0", "1000.00", None, ACCEPT),
        (800, "999.00", "1.01", None, PREPAY),
        (800, "999.00", "1.00", "default", REVIEW),  # default rules review above 80%
        (800, "700.00", "100.00", "default", ACCEPT),  # default rules: exactly 80%
    ],
)
def test_credit_review(
    score: int, exposure: str, total: str, ratio: str | None, expected: CreditOutcome
) -> None:
    rules = (
        None if ratio == "default" else CreditRules.model_validate({"review_above_ratio": ratio})
    )
    decision = decide_credit(
        score=score,
        credit_limit=Decimal("1000.00"),
        open_exposure=Decimal(exposure),
        order_total=Decimal(total),
        rules=rules,
    )
    assert decision.outcome is expected
    if expected is REVIEW:
        assert "80%" in decision.reason


@pytest.mark.parametrize("ratio", ["0", "-0.1", "1.01"])
def test_review_ratio_bounds(ratio: str) -> None:
    with pytest.raises(ValidationError):
        CreditRules(review_above_ratio=Decimal(ratio))


# --- policy validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"credit_review_level": 3}, "credit_review_level: level 3 is not defined"),
        ({"discount_level": 5}, "discount_level: level 5 is not defined"),
        ({"levels": [{**_L1, "escalate_to": 4}, _L2]}, "levels[0].escalate_to: level 4 is not"),
        ({"thresholds": {"USD": {1: "1", 3: "9"}}}, "thresholds.USD: level 3 is not defined"),
        ({"levels": [_L2, _L1]}, "levels: each level once, in increasing order"),
        ({"levels": [_L1, {**_L2, "level": 1}]}, "levels: each level once, in increasing order"),
        ({"timing": {"reminder_after": "PT2H", "escalate_after": "PT1H"}}, "reminder_after <"),
        ({"timing": {"reminder_after": "PT0S"}}, "0 < reminder_after"),
        ({"approvers": []}, "approvers"),
        ({"levels": [{**_L1, "role": "x"}]}, "levels.0.role"),
        ({"timing": {"remind_after": "PT1H"}}, "timing.remind_after"),
        ({"vip": {"relief": {}}}, "vip.relief"),
        ({"levels": []}, "levels"),
        ({"levels": [{**_L1, "quorum": 0}]}, "levels.0.quorum"),
    ],
)
def test_policy_validation(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        _policy(**overrides)
    assert message in str(info.value)


# --- discounts on orders -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit_price", "list_price", "expected"),
    [
        ("80.00", None, "0"),
        ("80.00", "0", "0"),
        ("80.00", "100.00", "20"),
        ("100.00", "100.00", "0"),
        ("120.00", "100.00", "-20"),
        ("0", "100.00", "100"),
    ],
)
def test_line_discount_pct(unit_price: str, list_price: str | None, expected: str) -> None:
    order_line = OrderLine.model_validate({**line(unit_price=unit_price), "list_price": list_price})
    assert order_line.discount_pct() == Decimal(expected)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([line()], "0"),
        ([line(), {**line(unit_price="80.00"), "list_price": "100.00"}], "20"),
        ([{**line(unit_price="90"), "list_price": "100"}, {**line(), "list_price": "20"}], "50"),
        ([{**line(unit_price="120.00"), "list_price": "100.00"}], "-20"),
    ],
)
def test_spec_max_discount_pct(lines: list[dict[str, Any]], expected: str) -> None:
    assert spec(lines=lines).max_discount_pct() == Decimal(expected)


@pytest.mark.parametrize(("currency", "price"), [("EUR", "100.001"), ("JPY", "100.5")])
def test_list_price_decimals_checked_per_line(currency: str, price: str) -> None:
    lines = [line(unit_price="10"), {**line(unit_price="10"), "list_price": price}]
    with pytest.raises(ValidationError, match=r"lines\[1\]\.list_price"):
        OrderSpec.model_validate(payload(lines=lines, currency=currency))
