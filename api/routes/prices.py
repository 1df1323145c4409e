"""The price list: list prices per SKU and currency with validity periods."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from api.deps import ServicesDep, allow
from api.routes.orders import ERRORS
from services.auth import Principal, Role, Scope
from services.prices import MAX_PAGE, PriceFilter, PriceIn, PricePage, Prices, PriceView

router = APIRouter(prefix="/prices", tags=["prices"], responses=ERRORS)
# Support (and admins) keep the list; systems read it to show prices. Not order data, so an
# orders:own key is not limited by it.
Manager = Annotated[Principal, Depends(allow(Role.SUPPORT, scope=Scope.PRICES_WRITE, own=False))]
Reader = Annotated[
    Principal, Depends(allow(Role.SUPPORT, Role.SYSTEM, scope=Scope.PRICES_READ, own=True))
]
SkuPath = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,63}$",
        description="The SKU, e.g. WIDGET-1 (may contain '/').",
    ),
]


async def _prices(services: ServicesDep) -> Prices:
    return Prices(services)


PricesDep = Annotated[Prices, Depends(_prices)]


@router.put(
    "/{sku:path}",
    response_model=PriceView,
    responses={201: {"model": PriceView, "description": "A new row of the price list"}},
)
async def put_price(
    sku: SkuPath, body: PriceIn, principal: Manager, prices: PricesDep, response: Response
) -> PriceView:
    """Set the list price of a SKU in a currency from `valid_from` (same start: replaced)."""
    view, created = await prices.put(sku, body, principal)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return view


@router.get("", response_model=PricePage)
async def list_prices(
    _: Reader,
    prices: PricesDep,
    sku: Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")] = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
    at: Annotated[datetime | None, Query(description="Only rows valid at this moment (UTC).")] = (
        None
    ),
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> PricePage:
    """Price-list rows by SKU, currency and start; with `at`, only those valid then."""
    return await prices.list(
        PriceFilter(sku=sku, currency=currency, at=at), limit=limit, cursor=cursor
    )
