"""Use cases on the customer master: create, read, list, update, bulk upsert, and the record
every order takes its tier, region and credit limit from (erasure: ``services.erasure``).

Name, email and phone are stored only sealed under the customer's data key (``db.vault``);
every change writes a ``customer_changes`` row (actor, type, a detail without PII).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import func, literal, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import CustomerChangeRow, CustomerRow
from db.upsert import insert_for
from domain.customers import (
    DEFAULT_TIER,
    PII_FIELDS,
    ChangeType,
    CustomerIn,
    CustomerPatch,
)
from domain.mail import Language, language_of
from domain.order import Customer, CustomerTier
from services.auth import Principal, Role
from services.context import Services
from services.errors import Kind, ServiceError, invalid, not_found

MAX_BULK = 1000


class CustomerView(BaseModel):
    """A master record as support sees it: PII opened (placeholders once erased)."""

    id: str
    name: str
    email: str
    phone: str | None
    region: str
    tier: CustomerTier
    credit_limit: Decimal | None = Field(description="None: the bureau's limit applies.")
    tags: list[str]
    language: Language = Field(default="en", description="Of the emails the customer gets.")
    suggested_tier: CustomerTier | None = Field(description="The classifier's open proposal.")
    erased_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CustomerPage(BaseModel):
    items: list[CustomerView]
    next_cursor: str | None


class CustomerChange(BaseModel):
    id: int
    at: datetime
    actor: str
    change: ChangeType
    detail: dict[str, Any] = Field(description="What changed; never personal data.")


class ChangePage(BaseModel):
    items: list[CustomerChange]
    next_after: int | None = Field(description="Pass as `after` for the next page.")


class RowResult(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    INVALID = "invalid"


class RowProblem(BaseModel):
    field: str
    reason: str


class BulkRow(BaseModel):
    index: int = Field(description="Position of the row in `items`.")
    id: str | None
    result: RowResult
    fields: list[RowProblem] = Field(default_factory=list)


class BulkResult(BaseModel):
    created: int
    updated: int
    unchanged: int
    invalid: int
    items: list[BulkRow]


@dataclass(frozen=True)
class CustomerFilter:
    region: str | None = None
    tier: CustomerTier | None = None
    tag: str | None = None
    suggested_tier: CustomerTier | None = None


def _cursor(customer_id: str) -> str:
    return base64.urlsafe_b64encode(customer_id.encode()).decode().rstrip("=")


def _after(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid("cursor", "cursor is not one this API returned") from exc


def _problems(exc: ValidationError) -> list[RowProblem]:
    return [
        RowProblem(field=".".join(str(p) for p in e["loc"]) or "row", reason=e["msg"])
        for e in exc.errors()
    ]


def change_row(
    customer_id: str, actor: str, change: ChangeType, detail: dict[str, Any], at: datetime
) -> CustomerChangeRow:
    return CustomerChangeRow(
        customer_id=customer_id, at=at, actor=actor, change=change.value, detail=detail
    )


class Customers:
    """The customer master as clients and order creation use it."""

    def __init__(self, services: Services) -> None:
        self._s = services
        self._sessions, self._vault = services.sessions, services.vault

    # --- reading ----------------------------------------------------------------------------

    async def _views(
        self, session: AsyncSession, rows: Sequence[CustomerRow]
    ) -> list[CustomerView]:
        opened = {
            field: await self._vault.open_texts(
                session, [(r.id, getattr(r, field) or "") for r in rows], field
            )
            for field in ("name", "email", "phone")
        }
        return [
            CustomerView(
                id=r.id,
                name=opened["name"][i],
                email=opened["email"][i],
                phone=(opened["phone"][i] or None) if r.phone else None,
                region=r.region,
                tier=CustomerTier(r.tier),
                credit_limit=r.credit_limit,
                tags=list(r.tags),
                language=language_of(r.language),
                suggested_tier=CustomerTier(r.suggested_tier) if r.suggested_tier else None,
                erased_at=r.erased_at,
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
            for i, r in enumerate(rows)
        ]

    @staticmethod
    async def row(session: AsyncSession, customer_id: str) -> CustomerRow:
        """The master record, or 404."""
        row = await session.get(CustomerRow, customer_id)
        if row is None:
            raise not_found(f"customer {customer_id}")
        return row

    async def get(self, customer_id: str) -> CustomerView:
        async with self._sessions() as session:
            return (await self._views(session, [await self.row(session, customer_id)]))[0]

    async def list(self, flt: CustomerFilter, *, limit: int, cursor: str | None) -> CustomerPage:
        """By id, with a keyset cursor; filters on the non-PII columns only."""
        stmt = select(CustomerRow)
        if flt.region is not None:
            stmt = stmt.where(CustomerRow.region == flt.region)
        if flt.tier is not None:
            stmt = stmt.where(CustomerRow.tier == flt.tier.value)
        if flt.suggested_tier is not None:
            stmt = stmt.where(CustomerRow.suggested_tier == flt.suggested_tier.value)
        if cursor:
            stmt = stmt.where(CustomerRow.id > _after(cursor))
        async with self._sessions() as session:
            if flt.tag is not None:
                stmt = stmt.where(self._has_tag(session, flt.tag))
            rows = list(await session.scalars(stmt.order_by(CustomerRow.id).limit(limit + 1)))
            items = await self._views(session, rows[:limit])
        return CustomerPage(
            items=items, next_cursor=_cursor(rows[limit - 1].id) if len(rows) > limit else None
        )

    @staticmethod
    def _has_tag(session: AsyncSession, tag: str) -> Any:
        if session.get_bind().dialect.name == "postgresql":
            return CustomerRow.tags.cast(JSONB).contains([tag])
        each = func.json_each(CustomerRow.tags).table_valued("value")
        return select(literal(1)).select_from(each).where(each.c.value == tag).exists()

    async def changes(self, customer_id: str, *, after: int, limit: int) -> ChangePage:
        """The customer's changes, oldest first, after the change id ``after``."""
        async with self._sessions() as session:
            await self.row(session, customer_id)
            rows = list(
                await session.scalars(
                    select(CustomerChangeRow)
                    .where(CustomerChangeRow.customer_id == customer_id)
                    .where(CustomerChangeRow.id > after)
                    .order_by(CustomerChangeRow.id)
                    .limit(limit)
                )
            )
        items = [
            CustomerChange(
                id=r.id, at=r.at, actor=r.actor, change=ChangeType(r.change), detail=r.detail
            )
            for r in rows
        ]
        return ChangePage(items=items, next_after=rows[-1].id if len(rows) == limit else None)

    # --- writing ----------------------------------------------------------------------------

    async def _new_row(
        self, session: AsyncSession, body: CustomerIn, at: datetime
    ) -> dict[str, Any]:
        seal = self._vault.seal_text
        return {
            "id": body.id,
            "name": await seal(session, body.id, body.name),
            "email": await seal(session, body.id, str(body.email)),
            "phone": await seal(session, body.id, body.phone) if body.phone else None,
            "region": body.region,
            "tier": body.tier.value,
            "credit_limit": body.credit_limit,
            "tags": list(body.tags),
            "language": body.language,
            "suggested_tier": None,
            "erased_at": None,
            "created_at": at,
            "updated_at": at,
        }

    async def create(self, body: CustomerIn, principal: Principal) -> CustomerView:
        """A new master record; 409 if the id is taken (PATCH it instead)."""
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            if await session.get(CustomerRow, body.id) is not None:
                raise ServiceError(
                    Kind.CONFLICT, f"customer {body.id} exists already; PATCH it", code="exists"
                )
            row = CustomerRow(**await self._new_row(session, body, now))
            session.add(row)
            await session.flush()  # before its change row (no ORM relationship orders them)
            session.add(self._created(row, principal.name, "api", now))
            await session.flush()
            return (await self._views(session, [row]))[0]

    @staticmethod
    def _created(row: CustomerRow, actor: str, source: str, at: datetime) -> CustomerChangeRow:
        detail: dict[str, Any] = {"source": source, "tier": row.tier, "region": row.region}
        if row.credit_limit is not None:
            detail["credit_limit"] = str(row.credit_limit)
        if row.tags:
            detail["tags"] = list(row.tags)
        return change_row(row.id, actor, ChangeType.CREATED, detail, at)

    async def _apply(
        self,
        session: AsyncSession,
        row: CustomerRow,
        values: dict[str, Any],
        actor: str,
        at: datetime,
    ) -> bool:
        """Set ``values`` (plain; PII sealed here) on ``row`` with its change rows; whether
        anything changed. A tier set to the pending suggestion applies it."""
        if row.erased_at is not None and PII_FIELDS & {k for k, v in values.items() if v}:
            raise ServiceError(
                Kind.CONFLICT,
                f"customer {row.id}: personal data was erased on {row.erased_at:%Y-%m-%d}; "
                "it is not stored again",
                code="pii_erased",
            )
        changed: list[str] = []
        detail: dict[str, Any] = {}
        for field in sorted(PII_FIELDS & values.keys()):
            new, stored = values[field], getattr(row, field)
            old = await self._vault.open_text(session, row.id, stored, field) if stored else None
            if new != old:
                sealed = await self._vault.seal_text(session, row.id, new) if new else None
                setattr(row, field, sealed)
                changed.append(field)  # the names only: the values are PII
        for field in ("region", "credit_limit", "tags", "language"):
            if field in values and values[field] != getattr(row, field):
                old = getattr(row, field)
                detail[field] = {"from": _plain(old), "to": _plain(values[field])}
                setattr(row, field, values[field])
                changed.append(field)
        if changed:
            session.add(
                change_row(row.id, actor, ChangeType.UPDATED, {"fields": changed, **detail}, at)
            )
        tier = values.get("tier")
        tier_changed = tier is not None and tier.value != row.tier
        if tier_changed:
            assert tier is not None
            applied = row.suggested_tier == tier.value
            session.add(
                change_row(
                    row.id,
                    actor,
                    ChangeType.TIER_CHANGED,
                    {"from": row.tier, "to": tier.value, "suggestion_applied": applied},
                    at,
                )
            )
            row.tier, row.suggested_tier = tier.value, None
        if changed or tier_changed:
            row.updated_at = at
        return bool(changed or tier_changed)

    async def update(
        self, customer_id: str, patch: CustomerPatch, principal: Principal
    ) -> CustomerView:
        """Change the fields the patch names; each change is recorded."""
        values = {k: getattr(patch, k) for k in patch.model_fields_set}
        if "email" in values:
            values["email"] = str(values["email"])
        async with self._sessions.begin() as session:
            row = await self.row(session, customer_id)
            await self._apply(session, row, values, principal.name, datetime.now(UTC))
            await session.flush()
            return (await self._views(session, [row]))[0]

    async def bulk_upsert(self, items: Sequence[object], principal: Principal) -> BulkResult:
        """Create or update up to 1000 records; each row answers created, updated, unchanged or
        invalid (with its field errors), and a bad row never costs the valid ones. Only admins
        and support may set a tier or a credit limit: a system's row that would change one is
        invalid. Records whose PII was erased are not re-imported."""
        if len(items) > MAX_BULK:
            raise invalid("items", f"at most {MAX_BULK} rows per call")
        results: dict[int, BulkRow] = {}
        valid: list[tuple[int, CustomerIn]] = []
        first: dict[str, int] = {}
        for i, item in enumerate(items):
            rid = item.get("id") if isinstance(item, dict) else None
            shown = rid if isinstance(rid, str) else None
            try:
                body = CustomerIn.model_validate(item)
            except ValidationError as exc:
                results[i] = BulkRow(
                    index=i, id=shown, result=RowResult.INVALID, fields=_problems(exc)
                )
                continue
            if body.id in first:
                problem = RowProblem(field="id", reason=f"also in row {first[body.id]}")
                results[i] = BulkRow(
                    index=i, id=body.id, result=RowResult.INVALID, fields=[problem]
                )
                continue
            first[body.id] = i
            valid.append((i, body))
        privileged = principal.has_any({Role.ADMIN, Role.SUPPORT})
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            ids = [body.id for _, body in valid]
            existing = {
                r.id: r
                for r in await session.scalars(select(CustomerRow).where(CustomerRow.id.in_(ids)))
            }
            for i, body in valid:
                current = existing.get(body.id)
                problems = [] if privileged else _unprivileged(body, current)
                if current is not None and current.erased_at is not None:
                    problems.append(
                        RowProblem(field="id", reason="personal data erased: not re-imported")
                    )
                if problems:
                    results[i] = BulkRow(
                        index=i, id=body.id, result=RowResult.INVALID, fields=problems
                    )
                    continue
                if current is None:
                    row = CustomerRow(**await self._new_row(session, body, now))
                    session.add(row)
                    await session.flush()
                    session.add(self._created(row, principal.name, "bulk", now))
                    outcome = RowResult.CREATED
                else:
                    given = body.model_fields_set | {"name", "email", "region"}
                    values = {k: getattr(body, k) for k in given if k != "id"}
                    values["email"] = str(body.email)
                    done = await self._apply(session, current, values, principal.name, now)
                    outcome = RowResult.UPDATED if done else RowResult.UNCHANGED
                results[i] = BulkRow(index=i, id=body.id, result=outcome)
        rows = [results[i] for i in sorted(results)]
        count = {r: sum(1 for x in rows if x.result is r) for r in RowResult}
        return BulkResult(
            created=count[RowResult.CREATED],
            updated=count[RowResult.UPDATED],
            unchanged=count[RowResult.UNCHANGED],
            invalid=count[RowResult.INVALID],
            items=rows,
        )

    async def ensure_for_order(
        self, session: AsyncSession, customer: Customer, *, actor: str
    ) -> CustomerRow:
        """The master record an order takes its tier, region and credit limit from; a customer
        not known yet is created from the order's fields with the default tier (the order's
        ``tier`` is never trusted)."""
        row = await session.get(CustomerRow, customer.id)
        if row is not None:
            return row
        now = datetime.now(UTC)
        body = CustomerIn(
            id=customer.id, name=customer.name, email=customer.email, region=customer.region
        )
        values = await self._new_row(session, body, now)
        stmt = insert_for(session, CustomerRow).values(**values)
        inserted = await session.scalar(
            stmt.on_conflict_do_nothing(index_elements=["id"]).returning(CustomerRow.id)
        )
        row = await session.get(CustomerRow, customer.id, populate_existing=True)
        assert row is not None
        if inserted is not None:  # not a concurrent order's
            created = self._created(row, actor, "order", now)
            created.detail = {**created.detail, "stated_tier": customer.tier.value}
            session.add(created)
        return row


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def _unprivileged(body: CustomerIn, current: CustomerRow | None) -> list[RowProblem]:
    """A system's row may state tier and credit limit only as the master has them."""
    tier = DEFAULT_TIER.value if current is None else current.tier
    limit = None if current is None else current.credit_limit
    problems = []
    if "tier" in body.model_fields_set and body.tier.value != tier:
        problems.append(RowProblem(field="tier", reason="only support or admin change a tier"))
    if "credit_limit" in body.model_fields_set and body.credit_limit != limit:
        problems.append(
            RowProblem(field="credit_limit", reason="only support or admin change a credit limit")
        )
    return problems
