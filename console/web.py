"""Rendering console pages: Jinja2 templates, the language, htmx partials, and the headers
every page carries.

An htmx request (``HX-Request``) gets only the ``partial`` template of a page; a normal request
or htmx restoring history (``HX-History-Restore-Request``) gets the full page, so the back
button and a reload always show a whole page. ``Vary: HX-Request`` keeps caches from mixing
the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from console.auth import Viewer
from console.i18n import translator
from console.session import PATH, set_cookie
from services.auth import Role

HERE = Path(__file__).resolve().parent
LANG_COOKIE = "orderly_lang"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True)
class NavItem:
    """One entry of the navigation, shown to users holding any of ``roles`` (admins: all).
    Pages of later features (imports, returns, reports, webhooks) add theirs to :data:`NAV`."""

    path: str
    label: str  # an English message id (console/i18n.py)
    roles: frozenset[Role]


NAV: list[NavItem] = [
    NavItem("/console/inbox", "Inbox", frozenset({Role.APPROVER})),
    NavItem("/console/orders", "Orders", frozenset({Role.APPROVER, Role.SUPPORT, Role.MANAGER})),
    NavItem("/console/orders/new", "New order", frozenset({Role.SUPPORT, Role.SYSTEM})),
    NavItem("/console/imports", "Import", frozenset({Role.SUPPORT, Role.SYSTEM})),
    NavItem("/console/dashboard", "Dashboard", frozenset({Role.MANAGER})),
    NavItem("/console/admin/users", "Users", frozenset({Role.ADMIN})),
]


def nav_for(viewer: Viewer | None) -> list[NavItem]:
    if viewer is None:
        return []
    return [item for item in NAV if viewer.has(*item.roles)]


def home_for(viewer: Viewer) -> str:
    """Where a user lands after sign-in: their first page."""
    items = nav_for(viewer)
    return items[0].path if items else "/console/orders"


def _money(amount: Decimal | float | int | None, currency: str = "") -> str:
    if amount is None:
        return ""
    text = f"{Decimal(amount):,.2f}"
    return f"{text} {currency}".strip()


def _when(at: datetime | None) -> str:
    if at is None:
        return ""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration(seconds: float | int | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _iso(at: datetime | None) -> str:
    return "" if at is None else at.astimezone(UTC).isoformat()


env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html", "svg"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["money"] = _money
env.filters["when"] = _when
env.filters["duration"] = _duration
env.filters["iso"] = _iso
env.filters["q"] = lambda v: quote(str(v), safe="")


def language_of(request: Request, viewer: Viewer | None) -> str:
    if viewer is not None:
        return viewer.user.language
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in ("en", "zh"):
        return chosen
    accept = request.headers.get("accept-language", "")
    return "zh" if accept.lower().startswith("zh") else "en"


def is_partial(request: Request) -> bool:
    return (
        request.headers.get("hx-request") == "true"
        and request.headers.get("hx-history-restore-request") != "true"
    )


def finish(request: Request, response: Response) -> Response:
    """Headers of every console answer, and the refreshed session cookie if any."""
    response.headers["Vary"] = "HX-Request"
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    refreshed = getattr(request.state, "console_cookie", None)
    if refreshed is not None:
        set_cookie(request, response, refreshed[0], refreshed[1])
    return response


def render_text(request: Request, template: str, context: dict[str, Any]) -> str:
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    lang = language_of(request, viewer)
    return env.get_template(template).render(
        request=request,
        viewer=viewer,
        lang=lang,
        t=translator(lang),
        csrf=viewer.claims.csrf if viewer else "",
        nav=nav_for(viewer),
        path=request.url.path,
        **context,
    )


def page(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    partial: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """The full ``template``, or ``partial`` when htmx asks for a part of the page."""
    name = partial if partial is not None and is_partial(request) else template
    html = render_text(request, name, context or {})
    return finish(request, HTMLResponse(html, status_code=status, headers=headers))


def redirect(request: Request, to: str) -> Response:
    """After a form: 303 to ``to`` (htmx follows ``HX-Location`` without a full reload)."""
    if is_partial(request):
        return finish(request, Response(status_code=204, headers={"HX-Location": to}))
    return finish(request, RedirectResponse(to, status_code=303))


def safe_next(target: str | None) -> str | None:
    """A console path to return to after sign-in; never another site."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(PATH + "/"):
        return None
    if "\\" in target or target.startswith("//"):
        return None
    return target


def svg(markup: str) -> Markup:
    """Chart markup built by console code from numbers (never from user text)."""
    return Markup(markup)
