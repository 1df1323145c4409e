"""Order statuses: the transition table, allowed actions, cancellation window, refund state."""

from __future__ import annotations

import itertools

import pytest

from domain.status import (
    ALLOWED_ACTIONS,
    CANCELLABLE,
    CLOSING,
    RESTING,
    TERMINAL,
    TRANSITIONS,
    Action,
    InvalidTransition,
    OrderStatus,
    RefundState,
    allowed_actions,
    check_transition,
    refund_state,
)

S = OrderStatus
A = Action

# The specification, written out independently of domain/status.py.
# Until the goods leave, an order may close (cancelled, rejected, failed) or, when a compensation
# is refused for good, wait for support in needs_attention, which only closes.
ENDS = {S.CANCELLED, S.REJECTED, S.FAILED, S.NEEDS_ATTENTION}
EXPECTED_TRANSITIONS: dict[OrderStatus, set[OrderStatus]] = {
    S.RECEIVED: {S.CREDIT_CHECK} | ENDS,
    S.CREDIT_CHECK: {S.AWAITING_APPROVAL, S.CONFIRMED} | ENDS,
    S.AWAITING_APPROVAL: {S.CONFIRMED, S.CHANGES_REQUESTED} | ENDS,
    S.CHANGES_REQUESTED: {S.CREDIT_CHECK, S.AWAITING_APPROVAL, S.CONFIRMED} | ENDS,
    S.CONFIRMED: {S.AWAITING_PAYMENT, S.PAID} | ENDS,
    S.AWAITING_PAYMENT: {S.PAID} | ENDS,
    S.PAID: {S.FULFILLING} | ENDS,
    S.FULFILLING: {S.SHIPPED} | ENDS,
    S.SHIPPED: {S.DELIVERED},
    S.DELIVERED: {S.COMPLETED},
    S.NEEDS_ATTENTION: {S.CANCELLED, S.REJECTED, S.FAILED},
    S.COMPLETED: set(),
    S.CANCELLED: set(),
    S.REJECTED: set(),
    S.FAILED: set(),
}
EXPECTED_TERMINAL = {S.COMPLETED, S.CANCELLED, S.REJECTED, S.FAILED}
EXPECTED_ACTIONS: dict[OrderStatus, list[Action]] = {
    S.RECEIVED: [A.CANCEL],
    S.CREDIT_CHECK: [A.CANCEL],
    S.AWAITING_APPROVAL: [A.APPROVE, A.REJECT, A.REQUEST_CHANGES, A.CANCEL],
    S.CHANGES_REQUESTED: [A.AMEND, A.CANCEL],
    S.CONFIRMED: [A.CANCEL],
    S.AWAITING_PAYMENT: [A.PAY, A.CANCEL],
    S.PAID: [A.CANCEL],
    S.FULFILLING: [A.CANCEL, A.SPLIT_SHIPMENT, A.SHIPMENT_EVENT],
    S.SHIPPED: [A.SHIPMENT_EVENT],
    S.DELIVERED: [],
    S.COMPLETED: [],
    S.NEEDS_ATTENTION: [A.RETRY_COMPENSATION, A.RESOLVE_COMPENSATION],
    S.CANCELLED: [],
    S.REJECTED: [],
    S.FAILED: [],
}

ALLOWED_PAIRS = [(a, b) for a, targets in EXPECTED_TRANSITIONS.items() for b in sorted(targets)]
DISALLOWED_PAIRS = [(a, b) for a, b in itertools.product(S, S) if b not in EXPECTED_TRANSITIONS[a]]


def _pair_id(pair: tuple[OrderStatus, OrderStatus]) -> str:
    return f"{pair[0].value}->{pair[1].value}"


def _reachable(start: OrderStatus) -> set[OrderStatus]:
    seen: set[OrderStatus] = set()
    todo = [start]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_transition_table_matches_specification() -> None:
    assert set(TRANSITIONS) == set(S)
    assert {k: set(v) for k, v in TRANSITIONS.items()} == EXPECTED_TRANSITIONS


@pytest.mark.parametrize("pair", ALLOWED_PAIRS, ids=_pair_id)
def test_allowed_transition_passes(pair: tuple[OrderStatus, OrderStatus]) -> None:
    current, new = pair
    assert check_transition(current, new) is new


@pytest.mark.parametrize("pair", DISALLOWED_PAIRS, ids=_pair_id)
def test_disallowed_transition_raises(pair: tuple[OrderStatus, OrderStatus]) -> None:
    current, new = pair
    with pytest.raises(InvalidTransition, match=f"cannot go from {current} to {new}"):
        check_transition(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.RECEIVED, S.PAID),
        (S.RECEIVED, S.SHIPPED),
        (S.CREDIT_CHECK, S.PAID),
        (S.AWAITING_APPROVAL, S.PAID),
        (S.PAID, S.CONFIRMED),
        (S.SHIPPED, S.CANCELLED),
        (S.SHIPPED, S.FAILED),
        (S.DELIVERED, S.CANCELLED),
        (S.COMPLETED, S.RECEIVED),
        (S.CANCELLED, S.RECEIVED),
        (S.REJECTED, S.CONFIRMED),
        (S.FAILED, S.PAID),
    ],
)
def test_notable_disallowed_transitions(current: OrderStatus, new: OrderStatus) -> None:
    with pytest.raises(InvalidTransition):
        check_transition(current, new)


def test_invalid_transition_is_a_value_error() -> None:
    assert issubclass(InvalidTransition, ValueError)


@pytest.mark.parametrize("status", list(S))
def test_no_self_transitions(status: OrderStatus) -> None:
    with pytest.raises(InvalidTransition):
        check_transition(status, status)


def test_nothing_goes_back_to_received() -> None:
    assert all(S.RECEIVED not in targets for targets in TRANSITIONS.values())


def test_every_status_is_reachable_from_received() -> None:
    assert _reachable(S.RECEIVED) | {S.RECEIVED} == set(S)


@pytest.mark.parametrize("status", sorted(set(S) - EXPECTED_TERMINAL))
def test_every_open_status_can_reach_an_end(status: OrderStatus) -> None:
    assert _reachable(status) & EXPECTED_TERMINAL


def test_terminal_set() -> None:
    assert set(TERMINAL) == EXPECTED_TERMINAL


@pytest.mark.parametrize("status", list(S))
def test_is_terminal_property(status: OrderStatus) -> None:
    assert status.is_terminal is (status in EXPECTED_TERMINAL)


@pytest.mark.parametrize("status", sorted(EXPECTED_TERMINAL))
def test_terminal_status_has_no_way_out(status: OrderStatus) -> None:
    assert TRANSITIONS[status] == frozenset()
    assert allowed_actions(status) == []
    for new in S:
        with pytest.raises(InvalidTransition):
            check_transition(status, new)


def test_delivered_is_not_terminal_but_has_no_actions() -> None:
    assert not S.DELIVERED.is_terminal
    assert allowed_actions(S.DELIVERED) == []
    assert check_transition(S.DELIVERED, S.COMPLETED) is S.COMPLETED


@pytest.mark.parametrize("status", list(S))
def test_allowed_actions_per_status(status: OrderStatus) -> None:
    assert allowed_actions(status) == EXPECTED_ACTIONS[status]


def test_allowed_actions_table_covers_every_status() -> None:
    assert set(ALLOWED_ACTIONS) == set(S)


@pytest.mark.parametrize("status", sorted(set(S) - {S.NEEDS_ATTENTION}))
def test_cancel_pending_allows_nothing(status: OrderStatus) -> None:
    assert allowed_actions(status, cancel_pending=True) == []


def test_cancel_pending_still_lets_support_decide_a_refused_compensation() -> None:
    # A cancellation whose refund is refused waits in needs_attention: support must still act.
    assert allowed_actions(S.NEEDS_ATTENTION, cancel_pending=True) == [
        A.RETRY_COMPENSATION,
        A.RESOLVE_COMPENSATION,
    ]


def test_allowed_actions_returns_a_fresh_list() -> None:
    first = allowed_actions(S.AWAITING_APPROVAL)
    first.clear()
    assert allowed_actions(S.AWAITING_APPROVAL) == [
        A.APPROVE,
        A.REJECT,
        A.REQUEST_CHANGES,
        A.CANCEL,
    ]


@pytest.mark.parametrize(
    ("action", "target"),
    [
        (A.APPROVE, S.CONFIRMED),
        (A.REJECT, S.REJECTED),
        (A.CANCEL, S.CANCELLED),
        (A.PAY, S.PAID),
        (A.RESOLVE_COMPENSATION, S.CANCELLED),
    ],
)
def test_each_allowed_command_has_a_matching_transition(
    action: Action, target: OrderStatus
) -> None:
    for status in S:
        if action in allowed_actions(status):
            assert check_transition(status, target) is target


def test_cancellable_is_exactly_until_shipped() -> None:
    until_shipped = {
        S.RECEIVED,
        S.CREDIT_CHECK,
        S.AWAITING_APPROVAL,
        S.CHANGES_REQUESTED,
        S.CONFIRMED,
        S.AWAITING_PAYMENT,
        S.PAID,
        S.FULFILLING,
    }
    assert set(CANCELLABLE) == until_shipped
    # Equivalently: every open status from which SHIPPED is still ahead.
    assert until_shipped == {s for s in S if S.SHIPPED in _reachable(s)}


@pytest.mark.parametrize("status", list(S))
def test_cancel_action_and_transition_agree_with_cancellable(status: OrderStatus) -> None:
    cancellable = status in CANCELLABLE
    assert (A.CANCEL in allowed_actions(status)) is cancellable
    if status is S.NEEDS_ATTENTION:
        # Not cancellable by a caller, but it closes (e.g. cancelled) once support decided.
        assert not cancellable
        assert S.CANCELLED in TRANSITIONS[status]
    else:
        assert (S.CANCELLED in TRANSITIONS[status]) is cancellable


def test_needs_attention_is_resting_not_terminal_and_only_closes() -> None:
    assert not S.NEEDS_ATTENTION.is_terminal
    assert S.NEEDS_ATTENTION in RESTING
    assert TRANSITIONS[S.NEEDS_ATTENTION] == CLOSING == {S.CANCELLED, S.REJECTED, S.FAILED}
    with pytest.raises(InvalidTransition):
        check_transition(S.NEEDS_ATTENTION, S.PAID)


@pytest.mark.parametrize("status", sorted(CANCELLABLE))
def test_every_cancellable_status_may_need_attention(status: OrderStatus) -> None:
    assert check_transition(status, S.NEEDS_ATTENTION) is S.NEEDS_ATTENTION


@pytest.mark.parametrize("status", [S.SHIPPED, S.DELIVERED, *sorted(EXPECTED_TERMINAL)])
def test_no_attention_once_shipped_or_closed(status: OrderStatus) -> None:
    with pytest.raises(InvalidTransition):
        check_transition(status, S.NEEDS_ATTENTION)


def test_payment_pending_hides_only_pay() -> None:
    assert allowed_actions(S.AWAITING_PAYMENT, payment_pending=True) == [A.CANCEL]
    assert allowed_actions(S.AWAITING_PAYMENT, payment_pending=False) == [A.PAY, A.CANCEL]
    for status in S:
        expected = [a for a in EXPECTED_ACTIONS[status] if a is not A.PAY]
        assert allowed_actions(status, payment_pending=True) == expected


def test_unsplittable_hides_only_split_shipment() -> None:
    assert allowed_actions(S.FULFILLING, splittable=False) == [A.CANCEL, A.SHIPMENT_EVENT]
    for status in S:
        expected = [a for a in EXPECTED_ACTIONS[status] if a is not A.SPLIT_SHIPMENT]
        assert allowed_actions(status, splittable=False) == expected


def test_cancel_pending_beats_every_other_flag() -> None:
    assert (
        allowed_actions(S.FULFILLING, cancel_pending=True, payment_pending=True, splittable=True)
        == []
    )


@pytest.mark.parametrize("status", [S.SHIPPED, S.DELIVERED])
def test_cannot_cancel_once_shipped(status: OrderStatus) -> None:
    assert status not in CANCELLABLE
    assert S.CANCELLED not in _reachable(status)
    with pytest.raises(InvalidTransition):
        check_transition(status, S.CANCELLED)


@pytest.mark.parametrize(
    ("captured", "refunded", "expected"),
    [
        (1000, 0, RefundState.NONE),
        (0, 0, RefundState.NONE),
        (1000, -5, RefundState.NONE),
        (1000, 1, RefundState.PARTIAL),
        (1000, 500, RefundState.PARTIAL),
        (1000, 999, RefundState.PARTIAL),
        (1000, 1000, RefundState.FULL),
        (1000, 1001, RefundState.FULL),
        (1, 1, RefundState.FULL),
    ],
)
def test_refund_state(captured: int, refunded: int, expected: RefundState) -> None:
    assert refund_state(captured, refunded) is expected
