"""``orderly keys create|list|revoke|rotate``: API keys, through :class:`services.keys.Keys`.

A key revoked here stops working in running API processes within their key cache TTL
(``ORDERLY_KEY_CACHE_TTL``, 5 s by default); through ``POST /keys/{id}/revoke`` at once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

import typer
from pydantic import TypeAdapter, ValidationError
from rich import box
from rich.console import Console
from rich.table import Table

from config import Settings, get_settings
from db.session import make_engine, make_sessionmaker
from services.auth import Role, Scope
from services.errors import ServiceError
from services.keys import KeyInfo, Keys, KeySpec, KeyStatus, NewKey

app = typer.Typer(help="API keys: create, list, revoke, rotate.", no_args_is_help=True)
T = TypeVar("T")

_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_SHORT = re.compile(r"^(?:\d+[wdhms])+$")
_PART = re.compile(r"(\d+)([wdhms])")
_STATUS_STYLE = {KeyStatus.ACTIVE: "green", KeyStatus.EXPIRED: "yellow", KeyStatus.REVOKED: "red"}


def parse_duration(text: str) -> timedelta:
    """``30d``, ``24h``, ``1d12h``, ``90m``, ``10s``, ``2w`` or ISO 8601 (``P30D``, ``PT1H``)."""
    value = text.strip().lower()
    if _SHORT.match(value):
        return timedelta(**{_UNITS[u]: int(n) for n, u in _PART.findall(value)})
    try:
        return TypeAdapter(timedelta).validate_python(text.strip())
    except ValidationError:
        raise typer.BadParameter(f"{text!r} is not a duration (e.g. 30d, 24h, 90m, P30D)") from None


def _console() -> Console:
    return Console()


def _fail(message: str, code: int = 1) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _run(settings: Settings, use: Callable[[Keys], Awaitable[T]]) -> T:
    """Run one use case on a session factory over the configured database."""

    async def go() -> T:
        engine = make_engine(settings.database_url)
        try:
            return await use(Keys(make_sessionmaker(engine)))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except ServiceError as exc:
        raise _fail(exc.message) from exc


def _when(at: datetime | None, empty: str = "never") -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if at else empty


def _show_new(new: NewKey, what: str) -> None:
    console = _console()
    scopes = ", ".join(new.scopes) or "all the roles allow"
    console.print(
        f"{what} API key [bold]{new.id}[/bold] ({new.prefix}) for [bold]{new.principal}[/bold]: "
        f"roles {', '.join(new.roles)}; scopes {scopes}; expires {_when(new.expires_at)}",
        highlight=False,
    )
    typer.echo(new.key)
    console.print("Store it now: it is not shown again.", style="yellow")


@app.command()
def create(
    principal: Annotated[
        str, typer.Option(help="The name the key acts as (orders' created_by, an e-shop's source).")
    ],
    role: Annotated[list[Role], typer.Option(help="Repeat for several roles.")],
    scope: Annotated[
        list[Scope] | None, typer.Option(help="Narrow the key (repeat); none: all roles allow.")
    ] = None,
    level: Annotated[list[int] | None, typer.Option(help="Approval level (approvers).")] = None,
    expires_in: Annotated[
        str | None, typer.Option(help="e.g. 30d, 12h, P90D; default: never.")
    ] = None,
    description: Annotated[str, typer.Option(help="What the key is for.")] = "",
) -> None:
    """Create a key and print it, this once."""
    expires_at = datetime.now(UTC) + parse_duration(expires_in) if expires_in else None
    try:
        spec = KeySpec(
            principal=principal,
            roles=role,
            approval_levels=level or [],
            scopes=scope or [],
            expires_at=expires_at,
            description=description,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'key'}: {e['msg']}" for e in exc.errors()
        )
        raise _fail(problems, 2) from exc
    _show_new(_run(get_settings(), lambda keys: keys.create(spec)), "Created")


@app.command("list")
def list_keys(
    principal: Annotated[str | None, typer.Option(help="Only this principal's keys.")] = None,
    active: Annotated[bool, typer.Option("--active", help="Hide revoked keys.")] = False,
) -> None:
    """List keys: prefix, principal, roles, scopes, dates, status (never a secret)."""
    infos: list[KeyInfo] = list(
        _run(
            get_settings(),
            lambda keys: keys.list(principal=principal, include_revoked=not active),
        )
    )
    table = Table(
        title="API keys", title_justify="left", box=box.SIMPLE_HEAD, collapse_padding=True
    )
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("prefix", no_wrap=True)
    table.add_column("principal", overflow="fold")
    table.add_column("roles", overflow="fold")
    table.add_column("scopes", overflow="fold")
    table.add_column("created")
    table.add_column("expires")
    table.add_column("last used")
    table.add_column("status", no_wrap=True)
    for info in infos:
        table.add_row(
            str(info.id),
            info.prefix or "-",
            info.principal,
            "\n".join(info.roles),
            "\n".join(info.scopes) or "all",
            _when(info.created_at),
            _when(info.expires_at),
            _when(info.last_used_at),
            f"[{_STATUS_STYLE[info.status]}]{info.status}[/]",
        )
    _console().print(table)


@app.command()
def revoke(key_id: Annotated[int, typer.Argument(help="The key's id (see `list`).")]) -> None:
    """Revoke a key now (API processes stop accepting it within their key cache TTL)."""
    info = _run(get_settings(), lambda keys: keys.revoke(key_id))
    _console().print(
        f"Revoked API key {info.id} ({info.prefix}) of {info.principal}", highlight=False
    )


@app.command()
def rotate(
    key_id: Annotated[int, typer.Argument(help="The key's id (see `list`).")],
    overlap: Annotated[
        str | None,
        typer.Option(help="How long the old key keeps working, e.g. 24h, 0s (default: settings)."),
    ] = None,
) -> None:
    """Make a new key like this one (printed once); the old one expires after the overlap."""
    settings = get_settings()
    span = parse_duration(overlap) if overlap else settings.key_rotation_overlap
    new = _run(settings, lambda keys: keys.rotate(key_id, span))
    _show_new(new, "Rotated: new")
    _console().print(
        f"The old key {key_id} works until {_when(datetime.now(UTC) + span)} UTC.",
        highlight=False,
    )
