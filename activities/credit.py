from __future__ import annotations

from sqlalchemy import select
from temporalio import activity

from activities.errors import as_application_errors
from db import readmodel
from db.models import CustomerRow
from db.session import SessionFactory
from integrations.credit import CreditBureau
from workflows.contracts import CreditReportRequest, CreditReportResult


class CreditActivities:
    def __init__(self, bureau: CreditBureau, sessions: SessionFactory) -> None:
        self._bureau = bureau
        self._sessions = sessions

    @activity.defn(name="check_credit")
    async def check_credit(self, req: CreditReportRequest) -> CreditReportResult:
        """Bureau report plus the customer's open exposure from the read model; a credit limit
        in the customer's master record overrides the bureau's."""
        async with as_application_errors():
            report = await self._bureau.report(req.customer_id)
        async with self._sessions() as session:
            exposure = await readmodel.open_exposure(
                session,
                customer_id=req.customer_id,
                currency=req.currency,
                exclude_order=req.order_id,
            )
            override = await session.scalar(
                select(CustomerRow.credit_limit).where(CustomerRow.id == req.customer_id)
            )
        limit = report.credit_limit if override is None else override
        return CreditReportResult(score=report.score, credit_limit=limit, open_exposure=exposure)
