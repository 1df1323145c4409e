"""``orderly import``, ``import-template``, ``import-cancel``: the real CLI against the test stack
(Temporal dev server, database, worker): the template round trip, re-imports creating nothing,
the report of a skip-invalid import, refused files, Ctrl-C and cancel."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from cli.imports import cli_principal
from cli.main import app
from domain.order import OrderSource
from services.imports import Imports, ImportView
from services.orders import Orders
from tests.api.conftest import services_for
from tests.conftest import Stack
from tests.import_files import csv_bytes, orders, row
from tests.keys import TEST_KEYS

ROOT = Path(__file__).resolve().parents[1]
IMPORT_ID = re.compile(r"IMP-[0-9A-Z]{10}")


def _env(stack: Stack) -> dict[str, str]:
    """ORDERLY_* settings that point the CLI at the test stack."""
    return {
        "ORDERLY_DATABASE_URL": stack.settings.database_url,
        "ORDERLY_TEMPORAL_TARGET": stack.client.service_client.config.target_host,
        "ORDERLY_TASK_QUEUE": stack.settings.task_queue,
        "ORDERLY_ENCRYPTION_KEYS": json.dumps(TEST_KEYS),
        "ORDERLY_ENCRYPTION_KEY_ID": "test-1",
        "ORDERLY_IMPORT_BATCH_SIZE": str(stack.settings.import_batch_size),
        "COLUMNS": "200",
    }


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    # Imports start many orders: the replay test checks the import workflow in the strict
    # sandbox; here the orders' own workflows need not re-import their code each time.
    return {"strict_sandbox": False, "import_batch_size": 20}


async def _cli(stack: Stack, *args: str) -> Result:
    """Run the CLI in a thread (it runs its own event loop) while the worker runs in this one."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=_env(stack))


def _import_id(output: str) -> str:
    found = IMPORT_ID.search(output)
    assert found is not None, output
    return found.group(0)


async def _view(stack: Stack, import_id: str) -> ImportView:
    return await Imports(services_for(stack)).get(import_id, cli_principal())


def _report(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))


async def test_template_round_trip(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "filled.xlsx"
    made = await _cli(stack, "import-template", "-o", str(path))
    assert made.exit_code == 0, made.output
    assert path.read_bytes().startswith(b"PK")
    again = await _cli(stack, "import-template", "-o", str(path))
    assert again.exit_code == 2
    assert "exists" in again.output

    result = await _cli(stack, "import", str(path))
    assert result.exit_code == 0, result.output
    import_id = _import_id(result.output)
    assert "completed" in result.output
    view = await _view(stack, import_id)
    assert view.status == "completed"
    assert view.counts.started == view.counts.orders_valid == 1
    [item] = await Imports(services_for(stack)).orders(import_id, cli_principal())
    assert item.status == "started"
    assert item.order_id is not None
    order = await Orders(services_for(stack)).get(item.order_id)
    assert order.source == OrderSource.IMPORT
    assert order.external_reference == item.order_ref
    assert order.created_by == cli_principal().name
    assert not (tmp_path / "filled-report.csv").exists()  # nothing to report


async def test_reimport_creates_nothing_new(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "three.csv"
    path.write_bytes(csv_bytes(orders(3, prefix="RE")))
    dry = await _cli(stack, "import", str(path), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output
    assert (await _view(stack, _import_id(dry.output))).counts.started == 0

    first = await _cli(stack, "import", str(path))
    assert first.exit_code == 0, first.output
    assert (await _view(stack, _import_id(first.output))).counts.started == 3

    second = await _cli(stack, "import", str(path))
    assert second.exit_code == 0, second.output
    view = await _view(stack, _import_id(second.output))
    assert (view.status, view.counts.started, view.counts.orders_skipped) == ("completed", 0, 3)
    assert re.search(r"already imported\s+3", second.output), second.output
    rows = _report(tmp_path / "three-report.csv")
    assert {r["code"] for r in rows} == {"already_imported"}
    assert {r["order_ref"] for r in rows} == {"RE-0", "RE-1", "RE-2"}


async def test_skip_invalid_writes_the_report(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(csv_bytes([*orders(2, prefix="SK"), row(order_ref="SK-BAD", sku="NOPE-1")]))
    blocked = await _cli(stack, "import", str(path), "--report", str(tmp_path / "blocked.csv"))
    assert blocked.exit_code == 1, blocked.output
    assert "blocked" in blocked.output
    assert (await _view(stack, _import_id(blocked.output))).counts.started == 0
    assert [r["code"] for r in _report(tmp_path / "blocked.csv")] == ["unknown_sku"]

    result = await _cli(stack, "import", str(path), "--mode", "skip-invalid")
    assert result.exit_code == 1, result.output  # completed, but a row had an error
    view = await _view(stack, _import_id(result.output))
    assert (view.status, view.counts.started, view.counts.orders_invalid) == ("completed", 2, 1)
    [problem] = _report(tmp_path / "mixed-report.csv")
    assert (problem["row"], problem["column"], problem["code"]) == ("4", "sku", "unknown_sku")
    assert problem["[order_ref]"] == "SK-BAD"
    assert problem["value"] == "NOPE-1"
    assert "unknown_sku" in result.output  # the first problems are printed
    assert "mixed-report.csv" in result.output


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("binary.csv", b"\x00\x01\x02\x03", "file: binary.csv holds binary data"),
        ("fake.xlsx", b"order_ref,sku\nPO-1,W\n", "file: fake.xlsx is named like an XLSX"),
        ("empty.csv", b"", "file: "),
    ],
)
async def test_bad_file_exits_2_with_the_reason(
    stack: Stack, tmp_path: Path, name: str, data: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    result = await _cli(stack, "import", str(path))
    assert result.exit_code == 2, result.output
    assert reason in " ".join(result.output.split())
    assert IMPORT_ID.search(result.output) is None  # nothing submitted


async def test_usage_errors_exit_2(stack: Stack, tmp_path: Path) -> None:
    missing = await _cli(stack, "import", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 2
    mode = await _cli(stack, "import", str(tmp_path), "--mode", "sometimes")
    assert mode.exit_code == 2
    cancel = await _cli(stack, "import-cancel", "PO-1")
    assert cancel.exit_code == 2
    assert "not an import id" in cancel.output


async def test_ctrl_c_stops_following_and_cancel_stops_the_import(
    stack: Stack, tmp_path: Path
) -> None:
    path = tmp_path / "many.csv"
    path.write_bytes(csv_bytes(orders(1000, prefix="CC")))  # fifty batches of 20
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "import",
        str(path),
        cwd=ROOT,
        env={**os.environ, **_env(stack), "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    seen = b""
    while not IMPORT_ID.search(seen.decode()):
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        assert line, seen.decode()
        seen += line
    proc.send_signal(signal.SIGINT)
    rest, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    output = (seen + rest).decode()
    import_id = _import_id(output)
    assert proc.returncode == 130, output
    assert f"orderly import-cancel {import_id}" in output
    assert (await _view(stack, import_id)).status in {"validating", "starting"}  # it goes on

    cancelled = await _cli(stack, "import-cancel", import_id)
    assert cancelled.exit_code == 0, cancelled.output
    view = await _view(stack, import_id)
    assert view.status == "cancelled"
    assert view.counts.cancelled > 0
    assert view.counts.started + view.counts.cancelled == 1000
    again = await _cli(stack, "import-cancel", import_id)
    assert again.exit_code == 1
    assert "nothing to cancel" in again.output
