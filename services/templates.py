"""Order templates: create, read (any version), edit (each edit a new version, the old ones
kept for the orders that used them), archive (never delete), and use: an order priced from the
price list at that moment, created through :meth:`services.orders.Orders.create`.

A version's content is stored sealed (``db.vault``): customer and address PII under the data key
of the template's customer (``template:<id>`` without one), the payment token and the notes as
sealed values. Names are labels and stay plain.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import IdempotencyKeyRow, OrderTemplateRow, OrderTemplateVersionRow
from domain.order import Address, Customer, OrderSpec, PaymentMethod, TemplateRef
from domain.pricing import (
    PricingProblems,
    TemplateContent,
    TemplateLine,
    TemplateOverrides,
    TemplateUnusable,
    field_path,
    order_spec,
)
from services.analytics import MAX_SKUS, Analytics, Recommendations
from services.auth import Principal
from services.context import Services
from services.errors import Kind, ServiceError, invalid, not_found
from services.orders import Orders
from services.prices import list_prices_at
from services.views import OrderDetail

_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_ATTEMPTS = 8


def new_template_id() -> str:
    return "TPL-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


class TemplatePatch(BaseModel):
    """Fields to change; the others keep their values (null clears an optional one)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    customer: dict[str, Any] | None = None
    currency: str | None = None
    lines: list[dict[str, Any]] | None = None
    shipping_address: dict[str, Any] | None = None
    payment_method: dict[str, Any] | None = None
    sales_rep: str | None = None
    notes: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None


class TemplateView(BaseModel):
    """One version of a template, PII opened, the payment token masked."""

    id: str
    version: int
    current_version: int
    archived_at: datetime | None
    archived_by: str | None
    created_at: datetime
    created_by: str
    version_created_at: datetime
    version_created_by: str
    name: str
    customer: Customer | None
    currency: str
    lines: list[TemplateLine]
    shipping_address: Address | None
    payment_method: PaymentMethod | None = Field(description="The token is masked.")
    sales_rep: str | None
    notes: str
    valid_from: datetime | None
    valid_until: datetime | None


class TemplateSummary(BaseModel):
    id: str
    name: str
    customer_id: str | None
    current_version: int
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TemplatePage(BaseModel):
    items: list[TemplateSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


def _owner(template_id: str, content: TemplateContent) -> str:
    return content.customer.id if content.customer else f"template:{template_id}"


def _problems(exc: ValidationError) -> ServiceError:
    fields = [{"field": field_path(err["loc"]), "reason": err["msg"]} for err in exc.errors()]
    message = "; ".join(f"{f['field']}: {f['reason']}" for f in fields[:5])
    return ServiceError(Kind.INVALID, message, fields=fields)


def _cursor(template_id: str) -> str:
    return base64.urlsafe_b64encode(template_id.encode()).decode().rstrip("=")


def _after(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid("cursor", "cursor is not one this API returned") from exc


def _archived(row: OrderTemplateRow) -> ServiceError:
    return ServiceError(
        Kind.CONFLICT,
        f"template {row.id} is archived (since {row.archived_at}); archived templates cannot "
        "be used or edited",
        code="template_archived",
    )


class Templates:
    """Order templates as support and systems keep and use them."""

    def __init__(self, services: Services) -> None:
        self._s = services
        self._sessions, self._vault = services.sessions, services.vault

    # --- sealing ----------------------------------------------------------------------------

    async def _seal(
        self, session: AsyncSession, owner: str, content: TemplateContent
    ) -> dict[str, Any]:
        doc = content.model_dump(mode="json")
        payment = doc.get("payment_method")
        if payment and payment.get("token"):
            payment["token"] = await self._vault.seal_text(session, owner, payment["token"])
        if doc.get("notes"):
            doc["notes"] = await self._vault.seal_text(session, owner, doc["notes"])
        return await self._vault.seal(session, owner, doc)

    async def _open(self, session: AsyncSession, row: OrderTemplateVersionRow) -> TemplateContent:
        doc = await self._vault.open(session, row.content)
        payment = doc.get("payment_method")
        if payment and payment.get("token"):
            payment["token"] = await self._vault.open_text(
                session, row.owner, payment["token"], "token"
            )
        if doc.get("notes"):
            doc["notes"] = await self._vault.open_text(session, row.owner, doc["notes"], "notes")
        return TemplateContent.model_validate(doc)

    # --- reading ----------------------------------------------------------------------------

    @staticmethod
    async def _row(session: AsyncSession, template_id: str, lock: bool = False) -> OrderTemplateRow:
        stmt = select(OrderTemplateRow).where(OrderTemplateRow.id == template_id)
        row = await session.scalar(stmt.with_for_update() if lock else stmt)
        if row is None:
            raise not_found(f"template {template_id}")
        return row

    @staticmethod
    async def _version(
        session: AsyncSession, row: OrderTemplateRow, version: int | None
    ) -> OrderTemplateVersionRow:
        number = row.current_version if version is None else version
        found = await session.get(OrderTemplateVersionRow, (row.id, number))
        if found is None:
            raise ServiceError(
                Kind.NOT_FOUND,
                f"query.version: template {row.id} has versions 1 to {row.current_version}",
                fields=[{"field": "query.version", "reason": "no such version"}],
            )
        return found

    def _view(
        self, row: OrderTemplateRow, version: OrderTemplateVersionRow, content: TemplateContent
    ) -> TemplateView:
        payment = content.payment_method.masked() if content.payment_method else None
        return TemplateView(
            id=row.id,
            version=version.version,
            current_version=row.current_version,
            archived_at=row.archived_at,
            archived_by=row.archived_by,
            created_at=row.created_at,
            created_by=row.created_by,
            version_created_at=version.created_at,
            version_created_by=version.created_by,
            **content.model_dump(exclude={"payment_method"}),
            payment_method=payment,
        )

    async def get(self, template_id: str, version: int | None = None) -> TemplateView:
        async with self._sessions() as session:
            row = await self._row(session, template_id)
            found = await self._version(session, row, version)
            return self._view(row, found, await self._open(session, found))

    async def list(
        self,
        *,
        archived: bool | None,
        customer_id: str | None,
        limit: int,
        cursor: str | None,
    ) -> TemplatePage:
        """By id, with a keyset cursor; ``archived`` None: both."""
        stmt = select(OrderTemplateRow)
        if archived is not None:
            column = OrderTemplateRow.archived_at
            stmt = stmt.where(column.is_not(None) if archived else column.is_(None))
        if customer_id is not None:
            stmt = stmt.where(OrderTemplateRow.customer_id == customer_id)
        if cursor:
            stmt = stmt.where(OrderTemplateRow.id > _after(cursor))
        async with self._sessions() as session:
            rows = list(await session.scalars(stmt.order_by(OrderTemplateRow.id).limit(limit + 1)))
        items = [
            TemplateSummary(
                id=r.id,
                name=r.name,
                customer_id=r.customer_id,
                current_version=r.current_version,
                archived_at=r.archived_at,
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
            for r in rows[:limit]
        ]
        return TemplatePage(
            items=items, next_cursor=_cursor(rows[limit - 1].id) if len(rows) > limit else None
        )

    # --- writing ----------------------------------------------------------------------------

    async def create(self, content: TemplateContent, principal: Principal) -> TemplateView:
        now = datetime.now(UTC)
        for _ in range(ID_ATTEMPTS):
            template_id = new_template_id()
            try:
                async with self._sessions.begin() as session:
                    row = OrderTemplateRow(
                        id=template_id,
                        name=content.name,
                        customer_id=content.customer.id if content.customer else None,
                        current_version=1,
                        created_at=now,
                        created_by=principal.name,
                        updated_at=now,
                    )
                    session.add(row)
                    await session.flush()
                    version = await self._add_version(session, row, 1, content, principal, now)
                    return self._view(row, version, content)
            except IntegrityError:
                continue  # the random id is taken: draw another
        raise ServiceError(Kind.UNAVAILABLE, "could not allocate a free template id, retry later")

    async def _add_version(
        self,
        session: AsyncSession,
        row: OrderTemplateRow,
        number: int,
        content: TemplateContent,
        principal: Principal,
        now: datetime,
    ) -> OrderTemplateVersionRow:
        owner = _owner(row.id, content)
        version = OrderTemplateVersionRow(
            template_id=row.id,
            version=number,
            owner=owner,
            content=await self._seal(session, owner, content),
            created_at=now,
            created_by=principal.name,
        )
        session.add(version)
        await session.flush()
        return version

    async def _edit(
        self,
        template_id: str,
        principal: Principal,
        change: Any,
    ) -> TemplateView:
        """A new version from ``change(current content) -> new content``."""
        now = datetime.now(UTC)
        try:
            async with self._sessions.begin() as session:
                row = await self._row(session, template_id, lock=True)
                if row.archived_at is not None:
                    raise _archived(row)
                current = await self._version(session, row, None)
                content: TemplateContent = change(await self._open(session, current))
                number = row.current_version + 1
                version = await self._add_version(session, row, number, content, principal, now)
                row.current_version, row.updated_at = number, now
                row.name = content.name
                row.customer_id = content.customer.id if content.customer else None
                await session.flush()
                return self._view(row, version, content)
        except IntegrityError as exc:  # another edit took this version number first
            raise ServiceError(
                Kind.CONFLICT, f"template {template_id} was edited meanwhile; read it and retry"
            ) from exc

    async def replace(
        self, template_id: str, content: TemplateContent, principal: Principal
    ) -> TemplateView:
        """PUT: the whole content as a new version."""
        return await self._edit(template_id, principal, lambda _: content)

    async def patch(
        self, template_id: str, patch: TemplatePatch, principal: Principal
    ) -> TemplateView:
        """PATCH: the given fields over the current version, as a new version."""
        changes = patch.model_dump(exclude_unset=True)

        def merged(current: TemplateContent) -> TemplateContent:
            doc = current.model_dump(mode="json")
            doc.update(changes)
            try:
                return TemplateContent.model_validate(doc)
            except ValidationError as exc:
                raise _problems(exc) from exc

        return await self._edit(template_id, principal, merged)

    async def archive(self, template_id: str, principal: Principal) -> TemplateView:
        """Archived for good (idempotent); its versions stay readable."""
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            row = await self._row(session, template_id, lock=True)
            if row.archived_at is None:
                row.archived_at, row.archived_by, row.updated_at = now, principal.name, now
            current = await self._version(session, row, None)
            return self._view(row, current, await self._open(session, current))

    async def suggestions(
        self, template_id: str, principal: Principal, limit: int = 5
    ) -> Recommendations:
        """Lines customers often order with the template's current lines (the analytics run's
        association rules), to add to the template: the SKUs it holds are never suggested."""
        view = await self.get(template_id)
        held = list(dict.fromkeys(line.sku for line in view.lines))
        # A long template starts from its first MAX_SKUS SKUs; none of its SKUs is suggested.
        found = await Analytics.of(self._s).recommendations(
            principal, skus=held[:MAX_SKUS], limit=limit + max(0, len(held) - MAX_SKUS)
        )
        mine = set(held)
        keep = [s for s in found.suggestions if s.sku not in mine][:limit]
        return found.model_copy(update={"held": sorted(held), "suggestions": keep})

    # --- using ------------------------------------------------------------------------------

    async def spec_for(
        self, template_id: str, overrides: TemplateOverrides, at: datetime
    ) -> OrderSpec:
        """The order the template makes at ``at`` (the version current then), priced from the
        list prices valid then."""
        async with self._sessions() as session:
            row = await self._row(session, template_id)
            if row.archived_at is not None and row.archived_at <= at:
                raise _archived(row)
            number = await session.scalar(
                select(OrderTemplateVersionRow.version)
                .where(
                    OrderTemplateVersionRow.template_id == row.id,
                    OrderTemplateVersionRow.created_at <= at,
                )
                .order_by(OrderTemplateVersionRow.version.desc())
                .limit(1)
            )
            version = await self._version(session, row, number)
            content = await self._open(session, version)
            prices = await list_prices_at(
                session, (line.sku for line in content.lines), content.currency, at
            )
        ref = TemplateRef(id=row.id, version=version.version)
        try:
            return order_spec(content, ref, overrides, prices, at)
        except TemplateUnusable as exc:
            raise ServiceError(
                Kind.CONFLICT, f"template {row.id}: {exc}", code="template_not_valid"
            ) from exc
        except PricingProblems as exc:
            raise ServiceError(
                Kind.INVALID,
                str(exc),
                fields=[{"field": p.field, "reason": p.reason} for p in exc.problems],
            ) from exc

    async def use(
        self,
        template_id: str,
        overrides: TemplateOverrides,
        principal: Principal,
        idempotency_key: str | None,
    ) -> tuple[OrderDetail, bool]:
        """Create an order from the template, like any other order (validation, credit,
        approval). A retry with the same ``Idempotency-Key`` is priced as of the first attempt,
        so it finds the same order; other overrides under that key: 409."""
        at = datetime.now(UTC)
        if idempotency_key is not None:
            async with self._sessions() as session:
                first = await session.get(IdempotencyKeyRow, (principal.name, idempotency_key))
            if first is not None:
                at = first.created_at
        spec = await self.spec_for(template_id, overrides, at)
        return await Orders(self._s).create(spec, principal, idempotency_key)
