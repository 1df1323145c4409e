"""How events read on an order's timeline: one line each, and their own fields."""

from __future__ import annotations

from domain import events as ev


def describe(e: ev.OrderEvent, currency: str = "") -> str:
    """One line for the timeline."""
    match e:
        case ev.Received(total=total, spec=spec):
            return f"Order received: {total} {spec.currency}"
        case ev.CreditCheckStarted():
            return "Credit check started"
        case ev.CreditChecked(decision=d):
            return f"Credit {d.outcome}: {d.reason}"
        case ev.StockReserved(units=units):
            return f"Reserved {units} units"
        case ev.OutOfStock(reason=reason):
            return f"Out of stock: {reason}"
        case ev.StockReleased(units=units):
            return f"Released {units} reserved units"
        case ev.ApprovalChainDecided(levels=levels):
            names = ", ".join(f"{c.level} ({c.name})" for c in levels) or "none"
            return f"Approval levels needed: {names}"
        case ev.ApprovalRequested(level=level):
            return f"Level {level} to decide"
        case ev.ApprovalReminderSent(level=level):
            return f"Level {level} approvers reminded"
        case ev.ApprovalEscalated(level=level, to_level=to_level):
            return f"Level {level} escalated to level {to_level}"
        case ev.LevelApproved(level=level, comment=comment):
            return f"Level {level} approved" + (f": {comment}" if comment else "")
        case ev.LevelRejected(level=level, reason=reason):
            return f"Level {level} rejected: {reason}"
        case ev.ChangesRequested(reason=reason):
            return f"Changes requested: {reason}"
        case ev.Amended(old_total=old, total=new):
            return f"Amended: total {old} -> {new} {currency}".rstrip()
        case ev.ApprovalExpired():
            return "Approval expired"
        case ev.Confirmed():
            return "Order confirmed"
        case ev.PaymentRequested(amount=amount, due_at=due):
            return f"Waiting for payment of {amount} {currency} by {due.isoformat()}"
        case ev.PaymentReminderSent():
            return "Customer reminded to pay"
        case ev.PaymentReceived(amount=amount):
            return f"Payment of {amount} {currency} received"
        case ev.PaymentDeclined(reason=reason):
            return f"Payment declined: {reason}"
        case ev.PaymentCaptured(amount=amount):
            return f"Captured {amount} {currency}"
        case ev.PaymentExpired():
            return "Payment deadline passed"
        case ev.PaymentRefunded(amount=amount):
            return f"Refunded {amount} {currency}"
        case ev.ShipmentBooked(parcel=n, carrier=carrier, tracking_number=tracking):
            return f"Parcel {n} booked with {carrier}: {tracking}"
        case ev.ShipmentSplit(parcels=parcels):
            return f"Shipment split into {len(parcels)} parcels"
        case ev.ShipmentCancelled(parcel=n, tracking_number=tracking):
            return f"Parcel {n} booking cancelled ({tracking})"
        case ev.CarrierScan(parcel=n, scan=scan, note=note):
            return f"Parcel {n}: {scan.replace('_', ' ')}" + (f" ({note})" if note else "")
        case ev.CarrierEventIgnored(scan=scan, why=why):
            return f"Carrier event {scan} ignored: {why}"
        case ev.Shipped(parcel=n):
            return f"Shipped: parcel {n} picked up by the carrier"
        case ev.Delivered():
            return "Delivered to the customer"
        case ev.DeliveryOverdue():
            return "Delivery SLA passed without delivery"
        case ev.CancelRequested(reason=reason):
            return f"Cancellation requested: {reason}"
        case ev.CompensationFailed(step=step, reason=reason):
            return f"Compensation {step} refused: {reason}; support must retry or resolve it"
        case ev.CompensationRetried(step=step):
            return f"Compensation {step} retried"
        case ev.CompensationResolved(step=step, note=note):
            return f"Compensation {step} resolved by hand: {note}"
        case ev.Completed():
            return "Order completed"
        case ev.Cancelled(reason=reason):
            return f"Order cancelled: {reason}"
        case ev.Rejected(reason=reason):
            return f"Order rejected: {reason}"
        case ev.Failed(reason=reason):
            return f"Order failed: {reason}"
    return e.type  # pragma: no cover


def event_data(e: ev.OrderEvent) -> dict[str, object]:
    """The event's own fields (JSON), without the common ones, for the timeline."""
    return e.model_dump(mode="json", exclude={"seq", "at", "actor", "type"})
