"""Reading the approval policy file: YAML or TOML, and errors that name the file and the key."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from config import PolicyFileError, load_policy
from domain.approval import ApprovalPolicy

REPO_POLICY = Path(__file__).resolve().parents[2] / "approval-policy.yaml"

VALID_YAML = """\
version: "t-1"
levels:
  - {level: 1, name: team_lead, escalate_to: 2}
  - {level: 2, name: finance, quorum: 2,
     timing: {reminder_after: PT1H, escalate_after: PT2H, expire_after: PT3H}}
thresholds:
  EUR: {1: 5000, 2: 20000.50}
  "*": {1: 4000}
timing:
  reminder_after: PT8H
  escalate_after: PT24H
  expire_after: P3D
credit_review_level: 2
discount_level: 2
max_discount_pct: 12.5
vip:
  relief_below: {EUR: 50000}
  timing_factor: 0.5
"""

VALID_TOML = """\
version = "t-1"
credit_review_level = 2
discount_level = 2
max_discount_pct = 12.5

[[levels]]
level = 1
name = "team_lead"
escalate_to = 2

[[levels]]
level = 2
name = "finance"
quorum = 2
timing = { reminder_after = "PT1H", escalate_after = "PT2H", expire_after = "PT3H" }

[thresholds]
EUR = { 1 = 5000, 2 = 20000.50 }
"*" = { 1 = 4000 }

[timing]
reminder_after = "PT8H"
escalate_after = "PT24H"
expire_after = "P3D"

[vip]
relief_below = { EUR = 50000 }
timing_factor = 0.5
"""

# A valid policy body to which one bad line is added (YAML: a later key replaces an earlier one).
BASE_YAML = """\
version: "t-1"
levels: [{level: 1, name: lead}]
thresholds: {EUR: {1: 100}}
"""


def _write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


def _error(path: Path) -> str:
    with pytest.raises(PolicyFileError) as info:
        load_policy(path)
    return str(info.value)


def test_yaml_and_toml_give_equal_policies(tmp_path: Path) -> None:
    from_yaml = load_policy(_write(tmp_path, "policy.yaml", VALID_YAML))
    from_toml = load_policy(_write(tmp_path, "policy.toml", VALID_TOML))
    assert from_yaml == from_toml
    assert from_yaml.thresholds == {
        "EUR": {1: Decimal(5000), 2: Decimal("20000.50")},
        "*": {1: Decimal(4000)},
    }
    assert from_yaml.timing.expire_after == timedelta(days=3)
    assert from_yaml.rule(2).quorum == 2
    assert from_yaml.max_discount_pct == Decimal("12.5")
    assert from_yaml.vip.timing_factor == Decimal("0.5")


@pytest.mark.parametrize("name", ["policy.yml", "policy.yaml", "policy"])
def test_anything_but_toml_is_read_as_yaml(tmp_path: Path, name: str) -> None:
    assert load_policy(_write(tmp_path, name, VALID_YAML)).version == "t-1"


def test_repo_policy_loads() -> None:
    policy = load_policy(REPO_POLICY)
    assert isinstance(policy, ApprovalPolicy)
    assert [r.name for r in policy.levels] == ["team_lead", "sales_manager", "finance"]
    assert set(policy.thresholds) == {"EUR", "USD", "GBP", "*"}


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "policy.yaml"
    message = _error(path)
    assert str(path) in message
    assert "cannot read" in message


def test_directory_is_unreadable(tmp_path: Path) -> None:
    assert "cannot read" in _error(tmp_path)


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [
        ("policy.yaml", "version: [unclosed\n", "yaml"),
        ("policy.yaml", "levels:\n  - level: 1\n name: x\n", "yaml"),
        ("policy.yml", "a: b: c\n", "yml"),
        ("policy.toml", 'version = "t-1\n', "toml"),
        ("policy.toml", "version: t-1\n", "toml"),  # YAML in a .toml file
    ],
)
def test_syntax_error_names_the_file(tmp_path: Path, name: str, text: str, kind: str) -> None:
    path = _write(tmp_path, name, text)
    message = _error(path)
    assert str(path) in message
    assert f"not valid {kind}" in message


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("levels: [{level: 1, name: x, quorum: 0}]", "levels.0.quorum"),
        ("levels: [{level: 1, name: ''}]", "levels.0.name"),
        ("levels: [{level: 1, name: x, rank: 2}]", "levels.0.rank"),
        ("timing: {reminder_after: soon}", "timing.reminder_after"),
        ("approvers: []", "approvers"),
        ("thresholds: {EUR: {1: lots}}", "thresholds.EUR.1"),
        ("thresholds: {EUR: {one: 100}}", "thresholds.EUR.one.[key]"),
        ("max_discount_pct: 101", "max_discount_pct"),
        ("vip: {timing_factor: 2}", "vip.timing_factor"),
        ("vip: {relief_below: {EUR: many}}", "vip.relief_below.EUR"),
        ("credit_review_level: 0", "credit_review_level"),
    ],
)
def test_bad_key_names_the_key_path(tmp_path: Path, extra: str, key: str) -> None:
    path = _write(tmp_path, "policy.yaml", f"{BASE_YAML}{extra}\n")
    message = _error(path)
    assert str(path) in message
    assert f"{key}:" in message


@pytest.mark.parametrize(
    ("extra", "detail"),
    [
        ("credit_review_level: 2", "credit_review_level: level 2 is not defined"),
        ("thresholds: {EUR: {1: 100, 2: 200}}", "thresholds.EUR: level 2 is not defined"),
        ("levels: [{level: 1, name: a, escalate_to: 3}]", "levels[0].escalate_to: level 3"),
        (
            "timing: {reminder_after: PT9H, escalate_after: PT8H}",
            "0 < reminder_after < escalate_after",
        ),
    ],
)
def test_inconsistent_policy_is_explained(tmp_path: Path, extra: str, detail: str) -> None:
    message = _error(_write(tmp_path, "policy.yaml", f"{BASE_YAML}{extra}\n"))
    assert detail in message


def test_toml_bad_key_names_the_key_path(tmp_path: Path) -> None:
    text = VALID_TOML.replace('reminder_after = "PT8H"', 'reminder_after = "soon"')
    assert "timing.reminder_after:" in _error(_write(tmp_path, "policy.toml", text))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("", "(top level)"),
        ("- a\n- b\n", "(top level)"),
        ("version: t-1\n", "levels"),
        ("version: t-1\nlevels: [{level: 1, name: a}]\n", "thresholds"),
    ],
)
def test_empty_or_incomplete_policy(tmp_path: Path, text: str, key: str) -> None:
    assert f"{key}:" in _error(_write(tmp_path, "policy.yaml", text))


def test_several_problems_are_all_named(tmp_path: Path) -> None:
    text = "version: t-1\nlevels: [{level: 1, name: x, quorum: 0}]\napprovers: []\n"
    message = _error(_write(tmp_path, "policy.yaml", text))
    for key in ("levels.0.quorum", "thresholds", "approvers"):
        assert f"{key}:" in message


def test_error_is_a_value_error_with_cause(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="approvers") as info:
        load_policy(_write(tmp_path, "policy.yaml", f"{BASE_YAML}approvers: []\n"))
    assert info.value.__cause__ is not None


def test_non_utf8_file_is_a_policy_file_error(tmp_path: Path) -> None:
    # An editor saving the file as Latin-1 (here: an accent in a comment) must not crash start-up
    # with a bare UnicodeDecodeError that names neither the file nor the problem.
    path = _write(tmp_path, "policy.yaml", f"# Genehmigung für Aufträge\n{BASE_YAML}", "latin-1")
    assert str(path) in _error(path)
