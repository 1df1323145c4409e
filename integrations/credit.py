"""Credit bureau: a score and a credit limit per customer; the simulator keeps profiles."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from db.models import CreditProfileRow
from db.session import SessionFactory
from db.upsert import insert_for


@dataclass(frozen=True)
class CreditReport:
    score: int
    credit_limit: Decimal


class CreditBureau(Protocol):
    async def report(self, customer_id: str) -> CreditReport: ...


class SimulatedBureau:
    """Known customers have a profile row; everybody else gets the configured defaults."""

    def __init__(self, sessions: SessionFactory, *, default_score: int, default_limit: Decimal):
        self._sessions = sessions
        self._default = CreditReport(score=default_score, credit_limit=default_limit)

    async def report(self, customer_id: str) -> CreditReport:
        async with self._sessions() as session:
            row = await session.get(CreditProfileRow, customer_id)
        if row is None:
            return self._default
        return CreditReport(score=row.score, credit_limit=row.credit_limit)

    async def set_profile(self, customer_id: str, *, score: int, credit_limit: Decimal) -> None:
        async with self._sessions.begin() as session:
            values = {"score": score, "credit_limit": credit_limit}
            stmt = insert_for(session, CreditProfileRow).values(customer_id=customer_id, **values)
            await session.execute(
                stmt.on_conflict_do_update(index_elements=["customer_id"], set_=values)
            )
