"""Processes the chaos run starts, kills and restarts: the Temporal dev server and the worker."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def migrate(env: dict[str, str]) -> None:
    """Apply the alembic migrations to the database in ``env``."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "alembic",
            "-c",
            str(ROOT / "db" / "alembic.ini"),
            "upgrade",
            "head",
        ],
        check=True,
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
    )


def _wait_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {seconds} s")


class TemporalServer:
    """The dev server on a SQLite file (WAL), restartable on the same file."""

    def __init__(self, db_file: Path, port: int) -> None:
        self.db_file, self.port = db_file, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.db_file.parent / "temporal.log").open("ab")
        self.proc = subprocess.Popen(
            [
                str(BIN / "temporal"),
                "server",
                "start-dev",
                "--headless",
                "--db-filename",
                str(self.db_file),
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--sqlite-pragma",
                "journal_mode=wal",
                "--sqlite-pragma",
                "synchronous=normal",
                "--log-level",
                "error",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_port(self.port, self.proc)

    def stop(self) -> None:
        """SIGTERM and wait for the process to exit (a second server on the file would fail)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


class WorkerProcess:
    """``python worker.py`` in its own process, killed with SIGKILL and started again."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            cwd=ROOT,
            env={**os.environ, **self.env, **(extra_env or {})},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
