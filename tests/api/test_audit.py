"""The audit trail: one row per command and refusal, append-only in the database, read by admins."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from api.auth import Role, create_api_key
from db.models import ApiKeyRow, AuditRow
from db.session import make_engine, make_sessionmaker
from domain.status import OrderStatus
from services import audit as service_audit
from services.audit import csv_cell
from services.commands import Commands
from tests.api.conftest import Api
from tests.api.flows import create, wait_status
from tests.factories import order_payload

S = OrderStatus
ROOT = Path(__file__).resolve().parents[2]
TEST_CLIENT_IP = "127.0.0.1"  # httpx.ASGITransport's client address
UNKNOWN = "SO-20260101-ZZZZZ"


async def last_id(api: Api) -> int:
    async with api.stack.sessions() as session:
        return int(await session.scalar(select(func.coalesce(func.max(AuditRow.id), 0))) or 0)


async def rows_after(api: Api, after: int) -> list[AuditRow]:
    async with api.stack.sessions() as session:
        rows = await session.scalars(
            select(AuditRow).where(AuditRow.id > after).order_by(AuditRow.id)
        )
        return list(rows)


async def one_row(api: Api, after: int) -> AuditRow:
    """The single row written since ``after``; fails if there are none or several."""
    rows = await rows_after(api, after)
    assert len(rows) == 1, [(r.method, r.path, r.status_code) for r in rows]
    return rows[0]


async def refused(
    api: Api,
    method: str,
    url: str,
    status: int,
    *,
    who: str | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> AuditRow:
    """Send a command expected to be refused with ``status``; return its one audit row, whose
    reason is the message the caller got."""
    before = await last_id(api)
    sent = {**(api.auth(who) if who else {}), **(headers or {})}
    response = await api.http.request(method, url, headers=sent, **kwargs)
    assert response.status_code == status, response.text
    row = await one_row(api, before)
    assert row.outcome == "refused"
    assert row.status_code == status
    assert row.method == method
    assert row.source_ip == TEST_CLIENT_IP
    assert row.reason == response.json()["error"]["message"]
    assert row.at <= datetime.now(UTC)
    return row


async def test_refusals_before_any_order_leave_one_row_each(api: Api) -> None:
    no_key = await refused(api, "POST", "/orders", 401, json=order_payload())
    assert (no_key.principal, no_key.roles, no_key.key_id) == (None, "", None)
    assert (no_key.action, no_key.order_id, no_key.path) == ("create_order", None, "/orders")
    assert no_key.reason == "missing bearer API key"

    bad_key = await refused(
        api,
        "POST",
        f"/orders/{UNKNOWN}/cancel",
        401,
        headers={"Authorization": "Bearer ok_not-a-key"},
        json={"reason": "x"},
    )
    assert (bad_key.principal, bad_key.action, bad_key.order_id) == (None, "cancel_order", UNKNOWN)
    assert bad_key.reason == "unknown or revoked API key"

    wrong_role = await refused(api, "POST", "/orders", 403, who="lead-1", json=order_payload())
    assert (wrong_role.principal, wrong_role.roles) == ("lead-1", "approver")
    assert wrong_role.reason == "this action needs the role admin or system"
    async with api.stack.sessions() as session:
        key_id = await session.scalar(select(ApiKeyRow.id).where(ApiKeyRow.principal == "lead-1"))
    assert wrong_role.key_id == str(key_id)

    unknown = await refused(
        api,
        "POST",
        f"/orders/{UNKNOWN}/cancel",
        404,
        who="support-1",
        json={"reason": "customer called"},
        headers={"Idempotency-Key": "cancel-1", "X-Request-ID": "req-42"},
    )
    assert (unknown.principal, unknown.roles) == ("support-1", "support")
    assert (unknown.action, unknown.order_id) == ("cancel_order", UNKNOWN)
    assert (unknown.idempotency_key, unknown.request_id) == ("cancel-1", "req-42")
    assert "not found" in (unknown.reason or "")

    bad_body = await refused(
        api,
        "POST",
        "/orders",
        422,
        who="eshop",
        json=order_payload(
            lines=[{"sku": "WIDGET-1", "quantity": 0, "unit_price": "1"}], currency="eur"
        ),
    )
    assert (bad_body.principal, bad_body.action) == ("eshop", "create_order")
    assert "lines" in (bad_body.reason or "")
    assert "currency" in (bad_body.reason or "")

    malformed = await refused(
        api,
        "POST",
        "/orders",
        422,
        who="eshop",
        content=b'{"customer": ',
        headers={"Content-Type": "application/json"},
    )
    assert "malformed JSON" in (malformed.reason or "")

    hostile = await refused(  # %00: a NUL that PostgreSQL would not store
        api, "POST", f"/orders/{'x' * 40}%00/cancel", 422, who="support-1", json={"reason": "x"}
    )
    assert hostile.order_id == ("x" * 40 + "\ufffd")  # kept, made storable
    assert "path.order_id" in (hostile.reason or "")

    no_route = await refused(api, "POST", "/nowhere", 404, who="root")
    assert (no_route.principal, no_route.action) == (None, None)  # no route: no auth ran


async def test_commands_on_an_order_refused_and_accepted(api: Api) -> None:
    before_create = await last_id(api)
    order = await create(api, order_payload())
    created = await one_row(api, before_create)
    assert (created.action, created.outcome, created.status_code) == (
        "create_order",
        "accepted",
        201,
    )
    assert (created.principal, created.order_id, created.reason) == ("eshop", order["id"], None)
    await wait_status(api, order["id"], S.FULFILLING)
    url = f"/orders/{order['id']}"

    card_paid = await refused(
        api, "POST", f"{url}/payments", 409, who="eshop", json={"amount": "39.98", "token": "t"}
    )
    assert (card_paid.action, card_paid.order_id) == ("pay_order", order["id"])

    not_approver = await refused(api, "POST", f"{url}/approve", 403, who="eshop", json={})
    assert (not_approver.action, not_approver.roles) == ("approve_order", "system")
    assert not_approver.reason == "this action needs the role admin or approver"

    no_reason = await refused(api, "POST", f"{url}/cancel", 422, who="support-1", json={})
    assert no_reason.reason == "reason: Field required"

    before = await last_id(api)
    cancelled = await api.http.post(
        f"{url}/cancel", json={"reason": "changed mind"}, headers=api.auth("support-1")
    )
    assert cancelled.status_code == 200, cancelled.text
    accepted = await one_row(api, before)
    assert (accepted.outcome, accepted.status_code, accepted.reason) == ("accepted", 200, None)
    assert (accepted.principal, accepted.roles, accepted.source_ip) == (
        "support-1",
        "support",
        TEST_CLIENT_IP,
    )
    assert (accepted.action, accepted.order_id, accepted.path) == (
        "cancel_order",
        order["id"],
        f"{url}/cancel",
    )
    # The accepted command is in the order's own events, with its actor.
    timeline = (await api.http.get(f"{url}/timeline", headers=api.auth("root"))).json()
    actors = {e["type"]: e["actor"] for e in timeline["events"]}
    assert actors["cancel_requested"] == "support-1"
    assert actors["cancelled"] == "support-1"

    twice = await refused(api, "POST", f"{url}/cancel", 409, who="support-1", json={"reason": "x"})
    assert (twice.action, twice.order_id) == ("cancel_order", order["id"])

    before_reads = await last_id(api)
    for read in (url, f"{url}/timeline", "/orders", "/audit"):
        await api.http.get(read, headers=api.auth("root"))
    assert await rows_after(api, before_reads) == []  # reads are not commands


async def test_unexpected_error_is_failed_and_an_audit_failure_changes_no_answer(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_cancel(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(Commands, "cancel", broken_cancel)
    before = await last_id(api)
    response = await api.http.post(
        f"/orders/{UNKNOWN}/cancel", json={"reason": "x"}, headers=api.auth("support-1")
    )
    assert response.status_code == 500
    failed = await one_row(api, before)
    assert (failed.outcome, failed.status_code) == ("failed", 500)
    assert failed.reason == "unhandled error: RuntimeError"
    assert (failed.principal, failed.action, failed.order_id) == (
        "support-1",
        "cancel_order",
        UNKNOWN,
    )

    async def broken_record(*_: object, **__: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(service_audit, "record", broken_record)
    before = await last_id(api)
    with caplog.at_level(logging.ERROR, logger="orderly.audit"):
        accepted = await api.http.post("/orders", json=order_payload(), headers=api.auth("eshop"))
    assert accepted.status_code == 201, accepted.text
    assert "audit row not written: POST /orders" in caplog.text
    assert await rows_after(api, before) == []


async def test_audit_log_refuses_update_and_delete(api: Api) -> None:
    await refused(api, "POST", "/orders", 401, json={})
    async with api.stack.sessions() as session:
        for statement in (
            update(AuditRow).values(reason="nothing happened"),
            delete(AuditRow),
            text("DELETE FROM audit_log"),
        ):
            with pytest.raises(DBAPIError, match="append-only"):
                await session.execute(statement)
            await session.rollback()
        if api.stack.settings.database_url.startswith("postgresql"):
            with pytest.raises(DBAPIError, match="append-only"):
                await session.execute(text("TRUNCATE audit_log"))
            await session.rollback()
    rows = await rows_after(api, 0)
    assert [(r.status_code, r.reason) for r in rows] == [(401, "missing bearer API key")]


def _alembic(url: str) -> Config:
    config = Config(str(ROOT / "db" / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    return config


async def _try_changes(url: str) -> list[str]:
    """Insert a row, then try to change it; the errors' messages."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    errors: list[str] = []
    try:
        async with sessions.begin() as session:
            session.add(
                AuditRow(
                    at=datetime.now(UTC),
                    principal="root",
                    roles="admin",
                    method="POST",
                    path="/orders",
                    outcome="accepted",
                    status_code=201,
                )
            )
        for statement in (update(AuditRow).values(principal="nobody"), delete(AuditRow)):
            try:
                async with sessions.begin() as session:
                    await session.execute(statement)
            except DBAPIError as exc:
                errors.append(str(exc.orig))
    finally:
        await engine.dispose()
    return errors


def test_migration_makes_audit_log_append_only(empty_database_url: str) -> None:
    config = _alembic(empty_database_url)
    command.upgrade(config, "0005")
    errors = asyncio.run(_try_changes(empty_database_url))
    assert len(errors) == 2
    assert all("audit_log is append-only" in e for e in errors), errors
    command.downgrade(config, "0004")  # drops the triggers (and on PostgreSQL the function)
    command.upgrade(config, "0005")
    command.downgrade(config, "base")


async def test_get_audit_filters_and_pages_with_a_cursor(api: Api) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    await refused(api, "POST", "/orders", 401, json={})
    await refused(api, "POST", "/orders", 403, who="lead-1", json=order_payload())
    cancel = {"json": {"reason": "x"}}
    await refused(api, "POST", f"/orders/{UNKNOWN}/cancel", 404, who="support-1", **cancel)
    await refused(api, "POST", f"/orders/{UNKNOWN}/cancel", 404, who="root", **cancel)
    order = await create(api, order_payload())
    admin = api.auth("root")

    everything = await api.http.get("/audit", headers=admin)
    assert everything.status_code == 200, everything.text
    items = everything.json()["items"]
    assert [(i["status_code"], i["principal"]) for i in items] == [
        (401, None),
        (403, "lead-1"),
        (404, "support-1"),
        (404, "root"),
        (201, "eshop"),
    ]
    assert everything.json()["next_after"] == items[-1]["id"]
    assert items[1]["roles"] == ["approver"]
    assert items[1]["source_ip"] == TEST_CLIENT_IP
    assert items[4]["order_id"] == order["id"]

    async def ids(**params: Any) -> list[int]:
        response = await api.http.get("/audit", params=params, headers=admin)
        assert response.status_code == 200, response.text
        return [i["id"] for i in response.json()["items"]]

    every = [i["id"] for i in items]
    assert await ids(principal="support-1") == [every[2]]
    assert await ids(order_id=UNKNOWN) == every[2:4]
    assert await ids(action="cancel_order", principal="root") == [every[3]]
    assert await ids(outcome="accepted") == [every[4]]
    assert await ids(outcome="refused") == every[:4]
    assert await ids(since=start.isoformat()) == every
    assert await ids(until=start.isoformat()) == []
    future = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert await ids(since=future) == []

    paged: list[int] = []
    after = 0
    while True:
        page = (
            await api.http.get("/audit", params={"after": after, "limit": 2}, headers=admin)
        ).json()
        if not page["items"]:
            assert page["next_after"] == after
            break
        paged += [i["id"] for i in page["items"]]
        after = page["next_after"]
    assert paged == every

    before = await last_id(api)
    bad = await api.http.get("/audit", params={"outcome": "maybe"}, headers=admin)
    assert bad.status_code == 422
    too_many = await api.http.get("/audit", params={"limit": 1001}, headers=admin)
    assert too_many.status_code == 422
    for who in ("support-1", "eshop", "lead-1"):
        forbidden = await api.http.get("/audit", headers=api.auth(who))
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["message"] == "this action needs the role admin"
        export = await api.http.get("/audit/export.csv", headers=api.auth(who))
        assert export.status_code == 403
    assert (await api.http.get("/audit")).status_code == 401
    assert await rows_after(api, before) == []  # reads, refused or not, are not commands


async def test_csv_export_is_filtered_and_defuses_formulas(api: Api) -> None:
    evil = '=HYPERLINK("http://x.test","click")'
    key = await create_api_key(api.stack.sessions, evil, [Role.APPROVER], [1])
    api.keys[evil] = key
    await refused(api, "POST", "/orders", 403, who=evil, json=order_payload())
    await refused(
        api, "POST", f"/orders/{UNKNOWN}/cancel", 404, who="support-1", json={"reason": "x"}
    )

    response = await api.http.get("/audit/export.csv", headers=api.auth("root"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["principal"] for r in rows] == ["'" + evil, "support-1"]
    assert rows[0]["status_code"] == "403"
    assert rows[0]["roles"] == "approver"
    assert rows[0]["action"] == "create_order"
    assert rows[1]["order_id"] == UNKNOWN
    assert rows[1]["outcome"] == "refused"
    assert rows[0]["at"].startswith(str(datetime.now(UTC).year))

    only = await api.http.get(
        "/audit/export.csv", params={"principal": "support-1"}, headers=api.auth("root")
    )
    lines = only.text.splitlines()
    assert lines[0].startswith("id,at,principal,roles,")
    assert len(lines) == 2
    assert "support-1" in lines[1]


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        (None, ""),
        (404, "404"),
        (["admin", "support"], "admin,support"),
    ],
)
def test_csv_cell(value: object, cell: str) -> None:
    assert csv_cell(value) == cell
