"""Outbound webhooks under the lifecycle bench: delivery lag and the extra CPU per order.

Starts a stack like ``make run`` (``devstack.py``, with ``ORDERLY_WEBHOOK_ALLOW_PRIVATE=true``
so the receivers on loopback are allowed), then in one run:

1. the lifecycle bench's orders (``bench/lifecycle.py``'s ``Run``: create, approve when needed,
   carrier scans, completed) with no webhook endpoint: CPU per order per process;
2. ``--endpoints`` receivers (uvicorn in this process, answering 204) subscribed to every event
   type, and the same number of orders again; the phase ends when every event of those orders
   reached every receiver. CPU per order per process again: the difference is what the webhooks
   cost. Delivery lag = receipt time - the event's time (``timestamp`` in the body, the workflow's
   clock when the event happened), so it includes the projection that logs the event, the
   delivery activity's poll (``ORDERLY_WEBHOOK_POLL``) and the HTTP attempt.

    .venv/bin/python bench/webhooks.py -n 200 -c 20 --endpoints 3

Figures: bench/RESULTS.md, section Webhooks. Options are lifecycle.py's plus ``--endpoints``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as c
import httpx
import lifecycle as lc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.http_servers import serve
from tests.test_devproxy import upstream


class Receivers:
    """Receipt time per (endpoint, webhook-id): the first receipt and how many came."""

    def __init__(self) -> None:
        self.first: dict[tuple[str, str], tuple[float, float]] = {}  # -> (received, event time)
        self.count: dict[tuple[str, str], int] = defaultdict(int)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            now = time.time()
            name = request.path_params["name"]
            msg = request.headers["webhook-id"]
            body = json.loads(await request.body())
            self.count[(name, msg)] += 1
            if (name, msg) not in self.first:
                at = datetime.fromisoformat(body["timestamp"]).timestamp()
                self.first[(name, msg)] = (now, at)
            return Response(status_code=204)

        return Starlette(routes=[Route("/hook/{name}", hook, methods=["POST"])])


def per_order(cpu: dict[str, Any], orders: int) -> dict[str, float]:
    """CPU-s per order of each measured process (``worker``, ``api``, ``temporal``, ...)."""
    machine = ("machine_busy_cpu_s", "other_processes_cpu_s", "machine_cpu_capacity_s")
    return {
        k.removesuffix("_cpu_s"): round(v / max(orders, 1), 4)
        for k, v in cpu.items()
        if k.endswith("_cpu_s") and k not in machine
    }


async def read_feed(http: httpx.AsyncClient, key: str, since: int) -> tuple[int, int]:
    """(events the log holds after cursor ``since``, the last cursor)."""
    n, after = 0, since
    while True:
        page = (
            await http.get(
                "/events",
                params={"after": after, "limit": 1000},
                headers={"Authorization": f"Bearer {key}"},
            )
        ).json()
        if not page["items"]:
            return n, after
        n += len(page["items"])
        after = page["next_after"]


async def main_async(args: argparse.Namespace, stack: c.Stack, out: dict[str, Any]) -> int:
    if stack.database_url:
        await c.top_up_stock(stack.database_url, {args.sku: 10_000_000})
    print(f"stack: api={stack.api} temporal={stack.temporal} pids={stack.pids}")
    print(f"orders={args.orders} concurrency={args.concurrency} endpoints={args.endpoints}")
    run = lc.Run(args, stack)
    if args.warmup:
        await run.orders(args.warmup, offset=10_000_000)
    meter = c.CpuMeter({**stack.pids, "bench": os.getpid()})

    # Phase 1: no endpoint.
    meter.begin()
    done_a, secs_a = await run.orders(args.orders, offset=0)
    cpu_a = meter.end()
    out["without"] = {"orders": done_a, "seconds": round(secs_a, 2), "cpu": cpu_a}
    print(f"\n== without webhooks: {done_a} orders in {secs_a:.1f} s ({done_a / secs_a:.2f}/s)")

    receivers = Receivers()
    admin = {"Authorization": f"Bearer {stack.keys['dev-admin']}"}
    support = stack.keys["dev-support"]
    async with (
        serve(upstream(receivers.app())) as base,
        httpx.AsyncClient(base_url=stack.api, timeout=30) as http,
    ):
        ids = []
        for i in range(args.endpoints):
            made = await http.post("/webhooks", json={"url": f"{base}/hook/r{i}"}, headers=admin)
            if made.status_code != 201:
                raise SystemExit(f"POST /webhooks: {made.status_code} {made.text}")
            ids.append(made.json()["id"])
        _, since = await read_feed(http, support, 0)
        await asyncio.sleep(1)  # the delivery workflows are up and polling

        # Phase 2: the same orders with the endpoints subscribed, until every event arrived.
        meter.begin()
        t0 = time.monotonic()
        done_b, secs_b = await run.orders(args.orders, offset=1_000_000)
        expected, _ = await read_feed(http, support, since)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            got = dict.fromkeys(range(args.endpoints), 0)
            for name, _msg in receivers.first:
                got[int(name[1:])] += 1
            if all(n >= expected for n in got.values()):
                break
            await asyncio.sleep(0.2)
            expected, _ = await read_feed(http, support, since)
        tail = time.monotonic() - t0 - secs_b
        cpu_b = meter.end()
        # Where the lag goes, from the first endpoint's delivery log: event -> ingested (the
        # projection logging it, then the round's poll) and ingested -> received (the attempt).
        created: dict[str, float] = {}
        before: int | None = None
        while True:
            params: dict[str, Any] = {"limit": 500, **({"before": before} if before else {})}
            page = (
                await http.get(f"/webhooks/{ids[0]}/deliveries", params=params, headers=admin)
            ).json()
            for d in page["items"]:
                created[d["webhook_id"]] = datetime.fromisoformat(d["created_at"]).timestamp()
            before = page["next_before"]
            if before is None:
                break
    lags = [received - at for received, at in receivers.first.values()]
    split = [
        (created[msg] - at, received - created[msg])
        for (name, msg), (received, at) in receivers.first.items()
        if name == "r0" and msg in created
    ]
    ingest_lag = [a for a, _ in split]
    send_lag = [b for _, b in split]
    duplicates = sum(n - 1 for n in receivers.count.values())
    out["with"] = {
        "orders": done_b,
        "seconds": round(secs_b, 2),
        "tail_after_last_order_s": round(tail, 2),
        "cpu": cpu_b,
        "events": expected,
        "received_first": len(receivers.first),
        "duplicates": duplicates,
        "lag": c.summary_ms(lags),
        "lag_event_to_ingested": c.summary_ms(ingest_lag),
        "lag_ingested_to_received": c.summary_ms(send_lag),
    }
    a, b = per_order(cpu_a, done_a), per_order(cpu_b, done_b)
    out["cpu_per_order"] = {"without": a, "with": b}
    print(
        f"== with {args.endpoints} endpoints: {done_b} orders in {secs_b:.1f} s "
        f"({done_b / secs_b:.2f}/s), last delivery {tail:.1f} s after the last order"
    )
    print(
        f"  events logged {expected}, deliveries received {len(receivers.first)} "
        f"(expected {expected * args.endpoints}), duplicates {duplicates}"
    )
    print(c.fmt_lat("lag", c.summary_ms(lags)) + "   [event time -> first receipt]")
    print(c.fmt_lat("ingest", c.summary_ms(ingest_lag)) + "   [event time -> delivery created]")
    print(c.fmt_lat("send", c.summary_ms(send_lag)) + "   [delivery created -> receipt]")
    print("  CPU-s per order   " + "  ".join(f"{k:>8}" for k in b))
    print("  without           " + "  ".join(f"{a.get(k, 0):8.4f}" for k in b))
    print("  with              " + "  ".join(f"{b[k]:8.4f}" for k in b))
    print("  extra             " + "  ".join(f"{b[k] - a.get(k, 0):+8.4f}" for k in b))
    stack_keys = [k for k in b if k != "bench"]
    extra = sum(b[k] - a.get(k, 0) for k in stack_keys)
    total_a = sum(a.get(k, 0) for k in stack_keys)
    print(
        f"  stack (without the bench process, whose receivers are the endpoints): "
        f"{total_a:.4f} -> {total_a + extra:.4f} CPU-s per order ({extra / total_a * 100:+.0f} %)"
    )
    if not args.skip_baseline:
        client = await c.temporal_client(stack)
        meter.begin()
        bdone, bsecs, _ = await lc.baseline(client, args.orders, args.concurrency)
        cpu_base = meter.end()
        out["baseline"] = {"workflows": bdone, "seconds": round(bsecs, 2), "cpu": cpu_base}
        print(
            f"engine baseline, same run: {bdone} no-op workflows in {bsecs:.1f} s "
            f"({bdone / bsecs:.1f}/s), temporal {cpu_base.get('temporal_cpu_s', 0) / bdone:.4f} "
            "CPU-s per workflow"
        )
    out["memory"] = c.memory(stack.pids)
    print("memory: " + ", ".join(f"{k}={v}" for k, v in out["memory"].items()))
    print(f"load: start {out['machine']['loadavg_start']} | end {c.loadavg()}")
    out["errors"] = {"total": sum(run.errors.values()), **dict(run.errors)}
    print(f"order errors: {out['errors']}")
    for sample in run.error_samples:
        print(f"  {sample}")
    ok = len(receivers.first) >= expected * args.endpoints and not run.errors
    return 0 if ok else 1


def main() -> int:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--endpoints", type=int, default=3, help="receivers subscribed (default 3)")
    mine, rest = own.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    args = lc._args()
    args.endpoints = mine.endpoints
    args.stack_env = [
        "ORDERLY_WEBHOOK_ALLOW_PRIVATE=true",  # the receivers are on loopback
        *args.stack_env,
    ]
    return c.run_main(args, {"dev-system", "dev-lead", "dev-admin", "dev-support"}, main_async)


if __name__ == "__main__":
    c.exit_process(main())
