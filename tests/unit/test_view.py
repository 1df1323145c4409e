"""OrderView.new: the view of a freshly received order."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from domain.status import Action, OrderStatus, RefundState
from domain.view import LineView, OrderView
from tests.unit.builders import line, spec

AT = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)


def _view(**overrides: object) -> OrderView:
    return OrderView.new("SO-20260314-7K2QF", spec(**overrides), "clerk@example.com", AT)


def test_identity_and_timestamps() -> None:
    view = _view()
    assert view.id == "SO-20260314-7K2QF"
    assert view.created_by == "clerk@example.com"
    assert view.created_at == AT
    assert view.updated_at == AT


def test_status_received_and_only_cancel_allowed() -> None:
    view = _view()
    assert view.status is OrderStatus.RECEIVED
    assert view.allowed_actions == [Action.CANCEL]


def test_timeline_empty_and_no_decisions_yet() -> None:
    view = _view()
    assert view.timeline == []
    assert view.credit is None
    assert view.closure is None
    assert view.approval.required is False
    assert view.approval.decision is None
    assert view.payment.prepay is False
    assert view.payment.captured == 0
    assert view.payment.refunded == 0
    assert view.payment.refund_state is RefundState.NONE
    assert view.shipment.tracking_number is None


@pytest.mark.parametrize(
    ("currency", "lines", "line_totals", "total"),
    [
        ("EUR", [line(quantity=2, unit_price="19.99")], ["39.98"], "39.98"),
        (
            "EUR",
            [line("A", 3, "1.10"), line("B", 1, "0.01"), line("C", 10, "0")],
            ["3.30", "0.01", "0"],
            "3.31",
        ),
        ("JPY", [line("A", 4, "250"), line("B", 1, "99")], ["1000", "99"], "1099"),
        ("KWD", [line("A", 2, "1.125")], ["2.250"], "2.250"),
    ],
)
def test_line_totals_and_total(
    currency: str, lines: list[dict[str, object]], line_totals: list[str], total: str
) -> None:
    view = _view(currency=currency, lines=lines)
    assert [lv.line_total for lv in view.lines] == [Decimal(t) for t in line_totals]
    assert view.total == Decimal(total)
    assert view.total == sum((lv.line_total for lv in view.lines), Decimal(0))
    assert view.currency == currency


def test_lines_keep_sku_quantity_and_price() -> None:
    view = _view(lines=[line("SKU-1", 5, "2.00"), line("SKU-2", 1, "7.50")])
    assert all(isinstance(lv, LineView) for lv in view.lines)
    assert [(lv.sku, lv.quantity, lv.unit_price) for lv in view.lines] == [
        ("SKU-1", 5, Decimal("2.00")),
        ("SKU-2", 1, Decimal("7.50")),
    ]


def test_copies_customer_address_payment_and_references() -> None:
    order = spec(payment_method={"type": "bank_transfer"})
    view = OrderView.new("SO-20260314-7K2QF", order, "clerk", AT)
    assert view.customer == order.customer
    assert view.shipping_address == order.shipping_address
    assert view.payment_method == order.payment_method
    assert view.sales_rep == "rep-jane"
    assert view.external_reference == "ESHOP-1"


def test_optional_references_default_to_none() -> None:
    view = _view(sales_rep=None, external_reference=None)
    assert view.sales_rep is None
    assert view.external_reference is None


def test_views_do_not_share_mutable_defaults() -> None:
    first, second = _view(), _view()
    first.allowed_actions.append(Action.PAY)
    first.payment.prepay = True
    assert second.allowed_actions == [Action.CANCEL]
    assert second.payment.prepay is False
