"""Multi-level approval: the policy, the chain of levels it gives an order, and the rules on who
may decide (the file that holds the policy is read by ``config.load_policy``)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.order import CustomerTier
from domain.policies import CreditOutcome

WILDCARD = "*"


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timing(_Config):
    """How long a level may wait before approvers are reminded, then escalated, then expired."""

    reminder_after: timedelta = timedelta(hours=8)
    escalate_after: timedelta = timedelta(hours=24)
    expire_after: timedelta = timedelta(hours=72)

    @model_validator(mode="after")
    def _in_order(self) -> Timing:
        if not timedelta(0) < self.reminder_after < self.escalate_after < self.expire_after:
            raise ValueError("need 0 < reminder_after < escalate_after < expire_after")
        return self

    def scaled(self, factor: Decimal) -> Timing:
        def scale(d: timedelta) -> timedelta:
            return timedelta(seconds=float(Decimal(d.total_seconds()) * factor))

        return Timing(
            reminder_after=scale(self.reminder_after),
            escalate_after=scale(self.escalate_after),
            expire_after=scale(self.expire_after),
        )


class LevelRule(_Config):
    level: int = Field(ge=1, le=9)
    name: str = Field(min_length=1, max_length=64)
    quorum: int = Field(default=1, ge=1, le=5, description="Distinct approvals this level needs.")
    escalate_to: int | None = Field(
        default=None,
        ge=1,
        le=9,
        description="Level whose approvers may also decide once escalated.",
    )
    timing: Timing | None = None


class VipRule(_Config):
    relief_below: dict[str, Decimal] = Field(
        default_factory=dict, description="Per currency: VIP orders below this need one level less."
    )
    timing_factor: Decimal = Field(default=Decimal("0.5"), gt=0, le=1)


class ApprovalPolicy(_Config):
    """The whole approval policy; its ``version`` is recorded on every order that uses it."""

    version: str = Field(min_length=1, max_length=64)
    levels: list[LevelRule] = Field(min_length=1)
    thresholds: dict[str, dict[int, Decimal]] = Field(
        description="Per currency (or '*'): a level is needed when the total is above its amount."
    )
    timing: Timing = Field(default_factory=Timing)
    credit_review_level: int | None = Field(default=None, ge=1, le=9)
    discount_level: int | None = Field(default=None, ge=1, le=9)
    max_discount_pct: Decimal = Field(default=Decimal(15), ge=0, le=100)
    vip: VipRule = Field(default_factory=VipRule)

    @model_validator(mode="after")
    def _consistent(self) -> ApprovalPolicy:
        known = [rule.level for rule in self.levels]
        if known != sorted(set(known)):
            raise ValueError("levels: each level once, in increasing order")
        refs = {
            "credit_review_level": self.credit_review_level,
            "discount_level": self.discount_level,
        }
        refs |= {f"levels[{i}].escalate_to": r.escalate_to for i, r in enumerate(self.levels)}
        for where, level in refs.items():
            if level is not None and level not in known:
                raise ValueError(f"{where}: level {level} is not defined in levels")
        for currency, by_level in self.thresholds.items():
            for level in by_level:
                if level not in known:
                    raise ValueError(f"thresholds.{currency}: level {level} is not defined")
        return self

    def rule(self, level: int) -> LevelRule:
        return next(r for r in self.levels if r.level == level)


class ChainLevel(BaseModel):
    """One level an order needs, with its timers fixed when the chain was decided."""

    model_config = ConfigDict(frozen=True)
    level: int
    name: str
    quorum: int
    escalate_to: int | None
    timing: Timing


def approval_chain(
    policy: ApprovalPolicy,
    *,
    total: Decimal,
    currency: str,
    credit: CreditOutcome,
    max_discount_pct: Decimal,
    tier: CustomerTier,
) -> list[ChainLevel]:
    """The ordered levels an order needs; empty when it needs no approval.

    Amount levels come from the currency's thresholds (or '*'; a currency with neither needs
    every level, to fail safe). A VIP order below its relief amount drops its top amount level.
    A credit review adds the finance level, a discount beyond the limit the discount level.
    """
    thresholds = policy.thresholds.get(currency, policy.thresholds.get(WILDCARD))
    vip = tier is CustomerTier.VIP
    if thresholds is None:  # unknown currency: fail safe, every level and no VIP relief
        amount_levels = [r.level for r in policy.levels]
    else:
        amount_levels = sorted(level for level, above in thresholds.items() if total > above)
        relief = policy.vip.relief_below.get(currency, policy.vip.relief_below.get(WILDCARD))
        if vip and amount_levels and relief is not None and total < relief:
            amount_levels = amount_levels[:-1]
    levels = set(amount_levels)
    if credit is CreditOutcome.REVIEW and policy.credit_review_level is not None:
        levels.add(policy.credit_review_level)
    if policy.discount_level is not None and max_discount_pct > policy.max_discount_pct:
        levels.add(policy.discount_level)
    chain = []
    for level in sorted(levels):
        rule = policy.rule(level)
        timing = rule.timing or policy.timing
        if vip:
            timing = timing.scaled(policy.vip.timing_factor)
        chain.append(
            ChainLevel(
                level=level,
                name=rule.name,
                quorum=rule.quorum,
                escalate_to=rule.escalate_to,
                timing=timing,
            )
        )
    return chain


class Refusal(StrEnum):
    """Why a decision is refused; ``FORBIDDEN`` kinds map to 403, the others to 409."""

    NOT_YOUR_LEVEL = "not_your_level"
    SELF_APPROVAL = "self_approval"
    SECOND_LEVEL = "second_level"
    ALREADY_DECIDED = "already_decided"
    OUT_OF_ORDER = "out_of_order"

    @property
    def forbidden(self) -> bool:
        return self in (Refusal.NOT_YOUR_LEVEL, Refusal.SELF_APPROVAL, Refusal.SECOND_LEVEL)


def check_decider(
    *,
    actor: str,
    actor_levels: frozenset[int],
    current: int,
    requested: int | None,
    eligible: frozenset[int],
    conflicted: frozenset[str],
    approved_here: frozenset[str],
    approved_elsewhere: frozenset[str],
) -> tuple[Refusal, str] | None:
    """Refusal and message if ``actor`` may not decide the ``current`` level now, else None.

    ``eligible``: levels whose holders may decide it (its own, plus its deputy once escalated);
    ``conflicted``: who created the order or is its sales rep.
    """
    if requested is not None and requested != current:
        return Refusal.OUT_OF_ORDER, f"level {current} decides now, not level {requested}"
    if not actor_levels & eligible:
        return Refusal.NOT_YOUR_LEVEL, f"{actor} may not decide level {current}"
    if actor in conflicted:
        return Refusal.SELF_APPROVAL, f"{actor} created or sells this order and may not approve it"
    if actor in approved_elsewhere:
        return Refusal.SECOND_LEVEL, f"{actor} already approved another level of this order"
    if actor in approved_here:
        return Refusal.ALREADY_DECIDED, f"{actor} already approved level {current}"
    return None
