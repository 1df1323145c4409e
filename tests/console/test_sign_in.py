"""Sign-in and the session's guarantees, over HTTP in-process: sign-in and sign-out, wrong
passwords (401, audited without the password), the failure limit (429, audited), the idle
timeout and the absolute lifetime, role changes and deactivation ending sessions, CSRF on
every form (the sign-in form too), ``next=`` staying on this site, the invite flow, the cookie's
flags, and a cookie that cannot be forged or altered.

About sign-out: the session cookie holds sealed claims; signing out drops it from the browser
and records the session as ended (``console_sign_outs``), so a copy of the old value taken
before stops working too, while the user's other sessions go on.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from api.app import create_app
from console import session as cookie
from db.models import UserRow
from services import audit
from services.audit import AuditEntry, AuditFilter
from services.context import Services
from services.staff_sessions import SessionUsers
from services.users import Users
from tests.api.conftest import services_for
from tests.conftest import Stack
from tests.console import PASSWORD, add_user, sign_in_http
from tests.helpers import eventually

PRE = re.compile(r'name="csrf_token" value="([^"]+)"')
WRONG = "not the password 12345"


@dataclass
class Console:
    app: FastAPI
    services: Services
    stack: Stack
    client: Callable[..., httpx.AsyncClient]


@pytest.fixture
async def console(bare_stack: Stack) -> AsyncIterator[Console]:
    services = services_for(bare_stack)
    app = create_app(bare_stack.settings, services=services)
    clients: list[httpx.AsyncClient] = []

    def client(base_url: str = "http://orderly.test") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        http = httpx.AsyncClient(transport=transport, base_url=base_url)
        clients.append(http)
        return http

    yield Console(app, services, bare_stack, client)
    for http in clients:
        await http.aclose()


async def pre_token(http: httpx.AsyncClient) -> str:
    page = await http.get("/console/sign-in")
    assert page.status_code == 200
    found = PRE.search(page.text)
    assert found is not None
    return found.group(1)


async def sign_in(
    http: httpx.AsyncClient, username: str, password: str = PASSWORD, **extra: str
) -> httpx.Response:
    form = {"username": username, "password": password, "csrf_token": await pre_token(http)}
    return await http.post("/console/sign-in", data={**form, **extra})


def session_value(http: httpx.AsyncClient) -> str:
    value = http.cookies.get(cookie.COOKIE, path=cookie.PATH)
    assert value, "no session cookie"
    return value


async def with_cookie(http: httpx.AsyncClient, value: str, path: str) -> httpx.Response:
    """A request carrying exactly this session cookie value (whatever the client's jar holds)."""
    return await http.get(path, headers={"Cookie": f"{cookie.COOKIE}={value}"})


def signed_out(answer: httpx.Response) -> bool:
    return answer.status_code == 303 and answer.headers["location"].startswith("/console/sign-in")


async def audit_rows(services: Services, path: str) -> list[AuditEntry]:
    page = await audit.query(services, AuditFilter(), limit=1000)
    return [e for e in page.items if e.path == path]


async def test_sign_in_lands_home_and_sign_out_drops_the_cookie(console: Console) -> None:
    await add_user(console.stack.sessions, "sia-support", ["support"])
    http = console.client()
    assert signed_out(await http.get("/console/me"))
    answer = await sign_in(http, "sia-support")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/"
    home = await http.get("/console/")
    assert home.headers["location"] == "/console/orders"  # support's first page
    me = await http.get("/console/me")
    assert me.status_code == 200
    assert "Sia Support" in me.text
    user = await Users(console.stack.sessions).get(
        next(u.id for u in await Users(console.stack.sessions).list())
    )
    assert user.last_sign_in_at is not None
    rows = await audit_rows(console.services, "/console/sign-in")
    assert [(r.principal, r.status_code) for r in rows] == [("sia-support", 303)]


async def test_sign_out_drops_the_cookie(console: Console) -> None:
    await add_user(console.stack.sessions, "sol-support", ["support"])
    client = await sign_in_http(console.client(), "sol-support")
    old = session_value(client.http)
    answer = await client.post("/console/sign-out")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in?signed-out=1"
    dropped = answer.headers["set-cookie"]
    assert f'{cookie.COOKIE}=""' in dropped
    assert "Max-Age=0" in dropped
    assert "Path=/console" in dropped
    assert client.http.cookies.get(cookie.COOKIE) is None  # the browser holds no session
    assert signed_out(await client.get("/console/me"))
    page = await client.get("/console/sign-in?signed-out=1")
    assert "You are signed out." in page.text
    # A copy of the cookie taken before sign-out is refused too ...
    assert signed_out(await with_cookie(console.client(), old, "/console/me"))
    # ... in another API process as well (it reads the sign-out when its cache expires) ...
    user_id = next(u.id for u in await Users(console.stack.sessions).list())
    elsewhere = SessionUsers(ttl=0)
    claims = cookie.unseal(console.services.keyring, old)
    assert claims is not None
    assert await elsewhere.user(console.stack.sessions, user_id, claims.epoch, claims.csrf) is None
    # ... while the same user's other session goes on.
    other = await sign_in_http(console.client(), "sol-support")
    assert (await other.get("/console/me")).status_code == 200
    other_claims = cookie.unseal(console.services.keyring, session_value(other.http))
    assert other_claims is not None
    found = await elsewhere.user(
        console.stack.sessions, user_id, other_claims.epoch, other_claims.csrf
    )
    assert found is not None


async def test_a_wrong_password_is_401_and_audited_without_the_password(
    console: Console,
) -> None:
    await add_user(console.stack.sessions, "wes-support", ["support"])
    http = console.client()
    for name in ("wes-support", "nobody-here"):  # a wrong password, an unknown name: alike
        answer = await sign_in(http, name, WRONG)
        assert answer.status_code == 401
        assert "wrong user name or password" in answer.text
        assert WRONG not in answer.text
        assert f'value="{name}"' in answer.text  # the name is kept in the form
        assert f"{cookie.COOKIE}=" not in answer.headers.get("set-cookie", "")
    assert signed_out(await http.get("/console/me"))
    rows = await audit_rows(console.services, "/console/sign-in")
    assert [(r.status_code, r.outcome.value, r.principal) for r in rows] == [
        (401, "refused", None),
        (401, "refused", None),
    ]
    assert "wes-support" in (rows[0].reason or "")
    assert "wrong user name or password" in (rows[0].reason or "")
    everything = await audit.query(console.services, AuditFilter(), limit=1000)
    assert all(WRONG not in e.model_dump_json() for e in everything.items)


@pytest.mark.parametrize("settings_overrides", [{"sign_in_max_failures": 3}])
async def test_too_many_failures_lock_the_name_even_with_the_right_password(
    console: Console,
) -> None:
    await add_user(console.stack.sessions, "lou-locked", ["support"])
    await add_user(console.stack.sessions, "bea-bystander", ["support"])
    http = console.client()
    for _ in range(3):
        assert (await sign_in(http, "lou-locked", WRONG)).status_code == 401
    locked = await sign_in(http, "lou-locked", PASSWORD)
    assert locked.status_code == 429
    assert "too many failed sign-ins; try again in 15 minutes" in locked.text
    assert f"{cookie.COOKIE}=" not in locked.headers.get("set-cookie", "")
    assert signed_out(await http.get("/console/me"))
    rows = await audit_rows(console.services, "/console/sign-in")
    assert [r.status_code for r in rows] == [401, 401, 401, 429]
    assert "too many failed sign-ins" in (rows[-1].reason or "")
    assert "lou-locked" in (rows[-1].reason or "")
    # The limit is per user name: someone else signs in from the same address.
    assert (await sign_in(console.client(), "bea-bystander")).status_code == 303


@pytest.mark.parametrize(
    "settings_overrides",
    [{"console_idle_timeout": timedelta(seconds=2), "console_session_ttl": timedelta(hours=1)}],
)
async def test_the_idle_timeout_ends_a_session_page_views_renew_it(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cookie, "REFRESH_AFTER", 0)  # renew on every view (60 s in real use)
    await add_user(console.stack.sessions, "ida-idle", ["support"])
    client = await sign_in_http(console.client(), "ida-idle")
    started = time.monotonic()
    while time.monotonic() - started < 2.5:  # in use for longer than the idle timeout
        assert (await client.get("/console/me")).status_code == 200
        await asyncio.sleep(0.4)
    last = session_value(client.http)
    assert (await with_cookie(console.client(), last, "/console/me")).status_code == 200
    await asyncio.sleep(2.1)  # then idle for longer than the timeout
    ended = await with_cookie(console.client(), last, "/console/me")
    assert signed_out(ended)
    page = await console.client().get(
        ended.headers["location"], headers={"Cookie": f"{cookie.COOKIE}={last}"}
    )
    assert "Your session has ended. Please sign in again." in page.text


@pytest.mark.parametrize(
    "settings_overrides",
    [{"console_idle_timeout": timedelta(hours=1), "console_session_ttl": timedelta(seconds=2)}],
)
async def test_the_absolute_lifetime_ends_a_session_in_use(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cookie, "REFRESH_AFTER", 0)
    await add_user(console.stack.sessions, "tim-ttl", ["support"])
    http = console.client()
    signed = await sign_in(http, "tim-ttl")
    assert signed.status_code == 303
    signed_at = time.time()
    assert "Max-Age=2;" in signed.headers["set-cookie"]  # the browser drops it then too
    views: list[int] = []
    current = session_value(http)

    async def view() -> httpx.Response:  # a page view every 50 ms, with the renewed cookie
        nonlocal current
        answer = await with_cookie(console.client(), current, "/console/me")
        views.append(answer.status_code)
        current = answer.cookies.get(cookie.COOKIE) or current
        return answer

    await eventually(view, signed_out, timeout=3, what="the session to end")
    assert time.time() - signed_at <= 2.5  # at the lifetime (seconds precision), not later
    assert views[0] == 200
    assert views.count(200) >= 10  # in use all along: not idle


async def test_a_role_change_or_deactivation_in_another_process_ends_sessions(
    console: Console,
) -> None:
    console.services.session_users = SessionUsers(ttl=0.2)  # as another process would cache
    rid = await add_user(console.stack.sessions, "rae-roles", ["support"])
    did = await add_user(console.stack.sessions, "dan-deact", ["approver"], [1])
    rae = await sign_in_http(console.client(), "rae-roles")
    dan = await sign_in_http(console.client(), "dan-deact")
    users = Users(console.stack.sessions)
    await users.update(rid, roles=["support", "manager"])  # no forget(): only the cache ttl
    await users.update(did, active=False)
    await eventually(lambda: rae.get("/console/me"), signed_out, timeout=2, what="rae out")
    await eventually(lambda: dan.get("/console/me"), signed_out, timeout=2, what="dan out")
    again = await sign_in_http(console.client(), "rae-roles")
    assert "manager" in (await again.get("/console/me")).text
    assert (await sign_in(console.client(), "dan-deact")).status_code == 401
    # A change that is not about access leaves sessions alone.
    await users.update(rid, display_name="Rae R.")
    await asyncio.sleep(0.3)
    assert (await again.get("/console/me")).status_code == 200


async def test_forms_without_the_csrf_token_are_refused(console: Console) -> None:
    await add_user(console.stack.sessions, "cy-csrf", ["support"])
    await add_user(console.stack.sessions, "ot-other", ["support"])
    client = await sign_in_http(console.client(), "cy-csrf")
    other = await sign_in_http(console.client(), "ot-other")
    assert other.csrf != client.csrf

    for token in (None, "", other.csrf):  # missing, empty, another session's
        out = await client.post("/console/sign-out", {"csrf_token": token})
        assert out.status_code == 403, token
        assert "This form has expired or did not come from this console." in out.text
        assert f"{cookie.COOKIE}=" not in out.headers.get("set-cookie", "")
        lang = await client.post("/console/language", {"language": "zh", "csrf_token": token})
        assert lang.status_code == 403
    cross = await client.post(
        "/console/sign-out", headers={"Origin": "https://evil.example"}
    )  # the right token, from another site
    assert cross.status_code == 403
    header = await client.http.post(  # the htmx way: the header, not the field
        "/console/language", data={"language": "zh"}, headers={"X-CSRF-Token": other.csrf}
    )
    assert header.status_code == 403

    me = await client.get("/console/me")
    assert me.status_code == 200  # still signed in
    assert "English" in me.text  # the language did not change
    view = next(u for u in await Users(console.stack.sessions).list() if u.username == "cy-csrf")
    assert view.language == "en"
    rows = await audit_rows(console.services, "/console/sign-out")
    assert rows
    assert all(r.status_code == 403 and "CSRF" in (r.reason or "") for r in rows)
    # With its token the same form works.
    assert (await client.post("/console/language", {"language": "zh"})).status_code == 303
    assert "中文" in (await client.get("/console/me")).text


async def test_the_sign_in_form_needs_its_pre_session_token(console: Console) -> None:
    await add_user(console.stack.sessions, "pat-pre", ["support"])
    fresh = console.client()  # never opened the form: no pre-session cookie
    form = {"username": "pat-pre", "password": PASSWORD, "csrf_token": "made-up"}
    answer = await fresh.post("/console/sign-in", data=form)
    assert answer.status_code == 403
    assert "This form has expired" in answer.text
    http = console.client()
    token = await pre_token(http)
    for sent in ("", "made-up"):  # the form's field missing or not the cookie's value
        form = {"username": "pat-pre", "password": PASSWORD, "csrf_token": sent}
        assert (await http.post("/console/sign-in", data=form)).status_code == 403
    cross = await http.post(
        "/console/sign-in",
        data={"username": "pat-pre", "password": PASSWORD, "csrf_token": token},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    assert signed_out(await http.get("/console/me"))
    assert cookie.COOKIE not in http.cookies
    ok = await http.post(
        "/console/sign-in",
        data={"username": "pat-pre", "password": PASSWORD, "csrf_token": token},
    )
    assert ok.status_code == 303


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example",
        "//evil.example/console/",
        "/\\evil.example",
        "https://orderly.test/console/me",
        "javascript:alert(1)",
        "/elsewhere",
    ],
)
async def test_next_never_leaves_the_console(console: Console, target: str) -> None:
    await add_user(console.stack.sessions, "nat-next", ["support"])
    http = console.client()
    page = await http.get("/console/sign-in", params={"next": target})
    assert target not in page.text
    answer = await sign_in(http, "nat-next", next=target)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/"
    again = await http.get("/console/sign-in", params={"next": target})  # already signed in
    assert again.headers["location"] == "/console/orders"


async def test_next_returns_to_the_page_that_needed_sign_in(console: Console) -> None:
    await add_user(console.stack.sessions, "nia-next", ["support"])
    http = console.client()
    sent = await http.get("/console/me")
    assert sent.headers["location"] == "/console/sign-in?next=%2Fconsole%2Fme"
    page = await http.get(sent.headers["location"])
    assert 'name="next" value="/console/me"' in page.text
    answer = await sign_in(http, "nia-next", next="/console/me")
    assert answer.headers["location"] == "/console/me"


async def test_the_invite_flow_end_to_end(console: Console) -> None:
    users = Users(console.stack.sessions)
    view, token = await users.invite("test-admin", "ivy-invited", "Ivy", ["approver"], [1])
    assert token is not None
    http = console.client()
    assert (await sign_in(http, "ivy-invited", "")).status_code == 401  # no password yet
    page = await http.get(f"/console/invite/{token}")
    assert page.status_code == 200
    assert "Welcome, Ivy." in page.text
    pre = PRE.search(page.text).group(1)  # type: ignore[union-attr]
    url = f"/console/invite/{token}"
    mismatch = await http.post(
        url, data={"password": "long enough 1", "password2": "long enough 2", "csrf_token": pre}
    )
    assert mismatch.status_code == 422
    assert "The passwords do not match." in mismatch.text
    short = await http.post(
        url, data={"password": "short", "password2": "short", "csrf_token": pre}
    )
    assert short.status_code == 422
    assert "at least 10 characters" in short.text
    no_token = await http.post(
        url, data={"password": "a fine password", "password2": "a fine password"}
    )
    assert no_token.status_code == 403
    chosen = "ivy's new password"
    done = await http.post(url, data={"password": chosen, "password2": chosen, "csrf_token": pre})
    assert done.status_code == 303
    assert done.headers["location"] == "/console/sign-in?password-set=1"
    assert "Your password is set." in (await http.get(done.headers["location"])).text

    assert (await sign_in(console.client(), "ivy-invited", chosen)).status_code == 303
    twice = await http.get(url)
    assert twice.status_code == 410
    assert "This invite link is used, expired or revoked." in twice.text
    reuse = await http.post(
        url, data={"password": "x" * 12, "password2": "x" * 12, "csrf_token": pre}
    )
    assert reuse.status_code == 410
    assert (await sign_in(console.client(), "ivy-invited", "x" * 12)).status_code == 401
    assert (await sign_in(console.client(), "ivy-invited", chosen)).status_code == 303
    assert view.invited


async def test_an_expired_invite_is_refused(console: Console) -> None:
    _, token = await Users(console.stack.sessions).invite(
        "test-admin", "eve-expired", "Eve", ["support"]
    )
    async with console.stack.sessions.begin() as session:
        await session.execute(
            update(UserRow)
            .where(UserRow.username == "eve-expired")
            .values(invite_expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    http = console.client()
    page = await http.get(f"/console/invite/{token}")
    assert page.status_code == 410
    pre = PRE.search(page.text)
    assert pre is None  # no form to fill in
    token_cookie = http.cookies.get(cookie.PRE_COOKIE)
    chosen = "a password too late"
    late = await http.post(
        f"/console/invite/{token}",
        data={"password": chosen, "password2": chosen, "csrf_token": token_cookie or ""},
    )
    assert late.status_code == 410
    assert (await sign_in(console.client(), "eve-expired", chosen)).status_code == 401
    assert (await http.get("/console/invite/not-a-token")).status_code == 410


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_the_cookie_is_httponly_samesite_and_scoped(console: Console, scheme: str) -> None:
    await add_user(console.stack.sessions, "coo-kie", ["support"])
    http = console.client(f"{scheme}://orderly.test")
    answer = await sign_in(http, "coo-kie")
    assert answer.status_code == 303
    (session,) = [
        h for h in answer.headers.get_list("set-cookie") if h.startswith(cookie.COOKIE + "=")
    ]
    flags = [part.strip().lower() for part in session.split(";")]
    assert "httponly" in flags
    assert "samesite=lax" in flags
    assert "path=/console" in flags
    assert ("secure" in flags) == (scheme == "https")
    assert "max-age=1800" in flags  # the idle timeout (30 min) bounds the cookie too
    assert "coo-kie" not in session  # sealed: nothing readable in it
    pre = (await console.client(f"{scheme}://orderly.test").get("/console/sign-in")).headers[
        "set-cookie"
    ]
    assert "HttpOnly" in pre
    assert "SameSite=strict" in pre
    assert ("Secure" in pre) == (scheme == "https")
    assert "Path=/console" in pre


async def test_the_session_cookie_cannot_be_forged_or_altered(console: Console) -> None:
    await add_user(console.stack.sessions, "fay-forge", ["support"])
    client = await sign_in_http(console.client(), "fay-forge")
    value = session_value(client.http)
    middle = len(value) // 2
    flipped = value[:middle] + ("A" if value[middle] != "A" else "B") + value[middle + 1 :]
    # The first character of the sealed part (the nonce); not the last one, whose low bits
    # base64 ignores, so some changes to it decode to the very same bytes.
    at = value.index(".") + 1
    nonce = value[:at] + ("A" if value[at] != "A" else "B") + value[at + 1 :]
    other_key = "other-1" + value[value.index(".") :]
    for forged in (flipped, nonce, other_key, value[:-4], value + "A", "", "garbage"):
        answer = await with_cookie(console.client(), forged, "/console/me")
        assert signed_out(answer), forged
    assert (await with_cookie(console.client(), value, "/console/me")).status_code == 200
