"""Business policies: credit decision and prepayment."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from domain.policies import (
    CreditDecision,
    CreditOutcome,
    CreditRules,
    decide_credit,
    requires_prepayment,
)
from tests.unit.builders import spec

ACCEPT, PREPAY, REJECT = CreditOutcome.ACCEPT, CreditOutcome.PREPAY, CreditOutcome.REJECT
LIMIT = Decimal("1000.00")


def _decide(
    score: int,
    exposure: str = "0",
    total: str = "100.00",
    limit: Decimal = LIMIT,
    rules: CreditRules | None = None,
) -> CreditDecision:
    return decide_credit(
        score=score,
        credit_limit=limit,
        open_exposure=Decimal(exposure),
        order_total=Decimal(total),
        rules=rules,
    )


def test_default_rules() -> None:
    rules = CreditRules()
    assert rules.reject_below == 400
    assert rules.prepay_below == 600
    assert rules.review_above_ratio == Decimal("0.8")


NO_REVIEW = CreditRules(review_above_ratio=None)


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0, REJECT),
        (1, REJECT),
        (399, REJECT),
        (400, PREPAY),  # == reject_below: not rejected
        (401, PREPAY),
        (599, PREPAY),
        (600, ACCEPT),  # == prepay_below: accepted
        (601, ACCEPT),
        (1000, ACCEPT),
    ],
)
def test_score_bands_with_default_rules(score: int, expected: CreditOutcome) -> None:
    assert _decide(score).outcome is expected


@pytest.mark.parametrize(
    ("score", "expected"),
    [(499, REJECT), (500, PREPAY), (749, PREPAY), (750, ACCEPT)],
)
def test_score_bands_with_custom_rules(score: int, expected: CreditOutcome) -> None:
    rules = CreditRules(reject_below=500, prepay_below=750)
    assert _decide(score, rules=rules).outcome is expected


@pytest.mark.parametrize(
    ("exposure", "total", "expected"),
    [
        ("0", "1000.00", ACCEPT),  # exactly the limit
        ("900.00", "100.00", ACCEPT),  # exposure + total == limit
        ("899.99", "100.00", ACCEPT),  # one cent below
        ("900.00", "100.01", PREPAY),  # one cent above
        ("900.01", "100.00", PREPAY),
        ("0", "1000.01", PREPAY),
        ("1000.00", "0.01", PREPAY),
        ("1000.00", "0", ACCEPT),
        ("5000.00", "1.00", PREPAY),
    ],
)
def test_credit_limit_boundary(exposure: str, total: str, expected: CreditOutcome) -> None:
    # Without the finance review band, so only the limit decides.
    decision = _decide(800, exposure=exposure, total=total, rules=NO_REVIEW)
    assert decision.outcome is expected
    if expected is PREPAY:
        assert "exceeds limit" in decision.reason


def test_zero_limit_only_accepts_free_orders() -> None:
    assert _decide(900, total="0", limit=Decimal(0)).outcome is ACCEPT
    assert _decide(900, total="0.01", limit=Decimal(0)).outcome is PREPAY


@pytest.mark.parametrize(
    ("exposure", "total", "expected"),
    [
        ("700.00", "100.00", ACCEPT),  # exactly 80% of the limit
        ("700.00", "100.01", CreditOutcome.REVIEW),
        ("0", "1000.00", CreditOutcome.REVIEW),  # exactly the limit
        ("900.00", "100.01", PREPAY),  # over the limit: prepay beats review
    ],
)
def test_default_rules_review_above_80_percent_of_limit(
    exposure: str, total: str, expected: CreditOutcome
) -> None:
    decision = _decide(800, exposure=exposure, total=total)
    assert decision.outcome is expected
    if expected is CreditOutcome.REVIEW:
        assert "above 80% of limit" in decision.reason


@pytest.mark.parametrize("score", [0, 200, 399])
def test_reject_beats_prepay(score: int) -> None:
    decision = _decide(score, exposure="5000.00", total="100.00")
    assert decision.outcome is REJECT
    assert decision.reason == f"bureau score {score} below 400"


def test_low_score_and_over_limit_give_prepay_for_limit_reason() -> None:
    decision = _decide(450, exposure="1000.00", total="1.00")
    assert decision.outcome is PREPAY
    assert "exceeds limit" in decision.reason


def test_prepay_reason_for_score() -> None:
    decision = _decide(599)
    assert decision.outcome is PREPAY
    assert decision.reason == "bureau score 599 below 600"


def test_accept_reason() -> None:
    assert _decide(600).reason == "within credit limit"


def test_decision_records_inputs() -> None:
    decision = _decide(700, exposure="250.50", total="10.00", limit=Decimal("2000.00"))
    assert decision.score == 700
    assert decision.credit_limit == Decimal("2000.00")
    assert decision.open_exposure == Decimal("250.50")


def test_decision_is_frozen() -> None:
    decision = _decide(700)
    with pytest.raises(ValidationError):
        decision.outcome = REJECT  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [{"reject_below": -1}, {"reject_below": 1001}, {"prepay_below": -1}, {"prepay_below": 1001}],
)
def test_credit_rules_bounds(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        CreditRules(**kwargs)


@pytest.mark.parametrize("credit", list(CreditOutcome))
def test_bank_transfer_always_prepays(credit: CreditOutcome) -> None:
    order = spec(payment_method={"type": "bank_transfer"})
    assert requires_prepayment(order, credit) is True


@pytest.mark.parametrize(
    ("credit", "expected"),
    [(ACCEPT, False), (PREPAY, True), (REJECT, False)],
)
def test_card_prepays_only_when_credit_says_so(credit: CreditOutcome, expected: bool) -> None:
    order = spec(payment_method={"type": "card", "token": "tok_visa"})
    assert requires_prepayment(order, credit) is expected


def test_credit_bands_must_be_in_order() -> None:
    with pytest.raises(ValueError, match="reject_below must not exceed prepay_below"):
        CreditRules(reject_below=700, prepay_below=600)
