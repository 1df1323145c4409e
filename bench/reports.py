"""Sales reports at scale on PostgreSQL: rollup against raw rows, XLSX export, demand forecast.

Run from the project root (PostgreSQL server binaries needed, see tests/pgcluster.py)::

    .venv/bin/python bench/reports.py            # 1,000,000 orders, 3.2M lines: ~7 min, 2 cores
    .venv/bin/python bench/reports.py --quick    # 100,000 orders: a smoke run
    .venv/bin/python bench/reports.py --orders 300000 --repeats 20

It starts a throwaway PostgreSQL server (tests.pgcluster.PgCluster), creates the schema with
the project's alembic migrations (``alembic upgrade head``), and seeds N synthetic orders and
their lines with ``COPY ... FROM STDIN`` (psycopg 3): six regions, standard/VIP tiers, six
sources, 40 sales reps, EUR mostly plus GBP/USD, statuses mostly completed (open ones in the
last 30 days, some cancelled/rejected/failed), ``created_at`` over ``--months`` with growth,
yearly and weekday seasonality, SKU popularity Zipf-like (some SKUs launched late), 1-6 lines
per order (mean ~3.2) and partial or full refunds on ~5 % of the sold orders.

It then builds ``sales_daily``, ``sales_daily_sku``, ``sales_monthly_sku`` and
``sales_weekly_sku`` with ``INSERT ... SELECT ... GROUP BY`` statements computing what
``domain.reporting.contributions()`` computes (the refund share over an order's lines is done
exactly: half-even rounding at the money scale in integer arithmetic, remainder on the largest
line), checks that on a few whole days against ``contributions()`` itself, runs
``VACUUM ANALYZE``, checks that both report bases agree, and measures:

* ``Reports.sales()`` (the service behind GET /reports/sales, SQL + assembly in Python) on the
  rollup and on the raw rows (``basis="raw"``), ``--repeats`` timed calls after 2 warm-ups:
  one year by month x region, and one year by week x SKU, top 50; then one EXPLAIN ANALYZE of
  each statement the service sent;
* ``write_xlsx()`` of a sales table (day x SKU, the columns of ``sales_table``) with synthetic
  rows, in a fresh process per run: seconds, file size, peak RSS growth (/proc VmHWM after
  minus before) and, in a second run, the Python heap peak (tracemalloc), at 1/5 and at the
  full row count, to show memory does not grow with the rows;
* the weekly demand forecast (``domain.forecast.forecast``, horizon 12, backtest 8) of every
  SKU, from one query on ``sales_daily_sku``, on a pool of ``--workers`` spawned processes with
  one OpenBLAS thread each and on a pool of one; and, on the first 100 SKUs, the pool with
  OpenBLAS's default threads (one per core in every process: they spin and fight);
* CPU seconds of this process (and its children) and of the PostgreSQL server processes
  (postmaster and backends, from /proc) per phase, and the database and table sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import math
import multiprocessing
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

if TYPE_CHECKING:
    from domain.forecast import WeeklySeries
    from tests.pgcluster import PgCluster

END = date(2026, 12, 1)  # the data ends the day before (exclusive end of the seeded range)
DB_NAME = "orderly_reports"
REGIONS = ("EU-WEST", "EU-CENTRAL", "EU-SOUTH", "EU-NORTH", "UK", "US-EAST")
REGION_WEIGHTS = (0.30, 0.22, 0.14, 0.12, 0.12, 0.10)
SOURCES = ("eshop", "erp", "pos", "import", "console", "api")
SOURCE_WEIGHTS = (0.45, 0.20, 0.10, 0.10, 0.05, 0.10)
REPS = tuple(f"rep-{i:02d}" for i in range(1, 41))
CATEGORIES = tuple(f"category-{i:02d}" for i in range(1, 25))
# Statuses of orders older than 30 days, and of the last 30 days (open ones still moving).
OLD_STATUSES = {
    "completed": 0.868,
    "delivered": 0.005,
    "cancelled": 0.07,
    "rejected": 0.03,
    "failed": 0.02,
    "needs_attention": 0.007,
}
RECENT_STATUSES = {
    "received": 0.005,
    "awaiting_approval": 0.03,
    "changes_requested": 0.01,
    "confirmed": 0.02,
    "awaiting_payment": 0.03,
    "paid": 0.03,
    "fulfilling": 0.05,
    "shipped": 0.10,
    "delivered": 0.10,
    "completed": 0.49,
    "cancelled": 0.07,
    "rejected": 0.03,
    "failed": 0.02,
    "needs_attention": 0.015,
}
CLOSE_REASONS = {
    "cancelled": ("requested", "requested", "requested", "payment_expired", "system"),
    "rejected": ("credit", "approver", "approval_expired"),
    "failed": ("out_of_stock", "payment_failed", "error"),
}
TERMINAL = {"completed", "cancelled", "rejected", "failed"}
CONFIRMED_OR_LATER = {
    "confirmed",
    "awaiting_payment",
    "paid",
    "fulfilling",
    "shipped",
    "delivered",
    "completed",
    "needs_attention",
}
SHIPPED_OR_LATER = {"shipped", "delivered", "completed"}
DELIVERED_OR_LATER = {"delivered", "completed"}
ORDER_COLUMNS = tuple(
    "id status closed customer_id customer_tier region currency total created_by "
    "created_at updated_at seq snapshot external_reference source sales_rep revision "
    "refunded confirmed_at shipped_at delivered_at closed_at close_reason".split()
)
LINE_COLUMNS = tuple(
    "order_id line_no sku category quantity unit_price line_total currency".split()
)
TARGETS_MS = {"month x region": 300.0, "week x sku top-50": 500.0}
XLSX_TARGET_S = 30.0
FORECAST_TARGET_S = 60.0
DEFAULT_PG = {
    "shared_buffers": "1GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
}


class _HelpFormat(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__,
        epilog="Figures measured with it: bench/RESULTS.md, section Reports.",
        formatter_class=_HelpFormat,
    )
    p.add_argument("--orders", type=int, default=1_000_000, help="orders to seed")
    p.add_argument("--skus", type=int, default=1000, help="distinct SKUs (products)")
    p.add_argument(
        "--months", type=int, default=24, help=f"months of orders, up to {END} (excluded)"
    )
    p.add_argument(
        "--repeats", type=int, default=20, help="timed calls per query and basis (after 2 warm-ups)"
    )
    p.add_argument(
        "--xlsx-rows", type=int, default=100_000, help="rows of the XLSX export (also 1/5 of it)"
    )
    p.add_argument("--workers", type=int, default=2, help="processes of the forecast pool")
    p.add_argument("--seed", type=int, default=7, help="random seed of the data")
    p.add_argument(
        "--pg-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="PostgreSQL setting on top of PgCluster's and "
        + ", ".join(f"{k}={v}" for k, v in DEFAULT_PG.items()),
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="leave the server and its data running at the end (prints the URL and how to stop it)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 100,000 orders, 5 repeats, XLSX 20,000 rows (overrides those options)",
    )
    args = p.parse_args()
    if args.quick:
        args.orders, args.repeats, args.xlsx_rows = 100_000, 5, 20_000
    if args.orders < 1000 or args.skus < 10 or args.months < 13 or args.repeats < 1:
        p.error("need --orders >= 1000, --skus >= 10, --months >= 13, --repeats >= 1")
    return args


# --- CPU accounting ------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def server_cpu_seconds(postmaster: int) -> float:
    """CPU of the whole server: the postmaster's own and its reaped children's (cutime, cstime:
    backends that have exited), plus the live children's (backends, parallel and background
    workers)."""
    fields = _stat_fields(postmaster)
    if fields is None:
        return 0.0
    # fields[0] is field 3: utime 14, stime 15, cutime 16, cstime 17.
    total = sum(int(v) for v in fields[11:15]) / c.CLK_TCK
    for child in c.children(postmaster):
        total += c.cpu_seconds(child) or 0.0
    return total


def own_cpu_seconds() -> tuple[float, float]:
    """(this process, its reaped children: the forecast and XLSX processes) in CPU seconds."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


@dataclass
class Phase:
    name: str
    wall: float
    bench: float
    children: float
    server: float
    machine: float


@dataclass
class Meter:
    """Wall time and CPU seconds per phase (bench, its children, the server, the machine)."""

    postmaster: int = 0
    phases: list[Phase] = field(default_factory=list)

    @contextlib.contextmanager
    def phase(self, name: str, workers: Sequence[int] = ()) -> Iterator[None]:
        """``workers``: live child processes (a pool's) whose CPU counts as children's too."""

        def live() -> float:
            return sum(c.cpu_seconds(pid) or 0.0 for pid in workers)

        t0, (b0, k0), w0 = time.monotonic(), own_cpu_seconds(), live()
        s0, m0 = server_cpu_seconds(self.postmaster), c.machine_busy_seconds()
        try:
            yield
        finally:
            b1, k1 = own_cpu_seconds()
            self.phases.append(
                Phase(
                    name,
                    time.monotonic() - t0,
                    b1 - b0,
                    k1 - k0 + live() - w0,
                    server_cpu_seconds(self.postmaster) - s0,
                    c.machine_busy_seconds() - m0,
                )
            )

    def last(self) -> Phase:
        return self.phases[-1]


# --- schema and seed -----------------------------------------------------------------------------


def migrate(url: str) -> None:
    """The project's migrations (alembic upgrade head), as bench/processes.py runs them."""
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


def months_before(day: date, months: int) -> date:
    m = day.year * 12 + day.month - 1 - months
    return date(m // 12, m % 12 + 1, 1)


@dataclass
class World:
    """The fixed parts of the synthetic data: SKUs, customers, the day weights."""

    start: date
    days: int
    sku_names: list[str]
    sku_category: list[str]
    sku_p: Any  # popularity (Zipf-like), sums to 1
    sku_launch: Any  # day index from which a SKU sells
    core_p: Any  # popularity among the SKUs on sale from day 0
    price_cents: Any  # [sku, currency index] list price in cents
    cust_region: Any
    cust_tier: Any
    cust_currency: Any
    day_p: Any


CURRENCIES = ("EUR", "GBP", "USD")


def make_world(args: argparse.Namespace, rng: Any) -> World:
    import numpy as np

    start = months_before(END, args.months)
    days = (END - start).days
    n = args.skus
    rank = np.arange(1, n + 1, dtype=np.float64)
    sku_p = (rank + 5) ** -1.2
    sku_p /= sku_p.sum()
    # 25 % of the SKUs (any popularity) came on sale later: uniformly over the range.
    late = rng.random(n) < 0.25
    launch = np.where(late, rng.integers(0, days, n), 0)
    core = np.where(launch == 0, sku_p, 0.0)
    core /= core.sum()
    base = np.maximum(50, np.round(np.exp(rng.normal(3.3, 0.9, n)) * 100)).astype(np.int64)
    price = np.stack(
        [base, np.round(base * 0.86).astype(np.int64), np.round(base * 1.08).astype(np.int64)],
        axis=1,
    )
    customers = max(1000, args.orders // 5)
    cust_region = rng.choice(len(REGIONS), size=customers, p=REGION_WEIGHTS)
    cust_tier = (rng.random(customers) < 0.12).astype(np.int64)  # 1: vip
    # UK customers pay in GBP, US in USD, the EU in EUR (a few EU customers pay USD/GBP).
    cur = np.zeros(customers, dtype=np.int64)
    cur[cust_region == REGIONS.index("UK")] = 1
    cur[cust_region == REGIONS.index("US-EAST")] = 2
    odd = (cust_region < 4) & (rng.random(customers) < 0.03)
    cur[odd] = rng.integers(1, 3, int(odd.sum()))
    t = np.arange(days, dtype=np.float64)
    first = datetime(start.year, start.month, start.day, tzinfo=UTC)
    doy = np.array([(start + timedelta(days=int(i))).timetuple().tm_yday for i in range(days)])
    weekday = np.array([(first + timedelta(days=int(i))).weekday() for i in range(days)])
    week_factor = np.array([1.1, 1.1, 1.1, 1.05, 1.0, 0.8, 0.6])[weekday]
    season = 1 + 0.25 * np.cos(2 * math.pi * (doy - 345) / 365.25)  # peak mid-December
    day_p = (1 + 0.5 * t / days) * season * week_factor
    day_p /= day_p.sum()
    return World(
        start=start,
        days=days,
        sku_names=[f"SKU-{i:05d}" for i in range(1, n + 1)],
        sku_category=[CATEGORIES[(i * 7 + i // 3) % len(CATEGORIES)] for i in range(n)],
        sku_p=sku_p,
        sku_launch=launch,
        core_p=core,
        price_cents=price,
        cust_region=cust_region,
        cust_tier=cust_tier,
        cust_currency=cur,
        day_p=day_p,
    )


def _money(cents: Any) -> list[str]:
    return [f"{v // 100}.{v % 100:02d}" for v in cents.tolist()]


def _stamps(epoch: Any, mask: Any | None = None) -> list[str]:
    """timestamptz text of epoch seconds (UTC); ``\\N`` where ``mask`` is False."""
    import numpy as np

    text = np.char.add(np.datetime_as_string(epoch.astype("datetime64[s]")), "+00")
    if mask is not None:
        text = np.where(mask, text, "\\N")
    out: list[str] = text.tolist()
    return out


def _choice(rng: Any, table: dict[str, float], size: int) -> Any:
    import numpy as np

    names = np.array(list(table))
    p = np.array(list(table.values()))
    return names[rng.choice(len(names), size=size, p=p / p.sum())]


def generate_chunk(
    world: World, rng: Any, first: int, epoch: Any, day_idx: Any
) -> tuple[str, str, int]:
    """COPY text of the orders ``first .. first+len(epoch)`` and their lines; line count."""
    import numpy as np

    n = len(epoch)
    end_epoch = int(datetime(END.year, END.month, END.day, tzinfo=UTC).timestamp()) - 60
    cust = rng.integers(0, len(world.cust_region), n)
    region = world.cust_region[cust]
    tier = world.cust_tier[cust]
    cur = world.cust_currency[cust]
    source = rng.choice(len(SOURCES), size=n, p=SOURCE_WEIGHTS)
    rep_idx = rng.integers(0, len(REPS), n)
    # erp, import and console orders have a sales rep; 15 % of the others too.
    has_rep = np.isin(source, [1, 3, 4]) | (rng.random(n) < 0.15)
    recent = day_idx >= world.days - 30
    status = np.empty(n, dtype=object)
    status[~recent] = _choice(rng, OLD_STATUSES, int((~recent).sum()))
    status[recent] = _choice(rng, RECENT_STATUSES, int(recent.sum()))

    nlines = rng.choice(np.arange(1, 7), size=n, p=[0.15, 0.2, 0.25, 0.2, 0.12, 0.08])
    total_lines = int(nlines.sum())
    owner = np.repeat(np.arange(n), nlines)
    starts = np.concatenate([[0], np.cumsum(nlines)[:-1]])
    line_no = np.arange(total_lines) - np.repeat(starts, nlines) + 1
    sku = rng.choice(len(world.sku_names), size=total_lines, p=world.sku_p)
    unsold = day_idx[owner] < world.sku_launch[sku]  # not launched yet: a core SKU instead
    sku[unsold] = rng.choice(len(world.sku_names), size=int(unsold.sum()), p=world.core_p)
    qty = np.minimum(rng.geometric(0.45, total_lines), 20)
    unit = world.price_cents[sku, cur[owner]]
    line_total = qty * unit
    total = np.add.reduceat(line_total, starts)

    status_s = status.astype(str)
    sold_done = np.isin(status_s, ["completed", "delivered"])
    refunded = np.zeros(n, dtype=np.int64)
    ref = sold_done & (rng.random(n) < 0.05)
    full = rng.random(n) < 0.3
    share = rng.uniform(0.05, 1.0, n)
    refunded[ref] = np.where(full[ref], total[ref], np.round(total[ref] * share[ref]))

    confirmed = epoch + rng.integers(60, 7200, n)
    shipped = confirmed + rng.integers(86400, 3 * 86400, n)
    delivered = shipped + rng.integers(86400, 4 * 86400, n)
    closed_t = np.where(
        status_s == "completed", delivered + 14 * 86400, epoch + rng.integers(300, 3 * 86400, n)
    )
    confirmed, shipped, delivered, closed_t = (
        np.minimum(x, end_epoch) for x in (confirmed, shipped, delivered, closed_t)
    )
    is_conf = np.isin(status_s, list(CONFIRMED_OR_LATER))
    is_ship = np.isin(status_s, list(SHIPPED_OR_LATER))
    is_deliv = np.isin(status_s, list(DELIVERED_OR_LATER))
    is_closed = np.isin(status_s, list(TERMINAL))
    updated = np.maximum.reduce(
        [
            epoch + 1,
            np.where(is_conf, confirmed, 0),
            np.where(is_ship, shipped, 0),
            np.where(is_deliv, delivered, 0),
            np.where(is_closed, closed_t, 0),
        ]
    )

    ids = [f"SO-{first + i:010d}" for i in range(n)]
    created_s = _stamps(epoch)
    cols = [
        ids,
        status_s.tolist(),
        ["t" if v else "f" for v in is_closed.tolist()],
        [f"C-{v:07d}" for v in cust.tolist()],
        ["vip" if v else "standard" for v in tier.tolist()],
        [REGIONS[v] for v in region.tolist()],
        [CURRENCIES[v] for v in cur.tolist()],
        _money(total),
        [
            REPS[r] if h else f"key:{SOURCES[s]}"
            for r, h, s in zip(rep_idx.tolist(), has_rep.tolist(), source.tolist(), strict=True)
        ],
        created_s,
        _stamps(updated),
        [str(v) for v in rng.integers(3, 40, n).tolist()],
        ["{}"] * n,
        [
            f"EXT-{SOURCES[s]}-{first + i}" if s in (0, 1, 3) else "\\N"
            for i, s in enumerate(source.tolist())
        ],
        [SOURCES[s] for s in source.tolist()],
        [REPS[r] if h else "\\N" for r, h in zip(rep_idx.tolist(), has_rep.tolist(), strict=True)],
        ["1" if v else "0" for v in (rng.random(n) < 0.03).tolist()],
        _money(refunded),
        _stamps(confirmed, is_conf),
        _stamps(shipped, is_ship),
        _stamps(delivered, is_deliv),
        _stamps(closed_t, is_closed),
        [
            rng_pick(CLOSE_REASONS[s], i) if s in CLOSE_REASONS else "\\N"
            for i, s in enumerate(status_s.tolist())
        ],
    ]
    orders_text = "".join("\t".join(row) + "\n" for row in zip(*cols, strict=True))
    currency_s = [CURRENCIES[v] for v in cur.tolist()]
    line_cols = [
        [ids[o] for o in owner.tolist()],
        [str(v) for v in line_no.tolist()],
        [world.sku_names[s] for s in sku.tolist()],
        [world.sku_category[s] for s in sku.tolist()],
        [str(v) for v in qty.tolist()],
        _money(unit),
        _money(line_total),
        [currency_s[o] for o in owner.tolist()],
    ]
    lines_text = "".join("\t".join(row) + "\n" for row in zip(*line_cols, strict=True))
    return orders_text, lines_text, total_lines


def rng_pick(options: Sequence[str], i: int) -> str:
    return options[(i * 2654435761) % 2**32 % len(options)]


@dataclass
class SeedResult:
    orders: int = 0
    lines: int = 0
    generate_s: float = 0.0
    copy_s: float = 0.0


def seed(cluster: PgCluster, args: argparse.Namespace, world: World, rng: Any) -> SeedResult:
    import numpy as np

    first = datetime(world.start.year, world.start.month, world.start.day, tzinfo=UTC)
    base = int(first.timestamp())
    day_idx = np.sort(rng.choice(world.days, size=args.orders, p=world.day_p))
    epoch = base + day_idx * 86400 + rng.integers(0, 86400, args.orders)
    epoch.sort()  # ids ascend with created_at
    day_idx = (epoch - base) // 86400
    out = SeedResult()
    chunk = 50_000
    with cluster.connect(DB_NAME) as conn:
        now = datetime.now(UTC).isoformat()
        products = "".join(
            f"{s}\tProduct {s}\t{cat}\t{now}\n"
            for s, cat in zip(world.sku_names, world.sku_category, strict=True)
        )
        with conn.cursor() as cur, cur.copy("COPY products FROM STDIN") as copy:
            copy.write(products)
        conn.commit()
        for a in range(0, args.orders, chunk):
            t0 = time.perf_counter()
            orders_text, lines_text, nl = generate_chunk(
                world, rng, a, epoch[a : a + chunk], day_idx[a : a + chunk]
            )
            t1 = time.perf_counter()
            with conn.cursor() as cur:
                with cur.copy(f"COPY orders ({', '.join(ORDER_COLUMNS)}) FROM STDIN") as copy:
                    copy.write(orders_text)
                with cur.copy(f"COPY order_lines ({', '.join(LINE_COLUMNS)}) FROM STDIN") as copy:
                    copy.write(lines_text)
            conn.commit()
            out.generate_s += t1 - t0
            out.copy_s += time.perf_counter() - t1
            out.orders += len(epoch[a : a + chunk])
            out.lines += nl
            if (a // chunk) % 4 == 3:
                print(f"    {out.orders:,} orders ...", flush=True)
    return out


# --- rollups -------------------------------------------------------------------------------------

ROLLUP_ORDERS_SQL = """
INSERT INTO sales_daily (day, region, tier, status, source, sales_rep, currency,
                         orders, units, revenue, refunds)
SELECT (o.created_at AT TIME ZONE 'UTC')::date, o.region, o.customer_tier, o.status, o.source,
       coalesce(o.sales_rep, ''), o.currency,
       count(*), coalesce(sum(u.units), 0), sum(o.total), sum(o.refunded)
FROM orders o
LEFT JOIN (SELECT order_id, sum(quantity) AS units FROM order_lines GROUP BY order_id) u
       ON u.order_id = o.id
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""

# domain.reporting.share(): part = refunded * line_total / whole rounded half-even to 4
# decimals (done exactly: integer quotient and remainder of the value in 1/10000), the
# remainder on the first line with the largest line_total; nothing when refunded or whole is 0.
# Assumes refunded >= 0 and line_total >= 0 (true of the read model).
ROLLUP_SKUS_SQL = """
INSERT INTO sales_daily_sku (day, region, tier, status, sku, category, currency,
                             orders, units, revenue, refunds)
WITH l AS (
    SELECT l.order_id, l.sku, l.category, l.quantity, l.line_total, o.refunded,
           (o.created_at AT TIME ZONE 'UTC')::date AS day, o.region, o.customer_tier AS tier,
           o.status, o.currency,
           sum(l.line_total) OVER w AS whole,
           row_number() OVER (PARTITION BY l.order_id ORDER BY l.line_total DESC, l.line_no)
               AS rank
    FROM order_lines l JOIN orders o ON o.id = l.order_id
    WINDOW w AS (PARTITION BY l.order_id)
), q AS (
    SELECT *, div(refunded * line_total * 10000, whole) AS n,
              refunded * line_total * 10000 - div(refunded * line_total * 10000, whole) * whole
                  AS r
    FROM l WHERE refunded <> 0 AND whole <> 0
), parts AS (
    SELECT *, (n + CASE WHEN 2 * r > whole THEN 1 WHEN 2 * r < whole THEN 0
                        WHEN mod(n, 2) = 0 THEN 0 ELSE 1 END) / 10000 AS part
    FROM q
), shared AS (
    SELECT order_id, sku, category, quantity, line_total, day, region, tier, status, currency,
           part + CASE WHEN rank = 1 THEN refunded - sum(part) OVER (PARTITION BY order_id)
                       ELSE 0 END AS refund
    FROM parts
    UNION ALL
    SELECT order_id, sku, category, quantity, line_total, day, region, tier, status, currency,
           0 AS refund
    FROM l WHERE refunded = 0 OR whole = 0
), per_order AS (
    SELECT day, region, tier, status, sku, category, currency,
           sum(quantity) AS units, sum(line_total) AS revenue, sum(refund) AS refunds
    FROM shared
    GROUP BY order_id, day, region, tier, status, sku, category, currency
)
SELECT day, region, tier, status, sku, category, currency,
       count(*), sum(units), sum(revenue), sum(refunds)
FROM per_order
GROUP BY day, region, tier, status, sku, category, currency
"""


# db.rollup.monthly(): the daily per-SKU rows summed per month.
ROLLUP_MONTHS_SQL = """
INSERT INTO sales_monthly_sku (month, region, tier, status, sku, category, currency,
                               orders, units, revenue, refunds)
SELECT date_trunc('month', day)::date, region, tier, status, sku, category, currency,
       sum(orders), sum(units), sum(revenue), sum(refunds)
FROM sales_daily_sku
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""

# db.rollup.weekly(): the daily per-SKU rows summed per ISO week over regions and tiers.
ROLLUP_WEEKS_SQL = """
INSERT INTO sales_weekly_sku (week, status, sku, category, currency,
                              orders, units, revenue, refunds)
SELECT date_trunc('week', day)::date, status, sku, category, currency,
       sum(orders), sum(units), sum(revenue), sum(refunds)
FROM sales_daily_sku
GROUP BY 1, 2, 3, 4, 5
"""


@dataclass(frozen=True)
class RollupBuild:
    orders_s: float
    skus_s: float
    months_s: float
    weeks_s: float
    orders_rows: int
    skus_rows: int
    months_rows: int
    weeks_rows: int


def build_rollups(cluster: PgCluster) -> RollupBuild:
    """The INSERT ... SELECT statements: seconds and rows of each."""
    seconds, rows = [], []
    with cluster.connect(DB_NAME) as conn:
        for sql in (ROLLUP_ORDERS_SQL, ROLLUP_SKUS_SQL, ROLLUP_MONTHS_SQL, ROLLUP_WEEKS_SQL):
            t0 = time.perf_counter()
            rows.append(conn.execute(sql).rowcount)
            conn.commit()
            seconds.append(time.perf_counter() - t0)
    return RollupBuild(*seconds, *rows)


def vacuum_analyze(cluster: PgCluster) -> None:
    with cluster.connect(DB_NAME, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def check_contributions(cluster: PgCluster, days: Sequence[date]) -> str:
    """The SQL rollups equal domain.reporting.contributions() summed over every order of
    ``days`` (all rows of both tables on those days, every figure)."""
    from domain.reporting import Figures, LineFacts, OrderFacts, contributions, utc_day

    per_order: dict[Any, Figures] = defaultdict(Figures)
    per_sku: dict[Any, Figures] = defaultdict(Figures)
    refunded = 0
    with cluster.connect(DB_NAME) as conn:
        windows = [(d, d + timedelta(days=1)) for d in days]
        orders = []
        for a, b in windows:
            orders += conn.execute(
                "SELECT id, created_at, region, customer_tier, status, source, sales_rep, "
                "currency, total, refunded FROM orders WHERE created_at >= %s AND created_at < %s",
                (
                    datetime(a.year, a.month, a.day, tzinfo=UTC),
                    datetime(b.year, b.month, b.day, tzinfo=UTC),
                ),
            ).fetchall()
        lines: dict[str, list[LineFacts]] = defaultdict(list)
        ids = [o[0] for o in orders]
        for row in conn.execute(
            "SELECT order_id, sku, category, quantity, line_total FROM order_lines "
            "WHERE order_id = ANY(%s) ORDER BY order_id, line_no",
            (ids,),
        ):
            lines[row[0]].append(LineFacts(row[1], row[2], row[3], row[4]))
        for oid, at, region, tier, status, source, rep, cur, total, ref in orders:
            refunded += bool(ref)
            facts = OrderFacts(
                day=utc_day(at),
                region=region,
                tier=tier,
                status=status,
                source=source,
                sales_rep=rep or "",
                currency=cur,
                total=Decimal(total),
                refunded=Decimal(ref or 0),
                lines=tuple(lines[oid]),
            )
            o, s = contributions(facts)
            for k, f in o.items():
                per_order[k] += f
            for k, f in s.items():
                per_sku[k] += f

        def table(sql: str) -> dict[Any, Figures]:
            return {
                tuple(r[:7]): Figures(r[7], r[8], r[9], r[10])
                for r in conn.execute(sql, (list(days),))
            }

        db_orders = table(
            "SELECT day, region, tier, status, source, sales_rep, currency, orders, units, "
            "revenue, refunds FROM sales_daily WHERE day = ANY(%s)"
        )
        db_skus = table(
            "SELECT day, region, tier, status, sku, category, currency, orders, units, "
            "revenue, refunds FROM sales_daily_sku WHERE day = ANY(%s)"
        )
    ok = db_orders == dict(per_order) and db_skus == dict(per_sku)
    bad_o = sum(
        1 for k in db_orders.keys() | per_order.keys() if db_orders.get(k) != per_order.get(k)
    )
    bad_s = sum(1 for k in db_skus.keys() | per_sku.keys() if db_skus.get(k) != per_sku.get(k))
    verdict = "EQUAL" if ok else f"DIFFERENT ({bad_o} sales_daily, {bad_s} sales_daily_sku keys)"
    return (
        f"  SQL rollups vs contributions() on {', '.join(d.isoformat() for d in days)}: "
        f"{len(orders):,} orders ({refunded} refunded), {len(db_orders):,} sales_daily rows and "
        f"{len(db_skus):,} sales_daily_sku rows: {verdict}"
    )


# --- report timings ------------------------------------------------------------------------------


@dataclass
class Timed:
    query: str
    basis: str
    latencies: list[float]
    rows: int
    server_cpu_per_call: float
    bench_cpu_per_call: float
    plan: list[str]


def _report_key(row: Any, with_refunds: bool = True) -> tuple[Any, ...]:
    f = row.figures
    base = (row.period, tuple(sorted(row.groups.items())), row.currency, f.orders, f.units)
    return (*base, f.revenue, f.refunds) if with_refunds else (*base, f.revenue)


async def time_reports(
    url: str, args: argparse.Namespace, meter: Meter, year: tuple[date, date]
) -> tuple[list[Timed], list[str]]:
    from sqlalchemy import event

    from config import Settings
    from db.session import make_engine, make_sessionmaker
    from services.auth import Principal, Role
    from services.reports import Reports, parse_sales_query

    settings = Settings(database_url=url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    reports = Reports(sessions, settings)
    boss = Principal(name="bench-manager", roles=frozenset({Role.MANAGER}))
    start, end = year
    queries = {
        "month x region": parse_sales_query(
            start=start, end=end, period="month", group_by=["region"], settings=settings
        ),
        "week x sku top-50": parse_sales_query(
            start=start, end=end, period="week", group_by=["sku"], top=50, settings=settings
        ),
    }
    captured: list[tuple[str, Any]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _capture(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool
    ) -> None:
        captured.append((statement, parameters))

    checks: list[str] = []
    results: list[Timed] = []
    try:
        # The check: both bases give the same report.
        for name, q in queries.items():
            roll = await reports.sales(boss, q, basis="rollup")
            raw = await reports.sales(boss, q, basis="raw")
            if name == "month x region":
                same = [_report_key(r) for r in roll.rows] == [_report_key(r) for r in raw.rows]
                what = "every row equal (orders, units, revenue, refunds)"
            else:
                same = [_report_key(r, False) for r in roll.rows] == [
                    _report_key(r, False) for r in raw.rows
                ]
                what = "same top-50 SKUs, orders, units and revenue per row"
            diff = max(
                (
                    abs(a.figures.refunds - b.figures.refunds)
                    for a, b in zip(roll.rows, raw.rows, strict=False)
                ),
                default=Decimal(0),
            )
            revenue = {cur: str(t.revenue) for cur, t in sorted(roll.totals.items())}
            checks.append(
                f"  {name}: rollup {len(roll.rows)} rows, raw {len(raw.rows)} rows: "
                f"{what}: {'YES' if same and len(roll.rows) == len(raw.rows) else 'NO'}; "
                f"largest refunds difference {diff} (raw shares refunds unrounded); "
                f"revenue {revenue}"
            )
        for name, q in queries.items():
            for basis in ("rollup", "raw"):
                for _ in range(2):
                    await reports.sales(boss, q, basis=basis)
                lat: list[float] = []
                rows = 0
                with meter.phase(f"query {name} / {basis}"):
                    for _ in range(args.repeats):
                        t = time.perf_counter()
                        report = await reports.sales(boss, q, basis=basis)
                        lat.append(time.perf_counter() - t)
                        rows = len(report.rows)
                ph = meter.last()
                captured.clear()
                await reports.sales(boss, q, basis=basis)
                statement, params = captured[-1]
                async with engine.connect() as conn:
                    plan = [
                        str(r[0])
                        for r in await conn.exec_driver_sql(
                            "EXPLAIN (ANALYZE, BUFFERS) " + statement, params
                        )
                    ]
                results.append(
                    Timed(
                        name,
                        basis,
                        lat,
                        rows,
                        ph.server / args.repeats,
                        ph.bench / args.repeats,
                        plan,
                    )
                )
                s = c.summary_ms(lat)
                print(
                    f"    {name:<18} {basis:<6} p50 {s['p50_ms']} ms  p95 {s['p95_ms']} ms",
                    flush=True,
                )
    finally:
        await engine.dispose()
    return results, checks


# --- XLSX ----------------------------------------------------------------------------------------


def _xlsx_rows(n: int, start: date, skus: int) -> Iterator[Sequence[object]]:
    """Rows shaped like sales_table's for period=day, group_by=sku (no compare)."""
    r = random.Random(11)
    cents = Decimal("0.01")
    for i in range(n):
        day = start + timedelta(days=i // skus)
        orders = r.randint(1, 40)
        units = orders * r.randint(1, 5)
        revenue = (Decimal(units) * Decimal(r.randint(100, 50_000)) * cents).quantize(cents)
        refunds = (revenue * Decimal(r.random() * 0.1)).quantize(cents) if r.random() < 0.2 else 0
        refunds = Decimal(refunds)
        yield (
            day.isoformat(),
            day,
            f"SKU-{i % skus + 1:05d}",
            CURRENCIES[i % 7 % 3],
            orders,
            units,
            revenue,
            refunds,
            revenue - refunds,
            (revenue / orders).quantize(cents),
        )


def xlsx_job(rows: int, trace: bool, start: date, skus: int) -> dict[str, Any]:
    """In a fresh process: write ``rows`` rows with write_xlsx to a temp file."""
    import tracemalloc

    from config import Settings
    from services.report_files import Table, write_xlsx
    from services.report_output import sales_table
    from services.reports import SalesReport, parse_sales_query

    settings = Settings()
    q = parse_sales_query(
        start=start,
        end=start + timedelta(days=365),
        period="day",
        group_by=["sku"],
        settings=settings,
    )
    shape = sales_table(SalesReport(query=q, rows=[], totals={}, notes=["synthetic rows"]))
    table = Table(shape.title, shape.columns, _xlsx_rows(rows, start, skus), shape.notes)
    me = os.getpid()
    # Reset the peak RSS to the current RSS (the imports left a higher peak than writing needs).
    reset = True
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        reset = False
    hwm0, rss0 = c.mem_kib(me, "VmHWM") or 0, c.mem_kib(me, "VmRSS") or 0
    if trace:
        tracemalloc.start()
    ticks: list[int] = []
    with tempfile.TemporaryDirectory(prefix="orderly-xlsx-") as tmp:
        path = Path(tmp) / "sales.xlsx"
        t0 = time.perf_counter()
        with path.open("wb") as out:
            done = write_xlsx(table, out, progress=ticks.append)
        seconds = time.perf_counter() - t0
        size = path.stat().st_size
    peak = tracemalloc.get_traced_memory()[1] if trace else None
    if trace:
        tracemalloc.stop()
    t0 = time.perf_counter()
    for _ in _xlsx_rows(rows, start, skus):
        pass
    gen_s = time.perf_counter() - t0
    return {
        "rows": done,
        "seconds": seconds,
        "rows_only_s": gen_s,
        "bytes": size,
        "hwm_growth_kib": (c.mem_kib(me, "VmHWM") or 0) - hwm0,
        "hwm_reset": reset,
        "rss_before_kib": rss0,
        "tracemalloc_peak": peak,
        "progress_calls": len(ticks),
    }


def run_xlsx(rows: int, trace: bool, start: date, skus: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return pool.submit(xlsx_job, rows, trace, start, skus).result()


# --- forecast ------------------------------------------------------------------------------------


def forecast_series(cluster: PgCluster, start: date) -> tuple[dict[str, WeeklySeries], float]:
    """Weekly units per SKU (sold orders, all regions) up to the last full week before END."""
    from domain.forecast import week_start, weekly_series
    from domain.reporting import SOLD_STATUSES

    first, end_week = week_start(start), week_start(END)
    t0 = time.perf_counter()
    points: dict[str, dict[date, float]] = defaultdict(dict)
    with cluster.connect(DB_NAME) as conn:
        for sku, week, units in conn.execute(
            "SELECT sku, date_trunc('week', day)::date AS week, sum(units) FROM sales_daily_sku "
            "WHERE day >= %s AND day < %s AND status = ANY(%s) GROUP BY sku, week",
            (first, end_week, list(SOLD_STATUSES)),
        ):
            points[sku][week] = float(units)
    series = {
        sku: weekly_series(p, start=first, end=end_week - timedelta(days=1))
        for sku, p in sorted(points.items())
    }
    return series, time.perf_counter() - t0


def forecast_chunk(
    items: list[tuple[str, WeeklySeries]], horizon: int, backtest: int
) -> list[tuple[str, str, float | None, int]]:
    from domain.forecast import forecast

    out = []
    for sku, s in items:
        f = forecast(s, horizon=horizon, backtest_weeks=backtest)
        out.append((sku, f.method, f.backtest_smape, f.history_weeks))
    return out


def _warm() -> None:
    import domain.forecast  # noqa: F401  (statsmodels, numpy: imported once per worker)


def _ready() -> int:
    time.sleep(0.3)
    return os.getpid()


BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _pool_run(
    items: list[tuple[str, WeeklySeries]], workers: int, meter: Meter, name: str
) -> tuple[list[tuple[str, str, float | None, int]], float, int]:
    """Forecast ``items`` on a pool of ``workers`` spawned processes (10 SKUs a task); the
    pool's start-up (spawn, imports) is not in the phase. Returns results, start-up s, pids."""
    chunks = [items[i : i + 10] for i in range(0, len(items), 10)]
    ctx = multiprocessing.get_context("spawn")
    t0 = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_warm) as pool:
        pids = {f.result() for f in [pool.submit(_ready) for _ in range(workers)]}
        start_s = time.perf_counter() - t0
        with meter.phase(name, sorted(pids)):
            futures = [pool.submit(forecast_chunk, ch, 12, 8) for ch in chunks]
            results = [r for f in futures for r in f.result()]
    return results, start_s, len(pids)


def run_forecasts(
    series: dict[str, WeeklySeries], workers: int, meter: Meter
) -> tuple[dict[str, Any], list[tuple[str, str, float | None, int]]]:
    items = list(series.items())
    out: dict[str, Any] = {}
    # OpenBLAS starts a thread per core in every process, and its idle threads spin: two
    # processes of two threads each on two cores fight. Shown on a subset, then avoided.
    subset = items[:100]
    out["subset"] = len(subset)
    saved = {k: os.environ.get(k) for k in BLAS_VARS}
    for k in BLAS_VARS:
        os.environ.pop(k, None)
    _pool_run(subset, workers, meter, f"forecast, {workers} proc, BLAS default")
    out["subset_default_s"] = meter.last().wall
    for k in BLAS_VARS:
        os.environ[k] = "1"  # inherited by the spawned workers
    try:
        _pool_run(subset, workers, meter, f"forecast, {workers} proc, subset")
        out["subset_one_s"] = meter.last().wall
        multi, out["pool_start_s"], out["pool_pids"] = _pool_run(
            items, workers, meter, f"forecast, {workers} processes"
        )
        out["multi_s"] = meter.last().wall
        single, _, _ = _pool_run(items, 1, meter, "forecast, 1 process")
        out["single_s"] = meter.last().wall
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    out["same_results"] = [(a, b) for a, b, *_ in multi] == [(a, b) for a, b, *_ in single]
    return out, single


# --- sizes ---------------------------------------------------------------------------------------


def sizes(cluster: PgCluster) -> tuple[int, list[tuple[str, int, int, int, int]]]:
    with cluster.connect(DB_NAME) as conn:
        db = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        out = []
        for t in (
            "orders",
            "order_lines",
            "sales_daily",
            "sales_daily_sku",
            "sales_monthly_sku",
            "sales_weekly_sku",
        ):
            row = conn.execute(
                f"SELECT count(*), pg_total_relation_size('{t}'), pg_relation_size('{t}'), "
                f"pg_indexes_size('{t}') FROM {t}"
            ).fetchone()
            assert row is not None
            out.append((t, int(row[0]), int(row[1]), int(row[2]), int(row[3])))
    assert db is not None
    return int(db[0]), out


def mb(n: float) -> str:
    return f"{n / 2**20:,.1f} MB"


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    args = _args()
    import numpy as np

    from tests.pgcluster import PgCluster

    def _term(_sig: int, _frame: Any) -> None:
        raise SystemExit("terminated")

    signal.signal(signal.SIGTERM, _term)
    machine = c.machine()
    t_start = time.monotonic()
    pg_settings = dict(DEFAULT_PG)
    pg_settings.update(kv.split("=", 1) for kv in args.pg_set)
    print(
        f"== bench/reports.py  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  commit "
        f"{machine['commit'][:7] or '?'}\n"
        f"machine: {machine['nproc']} cores ({machine['cpu_model']}), "
        f"{machine['mem_total_mb']} MB, Python {machine['python']}, load {machine['loadavg_start']}"
        f"\nargs: orders={args.orders:,} skus={args.skus} months={args.months} "
        f"repeats={args.repeats} xlsx_rows={args.xlsx_rows:,} workers={args.workers} "
        f"seed={args.seed}",
        flush=True,
    )
    cluster = PgCluster(settings=pg_settings)
    meter = Meter()
    code = 1
    try:
        cluster.start()
        meter.postmaster = int((cluster.datadir / "postmaster.pid").read_text().split()[0])
        with cluster.connect() as conn:
            version = conn.execute("SHOW server_version").fetchone()
            jit = conn.execute("SHOW jit").fetchone()
            par = conn.execute("SHOW max_parallel_workers_per_gather").fetchone()
        print(
            f"PostgreSQL {version and version[0]} (PgCluster: fsync=off, synchronous_commit=off; "
            + ", ".join(f"{k}={v}" for k, v in pg_settings.items())
            + f"; jit={jit and jit[0]}, max_parallel_workers_per_gather={par and par[0]})",
            flush=True,
        )
        cluster.create_database(DB_NAME)
        url = cluster.url(DB_NAME)
        with meter.phase("schema (alembic upgrade head)"):
            migrate(url)
        print(f"schema: the project's migrations (alembic upgrade head), {meter.last().wall:.1f} s")

        rng = np.random.default_rng(args.seed)
        world = make_world(args, rng)
        print(
            f"\n== seed: {args.orders:,} orders {world.start} .. {END - timedelta(days=1)} "
            f"({world.days} days), {args.skus} SKUs, COPY FROM STDIN in chunks of 50,000",
            flush=True,
        )
        with meter.phase("seed (generate + COPY)"):
            sr = seed(cluster, args, world, rng)
        ph = meter.last()
        print(
            f"  {sr.orders:,} orders, {sr.lines:,} lines ({sr.lines / sr.orders:.2f} per order) "
            f"in {ph.wall:.1f} s: {sr.orders / ph.wall:,.0f} orders/s, "
            f"{sr.lines / ph.wall:,.0f} lines/s\n"
            f"  of which generating the COPY text (numpy + Python) {sr.generate_s:.1f} s, "
            f"COPY {sr.copy_s:.1f} s (COPY alone: {sr.orders / sr.copy_s:,.0f} orders/s, "
            f"{sr.lines / sr.copy_s:,.0f} lines/s, into the tables with their indexes)",
            flush=True,
        )

        with meter.phase("rollups (INSERT ... SELECT)"):
            rb = build_rollups(cluster)
        print(
            f"\n== rollups with SQL: sales_daily {rb.orders_rows:,} rows in {rb.orders_s:.1f} s, "
            f"sales_daily_sku {rb.skus_rows:,} rows in {rb.skus_s:.1f} s, "
            f"sales_monthly_sku {rb.months_rows:,} rows in {rb.months_s:.1f} s, "
            f"sales_weekly_sku {rb.weeks_rows:,} rows in {rb.weeks_s:.1f} s "
            f"({sr.orders / rb.orders_rows:.1f} orders per sales_daily row, "
            f"{sr.lines / rb.skus_rows:.2f} lines per sales_daily_sku row, "
            f"{rb.skus_rows / rb.months_rows:.1f} daily per monthly, "
            f"{rb.skus_rows / rb.weeks_rows:.1f} daily per weekly SKU row)",
            flush=True,
        )
        with meter.phase("VACUUM ANALYZE"):
            vacuum_analyze(cluster)
        print(f"  VACUUM ANALYZE (whole database) {meter.last().wall:.1f} s", flush=True)

        print("\n== checks", flush=True)
        sample_days = [world.start + timedelta(days=world.days * i // 6) for i in range(6)]
        sample_days.append(END - timedelta(days=1))
        with meter.phase("check vs contributions()"):
            print(check_contributions(cluster, sample_days), flush=True)
        year = (months_before(END, 12), END)
        print(
            f"\n== Reports.sales() over one year {year[0]} .. {year[1]} (to exclusive)", flush=True
        )
        timed, checks = asyncio.run(time_reports(url, args, meter, year))
        print("  rollup vs raw basis:")
        for line in checks:
            print(line)
        header = (
            f"  {'query':<18} {'basis':<7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
            f"{'rows':>5} {'target':>8} {'verdict':<8} {'server CPU/call':>15} "
            f"{'bench CPU/call':>14}"
        )
        rank = round(0.95 * args.repeats + 0.5)
        print(
            f"\n  {args.repeats} timed calls after 2 warm-ups; p95 is the nearest rank "
            f"(call {min(rank, args.repeats)} of {args.repeats} in order of time); CPU per call "
            "over the timed calls"
        )
        print(header)
        for t in timed:
            s = c.summary_ms(t.latencies)
            target = TARGETS_MS[t.query]
            verdict = "met" if s["p95_ms"] < target else "MISSED"
            print(
                f"  {t.query:<18} {t.basis:<7} {s['p50_ms']:>8} {s['p95_ms']:>8} {s['max_ms']:>8} "
                f"{t.rows:>5} {'<' + str(int(target)):>8} {verdict:<8} "
                f"{t.server_cpu_per_call * 1000:>12.0f} ms {t.bench_cpu_per_call * 1000:>11.0f} ms"
            )
        for t in timed:
            print(f"\n  EXPLAIN ANALYZE, {t.query} / {t.basis}:")
            for line in t.plan:
                print("    " + line)

        print("\n== XLSX export (write_xlsx, day x SKU rows of sales_table, fresh process each)")
        xlsx: dict[tuple[int, bool], dict[str, Any]] = {}
        small = max(1000, args.xlsx_rows // 5)
        with meter.phase("xlsx"):
            for rows in (small, args.xlsx_rows):
                for trace in (False, True):
                    xlsx[(rows, trace)] = run_xlsx(rows, trace, world.start, args.skus)
        for rows in (small, args.xlsx_rows):
            a, b = xlsx[(rows, False)], xlsx[(rows, True)]
            print(
                f"  {rows:>7,} rows: {a['seconds']:.1f} s (rows alone {a['rows_only_s']:.1f} s), "
                f"{mb(a['bytes'])}, peak RSS growth {a['hwm_growth_kib'] / 1024:.1f} MB "
                f"(VmHWM after - before{', reset first' if a['hwm_reset'] else ''}; RSS before "
                f"{a['rss_before_kib'] / 1024:.0f} MB); "
                f"tracemalloc peak {mb(b['tracemalloc_peak'])} (traced run {b['seconds']:.1f} s); "
                f"progress calls {a['progress_calls']}"
            )
        big, sm = xlsx[(args.xlsx_rows, False)], xlsx[(small, False)]
        hwm_ratio = big["hwm_growth_kib"] / max(1, sm["hwm_growth_kib"])
        heap_ratio = xlsx[(args.xlsx_rows, True)]["tracemalloc_peak"] / max(
            1, xlsx[(small, True)]["tracemalloc_peak"]
        )
        print(
            f"  {args.xlsx_rows // small}x the rows: peak RSS growth x{hwm_ratio:.2f}, "
            f"Python heap peak x{heap_ratio:.2f}; {args.xlsx_rows:,} rows in "
            f"{big['seconds']:.1f} s: target < {XLSX_TARGET_S:.0f} s "
            f"{'met' if big['seconds'] < XLSX_TARGET_S else 'MISSED'}",
            flush=True,
        )

        print("\n== demand forecast (domain.forecast.forecast, horizon 12, backtest 8)", flush=True)
        with meter.phase("forecast query + series"):
            series, q_s = forecast_series(cluster, world.start)
        weeks = len(next(iter(series.values())))
        print(
            f"  {len(series)} SKU series of {weeks} weeks from one query on sales_daily_sku: "
            f"{q_s:.2f} s"
        )
        fc, single = run_forecasts(series, args.workers, meter)
        methods = Counter(m for _, m, _, _ in single)
        smapes = [s for _, _, s, _ in single if s is not None]
        print(
            f"  pool of {args.workers} ({fc['pool_pids']} spawned processes, 1 BLAS thread each; "
            f"start-up + imports {fc['pool_start_s']:.1f} s, not counted): {fc['multi_s']:.1f} s; "
            f"1 process (a pool of 1, same set-up): {fc['single_s']:.1f} s; same methods: "
            f"{fc['same_results']}\n"
            f"  first {fc['subset']} SKUs on the pool with OpenBLAS's default threads (one per "
            f"core in each process): {fc['subset_default_s']:.1f} s, with 1 thread each: "
            f"{fc['subset_one_s']:.1f} s\n"
            f"  methods: {dict(methods.most_common())}; backtest sMAPE median "
            f"{sorted(smapes)[len(smapes) // 2] if smapes else float('nan'):.1f} %\n"
            f"  target < {FORECAST_TARGET_S:.0f} s for {len(series)} SKUs on {args.workers} "
            f"processes: {'met' if fc['multi_s'] < FORECAST_TARGET_S else 'MISSED'}",
            flush=True,
        )

        db_size, tables = sizes(cluster)
        print(f"\n== database size {mb(db_size)}")
        print(f"  {'table':<16} {'rows':>11} {'total':>11} {'heap':>11} {'indexes':>11}")
        for name, n, total, heap, idx in tables:
            print(f"  {name:<16} {n:>11,} {mb(total):>11} {mb(heap):>11} {mb(idx):>11}")

        print("\n== CPU seconds per phase (bench: this process; children: its XLSX/forecast")
        print("   processes; server: postmaster + backends; machine: all cores, any process)")
        print(
            f"  {'phase':<34} {'wall s':>8} {'bench':>8} {'children':>8} {'server':>8} "
            f"{'machine':>8}"
        )
        for p in meter.phases:
            print(
                f"  {p.name:<34} {p.wall:>8.1f} {p.bench:>8.1f} {p.children:>8.1f} "
                f"{max(0.0, p.server):>8.1f} {p.machine:>8.1f}"
            )
        bench_cpu, kids_cpu = own_cpu_seconds()
        print(
            f"  whole run: {time.monotonic() - t_start:.0f} s wall; bench {bench_cpu:.1f} CPU-s, "
            f"children {kids_cpu:.1f}, server {server_cpu_seconds(meter.postmaster):.1f}; "
            f"load at the end {c.loadavg()}"
        )
        code = 0
    except KeyboardInterrupt:
        print("interrupted")
    except SystemExit as exc:
        print(exc)
    except BaseException:
        traceback.print_exc()
    finally:
        if args.keep and cluster.running:
            print(
                f"\nkept: {cluster.url(DB_NAME)}  (data {cluster.datadir}); stop with: "
                f"runuser -u postgres -- {cluster.bindir / 'pg_ctl'} stop -D {cluster.datadir}; "
                f"rm -r {cluster.tmpdir}"
                if os.geteuid() == 0
                else f"\nkept: {cluster.url(DB_NAME)}; stop with: "
                f"{cluster.bindir / 'pg_ctl'} stop -D {cluster.datadir}; rm -r {cluster.tmpdir}"
            )
        else:
            cluster.stop()
            print("\ncluster stopped and removed")
    return code


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    os._exit(rc)
