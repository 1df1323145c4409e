"""The pure rules of console users: user names, passwords, roles with approval levels, and
when a session's claims are still live."""

from __future__ import annotations

import pytest

from console.session import ConsoleClaims
from services.errors import Kind, ServiceError
from services.users import MIN_PASSWORD, check_password, check_roles, check_username


def field_of(exc: pytest.ExceptionInfo[ServiceError]) -> str:
    assert exc.value.kind is Kind.INVALID
    (problem,) = exc.value.extra["fields"]
    return str(problem["field"])


@pytest.mark.parametrize(
    ("given", "kept"),
    [("ada", "ada"), ("  Ada.Lovelace ", "ada.lovelace"), ("a1", "a1"), ("x_y-z.9", "x_y-z.9")],
)
def test_a_good_user_name_is_kept_in_lower_case(given: str, kept: str) -> None:
    assert check_username(given) == kept


@pytest.mark.parametrize(
    "name",
    ["", "a", "-ada", ".ada", "ada lovelace", "ada@example.com", "ädä", "a" * 65, "ada/../x"],
)
def test_a_bad_user_name_names_the_field(name: str) -> None:
    with pytest.raises(ServiceError) as exc:
        check_username(name)
    assert field_of(exc) == "username"


def test_a_user_name_of_64_characters_is_the_longest() -> None:
    assert check_username("a" * 64) == "a" * 64


def test_passwords_have_a_minimum_and_a_maximum_length() -> None:
    check_password("x" * MIN_PASSWORD)
    check_password("x" * 256)
    for bad in ("", "x" * (MIN_PASSWORD - 1), "x" * 257):
        with pytest.raises(ServiceError) as exc:
            check_password(bad)
        assert field_of(exc) == "password"


def test_roles_are_sorted_and_deduplicated_with_their_levels() -> None:
    assert check_roles(["support", "approver", "support"], [3, 1, 3]) == (
        ["approver", "support"],
        [1, 3],
    )
    assert check_roles(["manager"], []) == (["manager"], [])
    assert check_roles(["admin"], [2]) == (["admin"], [2])  # admins may decide too


@pytest.mark.parametrize(
    ("roles", "levels", "field", "reason"),
    [
        ([], [], "roles", "at least one role"),
        (["wizard"], [], "roles", "unknown role"),
        (["support"], [1], "approval_levels", "only approvers"),
        (["manager", "system"], [2], "approval_levels", "only approvers"),
        (["approver"], [0], "approval_levels", "1 to 9"),
        (["approver"], [10], "approval_levels", "1 to 9"),
    ],
)
def test_bad_roles_or_levels_name_the_field(
    roles: list[str], levels: list[int], field: str, reason: str
) -> None:
    with pytest.raises(ServiceError) as exc:
        check_roles(roles, levels)
    assert field_of(exc) == field
    assert reason in exc.value.message


def test_an_approver_without_levels_is_allowed() -> None:
    # Useful while the admin decides the levels; such an approver can decide nothing.
    assert check_roles(["approver"], []) == (["approver"], [])


def test_a_session_lives_until_its_lifetime_or_idle_timeout() -> None:
    claims = ConsoleClaims.new(user_id=7, epoch=2, now=1000)
    assert (claims.issued_at, claims.seen_at) == (1000, 1000)
    assert claims.live(ttl=100, idle=30, now=1029.9)
    assert not claims.live(ttl=100, idle=30, now=1030)  # idle
    seen = claims.seen(1060)
    assert seen.live(ttl=100, idle=30, now=1089)
    assert not seen.live(ttl=100, idle=30, now=1100)  # the absolute lifetime, though in use
    assert seen.csrf == claims.csrf  # the form token stays with the session


def test_every_session_gets_its_own_csrf_token() -> None:
    tokens = {ConsoleClaims.new(1, 0, now=0).csrf for _ in range(50)}
    assert len(tokens) == 50
    assert all(len(t) >= 32 for t in tokens)
