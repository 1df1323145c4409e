from __future__ import annotations

from temporalio import activity

from db import readmodel
from db.session import SessionFactory
from workflows.contracts import ProjectRequest


class ProjectionActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    @activity.defn(name="project_order")
    async def project_order(self, req: ProjectRequest) -> None:
        """Upsert the read-model row and append new timeline rows (idempotent on order + seq)."""
        async with self._sessions.begin() as session:
            await readmodel.project(session, req.view, req.events)
