"""Association rules: a planted rule is found, independent SKUs give none; thresholds; suggest."""

from __future__ import annotations

import random

import numpy as np
import pytest

from domain.basket import Rule, Suggestion, rules, suggest

RANDOM_SKUS = [f"S{i:02d}" for i in range(28)]
ORDERS = 2000


def planted_baskets(seed: int = 42) -> list[set[str]]:
    """2000 orders over 30 SKUs: each of 28 independent SKUs in 25% of orders; A in 20%; B in 70%
    of the orders holding A and 2% of the others (so P(B) = 0.156 and lift(A -> B) ~ 4.5)."""
    rng = random.Random(seed)
    baskets = []
    for _ in range(ORDERS):
        basket = {sku for sku in RANDOM_SKUS if rng.random() < 0.25}
        if rng.random() < 0.2:
            basket.add("A")
            if rng.random() < 0.7:
                basket.add("B")
        elif rng.random() < 0.02:
            basket.add("B")
        baskets.append(basket)
    return baskets


BASKETS = planted_baskets()
# Pairs of independent SKUs: support ~0.0625 (frequent); triples ~0.016 (below 0.03).
MINED = rules(BASKETS, min_support=0.03, min_confidence=0.1, min_lift=0.0)


def find(found: list[Rule], antecedent: tuple[str, ...], consequent: str) -> Rule | None:
    return next(
        (r for r in found if r.antecedent == antecedent and r.consequent == consequent), None
    )


def test_the_planted_rule_is_found() -> None:
    rule = find(MINED, ("A",), "B")

    assert rule is not None
    assert rule.confidence == pytest.approx(0.7, abs=0.05)
    assert rule.lift > 2
    both = sum({"A", "B"} <= b for b in BASKETS)
    assert rule.orders == both
    assert rule.support == pytest.approx(both / ORDERS)
    assert rule.confidence == pytest.approx(both / sum("A" in b for b in BASKETS))


def test_independent_skus_give_no_strong_rule() -> None:
    # With ~125 orders expected per pair, a lift of 1.5 would be ~5.6 standard deviations off.
    among_random = [
        r for r in MINED if r.consequent in RANDOM_SKUS and not {"A", "B"} & set(r.antecedent)
    ]
    assert among_random  # the pairs are mined, only weak
    assert max(r.lift for r in among_random) < 1.5
    # Nor does holding A or B predict an independent SKU.
    assert max(r.lift for r in MINED if r.consequent in RANDOM_SKUS) < 1.5


def test_rules_have_one_consequent_and_a_sorted_antecedent() -> None:
    assert all(1 <= len(r.antecedent) <= 2 for r in MINED)
    assert all(list(r.antecedent) == sorted(r.antecedent) for r in MINED)
    assert all(r.consequent not in r.antecedent for r in MINED)
    assert any(len(r.antecedent) == 2 for r in MINED)  # e.g. {A, S03} -> B


def test_rules_are_sorted_by_lift_then_confidence() -> None:
    keys = [(-r.lift, -r.confidence, r.antecedent, r.consequent) for r in MINED]
    assert keys == sorted(keys)
    assert MINED[0].consequent in {"A", "B"}


def test_max_len_two_gives_single_sku_antecedents() -> None:
    found = rules(BASKETS, min_support=0.03, min_confidence=0.1, min_lift=0.0, max_len=2)

    assert found
    assert all(len(r.antecedent) == 1 for r in found)
    assert rules(BASKETS, min_support=0.03, min_confidence=0.1, min_lift=0.0, max_len=1) == []


def test_thresholds_filter() -> None:
    strong = rules(BASKETS, min_support=0.03, min_confidence=0.1, min_lift=2.0)
    assert strong
    assert all(r.lift >= 2 for r in strong)
    assert all({"A", "B"} <= {*r.antecedent, r.consequent} for r in strong)

    confident = rules(BASKETS, min_support=0.03, min_confidence=0.8, min_lift=0.0)
    assert all(r.confidence >= 0.8 for r in confident)
    assert find(confident, ("A",), "B") is None  # 0.7
    assert find(confident, ("B",), "A") is not None  # ~0.9: B is mostly bought with A

    supported = rules(BASKETS, min_support=0.1, min_confidence=0.1, min_lift=0.0)
    assert all(r.support >= 0.1 for r in supported)
    assert find(supported, ("A",), "B") is not None  # support ~0.14
    assert all(r.consequent in {"A", "B"} for r in supported)  # independent pairs: ~0.06

    assert rules(BASKETS, min_support=0.5, min_confidence=0.1, min_lift=0.0) == []
    assert rules(BASKETS, min_support=0.03, min_confidence=0.1, min_lift=10.0) == []


def test_known_answer_with_single_item_and_repeated_lines() -> None:
    # x and y together twice, x alone once, z alone once: 4 baskets.
    baskets = [["x", "y", "x"], ["y", "x"], ["x"], ["z"]]
    found = rules(baskets, min_support=0.25, min_confidence=0.0, min_lift=0.0)

    assert [(r.antecedent, r.consequent, r.orders) for r in found] == [
        (("y",), "x", 2),
        (("x",), "y", 2),
    ]
    assert [r.support for r in found] == [0.5, 0.5]
    assert [r.confidence for r in found] == pytest.approx([1.0, 2 / 3])
    assert [r.lift for r in found] == pytest.approx([4 / 3, 4 / 3])  # 1 / P(x), (2/3) / P(y)


def test_numpy_strings_are_plain_skus() -> None:
    # mlxtend calls int() on numpy scalars among column names: np.str_ SKUs must not reach it.
    baskets = [[np.str_("x"), np.str_("y")], [np.str_("x")]]
    found = rules(baskets, min_support=0.5, min_confidence=0.0, min_lift=0.0)

    assert [(r.antecedent, r.consequent) for r in found] == [(("y",), "x"), (("x",), "y")]
    assert all(type(r.consequent) is str for r in found)


def test_nothing_to_mine_gives_no_rules() -> None:
    assert rules([], min_support=0.01, min_confidence=0.1, min_lift=1.0) == []
    assert rules([["a"], ["b"], []], min_support=0.01, min_confidence=0.0, min_lift=0.0) == []
    assert rules(iter([{"a", "b"}]), min_support=1.0, min_confidence=1.0, min_lift=1.0) == [
        Rule(("a",), "b", 1.0, 1.0, 1.0, 1),
        Rule(("b",), "a", 1.0, 1.0, 1.0, 1),
    ]


@pytest.mark.parametrize(
    ("support", "confidence", "lift", "message"),
    [
        (0.0, 0.5, 1.0, "min_support"),
        (1.5, 0.5, 1.0, "min_support"),
        (0.1, 2.0, 1.0, "min_confidence"),
        (0.1, 0.5, -1, "min_lift"),
    ],
)
def test_bad_thresholds_are_refused(
    support: float, confidence: float, lift: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        rules([["a", "b"]], min_support=support, min_confidence=confidence, min_lift=lift)


# --- suggestions --------------------------------------------------------------------------------


def rule(
    antecedent: tuple[str, ...], consequent: str, lift: float, confidence: float = 0.5
) -> Rule:
    return Rule(antecedent, consequent, support=0.1, confidence=confidence, lift=lift, orders=10)


SUGGESTION_RULES = [
    rule(("A",), "B", lift=2.0),
    rule(("A", "C"), "B", lift=3.0),  # the better rule for B when C is held too
    rule(("A",), "D", lift=2.5),
    rule(("A",), "E", lift=2.5, confidence=0.9),  # ties D's lift, wins on confidence
    rule(("Z",), "F", lift=9.0),  # Z not held
    rule(("B",), "A", lift=5.0),  # A already held
]


def test_suggest_uses_only_rules_whose_antecedent_is_held() -> None:
    found = suggest(SUGGESTION_RULES, {"A"})

    assert [s.sku for s in found] == ["E", "D", "B"]
    assert found[2] == Suggestion("B", SUGGESTION_RULES[0])


def test_suggest_gives_one_suggestion_per_sku_from_its_best_rule() -> None:
    found = suggest(SUGGESTION_RULES, ["A", "C"])

    assert [s.sku for s in found] == ["B", "E", "D"]
    assert found[0].rule is SUGGESTION_RULES[1]


def test_suggest_skips_what_is_held_and_respects_the_limit() -> None:
    assert [s.sku for s in suggest(SUGGESTION_RULES, {"A", "B", "E"})] == ["D"]
    assert [s.sku for s in suggest(SUGGESTION_RULES, {"A"}, limit=2)] == ["E", "D"]
    assert suggest(SUGGESTION_RULES, {"A"}, limit=0) == []
    assert suggest(SUGGESTION_RULES, set()) == []
    assert suggest([], {"A"}) == []


def test_suggest_from_mined_rules() -> None:
    found = suggest(MINED, {"A", "S03"})

    assert found[0].sku == "B"
    assert found[0].rule.antecedent == ("A", "S03")
    assert "A" not in {s.sku for s in found}
    assert len({s.sku for s in found}) == len(found)
