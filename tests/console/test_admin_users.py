"""The admin's user page: the list, inviting (the link shown once), editing roles, levels and
the active flag (which ends the user's sessions), resetting a password, validation errors
naming the field, self-deactivation refused, and no one but an admin gets in."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from services.users import Users
from tests.api.conftest import services_for
from tests.conftest import Stack
from tests.console import ConsoleClient, add_user, sign_in_http

LINK = re.compile(r'id="invite-link"[^>]*value="([^"]+)"')


@dataclass
class Console:
    app: FastAPI
    stack: Stack
    admin: ConsoleClient
    admin_id: int
    open: Callable[[str], Awaitable[ConsoleClient]]
    anonymous: Callable[[], httpx.AsyncClient]


@pytest.fixture
async def console(bare_stack: Stack) -> AsyncIterator[Console]:
    app = create_app(bare_stack.settings, services=services_for(bare_stack))
    clients: list[httpx.AsyncClient] = []

    def anonymous() -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        http = httpx.AsyncClient(transport=transport, base_url="http://orderly.test")
        clients.append(http)
        return http

    async def open_as(username: str) -> ConsoleClient:
        return await sign_in_http(anonymous(), username)

    admin_id = await add_user(bare_stack.sessions, "ada-admin", ["admin"])
    admin = await open_as("ada-admin")
    yield Console(app, bare_stack, admin, admin_id, open_as, anonymous)
    for http in clients:
        await http.aclose()


def invite_form(**fields: object) -> dict[str, object]:
    form: dict[str, object] = {
        "username": "new-approver",
        "display_name": "New Approver",
        "roles": ["approver"],
        "approval_levels": ["2"],
        "language": "zh",
    }
    form.update(fields)
    return form


async def user_named(stack: Stack, username: str) -> int:
    found = [u for u in await Users(stack.sessions).list() if u.username == username]
    assert found, f"no user {username}"
    return found[0].id


async def test_the_list_shows_every_user(console: Console) -> None:
    await add_user(console.stack.sessions, "lee-lead", ["approver"], [1, 2], language="zh")
    answer = await console.admin.get("/console/admin/users")
    assert answer.status_code == 200
    text = answer.text
    row = text[text.index("<code>lee-lead</code>") :].split("</tr>", 1)[0]
    assert "Lee Lead" in row
    assert "approver" in row
    assert "1, 2" in row
    assert "中文" in row
    assert "active" in row
    assert "never" in row  # lee-lead has not signed in yet
    admin_row = text[text.index("<code>ada-admin</code>") :].split("</tr>", 1)[0]
    assert "UTC" in admin_row  # the admin's own last sign-in
    for level in (1, 2, 3):  # the levels of approval-policy.yaml, as checkboxes
        assert f'id="invite-level-{level}"' in text


async def test_invite_shows_the_link_once_and_it_works(console: Console) -> None:
    answer = await console.admin.post("/console/admin/users", invite_form())
    assert answer.status_code == 201, answer.text
    link = html.unescape(LINK.search(answer.text).group(1))  # type: ignore[union-attr]
    base = console.stack.settings.public_base_url
    assert link.startswith(f"{base}/console/invite/")
    assert "shown only now" in answer.text
    assert "expires at" in answer.text
    token = link.rsplit("/", 1)[1]

    listed = await console.admin.get("/console/admin/users")
    assert "<code>new-approver</code>" in listed.text
    assert token not in listed.text  # only ever shown on the invite's own answer
    row = listed.text[listed.text.index("<code>new-approver</code>") :].split("</tr>", 1)[0]
    assert "invited" in row

    user = await Users(console.stack.sessions).get(await user_named(console.stack, "new-approver"))
    assert (user.roles, user.approval_levels, user.language) == (["approver"], [2], "zh")
    assert user.created_by == "ada-admin"

    http = console.anonymous()
    opened = await http.get(f"/console/invite/{token}")
    assert opened.status_code == 200
    pre = re.search(r'name="csrf_token" value="([^"]+)"', opened.text).group(1)  # type: ignore[union-attr]
    new_password = "a long new password"
    form = {"password": new_password, "password2": new_password, "csrf_token": pre}
    accepted = await http.post(f"/console/invite/{token}", data=form)
    assert accepted.status_code == 303
    signed = await sign_in_http(console.anonymous(), "new-approver", new_password)
    me = await signed.get("/console/me")
    assert "New Approver" in me.text


@pytest.mark.parametrize(
    ("fields", "field", "reason", "status"),
    [
        ({"username": "Bad Name!"}, "User name", "lower-case letters", 422),
        ({"username": ""}, "User name", "lower-case letters", 422),
        ({"display_name": "  "}, "Display name", "must not be empty", 422),
        ({"roles": []}, "Roles", "at least one role", 422),
        ({"roles": ["wizard"]}, "Roles", "unknown role", 422),
        (
            {"roles": ["support"], "approval_levels": ["1"]},
            "Approval levels",
            "only approvers",
            422,
        ),
        ({"approval_levels": ["7"]}, "Approval levels", "levels are 1, 2, 3", 422),
        ({"approval_levels": ["x"]}, "Approval levels", "levels are 1, 2, 3", 422),
        ({"username": "ada-admin"}, "User name", "already exists", 409),
    ],
)
async def test_a_bad_invite_shows_the_form_again_naming_the_field(
    console: Console, fields: dict[str, object], field: str, reason: str, status: int
) -> None:
    before = await Users(console.stack.sessions).list()
    answer = await console.admin.post("/console/admin/users", invite_form(**fields))
    assert answer.status_code == status, answer.text[:2000]
    text = html.unescape(answer.text)
    assert "The user was not invited" in text
    assert re.search(rf'class="error"[^>]*>{field}: [^<]*{re.escape(reason)}', text), text
    assert 'id="invite-link"' not in text
    typed = fields.get("display_name", "New Approver")
    assert f'value="{typed}"' in text  # what was typed is kept
    assert len(await Users(console.stack.sessions).list()) == len(before)


async def test_a_role_change_ends_the_users_sessions(console: Console) -> None:
    user_id = await add_user(console.stack.sessions, "sam-support", ["support"])
    sam = await console.open("sam-support")
    assert (await sam.get("/console/me")).status_code == 200

    page = await console.admin.get(f"/console/admin/users/{user_id}")
    assert page.status_code == 200
    assert 'id="edit-role-support" name="roles" value="support" checked' in page.text
    form = {"display_name": "Sam S.", "roles": ["support", "manager"], "active": "yes"}
    saved = await console.admin.post(f"/console/admin/users/{user_id}", form)
    assert saved.status_code == 303
    assert saved.headers["location"] == "/console/admin/users?saved=sam-support"
    listed = await console.admin.get(saved.headers["location"])
    assert "Saved the changes to sam-support." in listed.text

    view = await Users(console.stack.sessions).get(user_id)
    assert (view.display_name, view.roles) == ("Sam S.", ["manager", "support"])
    gone = await sam.get("/console/me")
    assert gone.status_code == 303  # signed out at once: forgotten in this process's cache
    assert gone.headers["location"].startswith("/console/sign-in")
    again = await console.open("sam-support")
    assert "manager" in (await again.get("/console/me")).text


async def test_deactivation_ends_sessions_and_sign_in(console: Console) -> None:
    user_id = await add_user(console.stack.sessions, "ann-approver", ["approver"], [1])
    ann = await console.open("ann-approver")
    form = {
        "display_name": "Ann",
        "roles": ["approver"],
        "approval_levels": ["1"],
        "active": "no",
    }
    assert (await console.admin.post(f"/console/admin/users/{user_id}", form)).status_code == 303
    assert (await ann.get("/console/me")).status_code == 303
    listed = await console.admin.get("/console/admin/users")
    row = listed.text[listed.text.index("<code>ann-approver</code>") :].split("</tr>", 1)[0]
    assert "deactivated" in row
    http = console.anonymous()
    page = await http.get("/console/sign-in")
    pre = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    refused = await http.post(
        "/console/sign-in",
        data={
            "username": "ann-approver",
            "password": "correct horse battery staple",
            "csrf_token": pre,
        },
    )
    assert refused.status_code == 401


async def test_bad_edits_name_the_field_and_change_nothing(console: Console) -> None:
    user_id = await add_user(console.stack.sessions, "sue-support", ["support"])
    cases: list[tuple[dict[str, object], str]] = [
        ({"roles": []}, "Roles: a user needs at least one role"),
        ({"approval_levels": ["2"]}, "Approval levels: only approvers hold approval levels"),
        ({"display_name": ""}, "Display name: must not be empty"),
    ]
    for change, message in cases:
        form: dict[str, object] = {"display_name": "Sue", "roles": ["support"], "active": "yes"}
        form.update(change)
        answer = await console.admin.post(f"/console/admin/users/{user_id}", form)
        assert answer.status_code == 422, change
        assert message in html.unescape(answer.text)
        assert "Nothing was changed" in answer.text
    view = await Users(console.stack.sessions).get(user_id)
    assert (view.display_name, view.roles, view.approval_levels) == ("Sue Support", ["support"], [])


async def test_an_admin_cannot_deactivate_or_demote_themself(console: Console) -> None:
    url = f"/console/admin/users/{console.admin_id}"
    page = await console.admin.get(url)
    assert "This is you" in page.text
    deactivate = {"display_name": "Ada", "roles": ["admin"], "active": "no"}
    answer = await console.admin.post(url, deactivate)
    assert answer.status_code == 409
    assert "you cannot deactivate yourself" in answer.text
    demote = {"display_name": "Ada", "roles": ["support"], "active": "yes"}
    answer = await console.admin.post(url, demote)
    assert answer.status_code == 409
    assert "you cannot remove your own admin role" in answer.text
    view = await Users(console.stack.sessions).get(console.admin_id)
    assert (view.active, view.roles, view.display_name) == (True, ["admin"], "Ada Admin")
    assert (await console.admin.get("/console/admin/users")).status_code == 200  # still in


async def test_reset_password_gives_a_new_link_and_ends_the_old_password(
    console: Console,
) -> None:
    user_id = await add_user(console.stack.sessions, "mo-manager", ["manager"])
    mo = await console.open("mo-manager")
    answer = await console.admin.post(f"/console/admin/users/{user_id}/reset", {})
    assert answer.status_code == 200
    assert "is reset and their sessions have ended" in answer.text
    link = html.unescape(LINK.search(answer.text).group(1))  # type: ignore[union-attr]
    assert (await mo.get("/console/me")).status_code == 303  # the session ended
    http = console.anonymous()
    page = await http.get("/console/sign-in")
    pre = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    old = await http.post(
        "/console/sign-in",
        data={
            "username": "mo-manager",
            "password": "correct horse battery staple",
            "csrf_token": pre,
        },
    )
    assert old.status_code == 401  # the old password is gone
    token = link.rsplit("/", 1)[1]
    assert (await http.get(f"/console/invite/{token}")).status_code == 200


async def test_unknown_user_is_a_clear_404(console: Console) -> None:
    assert (await console.admin.get("/console/admin/users/999999")).status_code == 404
    answer = await console.admin.post("/console/admin/users/999999/reset", {})
    assert answer.status_code == 404
    assert "user 999999 not found" in answer.text


async def test_only_admins_open_the_user_pages(console: Console) -> None:
    target = await add_user(console.stack.sessions, "vic-victim", ["support"])
    for role in ("approver", "support", "manager"):
        await add_user(console.stack.sessions, f"not-admin-{role}", [role])
        client = await console.open(f"not-admin-{role}")
        assert (await client.get("/console/admin/users")).status_code == 403
        invite = await client.post("/console/admin/users", invite_form(username=f"x-{role}"))
        assert invite.status_code == 403
        reset = await client.post(f"/console/admin/users/{target}/reset", {})
        assert reset.status_code == 403
    names = {u.username for u in await Users(console.stack.sessions).list()}
    assert not names & {"x-approver", "x-support", "x-manager"}
    assert not (await Users(console.stack.sessions).get(target)).invited  # never reset
