"""The customer's tracking page, reached from the link in their emails: the order's status in
words, the shipment's tracking and an expected delivery date, the city it goes to, and nothing
else (the total only when ``tracking_show_prices``). Public: the signed, expiring token in the
path is the only key; an expired link is 410, a changed or unknown one 404, never another
order."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.errors import STATUS
from console.auth import ServicesDep, open_page
from console.web import page
from services.errors import ServiceError
from services.tracking import PROGRESS, LinkProblem, OrderTracking, TrackingRefused

router = APIRouter(prefix="/track", include_in_schema=False)
PRIVATE = {"X-Robots-Tag": "noindex, nofollow", "Referrer-Policy": "no-referrer"}


def _private(response: Response) -> Response:
    response.headers.update(PRIVATE)
    return response


@router.get("/{token}", dependencies=[Depends(open_page)])
async def tracking_page(request: Request, token: str, services: ServicesDep) -> Response:
    """An order's public tracking page."""
    try:
        view = await OrderTracking(services).view(token)
    except TrackingRefused as exc:
        expired = exc.problem is LinkProblem.EXPIRED
        status = 410 if expired else 404
        return _private(
            page(
                request,
                "track_error.html",
                {"expired": expired, "unavailable": False},
                status=status,
            )
        )
    except ServiceError as exc:
        request.state.audit_reason = exc.message
        failed = {"expired": False, "unavailable": True}
        return _private(page(request, "track_error.html", failed, status=STATUS[exc.kind]))
    context = {"view": view, "progress": [s.value for s in PROGRESS]}
    return _private(page(request, "track.html", context))
