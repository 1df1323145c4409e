"""User administration for admins: the list of users, inviting one (the link is shown once),
changing roles, approval levels and the active flag, and resetting a password (a new link).

Every change of roles, levels or the active flag ends the user's sessions (their
``session_epoch`` moves, see services.users); this process also forgets its cached copy of the
user at once, so the change holds from the next request on, not after the cache's ttl.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.errors import STATUS
from console.auth import Admin, ServicesDep, Viewer
from console.routes.auth import UsersDep
from console.web import page, redirect
from services.auth import Role
from services.context import Services
from services.errors import Kind, ServiceError, invalid
from services.users import LANGUAGES, UserView

router = APIRouter(prefix="/console/admin", include_in_schema=False)

# What each role opens in the console (shown next to its checkbox).
ROLE_HINTS: dict[Role, str] = {
    Role.APPROVER: "decides orders at their approval levels",
    Role.SUPPORT: "looks up, cancels and refunds orders",
    Role.MANAGER: "sees the dashboard and reports",
    Role.ADMIN: "manages users; opens every page",
    Role.SYSTEM: "creates orders (intake)",
}
ROLE_ORDER = [Role.APPROVER, Role.SUPPORT, Role.MANAGER, Role.ADMIN, Role.SYSTEM]
FIELD_LIMIT = 200


@dataclass
class UserForm:
    """What the invite or edit form sent, kept as typed so the form can be shown again."""

    username: str = ""
    display_name: str = ""
    roles: list[str] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)
    language: str = "en"
    email: str = ""
    active: bool = True


def _levels(services: Services) -> list[tuple[int, str]]:
    """The approval levels of the policy: (level, name), in order."""
    return [(rule.level, rule.name) for rule in services.approval_policy.levels]


def _parse_levels(services: Services, sent: list[str]) -> list[int]:
    known = {level for level, _ in _levels(services)}
    levels = []
    for value in sent:
        if not value.strip().isdigit() or int(value) not in known:
            listed = ", ".join(str(k) for k in sorted(known))
            raise invalid("approval_levels", f"levels are {listed} (see the approval policy)")
        levels.append(int(value))
    return levels


async def _read_form(request: Request) -> UserForm:
    form = await request.form()

    def text(name: str, default: str = "") -> str:
        value = form.get(name, default)
        return value[:FIELD_LIMIT] if isinstance(value, str) else default

    def many(name: str) -> list[str]:
        return [v[:16] for v in form.getlist(name) if isinstance(v, str)][:16]

    return UserForm(
        username=text("username"),
        display_name=text("display_name"),
        roles=many("roles"),
        levels=many("approval_levels"),
        language=text("language", "en"),
        email=text("email"),
        active=text("active", "yes") != "no",
    )


def _problems(exc: ServiceError, default_field: str) -> dict[str, str]:
    """Field -> reason, from a use case's error (its ``fields``, else the whole message)."""
    fields: list[dict[str, str]] = exc.extra.get("fields") or []
    found = {f["field"]: f["reason"] for f in fields if "field" in f and "reason" in f}
    return found or {default_field: exc.message}


def _common(services: Services) -> dict[str, Any]:
    return {
        "all_roles": ROLE_ORDER,
        "role_hints": ROLE_HINTS,
        "all_levels": _levels(services),
        "languages": LANGUAGES,
    }


async def _list_page(
    request: Request,
    users: UsersDep,
    services: Services,
    *,
    form: UserForm | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "users": await users.list(),
        "form": form or UserForm(),
        "errors": errors or {},
        "saved": request.query_params.get("saved", "")[:64],
        **_common(services),
    }
    return page(request, "admin_users.html", context, status=status)


async def _edit_page(
    request: Request,
    user: UserView,
    services: Services,
    viewer: Viewer,
    *,
    form: UserForm | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    shown = form or UserForm(
        username=user.username,
        display_name=user.display_name,
        roles=[r.value for r in user.roles],
        levels=[str(lv) for lv in user.approval_levels],
        language=user.language,
        email=user.email or "",
        active=user.active,
    )
    context = {
        "user": user,
        "form": shown,
        "errors": errors or {},
        "is_self": user.username == viewer.user.username,
        **_common(services),
    }
    return page(request, "admin_user.html", context, status=status)


def _link_page(
    request: Request, services: Services, user: UserView, token: str, *, reset: bool
) -> Response:
    base = services.settings.public_base_url.rstrip("/")
    context = {"user": user, "link": f"{base}/console/invite/{token}", "reset": reset}
    return page(request, "admin_link.html", context, status=200 if reset else 201)


@router.get("/users")
async def users_page(
    request: Request, _viewer: Admin, users: UsersDep, services: ServicesDep
) -> Response:
    """Every console user, and the invite form."""
    return await _list_page(request, users, services)


@router.post("/users")
async def invite_user(
    request: Request, viewer: Admin, users: UsersDep, services: ServicesDep
) -> Response:
    """Invite a user: the page shows their one-time link."""
    form = await _read_form(request)
    try:
        levels = _parse_levels(services, form.levels)
        user, token = await users.invite(
            viewer.user.username,
            form.username,
            form.display_name,
            form.roles,
            levels,
            language=form.language,
            email=form.email,
        )
    except ServiceError as exc:
        request.state.audit_reason = exc.message
        errors = _problems(exc, "username")
        return await _list_page(
            request, users, services, form=form, errors=errors, status=STATUS[exc.kind]
        )
    assert token is not None  # no password given: an invite
    return _link_page(request, services, user, token, reset=False)


async def _user_or_404(request: Request, users: UsersDep, user_id: int) -> UserView | Response:
    try:
        return await users.get(user_id)
    except ServiceError as exc:
        context = {"heading": "Not found", "message": exc.message, "back": "/console/admin/users"}
        return page(request, "error.html", context, status=STATUS[exc.kind])


@router.get("/users/{user_id}")
async def edit_user_page(
    request: Request, viewer: Admin, users: UsersDep, services: ServicesDep, user_id: int
) -> Response:
    """One user's roles, approval levels and active flag, to change."""
    user = await _user_or_404(request, users, user_id)
    if isinstance(user, Response):
        return user
    return await _edit_page(request, user, services, viewer)


@router.post("/users/{user_id}")
async def update_user(
    request: Request, viewer: Admin, users: UsersDep, services: ServicesDep, user_id: int
) -> Response:
    """Change a user; a change of roles, levels or the active flag signs them out."""
    user = await _user_or_404(request, users, user_id)
    if isinstance(user, Response):
        return user
    form = await _read_form(request)
    form.username = user.username
    is_self = user.username == viewer.user.username
    try:
        levels = _parse_levels(services, form.levels)
        if is_self and Role.ADMIN.value not in form.roles:
            raise ServiceError(
                Kind.CONFLICT,
                "you cannot remove your own admin role",
                fields=[{"field": "roles", "reason": "you cannot remove your own admin role"}],
            )
        await users.update(
            user_id,
            roles=form.roles,
            approval_levels=levels,
            active=form.active,
            display_name=form.display_name,
            email=form.email,
            actor=viewer.user.username,
        )
    except ServiceError as exc:
        request.state.audit_reason = exc.message
        default = "active" if "deactivate" in exc.message else "roles"
        errors = _problems(exc, default)
        return await _edit_page(
            request, user, services, viewer, form=form, errors=errors, status=STATUS[exc.kind]
        )
    services.session_users.forget(user_id)
    return redirect(request, f"/console/admin/users?saved={user.username}")


@router.post("/users/{user_id}/reset")
async def reset_password(
    request: Request, _viewer: Admin, users: UsersDep, services: ServicesDep, user_id: int
) -> Response:
    """A new one-time link: the old password and every session of the user stop working."""
    try:
        user, token = await users.reinvite(user_id)
    except ServiceError as exc:
        request.state.audit_reason = exc.message
        context = {"heading": "Not found", "message": exc.message, "back": "/console/admin/users"}
        return page(request, "error.html", context, status=STATUS[exc.kind])
    services.session_users.forget(user_id)
    return _link_page(request, services, user, token, reset=True)
