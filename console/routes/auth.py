"""Sign-in, sign-out, accepting an invite, the language setting, and the console's home."""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from api.session import cookie_secure
from console import session as cookie
from console.auth import AnyUser, MaybeViewer, ServicesDep, open_page, same_origin
from console.i18n import translator
from console.web import LANG_COOKIE, home_for, language_of, page, redirect, safe_next
from services.errors import ServiceError
from services.staff_sessions import sign_out as end_session
from services.users import MIN_PASSWORD, SignInRefused, Users

router = APIRouter(prefix="/console", include_in_schema=False)
PRE_AGE = 3600


def users_of(services: ServicesDep) -> Users:
    s = services.settings
    return Users(
        services.sessions,
        invite_ttl=s.invite_ttl,
        max_failures=s.sign_in_max_failures,
        lockout=s.sign_in_lockout,
    )


UsersDep = Annotated[Users, Depends(users_of)]


def _pre_token(request: Request) -> str:
    """The pre-session CSRF token (double submit: a cookie and the same value in the form)."""
    return request.cookies.get(cookie.PRE_COOKIE) or secrets.token_urlsafe(24)


def _with_pre(request: Request, response: Response, token: str) -> Response:
    response.set_cookie(
        cookie.PRE_COOKIE,
        token,
        max_age=PRE_AGE,
        path=cookie.PATH,
        httponly=True,
        samesite="strict",
        secure=cookie_secure(request, request.app.state.settings.session_cookie_secure),
    )
    return response


def _pre_ok(request: Request, sent: str) -> bool:
    held = request.cookies.get(cookie.PRE_COOKIE)
    return bool(held and sent and hmac.compare_digest(held, sent) and same_origin(request))


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/", dependencies=[Depends(open_page)])
async def console_home(request: Request, viewer: MaybeViewer) -> Response:
    if viewer is None:
        return redirect(request, "/console/sign-in")
    return redirect(request, home_for(viewer))


@router.get("/sign-in")
async def sign_in_page(request: Request, viewer: MaybeViewer, next: str | None = None) -> Response:
    if viewer is not None:
        return redirect(request, safe_next(next) or home_for(viewer))
    token = _pre_token(request)
    notice = None
    if getattr(request.state, "session_ended", False):
        notice = "Your session has ended. Please sign in again."
    elif request.query_params.get("signed-out"):
        notice = "You are signed out."
    elif request.query_params.get("password-set"):
        notice = "Your password is set. Sign in now."
    context = {
        "pre_csrf": token,
        "next": safe_next(next),
        "notice": notice,
        "error": None,
        "username": "",
    }
    return _with_pre(request, page(request, "sign_in.html", context), token)


@router.post("/sign-in", dependencies=[Depends(open_page)])
async def sign_in(
    request: Request,
    users: UsersDep,
    services: ServicesDep,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    t = translator(language_of(request, None))
    token = _pre_token(request)
    context = {"pre_csrf": token, "next": safe_next(next), "username": username, "notice": None}
    if not _pre_ok(request, csrf_token):
        request.state.audit_reason = "sign-in form without a valid CSRF token"
        context["error"] = t(
            "This form has expired or did not come from this console. "
            "Reload the page and try again."
        )
        return _with_pre(request, page(request, "sign_in.html", context, status=403), token)
    try:
        signed = await users.sign_in(username, password, _client_ip(request))
    except SignInRefused as refused:
        request.state.audit_reason = f"console sign-in as {username[:64]!r}: {refused.reason}"
        minutes = int(services.settings.sign_in_lockout.total_seconds() // 60)
        if refused.status == 429:
            message = t("too many failed sign-ins; try again in {minutes} minutes", minutes=minutes)
        else:
            message = t("wrong user name or password")
        context["error"] = message
        return _with_pre(
            request, page(request, "sign_in.html", context, status=refused.status), token
        )
    request.state.principal = signed.principal  # the audit row names who signed in
    claims = cookie.ConsoleClaims.new(signed.user_id, signed.epoch)
    ttl = int(services.settings.console_session_ttl.total_seconds())
    idle = int(services.settings.console_idle_timeout.total_seconds())
    response = redirect(request, safe_next(next) or "/console/")
    cookie.set_cookie(request, response, cookie.seal(services.keyring, claims), min(ttl, idle))
    response.delete_cookie(cookie.PRE_COOKIE, path=cookie.PATH)
    return response


@router.get("/me")
async def me(request: Request, viewer: AnyUser) -> Response:
    """The signed-in user's roles, approval levels and language."""
    return page(request, "me.html", {"me": viewer.user})


@router.post("/sign-out")
async def sign_out(request: Request, viewer: AnyUser, services: ServicesDep) -> Response:
    """End this session: the browser drops the cookie, and the server refuses any copy of it
    (in every API process within ``SessionUsers``' cache time, in this one at once)."""
    claims = viewer.claims
    ttl = services.settings.console_session_ttl
    until = datetime.fromtimestamp(claims.issued_at, UTC) + ttl
    await end_session(services.sessions, viewer.user.user_id, claims.csrf, until)
    services.session_users.forget(viewer.user.user_id)
    response = redirect(request, "/console/sign-in?signed-out=1")
    request.state.console_cookie = None
    cookie.clear_cookie(request, response)
    return response


@router.post("/language")
async def set_language(
    request: Request,
    viewer: AnyUser,
    users: UsersDep,
    services: ServicesDep,
    language: Annotated[str, Form(max_length=8)] = "en",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    chosen = language if language in ("en", "zh") else "en"
    await users.update(viewer.user.user_id, language=chosen)
    services.session_users.forget(viewer.user.user_id)
    response = redirect(request, safe_next(next) or "/console/")
    response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 86400, path="/", samesite="lax")
    return response


def _invite_context(
    request: Request, token: str, invited: object, error: str | None
) -> dict[str, object]:
    return {
        "token": token,
        "invited": invited,
        "error": error,
        "pre_csrf": _pre_token(request),
        "min_password": MIN_PASSWORD,
    }


@router.get("/invite/{token}", dependencies=[Depends(open_page)])
async def invite_page(request: Request, token: str, users: UsersDep) -> Response:
    invited = await users.invited(token[:200])
    context = _invite_context(request, token, invited, None)
    status = 200 if invited else 410
    response = page(request, "invite.html", context, status=status)
    return _with_pre(request, response, str(context["pre_csrf"]))


@router.post("/invite/{token}", dependencies=[Depends(open_page)])
async def accept_invite(
    request: Request,
    token: str,
    users: UsersDep,
    password: Annotated[str, Form(max_length=1000)] = "",
    password2: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    t = translator(language_of(request, None))
    invited = await users.invited(token[:200])
    error, status = None, 410
    if not _pre_ok(request, csrf_token):
        error, status = (
            t(
                "This form has expired or did not come from this console. "
                "Reload the page and try again."
            ),
            403,
        )
    elif invited is not None and password != password2:
        error, status = t("The passwords do not match."), 422
    elif invited is not None:
        try:
            await users.accept_invite(token[:200], password)
        except ServiceError as exc:
            error, status = exc.message, 422
        else:
            return redirect(request, "/console/sign-in?password-set=1")
    request.state.audit_reason = error or "invite used, expired or revoked"
    context = _invite_context(request, token, invited, error)
    response = page(request, "invite.html", context, status=status)
    return _with_pre(request, response, str(context["pre_csrf"]))
