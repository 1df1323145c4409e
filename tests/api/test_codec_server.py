"""The codec server: decode and encode over HTTP, who may, the sign-in session, CORS."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from temporalio.client import Client
from temporalio.converter import DataConverter

from api.session import COOKIE, SessionClaims, seal
from security.keyring import KeyRing, new_key
from services.auth import Role, Scope, create_api_key
from services.keys import Keys
from tests.api.conftest import Api
from tests.api.flows import create
from tests.factories import order_payload
from tests.keys import TEST_RING

UI = "http://127.0.0.1:8233"  # the default ORDERLY_TEMPORAL_UI_ORIGIN
SELF = "http://orderly.test"  # the test client's base URL
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Origin": SELF}


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"key_cache_ttl": timedelta(0)}  # revocations are seen at once


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def plain(text: str) -> dict[str, Any]:
    return {"metadata": {"encoding": b64(b"json/plain")}, "data": b64(text.encode())}


async def codec(
    api: Api, op: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await api.http.post(f"/codec/{op}", content=content, headers={**JSON, **(headers or {})})


async def sign_in(api: Api, who: str) -> str:
    """The session cookie of ``who`` (the client's cookie jar is left empty)."""
    response = await api.http.post(
        "/codec/sign-in", content=f"api_key={api.keys[who]}".encode(), headers=FORM
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/codec/sign-in"
    value = response.cookies[COOKIE]
    api.http.cookies.clear()
    return value


def cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={value}"}


# ------------------------------------------------------------------------------ codec


async def test_encode_then_decode_round_trip(api: Api) -> None:
    sent = {"payloads": [plain('{"name": "Ada Lovelace"}'), plain('"second"')]}
    who = {**api.auth("support-1"), "X-Namespace": "default"}
    encoded = await codec(api, "encode", sent, who)
    assert encoded.status_code == 200, encoded.text
    sealed = encoded.json()["payloads"]
    assert len(sealed) == 2
    for payload in sealed:
        assert base64.b64decode(payload["metadata"]["encoding"]) == b"binary/encrypted"
        assert base64.b64decode(payload["metadata"]["encryption-key-id"]) == b"test-1"
        assert b"Ada" not in base64.b64decode(payload["data"])
    decoded = await codec(api, "decode", encoded.json(), who)
    assert decoded.status_code == 200, decoded.text
    assert decoded.json() == sent
    # Temporal's own, unencrypted payloads pass unchanged; an empty batch is an empty batch.
    assert (await codec(api, "decode", sent, who)).json() == sent
    assert (await codec(api, "decode", {"payloads": []}, who)).json() == {"payloads": []}


async def test_decodes_the_input_of_a_real_order(api: Api) -> None:
    order = await create(api, order_payload())
    blind = Client(  # raw: no codec on purpose
        api.stack.client.service_client,
        namespace=api.stack.client.namespace,
        data_converter=DataConverter.default,
    )
    history = await blind.get_workflow_handle(order["id"]).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    body = json_format.MessageToDict(started.input)
    raw = b"".join(base64.b64decode(p["data"]) for p in body["payloads"])
    assert b"Ada Lovelace" not in raw
    assert b"Analytical Row" not in raw

    response = await codec(api, "decode", body, {**api.auth("support-1"), "X-Namespace": "default"})
    assert response.status_code == 200, response.text
    [decoded] = response.json()["payloads"]
    assert base64.b64decode(decoded["metadata"]["encoding"]) == b"json/plain"
    data = base64.b64decode(decoded["data"])
    assert b"Ada Lovelace" in data
    assert b"Analytical Row" in data
    assert order["id"].encode() in data


async def test_unknown_key_id_or_damage_is_an_error_naming_it(api: Api) -> None:
    who = api.auth("support-1")
    stranger = {
        "metadata": {
            "encoding": b64(b"binary/encrypted"),
            "encryption-key-id": b64(b"gone-7"),
        },
        "data": b64(b"x" * 40),
    }
    response = await codec(api, "decode", {"payloads": [plain('"ok"'), stranger]}, who)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "undecodable_payload"
    assert "payloads[1]" in error["message"]
    assert "'gone-7'" in error["message"]
    assert "payloads" not in response.json()  # never the ciphertext as if decoded

    [sealed] = (await codec(api, "encode", {"payloads": [plain('"x"')]}, who)).json()["payloads"]
    blob = bytearray(base64.b64decode(sealed["data"]))
    blob[-1] ^= 1
    damaged = {**sealed, "data": b64(bytes(blob))}
    response = await codec(api, "decode", {"payloads": [damaged]}, who)
    assert response.status_code == 422
    assert "failed authentication" in response.json()["error"]["message"]

    no_id = {"metadata": {"encoding": b64(b"binary/encrypted")}, "data": b64(b"x" * 40)}
    response = await codec(api, "decode", {"payloads": [no_id]}, who)
    assert response.status_code == 422
    assert "without an encryption-key-id" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b"[]",
        b"null",
        b'{"payloads": "x"}',
        b'{"payloads": [{"data": "!!not base64!!"}]}',
        b'{"payloads": [{"metadata": {"encoding": 5}}]}',
        b'{"payload": []}',
        b"\xff\xfe\x00",
        b"[" * 100_000,
    ],
    ids=lambda b: repr(b[:24]),
)
async def test_malformed_requests_are_400(api: Api, body: bytes) -> None:
    for op in ("decode", "encode"):
        response = await codec(api, op, body, api.auth("support-1"))
        assert response.status_code == 400, (op, response.text)
        assert response.json()["error"]["code"] == "malformed"


async def test_wrong_media_type_and_oversized_bodies(api: Api) -> None:
    response = await api.http.post(
        "/codec/decode",
        content=b'{"payloads": []}',
        headers={**api.auth("support-1"), "Content-Type": "text/plain"},
    )
    assert response.status_code == 415
    huge = {"payloads": [plain("x" * 9_000_000)]}
    response = await codec(api, "decode", huge, api.auth("support-1"))
    assert response.status_code == 413


async def test_only_support_and_admin_keys_may(api: Api) -> None:
    body = {"payloads": [plain('"x"')]}
    scoped = await create_api_key(
        api.stack.sessions, "support-scoped", [Role.SUPPORT], scopes=[Scope.ORDERS_READ]
    )
    for op in ("decode", "encode"):
        missing = await codec(api, op, body)
        assert missing.status_code == 401, missing.text
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = await codec(api, op, body, {"Authorization": "Bearer ok_not-a-key"})
        assert wrong.status_code == 401
        for who in ("eshop", "lead-1", "boss"):
            refused = await codec(api, op, body, api.auth(who))
            assert refused.status_code == 403, (who, refused.text)
            assert "support" in refused.json()["error"]["message"]
        narrowed = await codec(api, op, body, {"Authorization": f"Bearer {scoped}"})
        assert narrowed.status_code == 403
        for who in ("support-1", "root"):
            allowed = await codec(api, op, body, api.auth(who))
            assert allowed.status_code == 200, (who, allowed.text)


# ---------------------------------------------------------------------------- session


async def test_sign_in_page_is_self_contained_and_framing_proof(api: Api) -> None:
    page = await api.http.get("/codec/sign-in")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'name="api_key"' in page.text
    assert 'type="password"' in page.text
    assert "Include cross-origin credentials" in page.text
    assert f"{SELF}/codec" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "src=" not in page.text  # no scripts or assets from anywhere


async def test_session_decodes_from_the_temporal_ui_with_cors(api: Api) -> None:
    response = await api.http.post(
        "/codec/sign-in", content=f"api_key={api.keys['support-1']}".encode(), headers=FORM
    )
    assert response.status_code == 303, response.text
    set_cookie = response.headers["set-cookie"]
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/codec", "Max-Age=28800"):
        assert attribute.lower() in set_cookie.lower(), set_cookie
    assert "secure" not in set_cookie.lower()  # plain http here (https sets it)
    value = response.cookies[COOKIE]
    assert api.keys["support-1"] not in value
    assert "support-1" not in value
    api.http.cookies.clear()

    page = await api.http.get("/codec/sign-in", headers=cookie(value))
    assert "Signed in as <b>support-1</b> (support)" in page.text

    body = {"payloads": [plain('"x"')]}
    sealed = await codec(api, "encode", body, {**cookie(value), "Origin": UI})
    assert sealed.status_code == 200, sealed.text
    assert sealed.headers["access-control-allow-origin"] == UI
    assert sealed.headers["access-control-allow-credentials"] == "true"
    assert "origin" in sealed.headers["vary"].lower()
    # The UI (2.54) calls the configured endpoint + /decode?preserveStorageRefs=true.
    opened = await codec(
        api, "decode?preserveStorageRefs=true", sealed.json(), {**cookie(value), "Origin": UI}
    )
    assert opened.headers["access-control-allow-origin"] == UI
    assert opened.status_code == 200
    assert opened.json() == body
    # Without Origin (curl with the cookie) it works; from another site it does not.
    assert (await codec(api, "decode", sealed.json(), cookie(value))).status_code == 200
    evil = await codec(
        api, "decode", sealed.json(), {**cookie(value), "Origin": "http://evil.test"}
    )
    assert evil.status_code == 403
    assert "access-control-allow-origin" not in evil.headers
    # The cookie is no bearer key.
    assert (
        await codec(api, "decode", body, {"Authorization": f"Bearer {value}"})
    ).status_code == 401


async def test_preflight_is_answered_for_the_ui_only(api: Api) -> None:
    ask = {
        "Origin": UI,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace",
    }
    for path in ("/codec/decode", "/codec/encode"):
        ok = await api.http.options(path, headers=ask)
        assert ok.status_code == 200, ok.text
        assert ok.headers["access-control-allow-origin"] == UI
        assert ok.headers["access-control-allow-credentials"] == "true"
        assert "POST" in ok.headers["access-control-allow-methods"]
        assert "x-namespace" in ok.headers["access-control-allow-headers"].lower()
        other = await api.http.options(path, headers={**ask, "Origin": "http://evil.test"})
        assert "access-control-allow-origin" not in other.headers
    # CORS is for the codec only: the rest of the API answers no browser origin.
    orders = await api.http.options("/orders", headers=ask)
    assert "access-control-allow-origin" not in orders.headers
    listed = await api.http.get("/orders", headers={**api.auth("support-1"), "Origin": UI})
    assert listed.status_code == 200
    assert "access-control-allow-origin" not in listed.headers
    signed = await api.http.options("/codec/sign-in", headers=ask)
    assert "access-control-allow-origin" not in signed.headers


async def test_sign_in_refusals(api: Api) -> None:
    async def attempt(content: bytes, headers: dict[str, str] = FORM) -> httpx.Response:
        response = await api.http.post("/codec/sign-in", content=content, headers=headers)
        assert COOKIE not in response.cookies
        return response

    key = api.keys["support-1"]
    assert (await attempt(b"api_key=ok_wrong")).status_code == 401
    assert (await attempt(f"api_key={api.keys['lead-1']}".encode())).status_code == 403
    assert (await attempt(f"api_key={api.keys['eshop']}".encode())).status_code == 403
    assert (await attempt(b"")).status_code == 400
    assert (await attempt(b"\xff\xfe")).status_code == 400
    assert (await attempt(b"api_key=" + b"x" * 5000)).status_code == 400  # over 4 KiB
    as_json = {"Content-Type": "application/json", "Origin": SELF}
    assert (await attempt(json.dumps({"api_key": key}).encode(), as_json)).status_code == 400
    # Login forgery: the form posted from another site (or an opaque origin) is refused.
    for origin in ("http://evil.test", "null", UI):
        forged = await attempt(f"api_key={key}".encode(), {**FORM, "Origin": origin})
        assert forged.status_code == 403, origin
    referred = {"Content-Type": FORM["Content-Type"], "Referer": "http://evil.test/x"}
    assert (await attempt(f"api_key={key}".encode(), referred)).status_code == 403


async def test_revoked_key_ends_its_sessions(api: Api) -> None:
    key = await create_api_key(api.stack.sessions, "support-2", [Role.SUPPORT])
    api.keys["support-2"] = key
    value = await sign_in(api, "support-2")
    body = {"payloads": [plain('"x"')]}
    assert (await codec(api, "encode", body, cookie(value))).status_code == 200
    keys = Keys(api.stack.sessions)
    [info] = await keys.list(principal="support-2")
    await keys.revoke(info.id)
    refused = await codec(api, "encode", body, cookie(value))
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]["message"]
    page = await api.http.get("/codec/sign-in", headers=cookie(value))
    assert 'name="api_key"' in page.text  # signed out


async def test_expired_forged_and_foreign_sessions_are_refused(api: Api) -> None:
    value = await sign_in(api, "support-1")
    body = {"payloads": [plain('"x"')]}
    [info] = await Keys(api.stack.sessions).list(principal="support-1")
    past = SessionClaims(key_id=info.id, principal="support-1", expires_at=int(time.time()) - 1)
    other_ring = KeyRing("test-1", {"test-1": new_key()})
    future = int(time.time()) + 3600
    as_root = SessionClaims(key_id=info.id, principal="root", expires_at=future)
    for bad in (
        seal(TEST_RING, past),  # expired
        seal(other_ring, SessionClaims(info.id, "support-1", future)),  # another ring's
        value[:-2] + ("AA" if not value.endswith("AA") else "BB"),  # changed
        seal(TEST_RING, as_root),  # names another principal than its key's
        "garbage",
    ):
        response = await codec(api, "encode", body, cookie(bad))
        assert response.status_code == 401, bad


async def test_sign_out(api: Api) -> None:
    value = await sign_in(api, "root")
    forged = await api.http.post("/codec/sign-out", headers={**cookie(value), "Origin": UI})
    assert forged.status_code == 403
    out = await api.http.post("/codec/sign-out", headers={**cookie(value), "Origin": SELF})
    assert out.status_code == 303
    cleared = out.headers["set-cookie"]
    assert cleared.startswith(f'{COOKIE}=""'), cleared
    assert "Max-Age=0" in cleared
    assert "Path=/codec" in cleared
