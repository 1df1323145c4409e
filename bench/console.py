"""Console render times at 10,000 open orders: the inbox, the order search and the order page.

Starts a stack with devstack.py (or uses ``--api``), creates ``--real`` orders through the API
that wait for approval (real workflows), then clones their read-model rows (``orders``,
``approval_inbox``, ``approval_conflicts``) until ``--open`` orders are open, since creating
10,000 workflows takes ~40 minutes on 2 cores and the pages read only the read model (and, for
the order page, the one order's workflow). A console user signs in; each page is fetched
``--calls`` times. Printed: the server's own time (``Server-Timing``) and the client's latency,
p50/p95, the API's CPU and peak memory, and side by side the engine's own baseline in the same
run: a workflow query round trip on the same orders (``GET /orders/{id}`` reads one too).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sqlite3
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

PASSWORD = "bench console password"
TIMING = re.compile(r"app;dur=([0-9.]+)")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--open", type=int, default=10_000, help="open orders in the read model")
    p.add_argument("--real", type=int, default=20, help="real orders (workflows) to create")
    p.add_argument("--calls", type=int, default=100, help="calls per page")
    p.add_argument("--api", help="a running stack's API URL (default: start one)")
    p.add_argument("--temporal", default="127.0.0.1:7233")
    p.add_argument("--var", type=Path, help="the running stack's var/ (keys, database)")
    p.add_argument("--key", help=argparse.SUPPRESS)
    p.add_argument("--stack-env", action="append", default=[], metavar="K=V")
    p.add_argument("--keep", action="store_true", help="keep the temp stack directory")
    p.add_argument("--json", dest="json_path", help="also write results as JSON here")
    return p.parse_args()


async def create_real(stack: c.Stack, n: int, run_id: str) -> list[str]:
    """``n`` orders of 6,000 EUR: each waits for a level-1 approval (team lead)."""
    headers = {"Authorization": f"Bearer {stack.keys['dev-system']}"}
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=stack.api, timeout=60) as http:
        for i in range(n):
            body = c.order_body(i, run_id, amount="6000.00", sku="WIDGET-1")
            answer = await http.post("/orders", json=body, headers=headers)
            answer.raise_for_status()
            ids.append(answer.json()["id"])
        for order_id in ids:  # until each one is in the inbox
            for _ in range(300):
                got = (await http.get(f"/orders/{order_id}", headers=headers)).json()
                if got["status"] == "awaiting_approval":
                    break
                await asyncio.sleep(0.1)
    return ids


def clone_rows(db: Path, real: list[str], total: int) -> int:
    """Copy the real orders' read-model rows under new ids until ``total`` orders are open."""
    con = sqlite3.connect(db, timeout=30)
    con.execute("PRAGMA journal_mode=wal")
    tables = ("orders", "approval_inbox", "approval_conflicts")
    columns = {t: [r[1] for r in con.execute(f"PRAGMA table_info({t})")] for t in tables}
    key = {"orders": "id", "approval_inbox": "order_id", "approval_conflicts": "order_id"}
    templates: dict[str, dict[str, list[tuple[Any, ...]]]] = {
        t: {
            oid: con.execute(f"SELECT * FROM {t} WHERE {key[t]} = ?", (oid,)).fetchall()
            for oid in real
        }
        for t in tables
    }
    made = 0
    with con:
        for i in range(max(0, total - len(real))):
            source = real[i % len(real)]
            new_id = f"SO-BENCH-{i:06d}"
            for t in tables:
                idx = columns[t].index(key[t])
                placeholders = ",".join("?" * len(columns[t]))
                for row in templates[t][source]:
                    values = list(row)
                    values[idx] = new_id
                    if t == "orders" and "external_reference" in columns[t]:
                        values[columns[t].index("external_reference")] = f"BX-{i}"
                    con.execute(f"INSERT INTO {t} VALUES ({placeholders})", values)
            made += 1
    open_count = con.execute(
        "SELECT count(*) FROM orders WHERE status NOT IN "
        "('completed','cancelled','rejected','failed')"
    ).fetchone()[0]
    con.close()
    print(f"  cloned {made} orders; {open_count} open orders in the read model")
    return int(open_count)


async def add_user(database_url: str) -> str:
    from db.session import make_engine, make_sessionmaker
    from services.users import Users

    engine = make_engine(database_url)
    name = f"bench-{uuid.uuid4().hex[:6]}"
    try:
        await Users(make_sessionmaker(engine)).invite(
            "bench",
            name,
            "Bench User",
            ["approver", "support", "manager"],
            [1, 2, 3],
            password=PASSWORD,
        )
    finally:
        await engine.dispose()
    return name


async def sign_in(http: httpx.AsyncClient, username: str) -> None:
    form = await http.get("/console/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text[:300]
    answer = await http.post(
        "/console/sign-in",
        data={"username": username, "password": PASSWORD, "csrf_token": token.group(1)},
    )
    if answer.status_code != 303:
        raise SystemExit(f"console sign-in refused: {answer.status_code} {answer.text[:200]}")


async def timed_gets(http: httpx.AsyncClient, paths: list[str], calls: int) -> dict[str, Any]:
    server: list[float] = []
    client: list[float] = []
    for i in range(calls):
        path = paths[i % len(paths)]
        t = time.perf_counter()
        answer = await http.get(path)
        client.append(time.perf_counter() - t)
        if answer.status_code != 200:
            raise SystemExit(f"GET {path}: {answer.status_code} {answer.text[:200]}")
        found = TIMING.search(answer.headers.get("server-timing", ""))
        if found:
            server.append(float(found.group(1)) / 1000)
    return {"server": c.summary_ms(server), "client": c.summary_ms(client)}


async def query_baseline(stack: c.Stack, ids: list[str], calls: int) -> dict[str, Any]:
    """The engine's own figure: one workflow query round trip on the same orders."""
    from workflows.order import OrderWorkflow

    client = await c.temporal_client(stack)
    lat: list[float] = []
    for i in range(calls):
        handle = client.get_workflow_handle(ids[i % len(ids)])
        t = time.perf_counter()
        await handle.query(OrderWorkflow.state)
        lat.append(time.perf_counter() - t)
    return c.summary_ms(lat)


async def main_async(args: argparse.Namespace, stack: c.Stack, out: dict[str, Any]) -> int:
    if stack.database_url is None or stack.var is None:
        raise SystemExit("need the stack's var/ (--var) to reach its database")
    run_id = uuid.uuid4().hex[:6]
    print(f"creating {args.real} real orders waiting for approval ...", flush=True)
    real = await create_real(stack, args.real, run_id)
    open_count = clone_rows(stack.var / "orderly.db", real, args.open)
    out["open_orders"] = open_count
    username = await add_user(stack.database_url)
    pages = {
        "inbox (first page)": ["/console/inbox"],
        "inbox level=1": ["/console/inbox?level=1"],
        "order page": [f"/console/orders/{oid}" for oid in real],
        "order search (first page)": ["/console/orders"],
        "order search status=awaiting_approval": ["/console/orders?status=awaiting_approval"],
        "dashboard (30 days; not a target)": ["/console/dashboard"],
    }
    results: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=stack.api, timeout=60) as http:
        await sign_in(http, username)
        for paths in pages.values():  # warm up each page once
            await timed_gets(http, paths, min(len(paths), 5))
        meter = c.CpuMeter({k: v for k, v in stack.pids.items() if k == "api"})
        meter.begin()
        for name, paths in pages.items():
            results[name] = await timed_gets(http, paths, args.calls)
        out["cpu"] = meter.end()
    out["pages"] = results
    out["engine_query_round_trip"] = await query_baseline(stack, real, args.calls)
    out["memory"] = c.memory(stack.pids)
    report(out)
    slow = [
        n for n, r in results.items() if "target" not in n and (r["server"]["p50_ms"] or 0) >= 100
    ]
    return 1 if slow else 0


def report(out: dict[str, Any]) -> None:
    print(f"\nConsole pages at {out['open_orders']} open orders (target: server time < 100 ms)")
    for name, r in out["pages"].items():
        s, cl = r["server"], r["client"]
        print(
            f"  {name:<40} server p50={s['p50_ms']} p95={s['p95_ms']} ms   "
            f"client p50={cl['p50_ms']} p95={cl['p95_ms']} ms"
        )
    q = out["engine_query_round_trip"]
    print(f"  {'engine: workflow query round trip':<40} p50={q['p50_ms']} p95={q['p95_ms']} ms")
    cpu = out["cpu"]
    print(f"  API CPU over the measured calls: {cpu.get('api_cpu_s')} s in {cpu['wall_s']} s")
    mem = out["memory"]
    api_mb, worker_mb = mem.get("api_peak_rss_mb"), mem.get("worker_peak_rss_mb")
    print(f"  peak RSS: API {api_mb} MB, worker {worker_mb} MB")


def main() -> int:
    return c.run_main(_args(), {"dev-system"}, main_async)


if __name__ == "__main__":
    c.exit_process(main())
