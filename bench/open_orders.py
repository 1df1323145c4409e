"""Many orders waiting on approval: memory, disk, inbox latency, and how fast approving drains.

By default starts its own stack exactly like ``make run`` (``devstack.py``) in a temp var dir on
free ports. Starts M orders above the approval threshold directly through the Temporal client
(``start_workflow`` of ``OrderWorkflow`` with the ``StartOrderInput`` the API builds: same
policy snapshot from config.Settings + approval-policy.yaml), waits until all of them wait for
level 1 in the read model, then reports worker/server RSS, SQLite file sizes, the latency of
GET /approvals/inbox as dev-lead (pages, filters), and the time to approve them all through the
API at a given concurrency until none is left awaiting approval.

Issue target: 100,000 waiting orders with worker RSS < 1 GB and inbox p95 < 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
import httpx

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-m", "--orders", type=int, default=10_000, help="waiting orders (10,000)")
    p.add_argument("--100k", dest="hundred_k", action="store_true", help="use 100,000 orders")
    p.add_argument("--start-concurrency", type=int, default=50, help="start RPCs in flight")
    p.add_argument("-c", "--concurrency", type=int, default=20, help="approvals in flight")
    p.add_argument("--amount", default="6500.00", help="EUR per order (L1 approval only)")
    p.add_argument("--inbox-calls", type=int, default=200, help="inbox calls at the end")
    p.add_argument("--checkpoints", type=int, default=4, help="RSS/inbox samples while filling")
    p.add_argument("--settle-timeout", type=float, default=3600, help="max seconds to fill")
    p.add_argument("--drain-timeout", type=float, default=3600, help="max seconds to drain")
    p.add_argument("--skip-drain", action="store_true", help="do not approve them")
    p.add_argument("--api", help="URL of a running API (else a stack is started)")
    p.add_argument("--temporal", help="HOST:PORT of the running stack's Temporal")
    p.add_argument("--var", type=Path, help="running stack's var dir (keys, orderly.db)")
    p.add_argument("--key", help="a dev-api-keys.json path (running stack)")
    p.add_argument("--sku", default="BENCH-1")
    p.add_argument("--keep", action="store_true", help="keep the temp var dir")
    p.add_argument("--stack-env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", dest="json_path", help="also write results as JSON here")
    args = p.parse_args()
    if args.hundred_k:
        args.orders = 100_000
    if args.api and not (args.temporal and args.var):
        p.error("--api needs --temporal and --var (the keys file and orderly.db live there)")
    return args


def order_ids(m: int) -> list[str]:
    """Ids in the product's format SO-YYYYMMDD-XXXXX, distinct within the run."""
    today = datetime.now(UTC).strftime("%Y%m%d")
    base = random.SystemRandom().randrange(0, 32**5 - m)
    out = []
    for i in range(m):
        n, s = base + i, ""
        for _ in range(5):
            n, r = divmod(n, 32)
            s = ALPHABET[r] + s
        out.append(f"SO-{today}-{s}")
    return out


def db_files(var: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("orderly.db", "temporal.db"):
        total = 0
        for suffix in ("", "-wal", "-shm"):
            f = var / (name + suffix)
            size = f.stat().st_size if f.exists() else 0
            out[f"{name}{suffix}_mb"] = round(size / 2**20, 1)
            total += size
        out[f"{name}_total_mb"] = round(total / 2**20, 1)
    return out


class ReadModel:
    """Read-only peeks at orderly.db for progress counts and query plans."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _q(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def waiting(self) -> int:
        return int(self._q("SELECT count(*) FROM approval_inbox WHERE eligible_level = 1")[0][0])

    def statuses(self) -> dict[str, int]:
        return dict(self._q("SELECT status, count(*) FROM orders GROUP BY status"))

    def inbox_plan(self) -> list[str]:
        sql = (
            "EXPLAIN QUERY PLAN SELECT DISTINCT approval_inbox.order_id, approval_inbox.level,"
            " approval_inbox.waiting_since FROM approval_inbox WHERE approval_inbox.eligible_level"
            " IN (1) AND NOT (EXISTS (SELECT * FROM approval_conflicts WHERE"
            " approval_conflicts.order_id = approval_inbox.order_id AND approval_conflicts.actor"
            " = 'dev-lead')) ORDER BY approval_inbox.waiting_since, approval_inbox.order_id"
            " LIMIT 51"
        )
        return [str(r[-1]) for r in self._q(sql)]


async def start_orders(
    args: argparse.Namespace, stack: c.Stack, ids: list[str], out: dict[str, Any]
) -> None:
    from temporalio.common import WorkflowIDReusePolicy

    from config import get_settings, load_policy
    from domain.order import OrderSpec
    from workflows.client import order_policy
    from workflows.contracts import StartOrderInput
    from workflows.order import OrderWorkflow

    settings = get_settings()
    policy = order_policy(settings, load_policy(settings.approval_policy_file))
    client = await c.temporal_client(stack)
    run = ids[0][-5:]
    errors: Counter[str] = Counter()
    it = iter(enumerate(ids))

    async def one() -> None:
        for i, oid in it:
            spec = OrderSpec.model_validate(c.order_body(i, run, amount=args.amount, sku=args.sku))
            inp = StartOrderInput(
                order_id=oid,
                spec=spec,
                created_by="dev-system",
                created_at=datetime.now(UTC),
                policy=policy,
            )
            try:
                await client.start_workflow(
                    OrderWorkflow.run,
                    inp,
                    id=oid,
                    task_queue=settings.task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
            except Exception as exc:  # counted and reported
                errors[type(exc).__name__] += 1

    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(args.start_concurrency)))
    out["start_rpcs"] = {
        "seconds": round(time.monotonic() - t0, 2),
        "errors": dict(errors),
    }


async def inbox_calls(
    http: httpx.AsyncClient,
    key: str,
    calls: int,
    lat: list[float],
    errors: Counter[str],
    by_variant: dict[str, list[float]] | None = None,
) -> None:
    """Pages of the inbox (following cursors) and filtered views, one call at a time."""
    variants: list[dict[str, Any]] = [
        {},
        {"limit": 200},
        {"level": 1},
        {"tier": "standard", "limit": 100},
        {"tier": "vip"},
    ]
    headers = {"Authorization": f"Bearer {key}"}
    done, v, cursor = 0, 0, None
    while done < calls:
        params = dict(variants[v % len(variants)])
        if cursor:
            params["cursor"] = cursor
        t = time.monotonic()
        resp = await http.get("/approvals/inbox", params=params, headers=headers)
        lat.append(time.monotonic() - t)
        if by_variant is not None:
            name = "&".join(f"{k}={v}" for k, v in params.items() if k != "cursor") or "default"
            name += " (next page)" if "cursor" in params else ""
            by_variant.setdefault(name, []).append(lat[-1])
        done += 1
        if resp.status_code != 200:
            errors[f"inbox {resp.status_code}"] += 1
            cursor = None
            v += 1
            continue
        cursor = resp.json().get("next_cursor")
        if not cursor or done % 5 == 0:  # 5 pages deep, then the next variant
            cursor = None
            v += 1


async def main_async(args: argparse.Namespace, stack: c.Stack, out: dict[str, Any]) -> int:
    assert stack.var is not None
    assert stack.database_url is not None
    rm = ReadModel(stack.var / "orderly.db")
    await c.top_up_stock(stack.database_url, {args.sku: 10_000_000})
    m = args.orders
    print(f"stack: api={stack.api} temporal={stack.temporal} pids={stack.pids}")
    print(
        f"orders={m} start_concurrency={args.start_concurrency}"
        f" approve_concurrency={args.concurrency}"
    )
    ids = order_ids(m)
    before = rm.waiting()
    meter = c.CpuMeter({**stack.pids, "bench": os.getpid()})
    meter.begin()
    t0 = time.monotonic()
    starter = asyncio.create_task(start_orders(args, stack, ids, out))
    progress: list[dict[str, Any]] = []
    errors: Counter[str] = Counter()
    marks = sorted({max(1, m * k // args.checkpoints) for k in range(1, args.checkpoints + 1)})
    async with httpx.AsyncClient(base_url=stack.api, timeout=60) as http:
        deadline = t0 + args.settle_timeout
        waiting = 0
        while True:
            await asyncio.sleep(2)
            waiting = rm.waiting() - before
            if marks and waiting >= marks[0]:
                marks.pop(0)
                lat: list[float] = []
                await inbox_calls(http, stack.keys["dev-lead"], 20, lat, errors)
                point = {
                    "waiting": waiting,
                    "t_s": round(time.monotonic() - t0, 1),
                    "inbox20": c.summary_ms(lat),
                    **c.memory(stack.pids),
                    **db_files(stack.var),
                }
                progress.append(point)
                print(
                    f"  {waiting:>7} waiting at {point['t_s']:>7} s  worker_rss="
                    f"{point.get('worker_rss_mb')} MB  temporal_rss={point.get('temporal_rss_mb')}"
                    f" MB  inbox p50/p95={point['inbox20']['p50_ms']}/{point['inbox20']['p95_ms']}"
                    f" ms  orderly.db={point['orderly.db_total_mb']} MB"
                    f"  temporal.db={point['temporal.db_total_mb']} MB",
                    flush=True,
                )
            if waiting >= m or time.monotonic() > deadline:
                break
        await starter
        fill_s = time.monotonic() - t0
        out["fill"] = {
            "waiting": waiting,
            "seconds": round(fill_s, 1),
            "orders_to_awaiting_per_s": round(waiting / fill_s, 2),
            **meter.end(),
        }
        out["progress"] = progress
        await asyncio.sleep(3)  # let the last projections land
        out["after_fill"] = {**c.memory(stack.pids), **db_files(stack.var)}
        out["read_model_statuses"] = rm.statuses()
        out["inbox_query_plan"] = rm.inbox_plan()

        lat = []
        variants: dict[str, list[float]] = {}
        await inbox_calls(http, stack.keys["dev-lead"], args.inbox_calls, lat, errors, variants)
        out["inbox"] = c.summary_ms(lat)
        out["inbox_by_variant"] = {k: c.summary_ms(v) for k, v in sorted(variants.items())}

        if not args.skip_drain:
            meter.begin()
            approve_lat: list[float] = []
            queue = list(ids)
            codes: Counter[int] = Counter()
            headers = {"Authorization": f"Bearer {stack.keys['dev-lead']}"}
            t1 = time.monotonic()
            drain_deadline = t1 + args.drain_timeout

            async def approver() -> None:
                while queue and time.monotonic() < drain_deadline:
                    oid = queue.pop()
                    t = time.monotonic()
                    try:
                        resp = await http.post(
                            f"/orders/{oid}/approve", json={"comment": "bench"}, headers=headers
                        )
                        codes[resp.status_code] += 1
                    except httpx.HTTPError as exc:
                        errors[f"approve {type(exc).__name__}"] += 1
                    approve_lat.append(time.monotonic() - t)

            await asyncio.gather(*(approver() for _ in range(args.concurrency)))
            calls_s = time.monotonic() - t1
            left = rm.waiting() - before
            while left > 0 and time.monotonic() < drain_deadline:
                await asyncio.sleep(1)
                left = rm.waiting() - before
            drain_s = time.monotonic() - t1
            out["drain"] = {
                "approved_calls": len(approve_lat),
                "status_codes": {str(k): v for k, v in sorted(codes.items())},
                "calls_seconds": round(calls_s, 1),
                "until_none_waiting_seconds": round(drain_s, 1),
                "left_waiting": left,
                "approvals_per_s": round(len(approve_lat) / drain_s, 2) if drain_s else None,
                "approve": c.summary_ms(approve_lat),
                **meter.end(),
            }
            out["after_drain"] = {**c.memory(stack.pids), **db_files(stack.var)}
    out["errors"] = dict(errors)
    out["loadavg_end"] = c.loadavg()
    report(out)
    return 0 if not errors else 1


def report(out: dict[str, Any]) -> None:
    f = out["fill"]
    print(
        f"\n== open orders: {f['waiting']} waiting for approval after {f['seconds']} s"
        f" ({f['orders_to_awaiting_per_s']} orders/s reach awaiting_approval)"
    )
    print(f"  start RPCs: {out.get('start_rpcs')}")
    print("  fill cpu: " + ", ".join(f"{k}={v}" for k, v in f.items() if k.endswith("_s")))
    print("  after fill: " + ", ".join(f"{k}={v}" for k, v in out["after_fill"].items()))
    print(f"  read model statuses: {out['read_model_statuses']}")
    print(c.fmt_lat("inbox", out["inbox"]) + "   [GET /approvals/inbox as dev-lead]")
    for k, v in out.get("inbox_by_variant", {}).items():
        print(c.fmt_lat("", v) + f"   [{k}]")
    print(f"  inbox query plan: {out['inbox_query_plan']}")
    if "drain" in out:
        d = out["drain"]
        print(
            f"  drain: {d['approved_calls']} approvals, none left waiting after "
            f"{d['until_none_waiting_seconds']} s ({d['approvals_per_s']}/s), codes "
            f"{d['status_codes']}, left {d['left_waiting']}"
        )
        print(c.fmt_lat("approve", d["approve"]))
        print(
            "  drain cpu: "
            + ", ".join(
                f"{k}={v}" for k, v in d.items() if k.endswith("_s") and k not in ("calls_seconds",)
            )
        )
        print("  after drain: " + ", ".join(f"{k}={v}" for k, v in out["after_drain"].items()))
    print(f"  errors: {out['errors']}")
    print(f"  load: start {out['machine']['loadavg_start']} | end {out['loadavg_end']}")


def main() -> int:
    return c.run_main(_args(), {"dev-lead"}, main_async)


if __name__ == "__main__":
    c.exit_process(main())
