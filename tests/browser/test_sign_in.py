"""Sign-in in a real browser: each role lands on its first page and signs out; a form posted
without its CSRF token is refused and changes nothing; the language switch shows Chinese; the
admin invites a user and sees the one-time link. Screenshots: sign-in, sign-in-phone,
admin-users."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from console.auth import Viewer
from console.session import ConsoleClaims
from console.web import home_for
from services.auth import Principal, Role
from services.staff_sessions import SessionUser
from tests.browser.conftest import PHONE, Live, PageFactory, screenshot
from tests.console import PASSWORD, add_user, sign_in_browser


def landing(*roles: Role) -> str:
    """Where console.web.home_for sends a user holding ``roles``."""
    principal = Principal(name="x", roles=frozenset(roles))
    user = SessionUser(
        user_id=1, username="x", display_name="X", language="en", principal=principal
    )
    return home_for(Viewer(user=user, claims=ConsoleClaims.new(1, 0)))


async def no_sideways_scroll(page: Page) -> None:
    fits = await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert fits, await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


async def test_each_role_lands_on_its_first_page_and_signs_out(
    live: Live, page_factory: PageFactory
) -> None:
    people = {
        "bw-approver": (Role.APPROVER, [1]),
        "bw-support": (Role.SUPPORT, []),
        "bw-manager": (Role.MANAGER, []),
        "bw-admin": (Role.ADMIN, []),
    }
    for name, (role, levels) in people.items():
        await add_user(live.stack.sessions, name, [role.value], levels)

    page = await page_factory()
    await page.goto(live.url("/console/me"))  # not signed in: the sign-in page, then back
    await expect(page).to_have_url(re.compile(r"/console/sign-in\?next=%2Fconsole%2Fme$"))
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await screenshot(page, "sign-in")
    await page.get_by_label("User name").fill("bw-support")
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("wrong user name or password")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/console/me$"))  # back where it wanted to go

    for name, (role, _) in people.items():
        page = await page_factory()
        await sign_in_browser(page, live.base_url, name)
        await expect(page).to_have_url(re.compile(re.escape(landing(role)) + "$"))
        await expect(
            page.get_by_role("link", name=f"Signed in as {name.replace('-', ' ').title()}")
        ).to_be_visible()
        await page.get_by_role("button", name="Sign out").click()
        await expect(page).to_have_url(re.compile(r"/console/sign-in\?signed-out=1$"))
        await expect(page.get_by_role("status")).to_have_text("You are signed out.")
        cookies = await page.context.cookies()
        assert "orderly_console" not in {c["name"] for c in cookies}
        await page.goto(live.url(landing(role)))
        await expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))


async def test_a_form_without_its_csrf_token_is_refused_and_language_switches(
    live: Live, page_factory: PageFactory
) -> None:
    await add_user(live.stack.sessions, "bw-csrf", ["support"])
    page = await page_factory()
    await sign_in_browser(page, live.base_url, "bw-csrf")
    await page.goto(live.url("/console/me"))
    switch = page.locator("form[action='/console/language']")
    await switch.locator("input[name=csrf_token]").evaluate("input => input.remove()")
    assert await switch.locator("input[name=csrf_token]").count() == 0
    await page.get_by_label("Language", exact=True).select_option("zh")
    await switch.get_by_role("button").click()
    await expect(page.get_by_role("heading", name="Refused")).to_be_visible()
    await expect(page.get_by_role("alert")).to_contain_text("did not come from this console")

    await page.goto(live.url("/console/me"))  # nothing changed: still signed in, in English
    nav = page.get_by_role("navigation", name="Main navigation")
    await expect(nav.get_by_role("link", name="Orders", exact=True)).to_be_visible()
    await expect(page.locator("dl.facts")).to_contain_text("English")

    await page.get_by_label("Language", exact=True).select_option("zh")  # now with the token
    await page.locator("form[action='/console/language']").get_by_role("button").click()
    await expect(page).to_have_url(re.compile(r"/console/me$"))
    nav = page.get_by_role("navigation", name="主导航")
    await expect(nav.get_by_role("link", name="订单", exact=True)).to_be_visible()
    await expect(page.get_by_role("button", name="退出登录")).to_be_visible()
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")


async def test_the_admin_invites_a_user_and_the_sign_in_page_fits_a_phone(
    live: Live, page_factory: PageFactory
) -> None:
    await add_user(live.stack.sessions, "bw-root", ["admin"])
    await add_user(live.stack.sessions, "bw-lead", ["approver"], [1, 2], language="zh")
    page = await page_factory()
    await sign_in_browser(page, live.base_url, "bw-root")
    await page.goto(live.url("/console/admin/users"))
    await expect(page.locator("table.users tbody tr")).to_have_count(2)
    invite = page.locator("form[action='/console/admin/users']")
    await invite.get_by_label("User name").fill("bw-new")
    await invite.get_by_label("Display name").fill("New Person")
    await invite.get_by_label("support").check()
    await invite.get_by_label("Level 1").check()  # a level for a non-approver: refused
    await invite.get_by_role("button", name="Invite").click()
    await expect(page.get_by_text("only approvers hold approval levels")).to_be_visible()
    invite = page.locator("form[action='/console/admin/users']")
    await expect(invite.get_by_label("Display name")).to_have_value("New Person")
    await invite.get_by_label("Level 1").uncheck()
    await invite.get_by_role("button", name="Invite").click()
    await expect(page.get_by_role("heading", name="New Person is invited")).to_be_visible()
    link = await page.get_by_label("Link to send to bw-new").input_value()
    assert re.fullmatch(
        re.escape(live.stack.settings.public_base_url) + r"/console/invite/\S+", link
    )
    await expect(page.get_by_text("This link is shown only now.")).to_be_visible()

    await page.goto(live.url("/console/admin/users"))
    await expect(page.locator("table.users tbody tr")).to_have_count(3)
    await expect(page.locator("tr", has_text="bw-new")).to_contain_text("invited")
    await screenshot(page, "admin-users", full_page=True)

    phone = await page_factory(viewport=PHONE)
    await phone.goto(live.url("/console/sign-in"))
    await expect(phone.get_by_label("User name")).to_be_visible()
    await no_sideways_scroll(phone)
    await screenshot(phone, "sign-in-phone")
    await sign_in_browser(phone, live.base_url, "bw-root")
    await phone.goto(live.url("/console/admin/users"))
    await no_sideways_scroll(phone)
