"""Customer master data and its classification rule (pure: no I/O).

The master record, not the order body, decides an order's tier, region and credit limit. The
classifier proposes tiers by RFM over the last 12 months: Recency (days since the last order),
Frequency (orders) and Monetary value (spend per currency, never converted between currencies).
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from domain.mail import DEFAULT_LANGUAGE, Language
from domain.order import Clean, CustomerTier, ShortText, Strict, Text

DEFAULT_TIER = CustomerTier.STANDARD
WINDOW_DAYS = 365  # the classification looks at the last 12 months
WILDCARD = "*"  # a spend threshold for every currency without its own
MAX_TAGS = 20

Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _:./-]{0,39}$"),
]
Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 ()./-]{2,31}$"), Clean
]
CreditLimit = Annotated[
    Decimal,
    Field(ge=0, max_digits=18, decimal_places=4, description="Overrides the bureau's limit."),
]


class ChangeType(StrEnum):
    """What a ``customer_changes`` row records."""

    CREATED = "created"
    UPDATED = "updated"
    TIER_CHANGED = "tier_changed"
    TIER_SUGGESTED = "tier_suggested"
    PII_ERASED = "pii_erased"


def _unique_tags(tags: list[str] | None) -> list[str] | None:
    if tags is None:
        return None
    seen: dict[str, None] = {}
    for tag in tags:
        seen.setdefault(tag, None)
    return list(seen)


class CustomerIn(Strict):
    """A whole master record as support creates it or a system upserts it."""

    id: ShortText
    name: Text
    email: EmailStr
    phone: Phone | None = None
    region: ShortText
    tier: CustomerTier = DEFAULT_TIER
    credit_limit: CreditLimit | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    language: Language = Field(default=DEFAULT_LANGUAGE, description="Of the customer's emails.")

    _tags = field_validator("tags")(_unique_tags)


class CustomerPatch(Strict):
    """The fields to change; the others stay. ``credit_limit: null`` removes the override,
    ``phone: null`` the phone."""

    name: Text | None = None
    email: EmailStr | None = None
    phone: Phone | None = None
    region: ShortText | None = None
    tier: CustomerTier | None = None
    credit_limit: CreditLimit | None = None
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    language: Language | None = None

    _tags = field_validator("tags")(_unique_tags)

    @model_validator(mode="after")
    def _something(self) -> CustomerPatch:
        if not self.model_fields_set:
            raise ValueError("name at least one field to change")
        for name in ("name", "email", "region", "tier", "tags", "language"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name}: may not be null")
        return self


PII_FIELDS = frozenset({"name", "email", "phone"})


# --- classification (RFM) ------------------------------------------------------------------------


class RfmThresholds(BaseModel):
    """What makes a VIP: every one of recency, frequency and monetary value (from settings)."""

    model_config = ConfigDict(frozen=True)
    vip_min_orders: int = Field(default=12, ge=1, description="Orders in the last 12 months.")
    vip_min_spend: dict[str, Decimal] = Field(
        default_factory=lambda: {WILDCARD: Decimal(50000)},
        description="Per currency (or '*'): spend in the last 12 months in that currency.",
    )
    vip_max_recency_days: int = Field(
        default=90, ge=0, le=WINDOW_DAYS, description="Days since the last order, at most."
    )

    def min_spend(self, currency: str) -> Decimal | None:
        return self.vip_min_spend.get(currency, self.vip_min_spend.get(WILDCARD))


class RfmFigures(BaseModel):
    """One customer's figures over the window (orders not cancelled, rejected or failed)."""

    model_config = ConfigDict(frozen=True)
    recency_days: int | None = Field(ge=0, description="None: no order in the window.")
    orders: int = Field(ge=0)
    spend: dict[str, Decimal] = Field(default_factory=dict)


class RfmProposal(BaseModel):
    """The tier the figures call for, and why."""

    model_config = ConfigDict(frozen=True)
    tier: CustomerTier
    recency: bool
    frequency: bool
    monetary: bool
    reason: str

    def detail(self, figures: RfmFigures) -> dict[str, Any]:
        """What a change row keeps of the proposal (JSON, no PII)."""
        return {
            "recency_days": figures.recency_days,
            "orders": figures.orders,
            "spend": {c: str(v) for c, v in sorted(figures.spend.items())},
            "met": [
                name
                for name, ok in (
                    ("recency", self.recency),
                    ("frequency", self.frequency),
                    ("monetary", self.monetary),
                )
                if ok
            ],
            "reason": self.reason,
        }


def propose_tier(figures: RfmFigures, thresholds: RfmThresholds) -> RfmProposal:
    """VIP when the customer ordered recently enough, often enough, and spent enough in at
    least one currency (a currency with no threshold of its own and no '*' never counts);
    standard otherwise."""
    recency = (
        figures.recency_days is not None and figures.recency_days <= thresholds.vip_max_recency_days
    )
    frequency = figures.orders >= thresholds.vip_min_orders
    spent = [
        f"{amount} {currency}"
        for currency, amount in sorted(figures.spend.items())
        if (floor := thresholds.min_spend(currency)) is not None and amount >= floor
    ]
    monetary = bool(spent)
    tier = CustomerTier.VIP if recency and frequency and monetary else CustomerTier.STANDARD
    last = (
        "no order" if figures.recency_days is None else f"last order {figures.recency_days} d ago"
    )
    parts = [
        f"{last} ({'≤' if recency else '>'} {thresholds.vip_max_recency_days} d)",
        f"{figures.orders} orders ({'≥' if frequency else '<'} {thresholds.vip_min_orders})",
        f"spend {', '.join(spent)} meets the threshold" if monetary else "spend below threshold",
    ]
    return RfmProposal(
        tier=tier,
        recency=recency,
        frequency=frequency,
        monetary=monetary,
        reason="; ".join(parts),
    )


class Step(StrEnum):
    """What the classifier does with one customer."""

    NONE = "none"  # the tier fits, no suggestion pending
    APPLY = "apply"  # promote now (auto-promotion on)
    SUGGEST = "suggest"  # record the proposal for support to apply
    WITHDRAW = "withdraw"  # a pending suggestion no longer holds


def classification_step(
    current: CustomerTier,
    suggested: CustomerTier | None,
    proposed: CustomerTier,
    *,
    auto_promote: bool,
) -> Step:
    """Promotion to VIP is applied when ``auto_promote``, else suggested; a demotion is only
    ever suggested (support decides), and a suggestion already pending is not repeated."""
    if proposed is current:
        return Step.WITHDRAW if suggested is not None else Step.NONE
    if proposed is CustomerTier.VIP and auto_promote:
        return Step.APPLY
    return Step.NONE if suggested is proposed else Step.SUGGEST
