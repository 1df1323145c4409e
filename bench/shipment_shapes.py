"""CPU per order of three ways to track a shipment: inline, child workflow, lean child workflow.

Starts its own Temporal dev server (SQLite WAL, loopback, free ports); the worker and the client
run in this process (unsandboxed). Only the shipping part of an order is modelled:

- inline: the order runs the ``book`` activity, then takes 3 carrier scans as signals.
- child: the order starts ``{order_id}/shipment-1``, which books, takes the 3 scans as signals
  and signals each one to the parent; the parent waits for the child's result.
- child-lean: like child, but only the first scan is signalled to the parent; the rest comes
  back in the child's result.

The client is the carrier: it learns of the booking when ``book`` runs (an in-process future),
then queries (every ``--poll`` s) until the workflow that takes the scans waits for them, then
signals picked_up, in_transit, delivered one after another. Waiting for the booking first keeps
the number of queries per order (reported) about equal across shapes. Rounds alternate the
shapes (A, B, C, A, B, C); the table shows the means. CPU is utime+stime from /proc/PID/stat.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as c
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from config import Settings
from workflows.client import connect

SCANS = ["picked_up", "in_transit", "delivered"]
SHAPES = ("inline", "child", "child-lean")
WAIT = timedelta(minutes=2)  # every wait inside the workflows is bounded too
STEP = timedelta(seconds=30)
RPC = timedelta(seconds=10)
BOOKED: dict[str, asyncio.Future[None]] = {}  # the carrier's view: workflow id -> booked


@activity.defn
async def book(workflow_id: str) -> str:
    booked = BOOKED.get(workflow_id)
    if booked is not None and not booked.done():
        booked.set_result(None)
    return f"TRK-{workflow_id}"


class ScanTaker:
    """State set up in __init__, so a signal that arrives before run() starts is kept."""

    def __init__(self) -> None:
        self.scans: list[str] = []
        self.waiting, self.seen = False, 0

    @workflow.signal
    def scan(self, event: str) -> None:
        self.scans.append(event)

    @workflow.query
    def is_waiting(self) -> bool:
        return self.waiting


@workflow.defn(name="ShipInlineOrder")
class InlineOrder(ScanTaker):
    @workflow.run
    async def run(self, order_id: str) -> list[str]:
        await workflow.execute_activity(book, order_id, start_to_close_timeout=STEP)
        self.waiting = True
        await workflow.wait_condition(lambda: "delivered" in self.scans, timeout=WAIT)
        return self.scans


@workflow.defn(name="ShipShipment")
class Shipment(ScanTaker):
    """The child: reports every scan to the parent (mode "all") or only the first ("first")."""

    @workflow.run
    async def run(self, mode: str) -> list[str]:
        info = workflow.info()
        assert info.parent is not None
        parent = workflow.get_external_workflow_handle(info.parent.workflow_id)
        await workflow.execute_activity(book, info.workflow_id, start_to_close_timeout=STEP)
        self.waiting = True
        while self.seen < len(SCANS):  # one scan at a time, in order
            await workflow.wait_condition(lambda: len(self.scans) > self.seen, timeout=WAIT)
            self.seen += 1
            if mode == "all" or self.seen == 1:
                await parent.signal("scan", self.scans[self.seen - 1])
        return self.scans


@workflow.defn(name="ShipChildOrder")
class ChildOrder(ScanTaker):
    @workflow.run
    async def run(self, order_id: str, mode: str) -> list[str]:
        child = await workflow.start_child_workflow(
            Shipment.run, mode, id=f"{order_id}/shipment-1", execution_timeout=WAIT
        )
        result = await child
        reported = len(SCANS) if mode == "all" else 1
        await workflow.wait_condition(lambda: len(self.scans) >= reported, timeout=WAIT)
        self.scans.extend(result[len(self.scans) :])
        return self.scans


class Bench:
    def __init__(self, client: Client, args: argparse.Namespace, task_queue: str) -> None:
        self.client, self.args, self.tq = client, args, task_queue
        self.queries = 0
        self.errors: list[str] = []

    async def order(self, shape: str, oid: str) -> None:
        deadline = time.monotonic() + self.args.order_timeout
        opts: dict[str, Any] = {"id": oid, "task_queue": self.tq, "execution_timeout": WAIT}
        handle: WorkflowHandle[Any, list[str]]
        taker = oid if shape == "inline" else f"{oid}/shipment-1"
        booked = BOOKED[taker] = asyncio.get_running_loop().create_future()
        if shape == "inline":
            handle = await self.client.start_workflow(InlineOrder.run, oid, **opts)
            target: WorkflowHandle[Any, Any] = handle
        else:
            mode = "all" if shape == "child" else "first"
            handle = await self.client.start_workflow(ChildOrder.run, args=[oid, mode], **opts)
            target = self.client.get_workflow_handle(taker)
        try:
            await asyncio.wait_for(booked, self.args.order_timeout)
        finally:
            del BOOKED[taker]
        while True:  # until the scan taker waits for scans
            self.queries += 1
            try:
                if await target.query("is_waiting", rpc_timeout=RPC):
                    break
            except Exception:  # counted by the retry; the deadline bounds it
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{oid} never waited for scans")
            await asyncio.sleep(self.args.poll)
        for event in SCANS:
            await target.signal("scan", event, rpc_timeout=RPC)
        result = await asyncio.wait_for(handle.result(), max(deadline - time.monotonic(), 1.0))
        if result != SCANS:
            raise RuntimeError(f"{oid} returned {result}")

    async def orders(self, shape: str, prefix: str, n: int) -> tuple[int, float]:
        ids = iter(range(n))
        done = 0

        async def lane() -> None:
            nonlocal done
            for i in ids:
                try:
                    await self.order(shape, f"{prefix}-{i}")
                    done += 1
                except Exception as exc:  # counted and reported, the run goes on
                    if len(self.errors) < 10:
                        self.errors.append(f"{shape} {prefix}-{i}: {exc!r}"[:300])

        t0 = time.monotonic()
        await asyncio.gather(*(lane() for _ in range(self.args.concurrency)))
        return done, time.monotonic() - t0

    async def events(self, oid: str, child: bool) -> int:
        ids = [oid, f"{oid}/shipment-1"] if child else [oid]
        hists = [await self.client.get_workflow_handle(i).fetch_history() for i in ids]
        return sum(len(h.events) for h in hists)


def start_server(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = c.free_port()
    cmd = [str(Path(sys.executable).parent / "temporal"), "server", "start-dev", "--headless"]
    cmd += ["--db-filename", str(tmp / "t.db"), "--ip", "127.0.0.1", "--port", str(port)]
    cmd += ["--http-port", str(c.free_port()), "--metrics-port", str(c.free_port())]
    cmd += ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
    log = (tmp / "temporal.log").open("ab")
    proc = subprocess.Popen(
        [*cmd, "--log-level", "error"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    return proc, f"127.0.0.1:{port}"


async def measure(args: argparse.Namespace, target: str, server: subprocess.Popen[bytes]) -> Any:
    for attempt in range(300):  # the dev server is usually ready in ~0.3 s
        try:
            client = await connect(Settings(temporal_target=target))
            break
        except Exception:
            if server.poll() is not None or attempt == 299:
                raise
            await asyncio.sleep(0.2)
    tq = f"ship-{uuid.uuid4().hex[:8]}"
    bench = Bench(client, args, tq)
    runs: list[dict[str, Any]] = []
    events: dict[str, int] = {}
    async with Worker(
        client,
        task_queue=tq,
        workflows=[InlineOrder, Shipment, ChildOrder],
        activities=[book],
        workflow_runner=UnsandboxedWorkflowRunner(),
        graceful_shutdown_timeout=timedelta(seconds=5),
    ):
        for shape in SHAPES:  # warm-up, untimed
            await bench.orders(shape, f"{tq}-{shape}-warm", args.warmup)
        for rnd in range(args.rounds):
            for shape in SHAPES:
                meter = c.CpuMeter({"server": server.pid, "bench": os.getpid()})
                q0, prefix = bench.queries, f"{tq}-{shape}-{rnd}"
                meter.begin()
                done, secs = await bench.orders(shape, prefix, args.orders)
                cpu, per = meter.end(), max(done, 1)
                print(f"  round {rnd} {shape:<10} {done}/{args.orders} orders: {cpu}", flush=True)
                row = {"shape": shape, "round": rnd, "done": done, "orders_per_s": done / secs}
                row |= {"server": cpu["server_cpu_s"] / per, "bench": cpu["bench_cpu_s"] / per}
                runs.append({**row, "queries": (bench.queries - q0) / per, "cpu": cpu})
                if shape not in events:
                    events[shape] = await bench.events(f"{prefix}-0", shape != "inline")
    return {"runs": runs, "events": events, "errors": bench.errors}


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for shape in SHAPES:
        rs = [r for r in res["runs"] if r["shape"] == shape]
        mean = {k: sum(r[k] for r in rs) / len(rs) for k in ("orders_per_s", "server", "bench")}
        rows[shape] = {
            "orders_per_s": mean["orders_per_s"],
            "server_cpu_s_per_order": mean["server"],
            "bench_cpu_s_per_order": mean["bench"],
            "total_cpu_s_per_order": mean["server"] + mean["bench"],
            "total_cpu_s_per_order_by_round": [r["server"] + r["bench"] for r in rs],
            "events_per_order": res["events"].get(shape),
            "queries_per_order": sum(r["queries"] for r in rs) / len(rs),
        }
    for row in rows.values():
        for key in ("total", "server"):
            ratio = row[f"{key}_cpu_s_per_order"] / rows["inline"][f"{key}_cpu_s_per_order"]
            row[f"{key}_vs_inline_pct"] = 100 * (ratio - 1)
    return rows


def report(rows: dict[str, Any]) -> None:
    print(
        f"\n{'shape':<11}{'orders/s':>9}{'srv CPU/o':>11}{'bench CPU/o':>12}{'total CPU/o':>12}"
        f"{'events':>8}{'total %':>9}{'srv %':>8}{'queries/o':>10}  total CPU/o by round"
    )
    for shape, r in rows.items():
        by_round = " / ".join(f"{v:.4f}" for v in r["total_cpu_s_per_order_by_round"])
        print(
            f"{shape:<11}{r['orders_per_s']:>9.1f}{r['server_cpu_s_per_order']:>11.4f}"
            f"{r['bench_cpu_s_per_order']:>12.4f}{r['total_cpu_s_per_order']:>12.4f}"
            f"{r['events_per_order']!s:>8}{r['total_vs_inline_pct']:>+8.1f}%"
            f"{r['server_vs_inline_pct']:>+7.1f}%{r['queries_per_order']:>10.1f}  {by_round}"
        )
    for shape in SHAPES[1:]:
        pct = rows[shape]["total_vs_inline_pct"]
        verdict = "MORE than" if pct > 10 else "within"
        print(f"{shape}: total CPU per order {pct:+.1f}% vs inline, {verdict} +10%")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", "--orders", type=int, default=300, help="orders per shape and round")
    p.add_argument("-c", "--concurrency", type=int, default=20, help="in flight (default 20)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of A, B, C (default 2)")
    p.add_argument("--warmup", type=int, default=10, help="untimed orders per shape first")
    p.add_argument("--poll", type=float, default=0.05, help="seconds between is_waiting queries")
    p.add_argument("--order-timeout", type=float, default=60, help="seconds per order")
    p.add_argument("--run-timeout", type=float, default=1800, help="seconds for the whole run")
    p.add_argument("--json", dest="json_path", help="also write the figures as JSON here")
    return p.parse_args()


def main() -> int:
    args = _args()
    out: dict[str, Any] = {"machine": c.machine(), "args": vars(args)}
    tmp = Path(tempfile.mkdtemp(prefix="shipment-shapes-"))
    server, target = start_server(tmp)
    code = 1
    try:
        print(f"dev server {target} pid {server.pid}; load {c.loadavg()}", flush=True)
        res = asyncio.run(asyncio.wait_for(measure(args, target, server), args.run_timeout))
        out.update(res, summary=summarize(res), loadavg_end=c.loadavg())
        report(out["summary"])
        print(f"errors: {len(res['errors'])}", *res["errors"], sep="\n  ")
        print(f"load: start {out['machine']['loadavg_start']} | end {out['loadavg_end']}")
        c.write_json(args.json_path, out)
        code = 0 if not res["errors"] else 1
    except BaseException:
        traceback.print_exc()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    return code


if __name__ == "__main__":
    c.exit_process(main())
