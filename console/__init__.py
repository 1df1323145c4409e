"""The web console: server-rendered pages (Jinja2 + htmx) for approvers, support staff,
managers and admins, and the customers' tracking page. A client of ``services/`` like the API.

:func:`install` adds its routes, static files and error pages to the API's app."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from console.auth import CsrfRefused, NotPermitted, SignInRequired
from console.i18n import Translate, translator
from console.routes import admin, auth, create, dashboard, inbox, order_actions, search, track
from console.routes import imports as import_pages
from console.routes import orders as order_page
from console.timing import ServerTiming
from console.web import is_partial, language_of, page

STATIC = Path(__file__).resolve().parent / "static"
# each area's module adds its router here
ROUTERS = [auth.router, admin.router, dashboard.router, track.router]
ROUTERS += [inbox.router, create.router, search.router]  # /console/orders/new before {order_id}
ROUTERS += [import_pages.router]
# last: its /console/orders/{order_id} must not shadow /console/orders/new and the like
ROUTERS += [order_page.router, order_actions.router]


def _error_page(request: Request, heading: str, message: str, status: int) -> Response:
    context = {"heading": heading, "message": message, "back": None}
    return page(request, "error.html", context, status=status)


def _t(request: Request) -> Translate:
    return translator(language_of(request, getattr(request.state, "viewer", None)))


def install(app: FastAPI) -> None:
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.add_middleware(ServerTiming)
    for router in ROUTERS:
        app.include_router(router)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _: SignInRequired) -> Response:
        target = "/console/sign-in"
        if request.method == "GET":
            wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            target += f"?next={quote(wanted, safe='')}"
        request.state.audit_reason = "console: not signed in"
        if is_partial(request):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(NotPermitted)
    async def _forbidden(request: Request, exc: NotPermitted) -> Response:
        t = _t(request)
        message = t("Your roles do not include this page ({need}).", need=exc.need)
        return _error_page(request, "Not allowed", message, 403)

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, _: CsrfRefused) -> Response:
        t = _t(request)
        message = t(
            "This form has expired or did not come from this console. "
            "Reload the page and try again."
        )
        return _error_page(request, "Refused", message, 403)
