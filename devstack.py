"""`make run`: the whole service on one machine with nothing else installed.

Applies migrations, creates dev API keys and console users on first run, starts the Temporal
dev server (SQLite file under var/), the worker, the API and a dev proxy (devproxy.py), prints
where everything is, and stops all of them cleanly on Ctrl-C. Orders survive a restart: all
state is in var/.

The proxy is the Temporal UI browsers open (``--ui-port``): it serves the dev server's UI (on
``--ui-internal-port``) and the API's ``/codec`` from one origin, so the UI sends the codec
sign-in cookie without any per-browser setting.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from api.auth import Role, create_api_key
from config import ROOT, PolicyFileError, load_policy
from db.models import StockItemRow
from db.session import make_engine, make_sessionmaker
from integrations.inventory import SimulatedInventory
from security.keyring import create_dev_key_file
from services.users import Users
from workflows.reports import ANALYTICS_SCHEDULE_ID

BIN = Path(sys.executable).parent
# name -> (roles, approval levels)
DEV_PRINCIPALS: dict[str, tuple[list[Role], list[int]]] = {
    "dev-system": ([Role.SYSTEM], []),
    "dev-lead": ([Role.APPROVER], [1]),
    "dev-manager": ([Role.APPROVER], [2]),
    "dev-finance": ([Role.APPROVER], [3]),
    "dev-support": ([Role.SUPPORT], []),
    "dev-admin": ([Role.ADMIN], []),
}
# Console users (people, with a password): name -> (roles, approval levels, display name).
# Not named like the dev API keys: a user and a key never share a principal name.
DEV_USERS: dict[str, tuple[list[Role], list[int], str]] = {
    "approver1": ([Role.APPROVER], [1], "Dev Approver (level 1)"),
    "approver2": ([Role.APPROVER], [2], "Dev Approver (level 2)"),
    "approver3": ([Role.APPROVER], [3], "Dev Approver (level 3)"),
    "support": ([Role.SUPPORT], [], "Dev Support"),
    "manager": ([Role.MANAGER], [], "Dev Manager"),
    "admin": ([Role.ADMIN], [], "Dev Admin"),
}
DEMO_STOCK = {"WIDGET-1": 10_000, "GADGET-2": 5_000, "GIZMO-3": 2_000, "RARE-9": 3}


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--var", type=Path, default=ROOT / "var", help="state directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-port", type=int, default=8000)
    parser.add_argument("--temporal-port", type=int, default=7233)
    parser.add_argument("--ui-port", type=int, default=8233, help="the Temporal UI (the proxy)")
    parser.add_argument(
        "--demo-orders",
        type=int,
        default=int(os.environ.get("ORDERLY_DEMO_ORDERS", "20000")),
        help="on first start, seed a demo history of this many finished orders in the "
        "background (orderly seed-demo; 0: none; default ORDERLY_DEMO_ORDERS or 20000)",
    )
    parser.add_argument(
        "--ui-internal-port",
        type=int,
        default=None,
        help="the dev server's own UI, behind the proxy (default: --ui-port + 1)",
    )
    return parser.parse_args()


class _Interrupted(Exception):
    """Ctrl-C (or SIGTERM) arrived while the stack was starting."""


_stop_requested = False


def _on_signal(_signo: int, _frame: object) -> None:
    global _stop_requested
    _stop_requested = True


def _check_stop() -> None:
    if _stop_requested:
        raise _Interrupted


def _wait_port(host: str, port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _check_stop()
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with code {proc.returncode} while starting")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on {host}:{port} within 60 s")


def _wait_healthy(url: str, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _check_stop()
        for proc in procs:
            if proc.poll() is not None:
                raise SystemExit(f"{proc.args!r} exited with code {proc.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
            if resp.status == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{url} did not report healthy within 60 s")


def _write_secret(path: Path, data: dict[str, str]) -> None:
    """``data`` as JSON, readable by this user only (never world-readable, not even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(data, indent=2))
    path.chmod(0o600)  # a file that was there before keeps its mode otherwise


def _dev_email(name: str) -> str:
    """Dev users' addresses: approval reminders to them land in var/mail as .eml files."""
    return f"{name}@example.com"


async def _dev_users(users: Users, users_file: Path) -> dict[str, str]:
    """Create the console's dev users once (random passwords, kept in ``users_file``); a dev
    user whose password is not in the file gets a new one."""
    kept: dict[str, str] = json.loads(users_file.read_text()) if users_file.exists() else {}
    existing = {u.username: u for u in await users.list()}
    passwords: dict[str, str] = {}
    for name, (roles, levels, display_name) in DEV_USERS.items():
        if name in existing and kept.get(name):
            passwords[name] = kept[name]
            continue
        password = secrets.token_urlsafe(12)
        if name in existing:  # the file was lost: a fresh password through a fresh invite
            _, token = await users.reinvite(existing[name].id)
            await users.accept_invite(token, password)
        else:
            await users.invite(
                "devstack",
                name,
                display_name,
                roles,
                levels,
                password=password,
                email=_dev_email(name),
            )
        passwords[name] = password
    for name, user in existing.items():  # dev users made before they had addresses
        if name in DEV_USERS and user.email is None:
            await users.update(user.id, email=_dev_email(name))
    if passwords != kept:
        _write_secret(users_file, passwords)
    return passwords


async def _prepare(
    database_url: str, keys_file: Path, users_file: Path
) -> tuple[dict[str, str], dict[str, str]]:
    """Seed demo stock once; create dev API keys once and keep them in ``keys_file``, and the
    console's dev users in ``users_file``."""
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        has_stock = await session.get(StockItemRow, "WIDGET-1") is not None
    if not has_stock:
        await SimulatedInventory(sessions).set_stock(DEMO_STOCK)
    keys: dict[str, str] = json.loads(keys_file.read_text()) if keys_file.exists() else {}
    if set(keys) != set(DEV_PRINCIPALS):
        keys = {
            name: await create_api_key(sessions, name, roles, levels)
            for name, (roles, levels) in DEV_PRINCIPALS.items()
        }
        keys_file.write_text(json.dumps(keys, indent=2))
        keys_file.chmod(0o600)
    passwords = await _dev_users(Users(sessions), users_file)
    await engine.dispose()
    return keys, passwords


class DemoSeeder:
    """``orderly seed-demo`` in the background on a first start (``var/demo-seeded`` marks it
    done), then one analytics run (the schedule triggered), so reports and forecasts have data."""

    def __init__(self, orders: int, var: Path, env: dict[str, str], temporal: str) -> None:
        self.marker = var / "demo-seeded"
        self.orders, self.var, self.env, self.temporal = orders, var, env, temporal
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def wanted(self) -> bool:
        return self.orders > 0 and not self.marker.exists()

    def start(self) -> None:
        out = (self.var / "seed-demo.log").open("ab")
        cmd = [sys.executable, "-m", "cli", "seed-demo", "--orders", str(self.orders)]
        self.proc = subprocess.Popen(
            cmd, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def poll(self) -> None:
        """Once the seeding ended: mark it done and start the analytics run."""
        if self.proc is None or self.proc.poll() is None:
            return
        code, self.proc = self.proc.returncode, None
        log = self.var / "seed-demo.log"
        if code != 0 and "already" not in log.read_text(errors="replace"):
            print(f"Demo history not seeded (exit {code}); see {log}", flush=True)
            return
        self.marker.write_text(datetime.now(UTC).isoformat())
        trigger = [str(BIN / "temporal"), "schedule", "trigger", "--schedule-id",
                   ANALYTICS_SCHEDULE_ID, "--address", self.temporal]  # fmt: skip
        subprocess.run(trigger, capture_output=True, check=False, cwd=ROOT)
        print(
            f"Demo history ready: {self.orders:,} finished orders (reports, forecasts and "
            "recommendations are computing now).",
            flush=True,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM newest first (proxy, API, worker, Temporal), then SIGKILL what lingers."""
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    args = _args()
    var: Path = args.var.resolve()
    var.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("ORDERLY_DATABASE_URL", f"sqlite+aiosqlite:///{var / 'orderly.db'}")
    env["ORDERLY_TEMPORAL_TARGET"] = f"{args.host}:{args.temporal_port}"
    env["ORDERLY_API_PORT"] = str(args.api_port)
    # Invite and tracking links point at this API (also with --host/--api-port).
    env.setdefault("ORDERLY_PUBLIC_BASE_URL", f"http://{args.host}:{args.api_port}")
    # Webhook receivers on this machine (a local test server) are allowed in development.
    env.setdefault("ORDERLY_WEBHOOK_ALLOW_PRIVATE", "true")
    # Email goes to .eml files under var/mail unless SMTP is configured.
    env.setdefault("ORDERLY_MAIL_DIR", str(var / "mail"))
    ui_internal_port: int = args.ui_internal_port or args.ui_port + 1
    ui = f"http://{args.host}:{args.ui_port}"  # devproxy.py: the UI and /codec, one origin
    env["ORDERLY_TEMPORAL_UI_ORIGIN"] = ui  # same origin as /codec there: no CORS needed
    database_url = env["ORDERLY_DATABASE_URL"]
    if not env.get("ORDERLY_ENCRYPTION_KEYS"):  # a dev key, generated once, never committed
        env.setdefault("ORDERLY_ENCRYPTION_KEYS_FILE", str(var / "encryption-keys.json"))
        create_dev_key_file(Path(env["ORDERLY_ENCRYPTION_KEYS_FILE"]))

    subprocess.run(
        [
            sys.executable,
            "-m",
            "alembic",
            "-c",
            str(ROOT / "db" / "alembic.ini"),
            "upgrade",
            "head",
        ],
        check=True,
        env=env,
        cwd=ROOT,
    )
    try:
        load_policy(Path(env.get("ORDERLY_APPROVAL_POLICY_FILE", ROOT / "approval-policy.yaml")))
    except PolicyFileError as exc:
        raise SystemExit(str(exc)) from None
    keys, passwords = asyncio.run(
        _prepare(database_url, var / "dev-api-keys.json", var / "dev-users.json")
    )

    procs: list[subprocess.Popen[bytes]] = []

    def spawn(cmd: list[str], log: str) -> subprocess.Popen[bytes]:
        out = (var / log).open("ab")
        # Own session: Ctrl-C reaches only us, and we stop the children in order.
        proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        procs.append(proc)
        return proc

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    code = 0
    seeder: DemoSeeder | None = None
    try:
        temporal = spawn(
            [
                str(BIN / "temporal"),
                "server",
                "start-dev",
                "--db-filename",
                str(var / "temporal.db"),
                "--sqlite-pragma",
                "journal_mode=wal",
                "--sqlite-pragma",
                "synchronous=normal",
                "--ip",
                args.host,
                "--port",
                str(args.temporal_port),
                "--ui-port",
                str(ui_internal_port),
                # The UI decodes payloads through the API's codec server (api/routes/codec.py),
                # reached through the proxy on the UI's own origin, so the cookie goes along.
                "--ui-codec-endpoint",
                f"{ui}/codec",
                "--log-level",
                "warn",
            ],
            "temporal.log",
        )
        _wait_port(args.host, args.temporal_port, temporal, "Temporal dev server")
        worker = spawn([sys.executable, "worker.py", "--queues", "orders"], "worker.log")
        intake = spawn([sys.executable, "worker.py", "--queues", "intake"], "intake-worker.log")
        api = spawn(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.app:create_app",
                "--factory",
                "--host",
                args.host,
                "--port",
                str(args.api_port),
                "--log-level",
                "warning",
                # open console pages hold a live stream: Ctrl-C waits for them at most this long
                "--timeout-graceful-shutdown",
                "5",
            ],
            "api.log",
        )
        base = f"http://{args.host}:{args.api_port}"
        proxy = spawn(
            [
                sys.executable,
                "devproxy.py",
                "--host",
                args.host,
                "--port",
                str(args.ui_port),
                "--api",
                base,
                "--ui",
                f"http://{args.host}:{ui_internal_port}",
            ],
            "devproxy.log",
        )
        _wait_port(args.host, args.ui_port, proxy, "Dev proxy (devproxy.py)")
        _wait_healthy(f"{base}/healthz", [temporal, worker, intake, api, proxy])
        seeder = DemoSeeder(args.demo_orders, var, env, f"{args.host}:{args.temporal_port}")
        _banner(base, ui, keys, var, passwords, mail=_mail_line(env))
        if seeder.wanted:
            print(
                f"Seeding a demo history of {args.demo_orders:,} finished orders in the "
                f"background (var/seed-demo.log; --demo-orders 0 for none) ...",
                flush=True,
            )
            seeder.start()
        while not _stop_requested and all(p.poll() is None for p in procs):
            seeder.poll()
            time.sleep(0.2)
        for proc in procs:
            if proc.poll() is not None and not _stop_requested:
                print(f"{proc.args!r} exited with code {proc.returncode}; see {var}/*.log")
                code = 1
    except _Interrupted:
        pass
    finally:
        print("Stopping proxy, API, worker and Temporal ...", flush=True)
        if seeder is not None:
            seeder.stop()
        _stop(procs)
    print("Stopped.")
    return code


def _mail_line(env: dict[str, str]) -> str:
    transport = env.get("ORDERLY_MAIL_TRANSPORT", "file")
    if transport == "smtp":
        host, port = env.get("ORDERLY_SMTP_HOST", "localhost"), env.get("ORDERLY_SMTP_PORT", "587")
        return f"sent over SMTP to {host}:{port}"
    if transport == "outbox":
        return "recorded in the outbox only (GET /notifications), not sent"
    return (
        f"written as .eml files to {env['ORDERLY_MAIL_DIR']} (no SMTP server needed;\n"
        "               ORDERLY_MAIL_TRANSPORT=smtp and ORDERLY_SMTP_* send it)"
    )


def _banner(
    api: str,
    ui: str,
    keys: dict[str, str],
    var: Path,
    passwords: dict[str, str] | None = None,
    mail: str = "",
) -> None:
    sign_in = (
        f"sign in once at {ui}/codec/sign-in with the dev-support key to read decoded histories"
    )
    print(f"""
Orderly is running (state in {var}; logs: api.log, worker.log, intake-worker.log,
  temporal.log, devproxy.log)
  Console      {api}/console/  (sign in as a dev user below)
  API docs     {api}/docs
  Health       {api}/healthz
  Temporal UI  {ui} — {sign_in}
  Codec        {api}/codec  (payloads are encrypted; decoded here for support/admin;
               the UI calls it on its own origin, as {ui}/codec)
  Email        {mail}

Dev API keys (also in {var / "dev-api-keys.json"}):""")
    for name, key in keys.items():
        roles, levels = DEV_PRINCIPALS[name]
        what = ", ".join(r.value for r in roles) + (
            f" L{','.join(map(str, levels))}" if levels else ""
        )
        print(f"  {name:<13} {what:<12} {key}")
    if passwords:
        print(f"""
Dev console users at {api}/console/ (passwords also in {var / "dev-users.json"}):""")
        for name, password in passwords.items():
            roles, levels, _ = DEV_USERS[name]
            what = ", ".join(r.value for r in roles) + (
                f" L{','.join(map(str, levels))}" if levels else ""
            )
            print(f"  {name:<13} {what:<12} {password}")
    print(
        f"""
Try:  curl -s -X POST {api}/orders -H "Authorization: Bearer {keys["dev-system"]}" \\
        -H 'Content-Type: application/json' -d @docs/example-order.json

Press Ctrl-C to stop.""",
        flush=True,
    )


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
