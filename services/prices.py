"""The price list: list prices per SKU and currency over periods that never overlap, and the
lookup that prices template (and import) lines with the row valid at a moment."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import PriceRow
from domain.money import CURRENCY_EXPONENTS, check_amount, check_currency
from domain.pricing import as_utc, check_period, overlaps
from services.auth import Principal
from services.context import Services
from services.errors import Kind, ServiceError, invalid

MAX_PAGE = 500


class PriceIn(BaseModel):
    """A list price of the SKU (in the path) in one currency over ``[valid_from, valid_to)``."""

    model_config = ConfigDict(extra="forbid")
    currency: str = Field(min_length=1, max_length=8, description="ISO 4217, e.g. EUR")
    list_price: Decimal = Field(
        max_digits=14, description="Major units, at most the currency's decimals."
    )
    valid_from: datetime = Field(description="UTC (a time without zone is taken as UTC).")
    valid_to: datetime | None = Field(default=None, description="Exclusive; null: open-ended.")


class PriceView(BaseModel):
    id: int
    sku: str
    currency: str
    list_price: Decimal
    valid_from: datetime
    valid_to: datetime | None
    updated_at: datetime
    updated_by: str


class PricePage(BaseModel):
    items: list[PriceView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


@dataclass(frozen=True)
class PriceFilter:
    sku: str | None = None
    currency: str | None = None
    at: datetime | None = None


def _utc(value: datetime, field: str) -> datetime:
    try:
        return as_utc(value)
    except OverflowError as exc:
        raise invalid(field, "date is out of range") from exc


def _major(amount: Decimal, currency: str) -> Decimal:
    """A stored amount (4 decimals) shown with the currency's own decimals."""
    return amount.quantize(Decimal(1).scaleb(-CURRENCY_EXPONENTS.get(currency, 2)))


def _view(row: PriceRow) -> PriceView:
    return PriceView(
        id=row.id,
        sku=row.sku,
        currency=row.currency,
        list_price=_major(row.list_price, row.currency),
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def _period(valid_from: datetime, valid_to: datetime | None) -> str:
    end = valid_to.isoformat() if valid_to else "open-ended"
    return f"[{valid_from.isoformat()}, {end})"


def _lock_id(sku: str, currency: str) -> int:
    digest = hashlib.sha256(f"price\0{sku}\0{currency}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _encode_cursor(row: PriceRow) -> str:
    raw = json.dumps([row.sku, row.currency, row.valid_from.isoformat()]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str, datetime]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        sku, currency, at = json.loads(raw)
        return str(sku), str(currency), as_utc(datetime.fromisoformat(at))
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise invalid("cursor", "cursor is not one this API returned") from exc


async def list_prices_at(
    session: AsyncSession, skus: Iterable[str], currency: str, at: datetime
) -> dict[str, Decimal]:
    """SKU -> list price in ``currency`` valid at ``at`` (SKUs without one are absent)."""
    wanted = sorted(set(skus))
    if not wanted:
        return {}
    rows = await session.scalars(
        select(PriceRow).where(
            PriceRow.sku.in_(wanted),
            PriceRow.currency == currency,
            PriceRow.valid_from <= at,
            or_(PriceRow.valid_to.is_(None), PriceRow.valid_to > at),
        )
    )
    return {r.sku: _major(r.list_price, r.currency) for r in rows}


class Prices:
    """The price list as support manages it and systems read it."""

    def __init__(self, services: Services) -> None:
        self._sessions = services.sessions

    async def put(self, sku: str, body: PriceIn, principal: Principal) -> tuple[PriceView, bool]:
        """Create the row of (sku, currency, valid_from), or replace its price and end; 409
        if the period overlaps another row of the SKU and currency. Returns it and whether it
        is new."""
        try:
            currency = check_currency(body.currency)
        except ValueError as exc:
            raise invalid("currency", str(exc)) from exc
        try:
            price = check_amount(body.list_price, currency)
        except ValueError as exc:
            raise invalid("list_price", str(exc)) from exc
        valid_from = _utc(body.valid_from, "valid_from")
        valid_to = _utc(body.valid_to, "valid_to") if body.valid_to is not None else None
        try:
            check_period(valid_from, valid_to)
        except ValueError as exc:
            raise invalid("valid_to", str(exc)) from exc
        now = datetime.now(UTC)
        try:
            async with self._sessions.begin() as session:
                if session.get_bind().dialect.name == "postgresql":
                    lock = func.pg_advisory_xact_lock(_lock_id(sku, currency))
                    await session.execute(select(lock))
                rows = list(
                    await session.scalars(
                        select(PriceRow).where(PriceRow.sku == sku, PriceRow.currency == currency)
                    )
                )
                same = next((r for r in rows if r.valid_from == valid_from), None)
                for other in rows:
                    if other is not same and overlaps(
                        valid_from, valid_to, other.valid_from, other.valid_to
                    ):
                        reason = (
                            f"{_period(valid_from, valid_to)} overlaps the {currency} price "
                            f"{_major(other.list_price, currency)} valid "
                            f"{_period(other.valid_from, other.valid_to)}; end that one first "
                            "(PUT it again with valid_to)"
                        )
                        raise ServiceError(
                            Kind.CONFLICT,
                            f"valid_from: {reason}",
                            code="price_overlap",
                            fields=[{"field": "valid_from", "reason": reason}],
                        )
                if same is None:
                    same = PriceRow(
                        sku=sku,
                        currency=currency,
                        valid_from=valid_from,
                        created_at=now,
                        list_price=price,
                        valid_to=valid_to,
                        updated_at=now,
                        updated_by=principal.name,
                    )
                    session.add(same)
                    created = True
                else:
                    same.list_price, same.valid_to = price, valid_to
                    same.updated_at, same.updated_by = now, principal.name
                    created = False
                await session.flush()
                view = _view(same)
        except IntegrityError as exc:  # a concurrent PUT of the same row (SQLite)
            raise ServiceError(
                Kind.CONFLICT, f"the {currency} price of {sku} changed meanwhile; retry"
            ) from exc
        return view, created

    async def list(self, flt: PriceFilter, *, limit: int, cursor: str | None) -> PricePage:
        """By SKU, currency and start; ``at``: only the rows valid at that moment."""
        stmt = select(PriceRow)
        if flt.sku is not None:
            stmt = stmt.where(PriceRow.sku == flt.sku)
        if flt.currency is not None:
            stmt = stmt.where(PriceRow.currency == flt.currency)
        if flt.at is not None:
            at = _utc(flt.at, "query.at")
            stmt = stmt.where(
                PriceRow.valid_from <= at,
                or_(PriceRow.valid_to.is_(None), PriceRow.valid_to > at),
            )
        if cursor:
            after = _decode_cursor(cursor)
            stmt = stmt.where(tuple_(PriceRow.sku, PriceRow.currency, PriceRow.valid_from) > after)
        stmt = stmt.order_by(PriceRow.sku, PriceRow.currency, PriceRow.valid_from)
        async with self._sessions() as session:
            rows = list(await session.scalars(stmt.limit(limit + 1)))
        next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
        return PricePage(items=[_view(r) for r in rows[:limit]], next_cursor=next_cursor)
