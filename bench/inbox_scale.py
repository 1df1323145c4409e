"""Inbox query latency at large sizes, on a synthetic read model (no workflows, no HTTP).

Migrates a fresh SQLite file in a temp dir with the project's alembic migrations, inserts N
waiting orders straight into ``approval_inbox`` and ``approval_conflicts`` (what the projection
writes for an order waiting on level 1: one inbox row, conflicts for creator and sales rep),
then times ``db.inbox.inbox()`` (the function behind GET /approvals/inbox) for the same page and
filter variants as open_orders.py. It shows how the query itself scales to 100,000 waiting
orders, which would take hours to create through workflows on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="2000,10000,100000", help="comma-separated N")
    p.add_argument("--calls", type=int, default=40, help="calls per variant and size")
    p.add_argument("--vip-share", type=float, default=0.0, help="share of VIP customers")
    p.add_argument("--json", dest="json_path", help="also write results as JSON here")
    return p.parse_args()


def fill(path: Path, n: int, vip_share: float) -> None:
    con = sqlite3.connect(path)
    con.execute("DELETE FROM approval_inbox")
    con.execute("DELETE FROM approval_conflicts")
    t0 = datetime(2026, 11, 1)
    vip_every = round(1 / vip_share) if vip_share else 0
    inbox, conflicts = [], []
    for i in range(n):
        oid = f"SO-20261101-{i:05d}"[:32] if n <= 100_000 else f"SO-{i:012d}"
        tier = "vip" if vip_every and i % vip_every == 0 else "standard"
        at = (t0 + timedelta(milliseconds=37 * i)).strftime("%Y-%m-%d %H:%M:%S.%f")
        inbox.append(
            (
                oid,
                1,
                1,
                "team_lead",
                at,
                at,
                "reminder",
                f"C-{i}",
                f"Customer {i}",
                tier,
                "6500.00",
                "EUR",
            )
        )
        conflicts += [(oid, "dev-system"), (oid, "rep-bench")]
    con.executemany(
        "INSERT INTO approval_inbox (order_id, eligible_level, level, level_name, waiting_since,"
        " next_deadline, next_deadline_kind, customer_id, customer_name, customer_tier, total,"
        " currency) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        inbox,
    )
    con.executemany("INSERT INTO approval_conflicts (order_id, actor) VALUES (?,?)", conflicts)
    con.commit()
    con.execute("ANALYZE")
    con.close()


async def measure(url: str, calls: int) -> dict[str, Any]:
    from db.inbox import inbox
    from db.session import make_engine, make_sessionmaker

    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    variants: dict[str, dict[str, Any]] = {
        "first page limit=50": {},
        "limit=200": {"limit": 200},
        "level=1": {"level": 1},
        "tier=standard": {"tier": "standard"},
        "tier=vip (few or none match)": {"tier": "vip"},
        "page 20 via cursors": {"pages": 20},
    }
    out: dict[str, Any] = {}
    try:
        for name, kw in variants.items():
            lat: list[float] = []
            for _ in range(calls):
                pages = kw.get("pages", 1)
                cursor = None
                args = {k: v for k, v in kw.items() if k != "pages"}
                async with sessions() as session:
                    for _p in range(pages):
                        t = time.perf_counter()
                        _entries, cursor = await inbox(
                            session, actor="dev-lead", levels={1}, cursor=cursor, **args
                        )
                        elapsed = time.perf_counter() - t
                    lat.append(elapsed)  # the last page's query alone
            out[name] = c.summary_ms(lat)
    finally:
        await engine.dispose()
    return out


def main() -> int:
    args = _args()
    out: dict[str, Any] = {"machine": c.machine(), "sizes": {}}
    tmp = Path(tempfile.mkdtemp(prefix="orderly-inbox-"))
    code = 1
    try:
        db = tmp / "orderly.db"
        url = f"sqlite+aiosqlite:///{db}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
        env["ORDERLY_DATABASE_URL"] = url
        subprocess.run(
            [
                sys.executable,
                "-m",
                "alembic",
                "-c",
                str(c.ROOT / "db" / "alembic.ini"),
                "upgrade",
                "head",
            ],
            cwd=c.ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        for n in [int(s) for s in args.sizes.split(",")]:
            fill(db, n, args.vip_share)
            res = asyncio.run(measure(url, args.calls))
            out["sizes"][str(n)] = res
            print(f"== {n} waiting orders (db {db.stat().st_size / 2**20:.1f} MB)")
            for name, s in res.items():
                print(c.fmt_lat("", s) + f"   [{name}]")
        out["loadavg_end"] = c.loadavg()
        print(f"load: start {out['machine']['loadavg_start']} | end {out['loadavg_end']}")
        c.write_json(args.json_path, out)
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return code


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    os._exit(rc)
