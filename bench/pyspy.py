"""Sampling profiles of the stack's processes with py-spy (optional: pass its path)."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

# --- sampling profiles with py-spy (optional: pass its path) ----------------------------------


def start_pyspy(binary: str, pid: int, out: Path, rate: int = 50) -> subprocess.Popen[bytes]:
    """``py-spy record`` in collapsed-stack format until :func:`stop_pyspy`."""
    return subprocess.Popen(
        [
            binary,
            "record",
            "-p",
            str(pid),
            "--format",
            "raw",
            "-o",
            str(out),
            "-r",
            str(rate),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_pyspy(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_BUCKETS = [
    ("workflow sandbox (import/restrictions)", ("workflow_sandbox",)),
    ("pydantic (validate/serialize)", ("pydantic",)),
    ("sqlalchemy", ("sqlalchemy",)),
    ("aiosqlite/sqlite3", ("aiosqlite", "sqlite3")),
    ("temporalio converter", ("temporalio/converter", "contrib/pydantic")),
    ("temporalio workflow instance", ("_workflow_instance",)),
    ("temporalio activity worker", ("worker/_activity",)),
    ("asyncio event loop", ("asyncio/",)),
    ("orderly workflows/", ("/workflows/",)),
    ("orderly db/", ("/db/",)),
    ("orderly domain/", ("/domain/",)),
    ("fastapi/starlette", ("fastapi", "starlette")),
    ("uvicorn/httptools/h11", ("uvicorn", "h11", "httptools")),
    ("grpc/client (temporalio service)", ("temporalio/service", "temporalio/client")),
]


def summarize_collapsed(path: Path, top: int = 20) -> dict[str, Any]:
    """Inclusive shares of the samples by area and by function, and the top self frames."""
    total = 0
    inclusive: Counter[str] = Counter()
    selfc: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {"error": f"no profile at {path}"}
    for line in lines:
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        n = int(count_s)
        total += n
        frames = stack.split(";")
        for f in set(frames):
            inclusive[f] += n
        selfc[frames[-1]] += n
        for name, needles in _BUCKETS:
            if any(nd in stack for nd in needles):
                buckets[name] += n

    def pct(v: int) -> float:
        return round(100 * v / total, 1) if total else 0.0

    return {
        "samples": total,
        "areas_inclusive_pct": {k: pct(v) for k, v in buckets.most_common()},
        "top_inclusive_pct": {k: pct(v) for k, v in inclusive.most_common(top)},
        "top_self_pct": {k: pct(v) for k, v in selfc.most_common(top)},
    }
