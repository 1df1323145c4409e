"""The customer master: support and admins manage records, systems upsert them in bulk."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from api.deps import ServicesDep, allow
from api.routes.orders import ERRORS
from domain.customers import CustomerIn, CustomerPatch, Tag
from domain.order import CustomerTier
from services.auth import Principal, Role
from services.customers import (
    MAX_BULK,
    BulkResult,
    ChangePage,
    CustomerFilter,
    CustomerPage,
    Customers,
    CustomerView,
)
from services.erasure import Erasure, ErasureResult

router = APIRouter(prefix="/customers", tags=["customers"], responses=ERRORS)
# Records hold PII and set what orders may skip (tier, credit limit): staff only. No scope yet
# covers them, so keys with scopes are refused; nor can an orders:own key be limited to "its"
# customers.
Staff = Annotated[Principal, Depends(allow(Role.SUPPORT, scope=None, own=False))]
Systems = Annotated[Principal, Depends(allow(Role.SYSTEM, scope=None, own=False))]
CustomerId = Annotated[
    str,
    Path(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$", description="e.g. C-1042"),
]


async def _customers(services: ServicesDep) -> Customers:
    return Customers(services)


CustomersDep = Annotated[Customers, Depends(_customers)]


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[JsonValue] = Field(
        min_length=1,
        max_length=MAX_BULK,
        description="Customer records (as for POST /customers); each row is checked on its own.",
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CustomerView)
async def create_customer(
    body: CustomerIn, principal: Staff, customers: CustomersDep
) -> CustomerView:
    """Create a master record (409 if the id exists)."""
    return await customers.create(body, principal)


@router.get("", response_model=CustomerPage)
async def list_customers(
    _: Staff,
    customers: CustomersDep,
    region: Annotated[str | None, Query(max_length=64)] = None,
    tier: CustomerTier | None = None,
    tag: Annotated[Tag | None, Query()] = None,
    suggested_tier: CustomerTier | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> CustomerPage:
    """Customers by id, with cursor pagination; filter by region, tier, tag or suggestion."""
    flt = CustomerFilter(region=region, tier=tier, tag=tag, suggested_tier=suggested_tier)
    return await customers.list(flt, limit=limit, cursor=cursor)


@router.post("/bulk", response_model=BulkResult)
async def bulk_upsert_customers(
    body: BulkRequest, principal: Systems, customers: CustomersDep
) -> BulkResult:
    """Create or update up to 1000 records; a result per row, bad rows never block good ones."""
    return await customers.bulk_upsert(body.items, principal)


@router.get("/{customer_id}", response_model=CustomerView)
async def get_customer(customer_id: CustomerId, _: Staff, customers: CustomersDep) -> CustomerView:
    """One master record, name and email included."""
    return await customers.get(customer_id)


@router.patch("/{customer_id}", response_model=CustomerView)
async def update_customer(
    customer_id: CustomerId, body: CustomerPatch, principal: Staff, customers: CustomersDep
) -> CustomerView:
    """Change region, tier, credit limit, tags, name, email or phone; each change is recorded."""
    return await customers.update(customer_id, body, principal)


@router.delete("/{customer_id}/pii", response_model=ErasureResult)
async def erase_customer_pii(
    customer_id: CustomerId, principal: Staff, services: ServicesDep
) -> ErasureResult:
    """Erase the customer's personal data for good (409 while an order of theirs is open)."""
    return await Erasure(services).erase_pii(customer_id, principal)


@router.get("/{customer_id}/changes", response_model=ChangePage)
async def customer_changes(
    customer_id: CustomerId,
    _: Staff,
    customers: CustomersDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ChangePage:
    """Every change of the record, oldest first: who, when, what (no personal data)."""
    return await customers.changes(customer_id, after=after, limit=limit)
