"""Full order lifecycle throughput through the HTTP API, next to the engine's own baseline.

By default starts its own stack exactly like ``make run`` (``devstack.py``: Temporal dev server
with SQLite WAL, ``worker.py``, uvicorn API) in a temp var dir on free ports, and stops it after.
With ``--api/--temporal`` it drives a running stack instead.

Each order: POST /orders (Idempotency-Key) -> one GET (a support lookup: a workflow query) ->
[wait until awaiting_approval, approve each level with the matching dev approver key] -> wait
until fulfilling -> shipment events picked_up, in_transit, delivered -> wait until completed.
GET /orders (list) runs alongside. Waiting is a long poll (GET /orders/{id}?wait_for=...), as a
system integrating with the API would wait; ``--wait-mode poll`` polls plain GETs instead.
Baseline: the same number of no-op workflows at the same concurrency, on the same server, run
by a worker inside this process on its own task queue.

Issue target: orders/s >= 0.30 x baseline workflows/s with default settings on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
import httpx
import pyspy
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

TARGET_RATIO = 0.30


@workflow.defn(name="BenchNoop")
class NoopWorkflow:
    """The engine's floor: one workflow task, no activities, no timers."""

    @workflow.run
    async def run(self) -> None:
        return None


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-n", "--orders", type=int, default=200, help="orders (default 200)")
    p.add_argument("-c", "--concurrency", type=int, default=20, help="in flight (default 20)")
    p.add_argument("--approval-share", type=float, default=0.2, help="share above 5,000 EUR")
    p.add_argument("--small-amount", default="49.90", help="EUR of small orders")
    p.add_argument("--big-amount", default="6500.00", help="EUR of approval orders (L1 only)")
    p.add_argument("--warmup", type=int, default=10, help="untimed orders first (default 10)")
    p.add_argument(
        "--wait-mode",
        choices=("long-poll", "poll"),
        default="long-poll",
        help="how the client waits for a status (default long-poll: GET ?wait_for=)",
    )
    p.add_argument("--poll-interval", type=float, default=0.1, help="seconds between GET polls")
    p.add_argument("--list-interval", type=float, default=0.5, help="seconds between lists")
    p.add_argument("--order-timeout", type=float, default=180, help="seconds per order")
    p.add_argument("--skip-baseline", action="store_true")
    p.add_argument("--api", help="URL of a running API (else a stack is started)")
    p.add_argument("--key", help="dev-system key, or a dev-api-keys.json path (running stack)")
    p.add_argument("--temporal", help="HOST:PORT of the running stack's Temporal")
    p.add_argument("--var", type=Path, help="running stack's var dir (keys file, database)")
    p.add_argument("--sku", default="BENCH-1", help="SKU topped up when the database is known")
    p.add_argument("--keep", action="store_true", help="keep the temp var dir")
    p.add_argument(
        "--stack-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment for the started stack, e.g. ORDERLY_MAX_CACHED_WORKFLOWS=0 (repeat)",
    )
    p.add_argument(
        "--py-spy",
        dest="pyspy",
        help="path of a py-spy binary: sample worker and API during the timed orders",
    )
    p.add_argument("--profile-dir", type=Path, default=Path("/tmp"), help="where profiles go")
    p.add_argument("--json", dest="json_path", help="also write results as JSON here")
    args = p.parse_args()
    if args.api and not args.temporal:
        p.error("--api needs --temporal (and --key or --var)")
    return args


class Run:
    def __init__(self, args: argparse.Namespace, stack: c.Stack) -> None:
        self.args, self.stack = args, stack
        self.lat: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.error_samples: list[str] = []
        self.segments: dict[str, list[float]] = defaultdict(list)
        self.polls = 0
        self.sample_ids: dict[str, str] = {}
        self.run_id = uuid.uuid4().hex[:6].upper()

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.stack.keys[name]}"}

    def error(self, what: str, detail: str) -> None:
        self.errors[what] += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(f"{what}: {detail[:300]}")

    async def call(
        self, http: httpx.AsyncClient, kind: str, method: str, url: str, key: str, **kw: Any
    ) -> httpx.Response:
        t = time.monotonic()
        resp = await http.request(
            method, url, headers={**self.headers(key), **kw.pop("headers", {})}, **kw
        )
        self.lat[kind].append(time.monotonic() - t)
        if resp.status_code >= 400:
            self.error(f"{kind} {resp.status_code}", resp.text)
        return resp

    async def poll(
        self, http: httpx.AsyncClient, oid: str, want: set[str], deadline: float
    ) -> dict[str, Any]:
        long_poll = self.args.wait_mode == "long-poll"
        while True:
            self.polls += 1
            if long_poll:
                left = max(deadline - time.monotonic(), 0.1)
                params = {"wait_for": sorted(want), "wait": min(left, 30)}
                resp = await self.call(
                    http, "wait", "GET", f"/orders/{oid}", "dev-system", params=params
                )
            else:
                resp = await self.call(http, "get", "GET", f"/orders/{oid}", "dev-system")
            if resp.status_code == 200:
                view: dict[str, Any] = resp.json()
                if view["status"] in want:
                    return view
                if view["status"] in ("cancelled", "rejected", "failed"):
                    raise RuntimeError(f"{oid} ended {view['status']}: {view.get('closure')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{oid} not in {want} after the order timeout")
            if not long_poll:
                await asyncio.sleep(self.args.poll_interval)

    async def order(self, http: httpx.AsyncClient, i: int, big: bool) -> None:
        a = self.args
        deadline = time.monotonic() + a.order_timeout
        body = c.order_body(
            i, self.run_id, amount=a.big_amount if big else a.small_amount, sku=a.sku
        )
        t0 = time.monotonic()
        resp = await self.call(
            http,
            "create",
            "POST",
            "/orders",
            "dev-system",
            json=body,
            headers={"Idempotency-Key": f"bench-{self.run_id}-{i}"},
        )
        if resp.status_code not in (200, 201):
            raise RuntimeError(f"create {resp.status_code}")
        oid = resp.json()["id"]
        self.sample_ids.setdefault("approval" if big else "small", oid)
        if a.wait_mode == "long-poll":  # a support lookup: one live query per order
            await self.call(http, "get", "GET", f"/orders/{oid}", "dev-system")
        view = await self.poll(http, oid, {"awaiting_approval", "fulfilling"}, deadline)
        t_ready = time.monotonic()
        if view["status"] == "awaiting_approval":
            self.segments["create_to_awaiting_approval"].append(t_ready - t0)
            while view["status"] == "awaiting_approval":
                level = view["approval"]["current_level"]
                approver = c.LEVEL_KEYS[level]
                resp = await self.call(
                    http,
                    "approve",
                    "POST",
                    f"/orders/{oid}/approve",
                    approver,
                    json={"comment": "bench"},
                )
                if resp.status_code not in (200, 202):
                    raise RuntimeError(f"approve {resp.status_code}")
                view = resp.json()
                while view["status"] == "awaiting_approval" and (
                    view["approval"]["current_level"] == level
                ):  # 202: the command is still running; wait for the level to move on
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{oid} level {level} not done in time")
                    await asyncio.sleep(a.poll_interval)
                    self.polls += 1
                    view = (
                        await self.call(http, "get", "GET", f"/orders/{oid}", "dev-system")
                    ).json()
            t_approved = time.monotonic()
            view = await self.poll(http, oid, {"fulfilling"}, deadline)
            self.segments["approve_to_fulfilling"].append(time.monotonic() - t_approved)
        else:
            self.segments["create_to_fulfilling_small"].append(t_ready - t0)
        t_ship = time.monotonic()
        for event in ("picked_up", "in_transit", "delivered"):
            resp = await self.call(
                http,
                "event",
                "POST",
                f"/orders/{oid}/shipment-events",
                "dev-system",
                json={"event": event},
            )
            if resp.status_code != 202:
                raise RuntimeError(f"shipment event {event} {resp.status_code}")
        await self.poll(http, oid, {"completed"}, deadline)
        self.segments["events_to_completed"].append(time.monotonic() - t_ship)
        self.segments["order_total"].append(time.monotonic() - t0)

    async def orders(self, count: int, offset: int) -> tuple[int, float]:
        """Run ``count`` orders at the concurrency; returns (completed, seconds)."""
        a = self.args
        big_every = round(1 / a.approval_share) if a.approval_share > 0 else 0
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(offset, offset + count):
            queue.put_nowait(i)
        done = 0
        stop_list = asyncio.Event()
        limits = httpx.Limits(max_connections=a.concurrency + 4)
        async with httpx.AsyncClient(base_url=self.stack.api, timeout=60, limits=limits) as http:

            async def worker() -> None:
                nonlocal done
                while True:
                    try:
                        i = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    big = bool(big_every) and i % big_every == 0
                    try:
                        await self.order(http, i, big)
                        done += 1
                    except Exception as exc:  # counted and reported, the run goes on
                        self.error(f"order {type(exc).__name__}", str(exc))

            async def lister() -> None:
                k = 0
                while not stop_list.is_set():
                    params: dict[str, Any] = {"limit": 50}
                    if k % 2:
                        params["status"] = "fulfilling"
                    k += 1
                    try:
                        await self.call(http, "list", "GET", "/orders", "dev-system", params=params)
                    except httpx.HTTPError as exc:
                        self.error("list exception", repr(exc))
                    with_timeout = asyncio.wait_for(stop_list.wait(), a.list_interval)
                    try:
                        await with_timeout
                    except TimeoutError:
                        pass

            t0 = time.monotonic()
            list_task = asyncio.create_task(lister())
            await asyncio.gather(*(worker() for _ in range(a.concurrency)))
            elapsed = time.monotonic() - t0
            stop_list.set()
            await list_task
        return done, elapsed


async def baseline(client: Client, n: int, concurrency: int) -> tuple[int, float, str]:
    queue = f"bench-noop-{uuid.uuid4().hex[:8]}"
    ids = iter(range(n))
    done = 0

    async def one() -> None:
        nonlocal done
        for i in ids:
            await client.execute_workflow(NoopWorkflow.run, id=f"{queue}-{i}", task_queue=queue)
            done += 1

    async with Worker(
        client,
        task_queue=queue,
        workflows=[NoopWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        warm = iter(range(min(10, n)))
        for i in warm:
            await client.execute_workflow(
                NoopWorkflow.run, id=f"{queue}-warm-{i}", task_queue=queue
            )
        t0 = time.monotonic()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        elapsed = time.monotonic() - t0
    return done, elapsed, f"{queue}-0"


def _our_cpu(cpu: dict[str, Any]) -> float:
    return float(
        sum(
            v
            for k, v in cpu.items()
            if k.endswith("_cpu_s") and not k.startswith(("machine", "other"))
        )
    )


async def history_profile(client: Client, wf_id: str) -> dict[str, Any]:
    """What one workflow cost the server: events by type, activities, local activities."""
    hist = await client.get_workflow_handle(wf_id).fetch_history()
    kinds: Counter[str] = Counter()
    activities: Counter[str] = Counter()
    for ev in hist.events:
        name = ev.WhichOneof("attributes") or str(ev.event_type)
        kinds[name.replace("_event_attributes", "")] += 1
        if ev.HasField("activity_task_scheduled_event_attributes"):
            activities[ev.activity_task_scheduled_event_attributes.activity_type.name] += 1
    return {
        "events": len(hist.events),
        "workflow_tasks": kinds.get("workflow_task_completed", 0),
        "activities": sum(activities.values()),
        "activity_types": dict(activities),
        "local_activities(markers)": kinds.get("marker_recorded", 0),
        "timers": kinds.get("timer_started", 0),
        "signals": kinds.get("workflow_execution_signaled", 0),
        "updates": kinds.get("workflow_execution_update_accepted", 0),
        "by_type": dict(sorted(kinds.items())),
    }


async def main_async(args: argparse.Namespace, stack: c.Stack, out: dict[str, Any]) -> int:
    run = Run(args, stack)
    if stack.database_url:
        await c.top_up_stock(stack.database_url, {args.sku: 10_000_000})
    elif args.sku == "BENCH-1":
        args.sku = "WIDGET-1"  # seeded with 10,000 units by make run
    print(f"stack: api={stack.api} temporal={stack.temporal} pids={stack.pids}")
    print(
        f"orders={args.orders} concurrency={args.concurrency} approval_share={args.approval_share}"
        f" wait_mode={args.wait_mode} poll_interval={args.poll_interval}s sku={args.sku}"
    )
    if args.warmup:
        await run.orders(args.warmup, offset=10_000_000)
        run.lat.clear()
        run.segments.clear()
        run.polls = 0
        run.errors.clear()
    meter = c.CpuMeter({**stack.pids, "bench": os.getpid()})
    spies = {}
    if args.pyspy:
        for name in ("worker", "api"):
            if name in stack.pids:
                path = args.profile_dir / f"lifecycle-{run.run_id}-{name}.collapsed"
                spies[name] = (pyspy.start_pyspy(args.pyspy, stack.pids[name], path), path)
        await asyncio.sleep(1)  # let py-spy attach
    meter.begin()
    out["load_during_orders_start"] = c.loadavg()
    done, elapsed = await run.orders(args.orders, offset=0)
    out["cpu_orders"] = meter.end()
    for name, (proc, path) in spies.items():
        pyspy.stop_pyspy(proc)
        out[f"profile_{name}"] = {"file": str(path), **pyspy.summarize_collapsed(path)}
    out["load_during_orders_end"] = c.loadavg()
    orders_per_s = done / elapsed if elapsed else 0.0
    out["orders"] = {
        "completed": done,
        "requested": args.orders,
        "seconds": round(elapsed, 2),
        "orders_per_s": round(orders_per_s, 2),
        "get_polls": run.polls,
        "polls_per_order": round(run.polls / max(done, 1), 1),
    }
    out["latency"] = {k: c.summary_ms(v) for k, v in sorted(run.lat.items())}
    out["segments"] = {k: c.summary_ms(v) for k, v in sorted(run.segments.items())}
    out["errors"] = {"total": sum(run.errors.values()), **dict(run.errors)}
    out["error_samples"] = run.error_samples

    client = await c.temporal_client(stack)
    if not args.skip_baseline:
        meter.begin()
        bdone, belapsed, bid = await baseline(client, args.orders, args.concurrency)
        out["cpu_baseline"] = meter.end()
        bps = bdone / belapsed if belapsed else 0.0
        out["baseline"] = {
            "completed": bdone,
            "seconds": round(belapsed, 2),
            "workflows_per_s": round(bps, 2),
        }
        out["ratio"] = round(orders_per_s / bps, 3) if bps else None
        # Load-independent view: CPU seconds our processes (stack + bench) spent per unit.
        per_order = _our_cpu(out["cpu_orders"]) / max(done, 1)
        per_wf = _our_cpu(out["cpu_baseline"]) / max(bdone, 1)
        out["cpu_per_order_s"] = round(per_order, 3)
        out["cpu_per_baseline_workflow_s"] = round(per_wf, 4)
        out["cpu_cost_ratio"] = round(per_wf / per_order, 3) if per_order else None
        out["history_noop"] = await history_profile(client, bid)
    oclient = client
    for kind, oid in run.sample_ids.items():
        try:
            out[f"history_{kind}_order"] = await history_profile(oclient, oid)
        except Exception as exc:  # the profile is a bonus, never fatal
            out[f"history_{kind}_order"] = {"error": repr(exc)}
    out["memory"] = c.memory(stack.pids)
    out["loadavg_end"] = c.loadavg()
    report(out)
    return 0 if not run.errors else 1


def report(out: dict[str, Any]) -> None:
    o = out["orders"]
    print(f"\n== lifecycle: {o['completed']}/{o['requested']} orders in {o['seconds']} s")
    print(f"  orders/s             {o['orders_per_s']}")
    if "baseline" in out:
        b = out["baseline"]
        print(
            f"  baseline workflows/s {b['workflows_per_s']}"
            f"  ({b['completed']} no-op in {b['seconds']} s)"
        )
        ratio = out["ratio"]
        verdict = "meets" if ratio is not None and ratio >= TARGET_RATIO else "BELOW"
        print(f"  ratio                {ratio}  ({verdict} target >= {TARGET_RATIO})")
    if "cpu_cost_ratio" in out:
        print(
            f"  CPU per order        {out['cpu_per_order_s']} s  vs  per no-op workflow "
            f"{out['cpu_per_baseline_workflow_s']} s  -> CPU-cost ratio {out['cpu_cost_ratio']}"
            " (load-independent)"
        )
    print(f"  GET waits or polls   {o['get_polls']} ({o['polls_per_order']} per order)")
    print("latency (HTTP round trip as the client sees it):")
    for k, s in out["latency"].items():
        print(c.fmt_lat(k, s))
    print("per-order segments:")
    for k, s in out["segments"].items():
        print(c.fmt_lat(k[:10], s) + f"   [{k}]")
    for phase in ("cpu_orders", "cpu_baseline"):
        if phase in out:
            print(f"{phase}: " + ", ".join(f"{k}={v}" for k, v in out[phase].items()))
    print("memory: " + ", ".join(f"{k}={v}" for k, v in out["memory"].items()))
    for key in ("history_small_order", "history_approval_order", "history_noop"):
        if key in out:
            h = dict(out[key])
            h.pop("by_type", None)
            print(f"{key}: {h}")
    for name in ("worker", "api"):
        prof = out.get(f"profile_{name}")
        if prof:
            print(f"profile_{name} ({prof.get('samples')} samples, {prof.get('file')}):")
            for k, v in (prof.get("areas_inclusive_pct") or {}).items():
                print(f"  {v:5.1f}%  {k}")
            print("  top self frames:")
            for k, v in list((prof.get("top_self_pct") or {}).items())[:10]:
                print(f"  {v:5.1f}%  {k}")
    print(f"errors: {out['errors']}")
    for s in out["error_samples"]:
        print(f"  {s}")
    print(f"load: start {out['machine']['loadavg_start']} | end {out['loadavg_end']}")


def main() -> int:
    return c.run_main(_args(), {"dev-system", "dev-lead"}, main_async)


if __name__ == "__main__":
    c.exit_process(main())
