"""Shared helpers of the bench scripts: a throwaway stack, /proc readings, percentiles.

Not a test helper: the scripts print figures. Everything here is loopback only and bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CLK_TCK = os.sysconf("SC_CLK_TCK")
DEV_KEY_NAMES = ("dev-system", "dev-lead", "dev-manager", "dev-finance", "dev-support", "dev-admin")
LEVEL_KEYS = {1: "dev-lead", 2: "dev-manager", 3: "dev-finance"}


# --- statistics -------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(values: list[float]) -> dict[str, Any]:
    """count, p50/p95/p99/max in milliseconds of latencies given in seconds."""

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 1)

    return {
        "count": len(values),
        "p50_ms": ms(percentile(values, 50)),
        "p95_ms": ms(percentile(values, 95)),
        "p99_ms": ms(percentile(values, 99)),
        "max_ms": ms(max(values) if values else None),
    }


def fmt_lat(name: str, s: dict[str, Any]) -> str:
    return (
        f"  {name:<10} n={s['count']:<6} p50={s['p50_ms']} ms  p95={s['p95_ms']} ms  "
        f"p99={s['p99_ms']} ms  max={s['max_ms']} ms"
    )


# --- /proc readings ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, in seconds (None if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def mem_kib(pid: int, key: str) -> int | None:
    """A field of /proc/PID/status in KiB (VmHWM = peak RSS, VmRSS = current RSS)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (from /proc/stat)."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    vals = [int(v) for v in parts[:8]]
    idle = vals[3] + vals[4]  # idle + iowait
    return (sum(vals) - idle) / CLK_TCK


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            raw = (entry / "stat").read_text()
            ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
            if ppid == pid:
                found.append(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _ppid(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2 :].split()[1])


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def find_stack_pids(temporal_port: int | None, api_port: int | None) -> dict[str, int]:
    """Best effort for an external stack: the dev server on the port, uvicorn on the API port,
    and the worker.py whose ORDERLY_TEMPORAL_TARGET names that port (else a sibling process)."""
    pids: dict[str, int] = {}
    workers: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        cmd = cmdline(pid)
        if "worker.py" in cmd:
            workers.append(pid)
        elif "start-dev" in cmd and (temporal_port is None or f"--port {temporal_port}" in cmd):
            pids["temporal"] = pid
        elif (
            "uvicorn" in cmd
            and "api.app" in cmd
            and (api_port is None or f"--port {api_port}" in cmd)
        ):
            pids["api"] = pid
    for pid in workers:
        target = _environ(pid).get("ORDERLY_TEMPORAL_TARGET", "127.0.0.1:7233")
        if temporal_port is not None and target.endswith(f":{temporal_port}"):
            pids["worker"] = pid
            break
    else:
        parent = _ppid(pids["temporal"]) if "temporal" in pids else None
        siblings = [w for w in workers if parent is not None and _ppid(w) == parent]
        if siblings:
            pids["worker"] = siblings[0]
    return pids


@dataclass
class CpuMeter:
    """CPU seconds of named processes (and of the whole machine) over a phase."""

    pids: dict[str, int]
    start: dict[str, float] = field(default_factory=dict)
    t0: float = 0.0
    busy0: float = 0.0

    def begin(self) -> None:
        self.start = {n: cpu_seconds(p) or 0.0 for n, p in self.pids.items()}
        self.t0, self.busy0 = time.monotonic(), machine_busy_seconds()

    def end(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        out: dict[str, Any] = {
            f"{n}_cpu_s": round((cpu_seconds(p) or 0.0) - self.start[n], 2)
            for n, p in self.pids.items()
        }
        busy = machine_busy_seconds() - self.busy0
        ours = sum(v for v in out.values())
        out["machine_busy_cpu_s"] = round(busy, 2)
        out["other_processes_cpu_s"] = round(max(0.0, busy - ours), 2)
        out["wall_s"] = round(wall, 2)
        out["machine_cpu_capacity_s"] = round(wall * (os.cpu_count() or 1), 2)
        return out


def memory(pids: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, pid in pids.items():
        hwm, rss = mem_kib(pid, "VmHWM"), mem_kib(pid, "VmRSS")
        out[f"{name}_peak_rss_mb"] = None if hwm is None else round(hwm / 1024, 1)
        out[f"{name}_rss_mb"] = None if rss is None else round(rss / 1024, 1)
    return out


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_total = mem_kib_file("/proc/meminfo", "MemTotal")
    commit = git_head()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "mem_total_mb": None if mem_total is None else round(mem_total / 1024),
        "python": platform.python_version(),
        "commit": commit,
        "loadavg_start": loadavg(),
    }


def git_head() -> str:
    """The checked-out commit, read from .git (no git process)."""
    git = ROOT / ".git"
    with contextlib.suppress(OSError):
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        if (git / ref).is_file():
            return (git / ref).read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    return ""


def mem_kib_file(path: str, key: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- a throwaway stack, started exactly like `make run` (devstack.py) ------------------------


@dataclass
class Stack:
    api: str
    temporal: str
    keys: dict[str, str]
    pids: dict[str, int]
    var: Path | None
    database_url: str | None
    proc: subprocess.Popen[bytes] | None = None
    tmp: Path | None = None
    keep: bool = False
    log: list[str] = field(default_factory=list)

    def stop(self) -> None:
        """SIGTERM devstack (it stops API, worker, Temporal in order), then remove the temp dir."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                for pid in self.pids.values():
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                proc.kill()
                proc.wait()
        if self.tmp is not None and not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


def start_stack(env_overrides: dict[str, str] | None = None, keep: bool = False) -> Stack:
    """Run ``devstack.py`` on free ports in a temp var dir; wait for its banner."""
    tmp = Path(tempfile.mkdtemp(prefix="orderly-bench-"))
    var = tmp / "var"
    # every port picked here (devstack would take ui_port + 1 for the UI behind its proxy)
    api_port, temporal_port, ui_port, ui_internal = (free_port() for _ in range(4))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
    env["ORDERLY_DEMO_ORDERS"] = "0"  # no demo history seeding alongside what is measured
    env.update(env_overrides or {})
    proc = subprocess.Popen(
        [
            sys.executable,
            "devstack.py",
            "--var",
            str(var),
            "--api-port",
            str(api_port),
            "--temporal-port",
            str(temporal_port),
            "--ui-port",
            str(ui_port),
            "--ui-internal-port",
            str(ui_internal),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            lines.append(line)
            if "Press Ctrl-C to stop." in line:
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    stack = Stack(
        api=f"http://127.0.0.1:{api_port}",
        temporal=f"127.0.0.1:{temporal_port}",
        keys={},
        pids={},
        var=var,
        database_url=f"sqlite+aiosqlite:///{var / 'orderly.db'}",
        proc=proc,
        tmp=tmp,
        keep=keep,
        log=lines,
    )
    if not ready.wait(timeout=180) or proc.poll() is not None:
        stack.stop()
        raise SystemExit("devstack did not start:\n" + "\n".join(lines[-40:]))
    stack.keys = json.loads((var / "dev-api-keys.json").read_text())
    for pid in children(proc.pid):
        cmd = cmdline(pid)
        if "worker.py" in cmd:
            stack.pids["intake_worker" if "intake" in cmd.split() else "worker"] = pid
        elif "start-dev" in cmd:
            stack.pids["temporal"] = pid
        elif "uvicorn" in cmd:
            stack.pids["api"] = pid
    return stack


def external_stack(api: str, temporal: str, keys_arg: str | None, var: Path | None) -> Stack:
    """A running stack: keys from --keys-file/--var (dev-api-keys.json) or --key for dev-system."""
    keys: dict[str, str] = {}
    keys_file = var / "dev-api-keys.json" if var else None
    if keys_arg and Path(keys_arg).is_file():
        keys_file = Path(keys_arg)
    if keys_file and keys_file.is_file():
        keys = json.loads(keys_file.read_text())
    elif keys_arg:
        keys = {"dev-system": keys_arg}
    api_port = int(api.rsplit(":", 1)[1].split("/")[0]) if api.count(":") >= 2 else None
    temporal_port = int(temporal.rsplit(":", 1)[1])
    return Stack(
        api=api.rstrip("/"),
        temporal=temporal,
        keys=keys,
        pids=find_stack_pids(temporal_port, api_port),
        var=var,
        database_url=f"sqlite+aiosqlite:///{var / 'orderly.db'}" if var else None,
    )


async def top_up_stock(database_url: str, stock: dict[str, int]) -> None:
    from db.session import make_engine, make_sessionmaker
    from integrations.inventory import SimulatedInventory

    engine = make_engine(database_url)
    try:
        await SimulatedInventory(make_sessionmaker(engine)).set_stock(stock)
    finally:
        await engine.dispose()


def write_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"JSON written to {path}")


def order_body(
    i: int, run_id: str, *, amount: str, sku: str, sales_rep: str = "rep-bench"
) -> dict[str, Any]:
    """One order line of ``amount`` EUR; one customer per order so credit exposure stays 0."""
    return {
        "customer": {
            "id": f"C-{run_id}-{i}",
            "name": f"Bench Customer {i}",
            "email": f"bench{i}@example.com",
            "tier": "standard",
            "region": "EU-WEST",
        },
        "lines": [{"sku": sku, "quantity": 1, "unit_price": amount}],
        "currency": "EUR",
        "shipping_address": {
            "name": f"Bench Customer {i}",
            "line1": "1 Bench Street",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
        "payment_method": {"type": "card", "token": "tok_visa"},
        "sales_rep": sales_rep,
        "external_reference": f"B-{run_id}-{i}"[:64],
    }


# --- the main of the stack benchmarks ------------------------------------------------------------


def run_main(
    args: argparse.Namespace,
    need_keys: set[str],
    main_async: Callable[[argparse.Namespace, Stack, dict[str, Any]], Awaitable[int]],
) -> int:
    """Run ``main_async`` against a running stack (``--api``) or one started here (stopped after);
    results go to ``--json`` too. Returns the exit code."""
    out: dict[str, Any] = {
        "machine": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    stack: Stack | None = None
    code = 1
    try:
        if args.api:
            stack = external_stack(args.api, args.temporal, args.key, args.var)
            if not need_keys <= set(stack.keys):
                raise SystemExit("need the dev keys: pass --var or --key PATH/TO/dev-api-keys.json")
        else:
            print("starting a stack with devstack.py ...", flush=True)
            env = dict(kv.split("=", 1) for kv in args.stack_env)
            stack = start_stack(env, keep=args.keep)
        code = asyncio.run(main_async(args, stack, out))
        write_json(args.json_path, out)
    except KeyboardInterrupt:
        print("interrupted")
    except SystemExit as exc:
        print(exc)
    except BaseException:
        traceback.print_exc()
    finally:
        if stack is not None:
            stack.stop()
    return code


def exit_process(code: int) -> NoReturn:
    """Exit without the SDK's interpreter-exit crash (sdk-python #300)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


async def temporal_client(stack: Stack) -> Any:
    """A Temporal client with the stack's encryption keys (the one data converter)."""
    from config import Settings
    from workflows.client import connect

    keys = stack.var / "encryption-keys.json" if stack.var else None
    return await connect(Settings(temporal_target=stack.temporal, encryption_keys_file=keys))
