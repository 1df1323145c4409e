"""Order ids: format, determinism with a seeded rng, uniqueness."""

from __future__ import annotations

import random
from datetime import date

import pytest

from domain.order import ORDER_ID_RE, new_order_id


def test_new_order_id_format() -> None:
    order_id = new_order_id(date(2026, 11, 23))
    assert ORDER_ID_RE.fullmatch(order_id)
    assert order_id.startswith("SO-20261123-")


@pytest.mark.parametrize(
    "bad",
    [
        "SO-20261123-7K2Q",
        "SO-20261123-7K2QFF",
        "SO-2026112-7K2QF",
        "SO-20261123-7K2QI",
        "SO-20261123-7K2QL",
        "SO-20261123-7K2QO",
        "SO-20261123-7K2QU",
        "so-20261123-7K2QF",
        "SO-20261123-7k2qf",
    ],
)
def test_order_id_re_rejects_malformed(bad: str) -> None:
    assert ORDER_ID_RE.match(bad) is None


def test_new_order_id_is_deterministic_with_seeded_rng() -> None:
    day = date(2025, 1, 2)
    first = [new_order_id(day, random.Random(42)) for _ in range(3)]
    assert len(set(first)) == 1
    assert new_order_id(day, random.Random(42)) != new_order_id(day, random.Random(43))


def test_new_order_ids_differ_across_calls() -> None:
    day = date(2025, 1, 2)
    rng = random.Random(7)
    seeded = [new_order_id(day, rng) for _ in range(1000)]
    assert len(set(seeded)) == 1000
    assert all(ORDER_ID_RE.fullmatch(i) for i in seeded)
    # Without an rng the system CSPRNG is used: 32**5 ids a day, collisions are negligible.
    unseeded = {new_order_id(day) for _ in range(20)}
    assert len(unseeded) == 20


def test_new_order_id_uses_whole_alphabet_without_ambiguous_letters() -> None:
    rng = random.Random(1)
    suffixes = "".join(new_order_id(date(2025, 1, 2), rng)[-5:] for _ in range(2000))
    assert set(suffixes) == set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
