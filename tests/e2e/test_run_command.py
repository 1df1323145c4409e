"""`make run` as a user runs it: start devstack.py, drive an order over HTTP, Ctrl-C, restart.

The stack is a real process tree (Temporal dev server, worker, uvicorn, and devproxy.py in
front of the Temporal UI), each child in its own session. The test finds the children through
/proc (no psutil), checks they are gone after Ctrl-C, and kills whatever is left in ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus

from config import Settings
from devstack import DEV_PRINCIPALS
from tests.console import sign_in_http
from tests.helpers import eventually
from workflows.client import connect

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ORDER = ROOT / "docs" / "example-order.json"
READY_LINE = "Press Ctrl-C to stop."
KEY_LINE = re.compile(r"^\s+(dev-[a-z]+)\s+.+?\s+(ok_\S+)\s*$", re.MULTILINE)
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
DEMO_ORDERS = 300

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (all held open until every one is picked)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _proc_pids() -> Iterator[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def children_of(pid: int) -> dict[int, str]:
    """Direct children of ``pid`` with their command lines."""
    found: dict[int, str] = {}
    for child in _proc_pids():
        stat = _read(Path(f"/proc/{child}/stat")).decode(errors="replace")
        if not stat:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found[child] = _read(Path(f"/proc/{child}/cmdline")).replace(b"\0", b" ").decode()
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    stat = _read(Path(f"/proc/{pid}/stat")).decode(errors="replace")
    if not stat:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _subjects(directory: Path) -> set[str]:
    return {
        str(email.message_from_bytes(f.read_bytes(), policy=email.policy.default)["Subject"])
        for f in directory.glob("*.eml")
    }


def _outbox(var: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(var / "orderly.db") as db:
        cursors = db.execute("SELECT * FROM consumer_cursors").fetchall()
        rows = db.execute("SELECT key, status, attempts, last_error FROM mail_outbox").fetchall()
    return [*cursors, *rows]


def stack_processes(var: Path, temporal_target: str) -> dict[int, str]:
    """Every live process of a devstack run: named after its var dir or given its Temporal."""
    marker_cmd = str(var).encode()
    marker_env = f"ORDERLY_TEMPORAL_TARGET={temporal_target}".encode()
    found: dict[int, str] = {}
    for pid in _proc_pids():
        if pid == os.getpid() or not alive(pid):
            continue
        cmdline = _read(Path(f"/proc/{pid}/cmdline"))
        environ = _read(Path(f"/proc/{pid}/environ")).split(b"\0")
        if marker_cmd in cmdline or marker_env in environ:
            found[pid] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


class DevStack:
    """One ``python devstack.py`` run with its output captured to a file."""

    def __init__(self, var: Path, ports: dict[str, int], out: Path) -> None:
        self.var, self.ports, self.out = var, ports, out
        self.temporal_target = f"127.0.0.1:{ports['temporal']}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
        cmd = [
            sys.executable,
            "devstack.py",
            "--var",
            str(var),
            "--api-port",
            str(ports["api"]),
            "--temporal-port",
            str(ports["temporal"]),
            "--ui-port",
            str(ports["ui"]),
            "--ui-internal-port",
            str(ports["ui_internal"]),
            "--demo-orders",
            str(DEMO_ORDERS),
        ]
        with out.open("wb") as sink:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the test's own Ctrl-C must not reach it
            )

    @property
    def output(self) -> str:
        return _read(self.out).decode(errors="replace")

    def diagnostics(self) -> str:
        parts = [f"--- devstack output ---\n{self.output}"]
        for log in sorted(self.var.glob("*.log")):
            tail = _read(log).decode(errors="replace")[-3000:]
            parts.append(f"--- {log.name} (tail) ---\n{tail}")
        return "\n".join(parts)

    async def wait_ready(self) -> dict[str, str]:
        """Wait for the banner; return the dev API keys as printed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while READY_LINE not in self.output:
            if self.proc.poll() is not None:
                pytest.fail(f"devstack exited with {self.proc.returncode}\n{self.diagnostics()}")
            if loop.time() > deadline:
                pytest.fail(f"no banner within {START_TIMEOUT} s\n{self.diagnostics()}")
            await asyncio.sleep(0.1)
        keys = dict(KEY_LINE.findall(self.output))
        assert set(keys) == set(DEV_PRINCIPALS), self.output
        return keys

    async def interrupt(self) -> int | None:
        """Ctrl-C; the exit code, or None if it did not exit within the timeout."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_TIMEOUT
        while self.proc.poll() is None and loop.time() < deadline:
            await asyncio.sleep(0.1)
        return self.proc.poll()

    def kill_everything(self) -> None:
        """Last resort for ``finally``: SIGKILL devstack and every process of this run."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        for pid in stack_processes(self.var, self.temporal_target):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def _get(http: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    response = await http.get(f"/orders/{order_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_status(
    http: httpx.AsyncClient, order_id: str, status: str, timeout: float = 20
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        body = await _get(http, order_id)
        if body["status"] == status:
            return body
        if loop.time() > deadline:
            raise AssertionError(f"{order_id} not {status} within {timeout} s: {body['status']}")
        await asyncio.sleep(0.1)


async def carrier(http: httpx.AsyncClient, order_id: str, *events: str) -> None:
    for event in events:
        response = await http.post(
            f"/orders/{order_id}/shipment-events", json={"event": event, "location": "Hub 7"}
        )
        assert response.status_code == 202, response.text


async def create(http: httpx.AsyncClient, payload: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/orders", json=payload)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def stop_and_check(stack: DevStack) -> None:
    """Ctrl-C: exit code 0 within the timeout, no child left, every port closed."""
    children = children_of(stack.proc.pid)
    names = ("temporal", "worker.py", "uvicorn", "devproxy.py")
    kinds = sorted(next((n for n in names if n in cmd), cmd) for cmd in children.values())
    assert kinds == ["devproxy.py", "temporal", "uvicorn", "worker.py", "worker.py"], children
    found = stack_processes(stack.var, stack.temporal_target)
    assert set(children) | {stack.proc.pid} <= set(found), found  # the scan sees them all
    code = await stack.interrupt()
    assert code == 0, f"exit code {code} after Ctrl-C\n{stack.diagnostics()}"
    assert "Stopped." in stack.output
    lingering = {pid: cmd for pid, cmd in children.items() if alive(pid)}
    assert not lingering, f"children still running after Ctrl-C: {lingering}"
    leftovers = stack_processes(stack.var, stack.temporal_target)
    assert not leftovers, f"processes of the stack still running: {leftovers}"
    still_listening = [name for name, port in stack.ports.items() if port_open(port)]
    assert not still_listening, f"ports still open after Ctrl-C: {still_listening}"


async def test_run_command_serves_orders_stops_on_ctrl_c_and_keeps_state(tmp_path: Path) -> None:
    var = tmp_path / "var"
    api_port, temporal_port, ui_port, ui_internal_port = free_ports(4)
    ports = {
        "api": api_port,
        "temporal": temporal_port,
        "ui": ui_port,
        "ui_internal": ui_internal_port,
    }
    base_url = f"http://127.0.0.1:{api_port}"
    example = json.loads(EXAMPLE_ORDER.read_text())
    stacks: list[DevStack] = []
    try:
        # First run: fresh var/, migrations, keys created and printed.
        first = DevStack(var, ports, tmp_path / "devstack-1.out")
        stacks.append(first)
        keys = await first.wait_ready()
        assert json.loads((var / "dev-api-keys.json").read_text()) == keys
        # The printed UI URL is the proxy: the Temporal UI, and /codec on the same origin.
        assert f"Temporal UI  http://127.0.0.1:{ui_port} — sign in once at" in first.output
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ui_port}", timeout=30) as ui:
            sign_in = await ui.get("/codec/sign-in")
            assert sign_in.status_code == 200, sign_in.text
            assert "served from this same origin" in sign_in.text
            assert (await ui.get("/")).status_code == 200
        # The printed console URL and dev users: a new user signs in with a printed password.
        assert f"Console      {base_url}/console/" in first.output
        passwords = json.loads((var / "dev-users.json").read_text())
        assert f"approver1     approver L1  {passwords['approver1']}" in first.output
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as browser:
            signed_in = await sign_in_http(browser, "approver1", passwords["approver1"])
            inbox = await signed_in.get("/console/inbox")
            assert inbox.status_code == 200, inbox.text[:300]
        auth = {"Authorization": f"Bearer {keys['dev-system']}"}
        async with httpx.AsyncClient(base_url=base_url, headers=auth, timeout=30) as http:
            order = await create(http, example)
            assert order["status"] == "received"
            await wait_status(http, order["id"], "fulfilling")
            await carrier(http, order["id"], "picked_up", "in_transit", "delivered")
            done = await wait_status(http, order["id"], "completed")
            # A second order is left running across the restart (its own reference: the
            # same source and reference would be the first order again).
            running = await create(http, {**example, "external_reference": "ESHOP-1002"})
            await wait_status(http, running["id"], "fulfilling")
        # The demo history, seeded in the background on the first start, feeds the reports.
        await eventually(
            lambda: asyncio.sleep(0, first.output),
            lambda out: "Demo history ready" in out or "Demo history not seeded" in out,
            timeout=120,
            what="the demo history",
        )
        assert "Demo history ready" in first.output, first.diagnostics()
        # The customer's email, written as an .eml file (no SMTP server in make run); after
        # the demo history: its big write transactions may hold the SQLite file meanwhile.
        assert f"Email        written as .eml files to {var / 'mail'}" in first.output
        wanted = f"Order {done['id']} delivered"
        for _ in range(180):
            if wanted in _subjects(var / "mail"):
                break
            await asyncio.sleep(0.5)
        else:
            pytest.fail(f"no {wanted!r} in var/mail; outbox: {_outbox(var)}\n{first.diagnostics()}")
        admin = {"Authorization": f"Bearer {keys['dev-admin']}"}
        async with httpx.AsyncClient(base_url=base_url, headers=admin, timeout=30) as http:
            sales = await http.get("/reports/sales", params={"from": "2025-01-01"})
            assert sales.status_code == 200, sales.text
            assert sum(t["orders"] for t in sales.json()["totals"]) >= DEMO_ORDERS * 0.8
        await stop_and_check(first)

        # Second run on the same var/: same keys, the orders and their workflows are still there.
        second = DevStack(var, ports, tmp_path / "devstack-2.out")
        stacks.append(second)
        assert await second.wait_ready() == keys
        assert "Running upgrade" not in second.output  # schema already at head
        assert "Seeding a demo history" not in second.output  # once per var/
        async with httpx.AsyncClient(base_url=base_url, headers=auth, timeout=30) as http:
            again = await _get(http, order["id"])
            assert again["status"] == "completed"
            assert again["total"] == done["total"]
            assert [e["seq"] for e in again["timeline"]] == [e["seq"] for e in done["timeline"]]
            # The running order goes on where it stopped.
            assert (await _get(http, running["id"]))["status"] == "fulfilling"
            await carrier(http, running["id"], "picked_up", "delivered")
            await wait_status(http, running["id"], "completed")
        temporal = await connect(
            Settings(
                temporal_target=second.temporal_target,
                encryption_keys_file=var / "encryption-keys.json",
            )
        )
        # The read model says completed once the closing event is projected; the workflow
        # closes in the task after that (tens of ms later).
        for order_id in (order["id"], running["id"]):
            await eventually(
                temporal.get_workflow_handle(order_id).describe,
                lambda d: d.status == WorkflowExecutionStatus.COMPLETED,
                timeout=30,
                what=f"workflow {order_id} closed",
            )
        await stop_and_check(second)
    finally:
        for stack in stacks:
            if stack.proc.poll() is None:
                await stack.interrupt()
            stack.kill_everything()
