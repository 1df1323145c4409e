"""Bearer API keys, stored as sha256 hashes, mapping to a principal with roles and scopes.

Roles say what kind of caller a key belongs to; scopes narrow a key further for one
integration (a carrier key that may only post shipment events). A scope never grants beyond
the key's roles. Each route declares one :class:`AccessRule` (see ``api.deps.allow``).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from db.models import ApiKeyRow
from db.session import SessionFactory

log = logging.getLogger("orderly.auth")


class Role(StrEnum):
    SYSTEM = "system"  # e-shop, ERP, POS, CSV import, payment and carrier webhooks
    APPROVER = "approver"
    SUPPORT = "support"
    MANAGER = "manager"  # reports and the console's dashboard
    ADMIN = "admin"


class Scope(StrEnum):
    """What a key with scopes may do; a key without scopes may do all its roles allow."""

    ORDERS_CREATE = "orders:create"  # POST /orders
    ORDERS_READ = "orders:read"  # GET /orders, /orders/{id}, /orders/{id}/timeline
    ORDERS_OWN = "orders:own"  # a restriction: only orders this principal created
    ORDERS_CANCEL = "orders:cancel"  # POST /orders/{id}/cancel
    ORDERS_AMEND = "orders:amend"  # POST /orders/{id}/amend
    PAYMENTS_WRITE = "payments:write"  # POST /orders/{id}/payments
    SHIPMENTS_WRITE = "shipments:write"  # carrier scans, split shipment
    APPROVALS_DECIDE = "approvals:decide"  # approve, reject, request changes, the inbox
    COMPENSATIONS_WRITE = "compensations:write"  # support: retry or resolve a compensation
    EVENTS_READ = "events:read"  # GET /events
    KEYS_ADMIN = "keys:admin"  # /keys
    PRICES_READ = "prices:read"  # GET /prices
    PRICES_WRITE = "prices:write"  # PUT /prices/{sku}
    TEMPLATES_READ = "templates:read"  # GET /templates, /templates/{id}
    TEMPLATES_WRITE = "templates:write"  # create, edit, archive templates
    IMPORTS_READ = "imports:read"  # GET /imports, an import, its report, the template
    IMPORTS_WRITE = "imports:write"  # POST /imports (starts orders), cancel an import
    WEBHOOKS_ADMIN = "webhooks:admin"  # /webhooks: subscriptions and their delivery logs
    INVENTORY_ADMIN = "inventory:admin"  # /inventory: stock levels and reorder points
    NOTIFICATIONS_READ = "notifications:read"  # GET /notifications: the email outbox
    NOTIFICATIONS_WRITE = "notifications:write"  # resend a failed email


class Principal(BaseModel):
    name: str
    roles: frozenset[Role]
    approval_levels: frozenset[int] = frozenset()
    scopes: frozenset[Scope] = frozenset()
    key_id: int | None = None
    expires_at: datetime | None = None

    def has_any(self, roles: set[Role] | frozenset[Role]) -> bool:
        return bool(self.roles & roles)

    def permits(self, scope: Scope) -> bool:
        """Whether the key's scopes allow ``scope`` (``orders:own`` alone restricts nothing
        but the orders)."""
        grants = self.scopes - {Scope.ORDERS_OWN}
        return not grants or scope in grants

    @property
    def owner(self) -> str | None:
        """The creator an ``orders:own`` key is limited to (its own name), else None."""
        return self.name if Scope.ORDERS_OWN in self.scopes else None

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC))


@dataclass(frozen=True)
class AccessRule:
    """Who may call one route: a caller holding any of ``roles`` (admins always) whose key,
    if it has scopes, includes ``scope``. ``own``: the use case limits an ``orders:own`` key to
    its own orders; routes that cannot (feeds, inboxes, keys) refuse such keys. ``scope``
    None: keys with scopes are refused (a route nobody gave a scope yet). ``public``: the route
    needs no key at all (health, sign-in pages); it says so instead of having no rule."""

    roles: frozenset[Role]
    scope: Scope | None
    own: bool = True
    public: bool = False
    console: bool = False  # a console page: a signed-in user's session, never an API key

    @property
    def allowed_roles(self) -> frozenset[Role]:
        return self.roles | {Role.ADMIN}

    def refusal(self, principal: Principal) -> str | None:
        """Why ``principal`` may not call the route (a 403 message), or None."""
        if self.public:
            return None
        if not principal.has_any(self.allowed_roles):
            need = " or ".join(sorted(r.value for r in self.allowed_roles))
            return f"this action needs the role {need}"
        if self.scope is None and principal.scopes - {Scope.ORDERS_OWN}:
            return "this action is not open to API keys with scopes"
        if self.scope is not None and not principal.permits(self.scope):
            return f"this API key's scopes do not include {self.scope.value}"
        if principal.owner is not None and not self.own:
            return (
                f"this API key is limited to its own orders ({Scope.ORDERS_OWN.value}) "
                "and this route is not"
            )
        return None


PUBLIC = AccessRule(roles=frozenset(), scope=None, own=True, public=True)

KEY_PREFIX = "ok_"
SHOWN_PREFIX = 12  # characters of a key kept and shown to identify it, e.g. ok_AbCdEf123


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """Scopes from their names; an unknown name raises ``ValueError`` naming it."""
    scopes = set()
    for value in values:
        try:
            scopes.add(Scope(value))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise ValueError(f"unknown scope {value!r} (known: {known})") from None
    return frozenset(scopes)


def new_key_row(
    principal: str,
    roles: Iterable[Role],
    approval_levels: Iterable[int] = (),
    *,
    scopes: Iterable[Scope] = (),
    expires_at: datetime | None = None,
    description: str = "",
    email: str | None = None,
) -> tuple[str, ApiKeyRow]:
    """A fresh key and its row (to add in the caller's transaction); only the hash and the
    first characters of the key are kept."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKeyRow(
        key_hash=hash_key(key),
        prefix=key[:SHOWN_PREFIX],
        principal=principal,
        roles=sorted({Role(r).value for r in roles}),
        approval_levels=sorted(set(approval_levels)),
        scopes=sorted({Scope(s).value for s in scopes}),
        description=description,
        email=email,
        active=True,
        created_at=datetime.now(UTC),
        expires_at=expires_at,
    )
    return key, row


async def create_api_key(
    sessions: SessionFactory,
    principal: str,
    roles: list[Role],
    approval_levels: Sequence[int] = (),
    *,
    scopes: Iterable[Scope] = (),
    expires_at: datetime | None = None,
    description: str = "",
) -> str:
    """Create a key for ``principal`` (approvers with their levels); the plaintext is returned
    once and never stored. :class:`services.keys.Keys` is the managing use case."""
    key, row = new_key_row(
        principal,
        roles,
        approval_levels,
        scopes=scopes,
        expires_at=expires_at,
        description=description,
    )
    async with sessions.begin() as session:
        session.add(row)
    return key


def principal_of(row: ApiKeyRow) -> Principal:
    return Principal(
        name=row.principal,
        roles=frozenset(Role(r) for r in row.roles),
        approval_levels=frozenset(row.approval_levels),
        scopes=parse_scopes(row.scopes),
        key_id=row.id,
        expires_at=row.expires_at,
    )


class KeyCache:
    """Principals of recently seen keys, so a request costs no database read for auth.

    A key revoked or rotated by another process is seen within ``ttl`` seconds; one revoked in
    this process is dropped at once (:meth:`forget`). Expiry is checked on every request from
    the cached expiry time. ``last_used_at`` is written at most every ``touch_every`` seconds.
    """

    def __init__(self, ttl: float = 5.0, size: int = 10_000, touch_every: float = 60.0) -> None:
        self._ttl, self._size, self._touch_every = ttl, size, touch_every
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._touched: dict[int, float] = {}

    async def authenticate(
        self, sessions: SessionFactory, key: str, *, ttl: float | None = None
    ) -> Principal | None:
        """The key's principal (check :meth:`Principal.expired`), or None if it is unknown or
        revoked. ``ttl`` overrides the cache's own for this lookup (from settings)."""
        digest = hash_key(key)
        now = time.monotonic()
        hit = self._entries.get(digest)
        if hit is not None and hit[0] + (self._ttl if ttl is None else ttl) > now:
            principal: Principal | None = hit[1]
        else:
            principal = await authenticate(sessions, key)
            self._entries.pop(digest, None)
            if principal is not None:
                if len(self._entries) >= self._size:
                    self._entries.clear()
                self._entries[digest] = (now, principal)
        if principal is not None and principal.key_id is not None and not principal.expired():
            await self._touch(sessions, principal.key_id, now)
        return principal

    def forget(self, key_id: int) -> None:
        """Drop the cached principal of key ``key_id`` (after a revocation or rotation)."""
        for digest, (_, principal) in list(self._entries.items()):
            if principal.key_id == key_id:
                del self._entries[digest]

    async def _touch(self, sessions: SessionFactory, key_id: int, now: float) -> None:
        last = self._touched.get(key_id)
        if last is not None and now - last < self._touch_every:
            return
        if len(self._touched) >= self._size:
            self._touched.clear()
        self._touched[key_id] = now
        try:
            async with sessions.begin() as session:
                await session.execute(
                    update(ApiKeyRow)
                    .where(ApiKeyRow.id == key_id)
                    .values(last_used_at=datetime.now(UTC))
                )
        except SQLAlchemyError as exc:  # bookkeeping only: the request goes on
            log.warning("could not record the last use of API key %s: %s", key_id, exc)


async def authenticate(sessions: SessionFactory, key: str) -> Principal | None:
    """The principal of an active key (expired ones included: the caller says so), or None."""
    async with sessions() as session:
        row = await session.scalar(
            select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(key), ApiKeyRow.active)
        )
    if row is None or row.revoked_at is not None:
        return None
    try:
        return principal_of(row)
    except ValueError as exc:  # a scope or role this version does not know: refuse the key
        log.warning("API key %s refused: %s", row.id, exc)
        return None
