"""Stock levels and reorder points (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import ServicesDep, allow
from api.routes.orders import ERRORS
from api.routes.reports import Sku
from services.auth import Principal, Role, Scope
from services.inventory import InventoryAdmin, StockIn, StockView

router = APIRouter(prefix="/inventory", tags=["inventory"], responses=ERRORS)
Admin = Annotated[Principal, Depends(allow(Role.ADMIN, scope=Scope.INVENTORY_ADMIN, own=False))]


async def _inventory(services: ServicesDep) -> InventoryAdmin:
    return InventoryAdmin(services.sessions)


InventoryDep = Annotated[InventoryAdmin, Depends(_inventory)]


@router.get("", response_model=list[StockView])
async def list_stock(
    principal: Admin,
    inventory: InventoryDep,
    below_reorder_point: Annotated[bool, Query(description="Only SKUs to reorder.")] = False,
) -> list[StockView]:
    return await inventory.list(principal, below=below_reorder_point)


@router.get("/{sku}", response_model=StockView)
async def get_stock(sku: Sku, principal: Admin, inventory: InventoryDep) -> StockView:
    """On hand, reserved by open orders, available, and the reorder point."""
    return await inventory.get(principal, sku)


@router.put("/{sku}", response_model=StockView)
async def put_stock(
    sku: Sku, body: StockIn, principal: Admin, inventory: InventoryDep
) -> StockView:
    """Set units on hand (never below what open orders reserved: 422) and the reorder point."""
    return await inventory.put(principal, sku, body)
