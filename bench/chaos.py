"""Chaos run: drive K orders of every kind while the worker is killed, the Temporal server is
restarted, the payment gateway times out and the database is locked; then prove from the
simulators' ledgers and the read model that nothing was lost or done twice.

    .venv/bin/python bench/chaos.py --orders 2000            # full run
    .venv/bin/python bench/chaos.py --orders 100 --kill-every 8   # the CI version

Exit code 0 only if every invariant holds. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Replayer  # noqa: E402

from api.app import create_app  # noqa: E402
from api.auth import Role, create_api_key  # noqa: E402
from bench.processes import TemporalServer, WorkerProcess, free_port, migrate  # noqa: E402
from config import Settings, load_policy  # noqa: E402
from db.models import OrderEventRow, OrderRow, PaymentLedgerRow, ReservationRow  # noqa: E402
from db.session import make_engine, make_sessionmaker  # noqa: E402
from domain.state import OrderState  # noqa: E402
from integrations.credit import SimulatedBureau  # noqa: E402
from integrations.inventory import SimulatedInventory  # noqa: E402
from security.keyring import create_dev_key_file  # noqa: E402
from services.context import Services  # noqa: E402
from worker import WORKFLOWS, workflow_runner  # noqa: E402
from workflows.client import connect  # noqa: E402
from workflows.order import OrderWorkflow  # noqa: E402

TERMINAL = {"completed", "cancelled", "rejected", "failed"}
# scenario -> (final status, captures, refunds)
EXPECTED: dict[str, tuple[str, int, int]] = {
    "auto_approved": ("completed", 1, 0),
    "multi_level": ("completed", 1, 0),
    "rejected": ("rejected", 0, 0),
    "cancel_before_capture": ("cancelled", 0, 0),
    "cancel_after_capture": ("cancelled", 1, 1),
    "payment_declined": ("failed", 0, 0),
    "prepay_paid": ("completed", 1, 0),
    "prepay_expired": ("cancelled", 0, 0),
    "split_shipment": ("completed", 1, 0),
}
RETRY_STATUSES = {500, 502, 503, 504}


@dataclass
class Driver:
    http: httpx.AsyncClient
    keys: dict[str, str]
    deadline: float
    errors: Counter[str] = field(default_factory=Counter)

    async def call(self, method: str, url: str, who: str, **kwargs: Any) -> httpx.Response:
        """An API call retried through outages (5xx, connection errors) until the deadline."""
        headers = {"Authorization": f"Bearer {self.keys[who]}", **kwargs.pop("headers", {})}
        while True:
            try:
                response = await self.http.request(method, url, headers=headers, **kwargs)
                if response.status_code not in RETRY_STATUSES:
                    return response
                self.errors[f"{response.status_code} (retried)"] += 1
            except httpx.HTTPError as exc:
                self.errors[f"{type(exc).__name__} (retried)"] += 1
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"{method} {url} kept failing")
            await asyncio.sleep(0.5)

    async def order(self, order_id: str) -> dict[str, Any]:
        response = await self.call("GET", f"/orders/{order_id}", "support")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def until(self, order_id: str, ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        while True:
            body = await self.order(order_id)
            if ok(body) or body["status"] in TERMINAL:
                return body
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"{order_id} stuck in {body['status']}")
            await asyncio.sleep(0.3)

    async def command(
        self,
        order_id: str,
        action: str,
        who: str,
        body: dict[str, Any],
        done: Callable[[dict[str, Any]], bool],
    ) -> None:
        """A command, sent again with the same Idempotency-Key until the order shows it
        (an answer lost in an outage must not lose the command, nor apply it twice)."""
        key = {"Idempotency-Key": f"{action}-{who}-{order_id}"}
        for attempt in range(100):
            response = await self.call(
                "POST", f"/orders/{order_id}/{action}", who, json=body, headers=key
            )
            self.errors[f"{action} answered {response.status_code}"] += 1
            for _ in range(20):
                current = await self.order(order_id)
                if done(current) or current["status"] in TERMINAL:
                    if attempt:
                        self.errors[f"{action} sent again"] += attempt
                    return
                await asyncio.sleep(0.3)


def _payload(scenario: str, n: int) -> dict[str, Any]:
    price = {"multi_level": "300.00", "rejected": "60.00", "cancel_before_capture": "60.00"}
    unit = price.get(scenario, "1.99")
    payment = {"type": "card", "token": "tok_decline" if scenario == "payment_declined" else "tok"}
    if scenario.startswith("prepay"):
        payment = {"type": "bank_transfer"}
    return {
        "customer": {
            "id": f"C-{n % 50}",
            "name": "Chaos Ltd",
            "email": "ops@example.com",
            "region": "EU",
        },
        "lines": [{"sku": f"SKU-{n % 10}", "quantity": 100, "unit_price": unit}],
        "currency": "EUR",
        "shipping_address": {
            "name": "Ops",
            "line1": "1 Way",
            "city": "Oslo",
            "postal_code": "0150",
            "country": "NO",
        },
        "payment_method": payment,
        "sales_rep": "rep-chaos",
    }


async def drive(d: Driver, scenario: str, n: int) -> str:
    """Create one order and take it through its scenario; returns the order id."""
    key = f"chaos-{n}-{uuid.uuid4().hex[:6]}"
    response = await d.call(
        "POST", "/orders", "system", json=_payload(scenario, n), headers={"Idempotency-Key": key}
    )
    if response.status_code not in (200, 201):
        raise RuntimeError(f"create failed: {response.status_code} {response.text[:200]}")
    oid: str = response.json()["id"]

    def at(*statuses: str) -> Callable[[dict[str, Any]], bool]:
        return lambda body: body["status"] in statuses

    def level(n_: int) -> Callable[[dict[str, Any]], bool]:
        return lambda b: b["status"] == "awaiting_approval" and b["approval"]["current_level"] == n_

    async def scan(
        event: str, then: Callable[[dict[str, Any]], bool], tracking: str | None = None
    ) -> None:
        """A carrier scan, sent again until the order shows it (a 409 can be a stale read)."""
        body = {"event": event} | ({"tracking_number": tracking} if tracking else {})
        for _ in range(200):
            r = await d.call("POST", f"/orders/{oid}/shipment-events", "system", json=body)
            if r.status_code not in (202, 409):
                d.errors[f"carrier {r.status_code}"] += 1
            for _ in range(10):
                if then(await d.order(oid)):
                    return
                await asyncio.sleep(0.3)

    async def deliver() -> None:
        await d.until(oid, at("fulfilling"))
        await scan("picked_up", at("shipped", "delivered", "completed"))
        await scan("delivered", at("delivered", "completed"))

    def past(n_: int) -> Callable[[dict[str, Any]], bool]:
        return lambda b: b["status"] != "awaiting_approval" or b["approval"]["current_level"] != n_

    if scenario == "multi_level":
        await d.until(oid, level(1))
        await d.command(oid, "approve", "lead", {}, past(1))
        await d.until(oid, level(2))
        await d.command(oid, "approve", "manager", {}, past(2))
        await deliver()
    elif scenario == "rejected":
        await d.until(oid, level(1))
        await d.command(oid, "reject", "lead", {"reason": "chaos says no"}, past(1))
    elif scenario == "cancel_before_capture":
        await d.until(oid, at("awaiting_approval"))
        await d.command(oid, "cancel", "support", {"reason": "before capture"}, at("cancelled"))
    elif scenario == "cancel_after_capture":
        await d.until(oid, at("fulfilling"))
        await d.command(oid, "cancel", "support", {"reason": "after capture"}, at("cancelled"))
    elif scenario == "prepay_paid":
        body = await d.until(oid, at("awaiting_payment"))
        payment = {"amount": body["total"], "token": "tr_ok"}
        await d.command(
            oid, "payments", "system", payment, lambda b: b["status"] != "awaiting_payment"
        )
        await deliver()
    elif scenario in ("auto_approved",):
        await deliver()
    elif scenario == "split_shipment":
        body = await d.until(oid, at("fulfilling"))
        sku = body["lines"][0]["sku"]
        parcels = {"parcels": [[{"sku": sku, "quantity": 60}], [{"sku": sku, "quantity": 40}]]}

        def split(b: dict[str, Any]) -> bool:
            return len([p for p in b["parcels"] if p["status"] != "cancelled"]) == 2

        await d.command(oid, "split-shipment", "support", parcels, split)
        body = await d.order(oid)
        for parcel in [p for p in body["parcels"] if p["status"] != "cancelled"]:
            tracking = parcel["tracking_number"]

            def scanned(b: dict[str, Any], t: str = tracking, want: str = "picked_up") -> bool:
                return (
                    any(
                        p["tracking_number"] == t and p["status"] in (want, "delivered")
                        for p in b["parcels"]
                    )
                    or b["status"] in TERMINAL
                )

            await scan("picked_up", scanned, tracking)
            await scan("delivered", lambda b, t=tracking: scanned(b, t, "delivered"), tracking)
    await d.until(oid, lambda body: body["status"] in TERMINAL)
    return oid


class Chaos:
    """Fault injector: kills the worker, restarts the server, breaks the gateway, locks the DB."""

    def __init__(
        self,
        args: argparse.Namespace,
        worker: WorkerProcess,
        server: TemporalServer,
        db_path: Path | None,
    ) -> None:
        self.args, self.worker, self.server, self.db_path = args, worker, server, db_path
        self.log: list[str] = []

    def note(self, what: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {what}")

    async def run(self, stop: asyncio.Event) -> None:
        start = time.monotonic()
        server_restarted = gateway_broken = db_locked = False
        for tick in itertools.count():
            if stop.is_set() or tick > 10_000:
                return
            # Jittered: kills exactly every 10 s phase-lock with the 10 s workflow-task timeout
            # (a 2,000-order run kept killing the one worker that held an order's task).
            await asyncio.sleep(self.args.kill_every * random.uniform(0.5, 1.5))
            if stop.is_set():
                return
            elapsed = time.monotonic() - start
            env = {}
            if not gateway_broken and elapsed > self.args.kill_every * 2:
                gateway_broken = True
                env = {"ORDERLY_SIM_PAYMENT_TRANSIENT_FAILURES": "2"}
                self.note("worker restarted with a gateway that times out twice per call")
            self.note("kill -9 worker")
            self.worker.kill()
            self.worker.start(env)
            if not server_restarted and elapsed > self.args.kill_every * 3:
                server_restarted = True
                self.note("restarting the Temporal server (same database file)")
                await asyncio.to_thread(self.server.restart)
                self.note("Temporal server back")
            if not db_locked and self.db_path and elapsed > self.args.kill_every * 4:
                db_locked = True
                self.note("read-model database locked for 3 s")
                await asyncio.to_thread(_lock_sqlite, self.db_path, 3.0)


async def _progress(
    orders: dict[str, str], total: int, started: float, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=10)
        print(
            f"  {time.monotonic() - started:6.0f} s: {len(orders)}/{total} orders done", flush=True
        )


def _lock_sqlite(path: Path, seconds: float) -> None:
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        conn.rollback()
    finally:
        conn.close()


async def check(
    sessions: Any, client: Client, orders: dict[str, str]
) -> list[tuple[str, int, int]]:
    """Each invariant with (violations, orders checked)."""
    rows: dict[str, list[str]] = {
        k: []
        for k in (
            "order in a terminal state (workflow and read model)",
            "captures per paid order = 1, none for unpaid",
            "refunds per cancelled-after-capture = 1, = captured",
            "no reservation left for a terminal order",
            "read model agrees with workflow state",
            "event log: exactly one row per event, same as the workflow's",
            "final status as the scenario expects",
            "history replays on the current code",
        )
    }
    replayer = Replayer(
        workflows=WORKFLOWS, data_converter=client.data_converter, workflow_runner=workflow_runner()
    )
    names = list(rows)
    async with sessions() as s:
        ledger = await s.execute(
            select(
                PaymentLedgerRow.order_id,
                PaymentLedgerRow.kind,
                func.count(),
                func.sum(PaymentLedgerRow.amount_minor),
            )
            .where(PaymentLedgerRow.status == "succeeded")
            .group_by(PaymentLedgerRow.order_id, PaymentLedgerRow.kind)
        )
        money = {(o, k): (int(c), int(a)) for o, k, c, a in ledger}
        held = {
            r
            for (r,) in await s.execute(
                select(ReservationRow.order_id).where(ReservationRow.state == "reserved")
            )
        }
        model = {r.id: r for r in (await s.scalars(select(OrderRow))).all()}
        logged: dict[str, list[tuple[int, str]]] = {}
        for oid, seq, type_ in await s.execute(
            select(OrderEventRow.order_id, OrderEventRow.seq, OrderEventRow.type)
        ):
            logged.setdefault(oid, []).append((seq, type_))
    for oid, scenario in orders.items():
        handle = client.get_workflow_handle_for(OrderWorkflow.run, oid)
        view: OrderState = await handle.result()
        record = await handle.query(OrderWorkflow.record)
        events = [(e.event.seq, e.event.type) for e in record.events]
        row = model.get(oid)
        want_status, want_captures, want_refunds = EXPECTED[scenario]
        captures, captured = money.get((oid, "capture"), (0, 0))
        refunds, refunded = money.get((oid, "refund"), (0, 0))
        tag = f"{oid} ({scenario})"
        if not view.status.is_terminal or row is None or row.status not in TERMINAL:
            rows[names[0]].append(tag)
        if captures != want_captures:
            rows[names[1]].append(f"{tag}: {captures} captures")
        if refunds != want_refunds or refunded != (captured if want_refunds else 0):
            rows[names[2]].append(f"{tag}: {refunds} refunds of {refunded} for {captured}")
        if oid in held:
            rows[names[3]].append(tag)
        if row is None or row.status != view.status.value or row.seq != view.seq:
            rows[names[4]].append(f"{tag}: model {row.status if row else None} vs {view.status}")
        if sorted(logged.get(oid, [])) != events or events != [
            (n, t) for n, (_, t) in enumerate(events, start=1)
        ]:
            rows[names[5]].append(f"{tag}: log {len(logged.get(oid, []))} vs {len(events)}")
        if view.status.value != want_status:
            rows[names[6]].append(f"{tag}: {view.status.value}")
        # A worker that lost its cache replays the history: it must take the same steps.
        history = await client.get_workflow_handle(oid).fetch_history()
        replay = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if replay.replay_failure is not None:
            rows[names[7]].append(f"{tag}: {str(replay.replay_failure)[:200]}")
    total = len(orders)
    for name, bad in rows.items():
        for line in bad[:5]:
            print(f"    {name}: {line}")
    return [(name, len(bad), total) for name, bad in rows.items()]


async def run(args: argparse.Namespace) -> int:
    var = Path(args.var or tempfile.mkdtemp(prefix="orderly-chaos-"))
    var.mkdir(parents=True, exist_ok=True)
    db_path = var / "orderly.db"
    url = args.database_url or f"sqlite+aiosqlite:///{db_path}"
    port = free_port()
    env = {
        "ORDERLY_DATABASE_URL": url,
        "ORDERLY_TEMPORAL_TARGET": f"127.0.0.1:{port}",
        "ORDERLY_TASK_QUEUE": "chaos",
        "ORDERLY_ACTIVITY_TIMEOUT": "PT5S",
        "ORDERLY_ACTIVITY_HEARTBEAT": "PT2S",
        "ORDERLY_PAYMENT_DEADLINE": "PT40S",
        "ORDERLY_PAYMENT_REMINDER_AFTER": "PT10S",
        "ORDERLY_COMMAND_WAIT": "PT10S",
        "ORDERLY_SIM_PAYMENT_DELAY": "0.2",
        "ORDERLY_ENCRYPTION_KEYS_FILE": str(var / "encryption-keys.json"),
    }
    create_dev_key_file(var / "encryption-keys.json")
    migrate(env)
    server = TemporalServer(var / "temporal.db", port)
    server.start()
    worker = WorkerProcess(env, var / "worker.log")
    worker.start()
    settings = Settings.model_validate({k[8:].lower(): v for k, v in env.items()})
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    await SimulatedInventory(sessions).set_stock({f"SKU-{i}": 10**9 for i in range(10)})
    bureau = SimulatedBureau(sessions, default_score=700, default_limit=Decimal(0))
    for c in range(50):
        await bureau.set_profile(f"C-{c}", score=900, credit_limit=Decimal(10**12))
    keys = {
        "system": await create_api_key(sessions, "chaos-system", [Role.SYSTEM]),
        "support": await create_api_key(sessions, "chaos-support", [Role.SUPPORT]),
        "lead": await create_api_key(sessions, "chaos-lead", [Role.APPROVER], [1]),
        "manager": await create_api_key(sessions, "chaos-manager", [Role.APPROVER], [2]),
    }
    client = await connect(settings)
    app = create_app(
        settings,
        services=Services(
            settings=settings,
            client=client,
            sessions=sessions,
            approval_policy=load_policy(settings.approval_policy_file),
        ),
    )
    scenarios = [s for _, s in zip(range(args.orders), itertools.cycle(EXPECTED), strict=False)]
    random.Random(7).shuffle(scenarios)
    orders: dict[str, str] = {}
    chaos = Chaos(args, worker, server, None if args.database_url else db_path)
    stop = asyncio.Event()
    started = time.monotonic()
    code = 1
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://chaos", timeout=30
        ) as http:
            driver = Driver(http, keys, deadline=time.monotonic() + args.timeout)
            gate = asyncio.Semaphore(args.concurrency)

            async def one(n: int, scenario: str) -> None:
                async with gate:
                    orders[await drive(driver, scenario, n)] = scenario

            faults = asyncio.create_task(chaos.run(stop))
            progress = asyncio.create_task(_progress(orders, args.orders, started, stop))
            results = await asyncio.gather(
                *(one(n, s) for n, s in enumerate(scenarios)), return_exceptions=True
            )
            stop.set()
            await faults
            await progress
            failures = [r for r in results if isinstance(r, BaseException)]
            elapsed = time.monotonic() - started
            print(
                f"\n{len(orders)} orders driven in {elapsed:.1f} s "
                f"({len(orders) / elapsed:.1f}/s) at concurrency {args.concurrency}"
            )
            print("faults injected:")
            for line in chaos.log:
                print(f"  {line}")
            print(
                "answers and retries seen by clients:",
                dict(sorted(driver.errors.items())) or "none",
            )
            for exc in failures[:5]:
                print(f"  driver failed: {type(exc).__name__}: {exc}")
            table = await check(sessions, client, orders)
        print(f"\n{'invariant':<55} {'violations':>10} {'orders':>7}")
        for name, bad, total in table:
            print(f"{name:<55} {bad:>10} {total:>7}")
        ok = not failures and len(orders) == args.orders and all(bad == 0 for _, bad, _ in table)
        print("\nRESULT:", "all invariants hold" if ok else "VIOLATIONS FOUND")
        code = 0 if ok else 1
    finally:
        stop.set()
        worker.kill()
        server.stop()
        await engine.dispose()
    return code


def _interrupt(_signo: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument("--kill-every", type=float, default=10.0, help="seconds between kills")
    parser.add_argument("--timeout", type=float, default=1800, help="overall deadline, seconds")
    parser.add_argument("--var", help="state directory (default: a new temp dir)")
    parser.add_argument("--database-url", help="PostgreSQL URL instead of a SQLite file")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)  # clean up the server and worker on SIGTERM too
    code = 1
    with contextlib.suppress(KeyboardInterrupt):
        code = asyncio.run(run(args))
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
