"""What the end-to-end tests share: worker processes to kill, and the API without a worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from config import Settings
from db.session import SessionFactory
from tests.api.conftest import Api, open_api
from tests.conftest import make_settings, seeded_stack
from tests.keys import TEST_KEYS

ROOT = Path(__file__).resolve().parents[2]
PAYMENT_DELAY = 3  # seconds the simulated gateway takes per capture (worker processes)


@dataclass
class Workers:
    """``python worker.py`` processes; every one is SIGKILLed at the latest in teardown."""

    env: dict[str, str]
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> subprocess.Popen[bytes]:
        log = self.logs / f"worker-{len(self.procs) + 1}.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, "worker.py"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        """``kill -9``: no shutdown, no goodbye to the server."""
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)

    def kill_all(self) -> None:
        for proc in self.procs:
            self.kill(proc)

    def assert_running(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.poll() is None, f"worker exited with {proc.returncode}\n{self.output()}"

    def output(self) -> str:
        return "\n".join(
            f"--- {log.name} ---\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(self.logs.glob("worker-*.log"))
        )


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The API puts these into the order's policy: 10 s per try, heartbeats every 2 s.
    return make_settings(database_url, activity_heartbeat="PT2S", activity_timeout="PT10S")


@pytest.fixture
def workers(
    temporal_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> Iterator[Workers]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
    env.update(
        ORDERLY_TEMPORAL_TARGET=temporal_env.client.service_client.config.target_host,
        ORDERLY_DATABASE_URL=settings.database_url,
        ORDERLY_TASK_QUEUE=settings.task_queue,
        ORDERLY_MAIL_TRANSPORT="outbox",
        ORDERLY_SIM_PAYMENT_DELAY=str(PAYMENT_DELAY),
        ORDERLY_ACTIVITY_TIMEOUT="PT10S",
        ORDERLY_ACTIVITY_HEARTBEAT="PT2S",
        ORDERLY_ENCRYPTION_KEYS=json.dumps(TEST_KEYS),
        ORDERLY_ENCRYPTION_KEY_ID="test-1",
        PYTHONUNBUFFERED="1",
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Workers(env=env, logs=logs)
    try:
        yield procs
    finally:
        procs.kill_all()


@pytest.fixture
async def api_without_worker(
    temporal_env: WorkflowEnvironment, settings: Settings, sessions: SessionFactory
) -> AsyncIterator[Api]:
    """The in-process API of tests/api, but no worker: the workers are the processes above."""
    stack = await seeded_stack(temporal_env.client, settings, sessions)
    async with open_api(stack) as api:
        yield api
