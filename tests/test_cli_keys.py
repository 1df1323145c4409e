"""``orderly keys``: create prints the key once, list shows prefixes only, revoke and rotate
take effect in the database every API process authenticates against."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.keys import parse_duration
from cli.main import app
from db.session import make_engine, make_sessionmaker
from services.auth import Principal, Role, Scope, authenticate

ROOT = Path(__file__).resolve().parents[1]
KEY = re.compile(r"^(ok_[A-Za-z0-9_-]{40,})$", re.MULTILINE)


def _who(url: str, key: str) -> Principal | None:
    """The principal the key authenticates as, straight from the database (as the API does
    once its cache entry is older than the TTL)."""

    async def check() -> Principal | None:
        engine = make_engine(url)
        try:
            return await authenticate(make_sessionmaker(engine), key)
        finally:
            await engine.dispose()

    return asyncio.run(check())


def _cli(url: str, *args: str) -> str:
    result = CliRunner().invoke(
        app, ["keys", *args], env={"ORDERLY_DATABASE_URL": url, "COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    return result.output


def _created_key(output: str) -> str:
    found = KEY.findall(output)
    assert len(found) == 1, output  # printed once
    return str(found[0])


def test_create_list_revoke(database_url: str) -> None:
    output = _cli(
        database_url,
        "create",
        "--principal",
        "shop-cli",
        "--role",
        "system",
        "--scope",
        "orders:create",
        "--scope",
        "orders:own",
        "--expires-in",
        "30d",
        "--description",
        "the CLI shop",
    )
    key = _created_key(output)
    assert output.count(key) == 1
    principal = _who(database_url, key)
    assert principal is not None
    assert principal.name == "shop-cli"
    assert principal.roles == {Role.SYSTEM}
    assert principal.scopes == {Scope.ORDERS_CREATE, Scope.ORDERS_OWN}
    assert principal.expires_at is not None

    listing = _cli(database_url, "list")
    assert key[:12] in listing
    assert key not in listing
    assert "shop-cli" in listing
    assert "active" in listing
    key_id = re.search(r"API key (\d+)", output)
    assert key_id is not None

    revoked = _cli(database_url, "revoke", key_id.group(1))
    assert "Revoked" in revoked
    assert _who(database_url, key) is None
    assert "revoked" in _cli(database_url, "list")
    assert "shop-cli" not in _cli(database_url, "list", "--active")


def test_rotate(database_url: str) -> None:
    output = _cli(
        database_url, "create", "--principal", "lead-cli", "--role", "approver", "--level", "2"
    )
    old = _created_key(output)
    old_id = re.search(r"API key (\d+)", output)
    assert old_id is not None
    rotated = _cli(database_url, "rotate", old_id.group(1), "--overlap", "0s")
    new = _created_key(rotated)
    assert new != old
    principal = _who(database_url, new)
    assert principal is not None
    assert (principal.name, principal.approval_levels) == ("lead-cli", {2})
    stale = _who(database_url, old)
    assert stale is not None
    assert stale.expired()  # the API answers 401 "API key expired"


def test_errors_exit_non_zero(database_url: str) -> None:
    runner = CliRunner()
    env = {"ORDERLY_DATABASE_URL": database_url}
    missing = runner.invoke(app, ["keys", "revoke", "424242"], env=env)
    assert missing.exit_code == 1
    assert "API key 424242 not found" in missing.output
    bad = runner.invoke(
        app, ["keys", "create", "--principal", "x", "--role", "system", "--level", "1"], env=env
    )
    assert bad.exit_code == 2
    assert "approval_levels need the role approver" in bad.output
    scope = runner.invoke(
        app, ["keys", "create", "--principal", "x", "--role", "system", "--scope", "x:y"], env=env
    )
    assert scope.exit_code != 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("24h", timedelta(hours=24)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("90m", timedelta(minutes=90)),
        ("0s", timedelta(0)),
        ("2w", timedelta(weeks=2)),
        ("P30D", timedelta(days=30)),
        ("PT1H", timedelta(hours=1)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_python_dash_m_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "keys", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for command in ("create", "list", "revoke", "rotate"):
        assert command in result.stdout
