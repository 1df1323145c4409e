"""Business policies as pure functions: credit, approval, payment flow."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.order import OrderSpec, PaymentType


class CreditOutcome(StrEnum):
    ACCEPT = "accept"
    REVIEW = "review"  # accepted, but close to the limit: finance approves the order too
    PREPAY = "prepay"  # customer must pay before anything ships
    REJECT = "reject"


class CreditRules(BaseModel):
    """Score bands of the credit policy (bureau scores are 0..1000)."""

    model_config = ConfigDict(frozen=True)
    reject_below: int = Field(default=400, ge=0, le=1000)
    prepay_below: int = Field(default=600, ge=0, le=1000)
    review_above_ratio: Decimal | None = Field(
        default=Decimal("0.8"),
        gt=0,
        le=1,
        description="Exposure + order above this share of the limit needs a finance review "
        "(None: never).",
    )

    @model_validator(mode="after")
    def _bands_in_order(self) -> CreditRules:
        if self.reject_below > self.prepay_below:
            raise ValueError("reject_below must not exceed prepay_below")
        return self


class CreditDecision(BaseModel):
    model_config = ConfigDict(frozen=True)
    outcome: CreditOutcome
    reason: str
    score: int
    credit_limit: Decimal
    open_exposure: Decimal


def decide_credit(
    *,
    score: int,
    credit_limit: Decimal,
    open_exposure: Decimal,
    order_total: Decimal,
    rules: CreditRules | None = None,
) -> CreditDecision:
    """Credit limit vs. open exposure plus the bureau score -> accept / prepay / reject."""
    rules = rules or CreditRules()

    def decision(outcome: CreditOutcome, reason: str) -> CreditDecision:
        return CreditDecision(
            outcome=outcome,
            reason=reason,
            score=score,
            credit_limit=credit_limit,
            open_exposure=open_exposure,
        )

    if score < rules.reject_below:
        return decision(CreditOutcome.REJECT, f"bureau score {score} below {rules.reject_below}")
    if open_exposure + order_total > credit_limit:
        return decision(
            CreditOutcome.PREPAY,
            f"exposure {open_exposure} + order {order_total} exceeds limit {credit_limit}",
        )
    if score < rules.prepay_below:
        return decision(CreditOutcome.PREPAY, f"bureau score {score} below {rules.prepay_below}")
    ratio = rules.review_above_ratio
    if ratio is not None and open_exposure + order_total > credit_limit * ratio:
        return decision(
            CreditOutcome.REVIEW,
            f"exposure {open_exposure} + order {order_total} above {ratio * 100:.0f}% "
            f"of limit {credit_limit}",
        )
    return decision(CreditOutcome.ACCEPT, "within credit limit")


def requires_prepayment(spec: OrderSpec, credit: CreditOutcome) -> bool:
    """Bank transfers are always paid up front; so is every order the credit check flags."""
    return spec.payment_method.type is PaymentType.BANK_TRANSFER or credit is CreditOutcome.PREPAY
