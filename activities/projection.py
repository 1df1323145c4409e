from __future__ import annotations

from temporalio import activity

from db import readmodel
from db.session import SessionFactory
from db.vault import Vault
from workflows.contracts import ProjectRequest


class ProjectionActivities:
    def __init__(self, sessions: SessionFactory, vault: Vault) -> None:
        self._sessions = sessions
        self._vault = vault

    @activity.defn(name="project_order")
    async def project_order(self, req: ProjectRequest) -> None:
        """One transaction: the order's read-model rows and its new events in the event log
        (idempotent on order id + seq)."""
        async with self._sessions.begin() as session:
            await readmodel.project(
                session, req.state, req.events, vault=self._vault, final=req.final
            )
