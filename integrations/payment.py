"""Payment gateway: capture and refund with idempotency keys, and a simulator with a ledger."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from db.models import PaymentLedgerRow
from db.session import SessionFactory
from integrations.errors import PaymentDeclined, RefundRefused, TransientError

# Test tokens, as real gateways publish them: these always decline.
DECLINING_TOKENS = frozenset({"tok_decline", "tok_insufficient_funds", "4000000000000002"})
# Captures succeed, every refund is refused (e.g. a closed card account).
REFUND_REFUSING_TOKENS = frozenset({"tok_refund_refused"})
REFUNDS_REFUSED = "refunds refused: card account closed"


@dataclass(frozen=True)
class Charge:
    reference: str
    amount_minor: int
    currency: str


class PaymentGateway(Protocol):
    async def capture(
        self, *, key: str, order_id: str, amount_minor: int, currency: str, token: str
    ) -> Charge: ...

    async def refund(
        self, *, key: str, order_id: str, amount_minor: int, currency: str
    ) -> Charge: ...


class SimulatedGateway:
    """A gateway that keeps every capture and refund in ``sim_payment_ledger``.

    The same idempotency key always yields the same charge (or the same decline), so retries
    never charge twice. ``transient_failures`` makes the first N calls per key fail transiently;
    ``delay`` makes the answer slow *after* the charge is booked, the case retries must survive.
    """

    def __init__(
        self, sessions: SessionFactory, *, delay: float = 0.0, transient_failures: int = 0
    ) -> None:
        self._sessions = sessions
        self._delay = delay
        self._transient_failures = transient_failures
        self._calls: Counter[str] = Counter()

    async def _before_call(self, key: str) -> None:
        self._calls[key] += 1
        if self._calls[key] <= self._transient_failures:
            raise TransientError(f"gateway timeout (simulated) for {key}")

    async def _existing(self, key: str) -> PaymentLedgerRow | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(PaymentLedgerRow).where(PaymentLedgerRow.idempotency_key == key)
            )

    async def _record(self, row: PaymentLedgerRow) -> PaymentLedgerRow:
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:  # a concurrent retry with the same key won the race
            existing = await self._existing(row.idempotency_key)
            assert existing is not None
            return existing
        return row

    async def _answer(self, row: PaymentLedgerRow) -> Charge:
        if self._delay:
            await asyncio.sleep(self._delay)
        return self._result(row)

    @staticmethod
    def _result(row: PaymentLedgerRow) -> Charge:
        if row.status == "declined":
            raise PaymentDeclined(row.detail)
        return Charge(reference=row.reference, amount_minor=row.amount_minor, currency=row.currency)

    async def capture(
        self, *, key: str, order_id: str, amount_minor: int, currency: str, token: str
    ) -> Charge:
        await self._before_call(key)
        existing = await self._existing(key)
        if existing is not None:
            return self._result(existing)
        declined = token in DECLINING_TOKENS
        row = PaymentLedgerRow(
            idempotency_key=key,
            order_id=order_id,
            kind="capture",
            status="declined" if declined else "succeeded",
            amount_minor=amount_minor,
            currency=currency,
            reference=f"ch_{secrets.token_hex(8)}",
            detail="card declined by issuer"
            if declined
            else (REFUNDS_REFUSED if token in REFUND_REFUSING_TOKENS else ""),
            created_at=datetime.now(UTC),
        )
        return await self._answer(await self._record(row))

    async def refund(self, *, key: str, order_id: str, amount_minor: int, currency: str) -> Charge:
        await self._before_call(key)
        existing = await self._existing(key)
        if existing is not None:
            return self._result(existing)
        if await self._refunds_refused(order_id):
            raise RefundRefused("the card account is closed: refunds are refused")
        balance = await self.balance(order_id)
        if amount_minor > balance:
            raise RefundRefused(f"refund {amount_minor} exceeds captured balance {balance}")
        row = PaymentLedgerRow(
            idempotency_key=key,
            order_id=order_id,
            kind="refund",
            status="succeeded",
            amount_minor=amount_minor,
            currency=currency,
            reference=f"re_{secrets.token_hex(8)}",
            created_at=datetime.now(UTC),
        )
        return await self._answer(await self._record(row))

    async def _refunds_refused(self, order_id: str) -> bool:
        async with self._sessions() as session:
            found = await session.scalar(
                select(PaymentLedgerRow.id).where(
                    PaymentLedgerRow.order_id == order_id,
                    PaymentLedgerRow.kind == "capture",
                    PaymentLedgerRow.detail == REFUNDS_REFUSED,
                )
            )
        return found is not None

    async def balance(self, order_id: str) -> int:
        """Captured minus refunded, in minor units."""
        totals = await self.totals(order_id)
        return totals["capture"] - totals["refund"]

    async def totals(self, order_id: str) -> dict[str, int]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(PaymentLedgerRow.kind, func.sum(PaymentLedgerRow.amount_minor))
                .where(PaymentLedgerRow.order_id == order_id)
                .where(PaymentLedgerRow.status == "succeeded")
                .group_by(PaymentLedgerRow.kind)
            )
            found = {kind: int(total) for kind, total in rows}
        return {"capture": found.get("capture", 0), "refund": found.get("refund", 0)}

    async def entries(self, order_id: str) -> list[PaymentLedgerRow]:
        async with self._sessions() as session:
            result = await session.scalars(
                select(PaymentLedgerRow)
                .where(PaymentLedgerRow.order_id == order_id)
                .order_by(PaymentLedgerRow.id)
            )
            return list(result)
