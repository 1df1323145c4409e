"""Association rules over order baskets ("customers who order X also order Y"; pure: no I/O).

:func:`rules` mines frequent itemsets with mlxtend's FP-growth and keeps the rules with exactly
one consequent SKU. A basket is the set of SKUs of one order (repeats count once); every basket
passed counts in the support denominator, single-item (and empty) ones included. Metrics are the
usual ones: ``support = orders(X + y) / baskets``, ``confidence = support / support(X)`` and
``lift = confidence / support(y)``. :func:`suggest` turns the rules into suggestions for one
basket or customer.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
from mlxtend.frequent_patterns import (  # type: ignore[import-untyped]
    association_rules,
    fpgrowth,
)


@dataclass(frozen=True)
class Rule:
    antecedent: tuple[str, ...]  # sorted, 1..max_len-1 SKUs
    consequent: str
    support: float  # share of baskets holding antecedent and consequent
    confidence: float
    lift: float
    orders: int  # baskets holding antecedent and consequent


@dataclass(frozen=True)
class Suggestion:
    sku: str  # the SKU to suggest (the rule's consequent)
    rule: Rule  # the best rule that suggested it


def rules(
    baskets: Iterable[Collection[str]],
    *,
    min_support: float,
    min_confidence: float,
    min_lift: float,
    max_len: int = 3,
) -> list[Rule]:
    """Rules ``antecedent -> consequent`` at or above every threshold, whose itemset
    (antecedent plus consequent) has at most ``max_len`` SKUs; best (lift, confidence) first."""
    if not 0 < min_support <= 1:
        raise ValueError("min_support must be in (0, 1]")
    if not 0 <= min_confidence <= 1:
        raise ValueError("min_confidence must be in [0, 1]")
    if min_lift < 0:
        raise ValueError("min_lift must be >= 0")
    sets = [frozenset(b) for b in baskets]
    n = len(sets)
    if n == 0 or max_len < 2:
        return []

    # Only SKUs frequent on their own can be in a frequent itemset: one-hot just those.
    counts = Counter(sku for s in sets for sku in s)
    # Plain str column names: mlxtend calls int() on numpy scalars (np.str_ included) in names.
    frequent = sorted(str(sku) for sku, c in counts.items() if c / n >= min_support)
    if len(frequent) < 2:
        return []
    column = {sku: i for i, sku in enumerate(frequent)}
    onehot = np.zeros((n, len(frequent)), dtype=bool)
    for row, s in enumerate(sets):
        onehot[row, [column[sku] for sku in s if sku in column]] = True

    itemsets = fpgrowth(
        pd.DataFrame(onehot, columns=frequent),
        min_support=min_support,
        use_colnames=True,
        max_len=max_len,
    )
    if not (itemsets["itemsets"].map(len) > 1).any():
        return []
    found = association_rules(
        itemsets, metric="confidence", min_threshold=min_confidence, **_rule_kwargs(n)
    )
    out = []
    for antecedents, consequents, support, confidence, lift in zip(
        found["antecedents"],
        found["consequents"],
        found["support"],
        found["confidence"],
        found["lift"],
        strict=True,
    ):
        if len(consequents) != 1 or lift < min_lift:
            continue
        (consequent,) = consequents
        out.append(
            Rule(
                antecedent=tuple(sorted(map(str, antecedents))),
                consequent=str(consequent),
                support=float(support),
                confidence=float(confidence),
                lift=float(lift),
                orders=round(float(support) * n),  # support is a count over n: exact
            )
        )
    out.sort(key=lambda r: (-r.lift, -r.confidence, r.antecedent, r.consequent))
    return out


def suggest(rules: Iterable[Rule], skus: Collection[str], *, limit: int = 5) -> list[Suggestion]:
    """SKUs to suggest to a basket or customer holding ``skus``: from the rules whose antecedent
    it holds and whose consequent it does not, one per consequent, best (lift, confidence)
    first, at most ``limit``."""
    held = frozenset(skus)
    applicable = sorted(
        (r for r in rules if r.consequent not in held and held.issuperset(r.antecedent)),
        key=lambda r: (-r.lift, -r.confidence, r.consequent, r.antecedent),
    )
    best: dict[str, Suggestion] = {}
    for r in applicable:
        if len(best) >= limit:
            break
        best.setdefault(r.consequent, Suggestion(r.consequent, r))
    return list(best.values())


@cache
def _rule_parameters() -> frozenset[str]:
    return frozenset(inspect.signature(association_rules).parameters)


def _rule_kwargs(n: int) -> dict[str, Any]:
    """``association_rules`` takes ``num_itemsets`` (the basket count) from mlxtend 0.23.2 on
    (required in 0.23.2-0.23.3) and, in newer versions, ``return_metrics`` (we need three)."""
    params = _rule_parameters()
    kwargs: dict[str, Any] = {}
    if "num_itemsets" in params:
        kwargs["num_itemsets"] = n
    if "return_metrics" in params:
        kwargs["return_metrics"] = ["support", "confidence", "lift"]
    return kwargs
