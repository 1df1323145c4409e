"""The short chaos run: orders of every kind survive worker kills, a server restart, a flaky
gateway and a locked database, with every ledger invariant intact (bench/chaos.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("orders", "kill_every"),
    [
        pytest.param(40, 8, id="ci"),
        pytest.param(100, 8, id="short", marks=pytest.mark.long),
    ],
)
def test_short_chaos_run_keeps_every_invariant(
    tmp_path: Path, orders: int, kill_every: int
) -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "chaos.py"),
            "--orders",
            str(orders),
            "--kill-every",
            str(kill_every),
            "--concurrency",
            "25",
            "--timeout",
            "240",
            "--var",
            str(tmp_path / "var"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=290,
        check=False,
    )
    report = run.stdout[-6000:]
    assert run.returncode == 0, f"{report}\n--- stderr ---\n{run.stderr[-3000:]}"
    assert "RESULT: all invariants hold" in run.stdout
    assert "history replays on the current code" in run.stdout
    assert "kill -9 worker" in run.stdout
    assert "restarting the Temporal server" in run.stdout
    assert "gateway that times out" in run.stdout
    assert "database locked" in run.stdout
