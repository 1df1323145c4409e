"""API keys and scopes: the access matrix generated from the routes, revocation, expiry,
rotation, ``orders:own``, and the admin endpoints."""

from __future__ import annotations

import asyncio
import re
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.app import create_app
from api.deps import RouteRule, route_rules
from services.auth import PUBLIC, AccessRule, Role, Scope, create_api_key
from services.keys import Keys
from tests.api.conftest import Api, open_api, services_for
from tests.api.flows import create
from tests.conftest import Stack
from tests.factories import order_payload
from tests.helpers import eventually

CACHE_TTL = timedelta(milliseconds=300)

# Every API route declares one access rule (``api.deps.allow``, or ``api.deps.public`` for a
# route that needs no key). Until api/routes/codec.py marks its sign-in pages public:
# The rules of this part's routes, stated once more: changing one is a conscious change.
SYSTEM, APPROVER, SUPPORT, MANAGER = Role.SYSTEM, Role.APPROVER, Role.SUPPORT, Role.MANAGER
EXPECTED: dict[tuple[str, str], tuple[set[Role], Scope | None, bool]] = {
    ("POST", "/orders"): ({SYSTEM}, Scope.ORDERS_CREATE, True),
    ("GET", "/orders"): ({SYSTEM, APPROVER, SUPPORT}, Scope.ORDERS_READ, True),
    ("GET", "/orders/{order_id}"): ({SYSTEM, APPROVER, SUPPORT}, Scope.ORDERS_READ, True),
    ("GET", "/orders/{order_id}/timeline"): ({SYSTEM, APPROVER, SUPPORT}, Scope.ORDERS_READ, True),
    ("POST", "/orders/{order_id}/cancel"): ({SYSTEM, SUPPORT}, Scope.ORDERS_CANCEL, True),
    ("POST", "/orders/{order_id}/payments"): ({SYSTEM}, Scope.PAYMENTS_WRITE, True),
    ("POST", "/orders/{order_id}/shipment-events"): ({SYSTEM}, Scope.SHIPMENTS_WRITE, True),
    ("POST", "/orders/{order_id}/split-shipment"): ({SYSTEM, SUPPORT}, Scope.SHIPMENTS_WRITE, True),
    ("POST", "/orders/{order_id}/compensations/retry"): (
        {SUPPORT},
        Scope.COMPENSATIONS_WRITE,
        True,
    ),
    ("POST", "/orders/{order_id}/compensations/resolve"): (
        {SUPPORT},
        Scope.COMPENSATIONS_WRITE,
        True,
    ),
    ("POST", "/orders/{order_id}/approve"): ({APPROVER}, Scope.APPROVALS_DECIDE, False),
    ("POST", "/orders/{order_id}/reject"): ({APPROVER}, Scope.APPROVALS_DECIDE, False),
    ("POST", "/orders/{order_id}/request-changes"): ({APPROVER}, Scope.APPROVALS_DECIDE, False),
    ("POST", "/orders/{order_id}/amend"): ({SYSTEM, SUPPORT}, Scope.ORDERS_AMEND, True),
    ("GET", "/approvals/inbox"): ({APPROVER}, Scope.APPROVALS_DECIDE, False),
    ("GET", "/events"): ({SYSTEM, SUPPORT}, Scope.EVENTS_READ, False),
    ("POST", "/keys"): (set(), Scope.KEYS_ADMIN, False),
    ("GET", "/keys"): (set(), Scope.KEYS_ADMIN, False),
    ("POST", "/keys/{key_id}/revoke"): (set(), Scope.KEYS_ADMIN, False),
    ("POST", "/keys/{key_id}/rotate"): (set(), Scope.KEYS_ADMIN, False),
    # Public (api.deps.public): the sender's Standard Webhooks signature authenticates.
    ("POST", "/inbound/carriers/{sender}"): (set(), None, True),
    ("POST", "/inbound/payments/{sender}"): (set(), None, True),
    ("PUT", "/prices/{sku:path}"): ({SUPPORT}, Scope.PRICES_WRITE, False),
    ("GET", "/prices"): ({SYSTEM, SUPPORT}, Scope.PRICES_READ, True),
    ("POST", "/templates"): ({SYSTEM, SUPPORT}, Scope.TEMPLATES_WRITE, False),
    ("GET", "/templates"): ({SYSTEM, APPROVER, SUPPORT}, Scope.TEMPLATES_READ, False),
    ("GET", "/templates/{template_id}"): ({SYSTEM, APPROVER, SUPPORT}, Scope.TEMPLATES_READ, False),
    ("PUT", "/templates/{template_id}"): ({SYSTEM, SUPPORT}, Scope.TEMPLATES_WRITE, False),
    ("PATCH", "/templates/{template_id}"): ({SYSTEM, SUPPORT}, Scope.TEMPLATES_WRITE, False),
    ("POST", "/templates/{template_id}/archive"): ({SYSTEM, SUPPORT}, Scope.TEMPLATES_WRITE, False),
    ("GET", "/templates/{template_id}/suggestions"): (
        {SYSTEM, SUPPORT, MANAGER},
        Scope.TEMPLATES_READ,
        False,
    ),
    ("POST", "/orders/from-template/{template_id}"): (
        {SYSTEM, SUPPORT},
        Scope.ORDERS_CREATE,
        False,
    ),
    # Reports read every order's figures: managers, no scope yet (scoped keys are refused).
    ("GET", "/reports/sales"): ({MANAGER}, None, False),
    ("GET", "/reports/operations"): ({MANAGER}, None, False),
    ("GET", "/reports/customers"): ({MANAGER}, None, False),
    ("POST", "/reports/exports"): ({MANAGER}, None, False),
    ("GET", "/reports/exports/{export_id}/file"): ({MANAGER}, None, False),
    ("POST", "/reports/subscriptions"): ({MANAGER}, None, False),
    ("GET", "/reports/forecasts"): ({MANAGER}, None, False),
    ("GET", "/reports/recommendations"): ({SYSTEM, SUPPORT, MANAGER}, None, False),
    ("GET", "/products"): ({SYSTEM, SUPPORT, MANAGER}, None, False),
    ("PUT", "/products/{sku}"): ({SUPPORT}, None, False),
    ("POST", "/webhooks"): (set(), Scope.WEBHOOKS_ADMIN, False),
    ("GET", "/webhooks"): (set(), Scope.WEBHOOKS_ADMIN, False),
    ("GET", "/webhooks/{endpoint_id}"): (set(), Scope.WEBHOOKS_ADMIN, False),
    ("PATCH", "/webhooks/{endpoint_id}"): (set(), Scope.WEBHOOKS_ADMIN, False),
    ("DELETE", "/webhooks/{endpoint_id}"): (set(), Scope.WEBHOOKS_ADMIN, False),
    ("POST", "/webhooks/{endpoint_id}/rotate-secret"): (set(), Scope.WEBHOOKS_ADMIN, False),
    ("GET", "/webhooks/{endpoint_id}/deliveries"): (set(), Scope.WEBHOOKS_ADMIN, False),
    ("POST", "/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver"): (
        set(),
        Scope.WEBHOOKS_ADMIN,
        False,
    ),
    ("POST", "/webhooks/{endpoint_id}/replay"): (set(), Scope.WEBHOOKS_ADMIN, False),
    ("GET", "/inventory"): (set(), Scope.INVENTORY_ADMIN, False),
    ("GET", "/inventory/{sku}"): (set(), Scope.INVENTORY_ADMIN, False),
    ("PUT", "/inventory/{sku}"): (set(), Scope.INVENTORY_ADMIN, False),
    ("GET", "/notifications"): ({SUPPORT}, Scope.NOTIFICATIONS_READ, False),
    ("POST", "/notifications/{key}/resend"): ({SUPPORT}, Scope.NOTIFICATIONS_WRITE, False),
}
# Path parameters of the matrix: nothing that exists, so no request changes anything.
SAMPLES = {"order_id": "SO-NOPE-1", "key_id": str(2**31 - 1), "delivery_id": str(2**31 - 1)}


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"key_cache_ttl": CACHE_TTL}


@dataclass(frozen=True)
class Caller:
    """One kind of caller of the matrix: a key with these roles and scopes, or none."""

    label: str
    roles: frozenset[Role] | None  # None: no key at all
    scopes: frozenset[Scope] = frozenset()


def callers() -> list[Caller]:
    kinds = [Caller("anonymous", None)]
    for role in Role:
        kinds.append(Caller(role.value, frozenset({role})))
        kinds.append(Caller(f"{role.value}+own", frozenset({role}), frozenset({Scope.ORDERS_OWN})))
        for scope in Scope:
            if scope is not Scope.ORDERS_OWN:
                kinds.append(Caller(f"{role.value}+{scope}", frozenset({role}), frozenset({scope})))
    return kinds


def relevant(kinds: list[Caller], rule: AccessRule, path: str) -> list[Caller]:
    """The callers that tell a route's rule apart: no key, every role without scopes and with
    ``orders:own`` alone, with the route's scope, and with two scopes that are not its own,
    chosen by the path so that the routes together try every scope (any other scope is
    refused alike, and would cost a request per role and route)."""
    others = [s for s in Scope if s is not Scope.ORDERS_OWN and s is not rule.scope]
    start = zlib.crc32(path.encode()) % len(others)
    keep = {rule.scope, others[start], others[(start + 1) % len(others)]}
    return [k for k in kinds if len(k.scopes - {Scope.ORDERS_OWN}) == 0 or k.scopes <= keep]


def refused(rule: AccessRule, caller: Caller) -> int | None:
    """The status the rule must answer for ``caller`` (401/403), or None if it lets it in.

    Stated from the rule's fields, not by calling its own check."""
    if caller.roles is None:
        return 401
    if not caller.roles & (rule.roles | {Role.ADMIN}):
        return 403
    grants = caller.scopes - {Scope.ORDERS_OWN}
    if grants and rule.scope not in grants:  # a rule without a scope admits no scoped key
        return 403
    if Scope.ORDERS_OWN in caller.scopes and not rule.own:
        return 403
    return None


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLES.get(m.group(1), "x-1"), path)


def served_rules(stack: Stack) -> list[RouteRule]:
    """The routes of the app as it is built for production, with their rules."""
    return route_rules(create_app(stack.settings, services=services_for(stack)))


async def test_every_route_has_one_rule_and_the_rules_are_the_agreed_ones(
    bare_stack: Stack,
) -> None:
    rules = {(r.method, r.path): r.rule for r in served_rules(bare_stack)}
    missing = sorted(f"{m} {p}" for (m, p), rule in rules.items() if rule is None)
    assert missing == [], f"routes without an access rule (use api.deps.allow): {missing}"
    assert rules[("GET", "/healthz")] is PUBLIC
    for (method, path), (roles, scope, own) in EXPECTED.items():
        rule = rules.get((method, path))
        assert rule is not None, f"{method} {path} is gone"
        expected = (roles | {Role.ADMIN}, scope, own)
        assert (rule.allowed_roles, rule.scope, rule.own) == expected, f"{method} {path}"


async def test_scope_matrix(bare_stack: Stack) -> None:
    """Every route x every kind of caller: 401/403 exactly where the route's rule says."""
    async with open_api(bare_stack) as api:
        # Console pages take a signed-in user's session, never a key: tests/console checks them.
        routes = [
            r
            for r in served_rules(bare_stack)
            if r.rule and not r.rule.public and not r.rule.console
        ]
        assert len(routes) >= len(EXPECTED)
        kinds = callers()
        keys: dict[str, str] = {}
        for kind in kinds:
            if kind.roles is not None:
                levels = [1, 2, 3] if Role.APPROVER in kind.roles else []
                keys[kind.label] = await create_api_key(
                    bare_stack.sessions,
                    f"matrix-{kind.label}",
                    list(kind.roles),
                    levels,
                    scopes=kind.scopes,
                )

        wrong: list[str] = []
        for route in routes:
            assert route.rule is not None
            url = concrete(route.path)
            for kind in relevant(kinds, route.rule, f"{route.method} {route.path}"):
                headers = {"Authorization": f"Bearer {keys[kind.label]}"} if kind.roles else {}
                body: dict[str, Any] | None = None if route.method == "GET" else {}
                response = await api.http.request(route.method, url, json=body, headers=headers)
                must = refused(route.rule, kind)
                got = response.status_code
                if (must is None and got in (401, 403)) or (must is not None and got != must):
                    wrong.append(
                        f"{route.method} {route.path} as {kind.label}: {got} "
                        f"(expected {must or 'not 401/403'}) {response.text[:120]}"
                    )
                role_ok = bool(kind.roles and kind.roles & route.rule.allowed_roles)
                scope = route.rule.scope
                grants = kind.scopes - {Scope.ORDERS_OWN}
                if got == 403 and role_ok and scope is not None and grants and scope not in grants:
                    message = response.json()["error"]["message"]
                    if message != f"this API key's scopes do not include {scope}":
                        wrong.append(f"{route.method} {route.path} as {kind.label}: {message}")
        assert wrong == [], "\n".join(wrong)


async def _admin_create(api: Api, **body: Any) -> dict[str, Any]:
    response = await api.http.post("/keys", json=body, headers=api.auth("root"))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_revoked_key_is_refused_on_the_next_request(api: Api) -> None:
    new = await _admin_create(api, principal="shop-revoke", roles=["system"])
    assert new["key"].startswith(new["prefix"])
    assert len(new["prefix"]) == 12
    assert (await api.http.get("/orders", headers=_bearer(new["key"]))).status_code == 200

    revoked = await api.http.post(f"/keys/{new['id']}/revoke", headers=api.auth("root"))
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    after = await api.http.get("/orders", headers=_bearer(new["key"]))
    assert after.status_code == 401
    assert after.json()["error"]["message"] == "unknown or revoked API key"
    again = await api.http.post(f"/keys/{new['id']}/revoke", headers=api.auth("root"))
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]  # idempotent


async def test_revoked_elsewhere_is_refused_within_the_cache_ttl(api: Api) -> None:
    """A revocation by another process (the CLI) reaches this one's cache within its TTL."""
    key = await create_api_key(api.stack.sessions, "shop-elsewhere", [Role.SYSTEM])
    assert (await api.http.get("/orders", headers=_bearer(key))).status_code == 200
    keys = Keys(api.stack.sessions)  # no cache: as a separate process does it
    [info] = await keys.list(principal="shop-elsewhere")
    await keys.revoke(info.id)
    await asyncio.sleep(CACHE_TTL.total_seconds() + 0.1)
    assert (await api.http.get("/orders", headers=_bearer(key))).status_code == 401


async def test_expired_key_is_refused(api: Api) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    stale = await create_api_key(api.stack.sessions, "shop-old", [Role.SYSTEM], expires_at=past)
    response = await api.http.get("/orders", headers=_bearer(stale))
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "API key expired"

    # A key that expires while it is cached stops at its expiry, not at the cache's.
    soon = datetime.now(UTC) + timedelta(seconds=5)  # room for a slow CI machine
    key = await create_api_key(api.stack.sessions, "shop-soon", [Role.SYSTEM], expires_at=soon)
    assert (await api.http.get("/orders", headers=_bearer(key))).status_code == 200
    await asyncio.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.05)
    expired = await api.http.get("/orders", headers=_bearer(key))
    assert expired.status_code == 401
    assert expired.json()["error"]["message"] == "API key expired"


async def test_rotation_overlap(api: Api) -> None:
    old = await _admin_create(
        api,
        principal="shop-rotate",
        roles=["system"],
        scopes=["orders:read", "orders:create"],
        description="the rotating shop",
        expires_in="P30D",
    )
    assert (await api.http.get("/orders", headers=_bearer(old["key"]))).status_code == 200
    rotated = await api.http.post(
        f"/keys/{old['id']}/rotate", json={"overlap": "PT5S"}, headers=api.auth("root")
    )
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()
    assert new["key"] != old["key"]
    assert new["id"] != old["id"]
    for field in ("principal", "roles", "scopes", "approval_levels", "description"):
        assert new[field] == old[field], field
    lifetime = datetime.fromisoformat(new["expires_at"]) - datetime.fromisoformat(new["created_at"])
    assert abs(lifetime - timedelta(days=30)) < timedelta(seconds=5)  # the same lifetime

    again = await api.http.post(f"/keys/{old['id']}/rotate", json={}, headers=api.auth("root"))
    assert again.status_code == 409, again.text  # one successor only
    assert f"was rotated already (to key {new['id']})" in again.json()["error"]["message"]
    for key in (old["key"], new["key"]):  # both work during the overlap
        assert (await api.http.get("/orders", headers=_bearer(key))).status_code == 200
    ends = datetime.fromisoformat(
        next(
            k
            for k in (await api.http.get("/keys", headers=api.auth("root"))).json()["items"]
            if k["id"] == old["id"]
        )["expires_at"]
    )
    await asyncio.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 0.05)
    stopped = await api.http.get("/orders", headers=_bearer(old["key"]))
    assert stopped.status_code == 401
    assert stopped.json()["error"]["message"] == "API key expired"
    assert (await api.http.get("/orders", headers=_bearer(new["key"]))).status_code == 200

    again = await api.http.post(f"/keys/{old['id']}/rotate", headers=api.auth("root"))
    assert again.status_code == 409, again.text  # an expired key is replaced, not rotated
    listed = (await api.http.get("/keys", headers=api.auth("root"))).json()["items"]
    status = {k["id"]: k["status"] for k in listed}
    assert (status[old["id"]], status[new["id"]]) == ("expired", "active")


async def test_own_orders_only(api: Api) -> None:
    own = [Scope.ORDERS_OWN, Scope.ORDERS_CREATE, Scope.ORDERS_READ, Scope.ORDERS_CANCEL]
    shop = await create_api_key(api.stack.sessions, "shop-own", [Role.SYSTEM], scopes=own)
    others = await create(api, order_payload(), who="eshop")
    response = await api.http.post("/orders", json=order_payload(), headers=_bearer(shop))
    assert response.status_code == 201, response.text
    mine = response.json()
    assert mine["created_by"] == "shop-own"

    unknown = (await api.http.get("/orders/SO-NOPE-2", headers=_bearer(shop))).json()
    for path in (f"/orders/{others['id']}", f"/orders/{others['id']}/timeline"):
        hidden = await api.http.get(path, headers=_bearer(shop))
        assert hidden.status_code == 404, hidden.text
        message = hidden.json()["error"]["message"]
        assert message == unknown["error"]["message"].replace("SO-NOPE-2", others["id"])
    waiting = await api.http.get(
        f"/orders/{others['id']}", params={"wait_for": "fulfilling"}, headers=_bearer(shop)
    )
    assert waiting.status_code == 404
    cancel = await api.http.post(
        f"/orders/{others['id']}/cancel", json={"reason": "not mine"}, headers=_bearer(shop)
    )
    assert cancel.status_code == 404, cancel.text

    assert (await api.http.get(f"/orders/{mine['id']}", headers=_bearer(shop))).status_code == 200

    async def listed() -> list[dict[str, Any]]:
        page = await api.http.get("/orders", headers=_bearer(shop))
        assert page.status_code == 200, page.text
        items: list[dict[str, Any]] = page.json()["items"]
        return items

    items = await eventually(
        listed, lambda items: any(i["id"] == mine["id"] for i in items), what="own order listed"
    )
    assert {i["created_by"] for i in items} == {"shop-own"}
    everyone = await api.http.get("/orders", headers=api.auth("support-1"))
    assert others["id"] in {i["id"] for i in everyone.json()["items"]}  # it is there for others

    # Cancelling its own order works; the feed of every order's events is closed to it.
    done = await api.http.post(
        f"/orders/{mine['id']}/cancel", json={"reason": "changed mind"}, headers=_bearer(shop)
    )
    assert done.status_code in (200, 202), done.text
    feed = await api.http.get("/events", headers=_bearer(shop))
    assert feed.status_code == 403


async def test_payments_only_key(api: Api) -> None:
    psp = await create_api_key(
        api.stack.sessions, "psp", [Role.SYSTEM], scopes=[Scope.PAYMENTS_WRITE]
    )
    refused_create = await api.http.post("/orders", json=order_payload(), headers=_bearer(psp))
    assert refused_create.status_code == 403
    assert refused_create.json()["error"]["message"] == (
        "this API key's scopes do not include orders:create"
    )
    shipment = await api.http.post(
        "/orders/SO-NOPE-3/shipment-events", json={"event": "delivered"}, headers=_bearer(psp)
    )
    assert shipment.status_code == 403
    paid = await api.http.post(
        "/orders/SO-NOPE-3/payments",
        json={"amount": "10.00", "token": "tok_visa"},
        headers=_bearer(psp),
    )
    assert paid.status_code == 404, paid.text  # let in; there is no such order


async def test_a_scope_never_grants_beyond_the_roles(api: Api) -> None:
    approver = await create_api_key(
        api.stack.sessions, "odd-approver", [Role.APPROVER], [1], scopes=[Scope.PAYMENTS_WRITE]
    )
    response = await api.http.post(
        "/orders/SO-NOPE-4/payments",
        json={"amount": "10.00", "token": "tok_visa"},
        headers=_bearer(approver),
    )
    assert response.status_code == 403
    assert "needs the role" in response.json()["error"]["message"]


async def test_key_admin_endpoints(api: Api) -> None:
    new = await _admin_create(
        api,
        principal="carrier-dhl",
        roles=["system"],
        scopes=["shipments:write"],
        description="DHL webhooks",
    )
    listing = await api.http.get("/keys", headers=api.auth("root"))
    assert listing.status_code == 200
    assert new["key"] not in listing.text
    assert api.keys["eshop"] not in listing.text
    [row] = [k for k in listing.json()["items"] if k["id"] == new["id"]]
    assert row["prefix"] == new["key"][:12]
    assert (row["scopes"], row["status"], row["last_used_at"]) == (
        ["shipments:write"],
        "active",
        None,
    )
    assert "key" not in row

    # last_used_at: written on use, then at most once a minute.
    for _ in range(3):
        await api.http.get("/events", headers=_bearer(new["key"]))  # 403, but authenticated
    first = await api.http.get(
        "/keys", params={"principal": "carrier-dhl"}, headers=api.auth("root")
    )
    used = first.json()["items"][0]["last_used_at"]
    assert used is not None
    await api.http.post("/orders/SO-NOPE-5/shipment-events", json={}, headers=_bearer(new["key"]))
    second = await api.http.get(
        "/keys", params={"principal": "carrier-dhl"}, headers=api.auth("root")
    )
    assert second.json()["items"][0]["last_used_at"] == used

    for who in ("eshop", "support-1", "boss"):
        assert (await api.http.get("/keys", headers=api.auth(who))).status_code == 403
    bad_bodies: list[dict[str, Any]] = [
        {"principal": "x", "roles": ["system"], "scopes": ["orders:everything"]},
        {"principal": "x", "roles": ["system"], "approval_levels": [1]},
        {"principal": "x", "roles": []},
        {"principal": "bad name", "roles": ["system"]},
        {"principal": "x", "roles": ["system"], "expires_at": "2001-01-01T00:00:00Z"},
        {"principal": "x", "roles": ["system"], "expires_in": "P1D", "expires_at": "2999-01-01"},
    ]
    for body in bad_bodies:
        response = await api.http.post("/keys", json=body, headers=api.auth("root"))
        assert response.status_code == 422, (body, response.text)
    missing = await api.http.post("/keys/999999/revoke", headers=api.auth("root"))
    assert missing.status_code == 404


async def test_scoped_admin_key_cannot_manage_keys(api: Api) -> None:
    reader = await create_api_key(
        api.stack.sessions, f"ops-{uuid.uuid4().hex[:6]}", [Role.ADMIN], scopes=[Scope.ORDERS_READ]
    )
    assert (await api.http.get("/orders", headers=_bearer(reader))).status_code == 200
    refused_keys = await api.http.get("/keys", headers=_bearer(reader))
    assert refused_keys.status_code == 403
    assert refused_keys.json()["error"]["message"] == (
        "this API key's scopes do not include keys:admin"
    )


async def test_a_scoped_key_admin_cannot_hand_out_broader_keys(api: Api) -> None:
    """keys:admin for an automation: it may mint keys within its own roles and scopes only."""
    ops = await create_api_key(
        api.stack.sessions,
        f"iam-{uuid.uuid4().hex[:6]}",
        [Role.ADMIN, Role.SYSTEM],
        scopes=[Scope.KEYS_ADMIN, Scope.ORDERS_READ],
    )
    broader = [
        {"principal": "x", "roles": ["admin"]},  # no scopes: everything admin may do
        {"principal": "x", "roles": ["system"], "scopes": ["orders:create"]},
        {"principal": "x", "roles": ["support"], "scopes": ["orders:read"]},
    ]
    for body in broader:
        refused = await api.http.post("/keys", json=body, headers=_bearer(ops))
        assert refused.status_code == 403, (body, refused.text)
        assert "within its own roles and scopes" in refused.json()["error"]["message"]
    ok = await api.http.post(
        "/keys",
        json={"principal": "shop-reader", "roles": ["system"], "scopes": ["orders:read"]},
        headers=_bearer(ops),
    )
    assert ok.status_code == 201, ok.text
    full = await _admin_create(api, principal="boss-key", roles=["admin"])
    rotate = await api.http.post(f"/keys/{full['id']}/rotate", json={}, headers=_bearer(ops))
    assert rotate.status_code == 403
    assert (await api.http.get("/orders", headers=_bearer(full["key"]))).status_code == 200
