"""Demo history: ``seed_demo`` writes finished orders straight into the read model, so a new
installation shows meaningful reports, dashboards and forecasts (``orderly seed-demo``).

Per order it writes what the projection would have written had the order run through its
workflow: the ``orders`` row (its ``snapshot`` is the fold of the order's events by
:func:`domain.state.apply`, mapped to columns by the projection's own function), the
``order_lines``, the events in ``order_events``, and the order's contribution to the daily
rollups (``sales_daily``, ``sales_daily_sku``), added with the projection's upsert in the same
transaction: one transaction per chunk, so an interrupted run leaves the rollups consistent
(incremental upkeep costs ~2 s for 50,000 orders; a :func:`db.rollup.rebuild` afterwards ~10 s).
Each event sequence is one the order workflow records: credit check, stock, the approval chain
of the configured policy, payment, shipping, and the compensations of an order ending early.

The event log is written because its readers need it: ``GET /orders/{id}`` and the console's
order page show a closed order's logged events as its timeline, the dashboard takes approval
lead times and on-time delivery from the approval, ``confirmed`` and ``delivered`` events, the
tracking page the carrier scans. Without events a seeded order would have an empty timeline and
count as neither on time nor late. The flip side: ``GET /events`` consumers see the seeded
events like any others (with ids after every event logged before), and they are most of the
volume (about 14 per order).

No engine state is made: seeded orders have no Temporal workflow (closed orders are served from
the read model alone). No personal data is written and nothing is sealed: customers are ids
(``C-DEMO-00042``) with synthetic labels in the PII fields, without ``customers`` master rows or
data keys. Order ids keep the project's format with the mark ``ZZ`` and a number per day
(``SO-20250314-ZZ01F``), skipping ids real orders hold. Orders are created up to the end of
yesterday (UTC): an id carries its creation day and is unique only in the engine, so no order
created later can draw a seeded id.

Seeded orders are those created by ``seed-demo`` with such an id. ``replace`` deletes exactly
those (rows, lines, events; the catalogue stays) and rebuilds the rollups in the transaction
that checks for them. The same options and ``now`` give the same data; each order draws from its
own generator, so another ``now`` changes only the orders it hurries to close by then.
"""

from __future__ import annotations

import bisect
import gc
import itertools
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, NamedTuple

from sqlalchemy import Table, and_, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from db import rollup
from db.models import (
    Base,
    OrderEventRow,
    OrderLineRow,
    OrderRow,
    ProductRow,
    SalesDailyRow,
    SalesDailySkuRow,
    SalesMonthlySkuRow,
    SalesWeeklySkuRow,
)
from db.readmodel import _order_values  # the projection's own row mapping: no second copy
from db.session import SessionFactory
from db.upsert import insert_for
from domain import events as ev
from domain.approval import ChainLevel, approval_chain
from domain.order import (
    Address,
    Customer,
    CustomerTier,
    OrderLine,
    OrderSource,
    OrderSpec,
    PaymentMethod,
    PaymentType,
)
from domain.policies import CreditDecision, CreditOutcome, decide_credit, requires_prepayment
from domain.reporting import Figures, OrderFacts, contributions, utc_day
from domain.state import OrderState, apply
from domain.status import OrderStatus
from workflows.contracts import OrderPolicy

SEED_ACTOR = "seed-demo"
ID_MARK = "ZZ"
ID_PATTERN = f"SO-________-{ID_MARK}___"  # SQL LIKE of the seeded ids
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # domain.order's Crockford base32
PER_DAY = len(_ALPHABET) ** 3  # seeded ids one day can hold
MAX_ORDERS = 2_000_000
MAX_MONTHS = 59  # reports span at most 5 years
CHUNK = 2000
_DELETE_CHUNK = 5000
_TIMES = ("confirmed_at", "shipped_at", "delivered_at")  # from the events (db.rollup)
S = OrderStatus
ProgressCallback = Callable[[int, int], None]
SYSTEM = ev.SYSTEM
CARRIER, CARRIER_ACTOR = "SIMEX", "carrier-simex"  # the simulated carrier's name and actor
SUPPORT = "support-1"
PAYER = "bank-feed"  # reports a prepay customer's bank transfer
APPROVERS: dict[int, tuple[str, ...]] = {1: ("lead-1", "lead-2"), 2: ("manager-1",)}
FINANCE = ("finance-1",)
CENT = Decimal("0.01")


class SeedError(ValueError):
    """Options the seeding refuses."""


class SeededDataExists(Exception):
    """Seeded orders are there already and ``replace`` was not asked for."""

    def __init__(self, orders: int) -> None:
        super().__init__(
            f"the database holds {orders} seeded demo orders already; "
            "use --replace to delete them and seed again"
        )
        self.orders = orders


@dataclass(frozen=True)
class SeedOptions:
    orders: int = 50_000
    months: int = 18
    seed: int = 1
    customers: int | None = None  # None: one per 25 orders (2,000 for 50,000)
    replace: bool = False
    chunk: int = CHUNK

    def check(self) -> None:
        if not 1 <= self.orders <= MAX_ORDERS:
            raise SeedError(f"orders must be between 1 and {MAX_ORDERS}")
        if self.seed < 0:
            raise SeedError("seed must not be negative")
        if not 1 <= self.months <= MAX_MONTHS:
            raise SeedError(f"months must be between 1 and {MAX_MONTHS}")
        if self.customers is not None and not 1 <= self.customers <= self.orders:
            raise SeedError("customers must be between 1 and the number of orders")
        if not 1 <= self.chunk <= 20_000:
            raise SeedError("chunk must be between 1 and 20000")


@dataclass(frozen=True)
class SeedResult:
    orders: int
    lines: int
    events: int
    customers: int
    products: int
    replaced: int
    start: date
    end: date  # exclusive
    seconds: float
    statuses: dict[str, int] = field(default_factory=dict)
    close_reasons: dict[str, dict[str, int]] = field(default_factory=dict)  # status -> code


# --- the catalogue --------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    category: str
    price: Decimal  # EUR list price
    kind: str  # big | small | consumable: how many a basket holds
    popularity: float  # weight as a basket's first item


def _p(sku: str, name: str, category: str, price: str, kind: str, pop: float) -> Product:
    return Product(sku, name, category, Decimal(price), kind, pop)


CATALOGUE: tuple[Product, ...] = (
    _p("PRN-LASER-M200", "Laser printer M200", "printing", "249.00", "big", 3.0),
    _p("PRN-LASER-C450", "Colour laser printer C450", "printing", "489.00", "big", 1.5),
    _p("PRN-INK-H100", "Inkjet printer H100", "printing", "119.00", "big", 2.0),
    _p("TNR-M200-BK", "Toner cartridge M200, black", "printing", "69.00", "consumable", 4.0),
    _p("TNR-C450-CMY", "Toner set C450, colour", "printing", "189.00", "consumable", 1.5),
    _p("INK-H100-XL", "Ink cartridge H100 XL", "printing", "34.00", "consumable", 3.0),
    _p("PAP-A4-500", "Copy paper A4, 500 sheets", "printing", "6.50", "consumable", 6.0),
    _p("PAP-A4-BOX", "Copy paper A4, box of 5 reams", "printing", "29.00", "consumable", 3.0),
    _p("PAP-PHOTO-A4", "Photo paper A4, glossy", "printing", "18.00", "consumable", 1.0),
    _p("SCN-DOC-S1", "Document scanner S1", "printing", "279.00", "big", 0.6),
    _p("LAP-14-PRO", 'Laptop 14" Pro', "computers", "1290.00", "big", 1.5),
    _p("LAP-15-BIZ", 'Laptop 15" Business', "computers", "949.00", "big", 2.0),
    _p("LAP-13-AIR", 'Laptop 13" Light', "computers", "799.00", "big", 1.5),
    _p("DSK-MINI-PC", "Mini PC", "computers", "599.00", "big", 0.8),
    _p("TAB-10", 'Tablet 10"', "computers", "389.00", "big", 1.0),
    _p("MON-24-FHD", 'Monitor 24" Full HD', "displays", "149.00", "big", 2.5),
    _p("MON-27-QHD", 'Monitor 27" QHD', "displays", "299.00", "big", 2.0),
    _p("MON-34-UW", 'Monitor 34" ultrawide', "displays", "549.00", "big", 0.7),
    _p("MON-ARM-DUAL", "Dual monitor arm", "displays", "89.00", "small", 0.8),
    _p("PRJ-HD-300", "Projector HD 300", "displays", "459.00", "big", 0.4),
    _p("ACC-BAG-15", 'Laptop bag 15"', "accessories", "49.00", "small", 1.0),
    _p("ACC-SLEEVE-14", 'Laptop sleeve 14"', "accessories", "25.00", "small", 0.8),
    _p("ACC-DOCK-USBC", "USB-C docking station", "accessories", "179.00", "small", 1.2),
    _p("ACC-STAND-LAP", "Laptop stand", "accessories", "39.00", "small", 1.0),
    _p("ACC-PRIVACY-14", 'Privacy filter 14"', "accessories", "45.00", "small", 0.4),
    _p("KBD-WL-01", "Wireless keyboard", "peripherals", "45.00", "small", 2.0),
    _p("MSE-WL-01", "Wireless mouse", "peripherals", "25.00", "small", 3.0),
    _p("KBD-MSE-SET", "Keyboard and mouse set", "peripherals", "59.00", "small", 1.5),
    _p("HDS-USB-ANC", "USB headset, noise cancelling", "peripherals", "119.00", "small", 1.5),
    _p("CAM-HD-1080", "Webcam 1080p", "peripherals", "69.00", "small", 1.5),
    _p("SPK-CONF-360", "Conference speakerphone", "peripherals", "159.00", "small", 0.6),
    _p("MSE-PAD-XL", "Mouse pad XL", "peripherals", "15.00", "small", 1.0),
    _p("CBL-HDMI-2M", "HDMI cable, 2 m", "cables", "12.00", "small", 2.5),
    _p("CBL-USBC-1M", "USB-C cable, 1 m", "cables", "14.00", "small", 2.5),
    _p("CBL-USB-AB", "USB printer cable", "cables", "8.00", "small", 1.0),
    _p("CBL-DP-2M", "DisplayPort cable, 2 m", "cables", "13.00", "small", 1.0),
    _p("ADP-USBC-HDMI", "USB-C to HDMI adapter", "cables", "24.00", "small", 1.5),
    _p("CBL-ETH-5M", "Ethernet cable, 5 m", "cables", "9.00", "small", 1.5),
    _p("PWR-STRIP-6", "Power strip, 6 sockets", "cables", "22.00", "small", 1.2),
    _p("SSD-EXT-1TB", "External SSD, 1 TB", "storage", "119.00", "small", 1.5),
    _p("HDD-EXT-4TB", "External hard disk, 4 TB", "storage", "109.00", "small", 1.0),
    _p("USB-STICK-64", "USB stick, 64 GB", "storage", "12.00", "consumable", 2.0),
    _p("NAS-2BAY", "NAS, 2 bays", "storage", "329.00", "big", 0.4),
    _p("NET-RTR-AX", "Wi-Fi 6 router", "networking", "149.00", "big", 1.0),
    _p("NET-SW-8P", "Network switch, 8 ports", "networking", "39.00", "small", 0.8),
    _p("NET-AP-MESH", "Mesh access point", "networking", "119.00", "small", 0.6),
    _p("FUR-DESK-ELEC", "Electric standing desk", "furniture", "549.00", "big", 0.8),
    _p("FUR-CHAIR-ERGO", "Ergonomic office chair", "furniture", "389.00", "big", 1.0),
    _p("FUR-LAMP-LED", "LED desk lamp", "furniture", "45.00", "small", 1.0),
    _p("FUR-FOOTREST", "Footrest", "furniture", "35.00", "small", 0.5),
    _p("FUR-CABINET", "Mobile drawer cabinet", "furniture", "179.00", "big", 0.5),
    _p("SUP-PEN-BLUE-10", "Ballpoint pens, blue, pack of 10", "supplies", "5.00", "consumable", 4),
    _p("SUP-NOTE-A5", "Notebook A5", "supplies", "4.00", "consumable", 3.0),
    _p("SUP-STICKY", "Sticky notes, 12 pads", "supplies", "8.00", "consumable", 3.0),
    _p("SUP-STAPLER", "Stapler", "supplies", "12.00", "small", 1.0),
    _p("SUP-BINDER-10", "Ring binders, pack of 10", "supplies", "19.00", "consumable", 1.5),
    _p("SUP-LABEL-ROLL", "Label roll", "supplies", "16.00", "consumable", 1.5),
    _p("LBL-PRN-Q1", "Label printer Q1", "supplies", "99.00", "big", 0.6),
    _p("SUP-WHITEBOARD", "Whiteboard 120 x 90 cm", "supplies", "89.00", "big", 0.4),
    _p("SUP-MARKERS-8", "Whiteboard markers, 8", "supplies", "9.00", "consumable", 1.0),
)
PRODUCTS = {p.sku: p for p in CATALOGUE}

# What a basket's first item pulls in: (sku, probability).
COMPANIONS: dict[str, tuple[tuple[str, float], ...]] = {
    "PRN-LASER-M200": (("TNR-M200-BK", 0.75), ("PAP-A4-BOX", 0.45), ("CBL-USB-AB", 0.3)),
    "PRN-LASER-C450": (("TNR-C450-CMY", 0.7), ("PAP-A4-BOX", 0.4), ("CBL-USB-AB", 0.2)),
    "PRN-INK-H100": (("INK-H100-XL", 0.7), ("PAP-PHOTO-A4", 0.35), ("PAP-A4-500", 0.3)),
    "LBL-PRN-Q1": (("SUP-LABEL-ROLL", 0.8),),
    "LAP-14-PRO": (("ACC-SLEEVE-14", 0.4), ("MSE-WL-01", 0.35), ("ADP-USBC-HDMI", 0.3)),
    "LAP-15-BIZ": (("ACC-BAG-15", 0.4), ("MSE-WL-01", 0.35), ("ACC-DOCK-USBC", 0.3)),
    "LAP-13-AIR": (("ACC-SLEEVE-14", 0.35), ("ADP-USBC-HDMI", 0.35), ("MSE-WL-01", 0.25)),
    "DSK-MINI-PC": (("KBD-MSE-SET", 0.6), ("MON-24-FHD", 0.4), ("CBL-HDMI-2M", 0.3)),
    "TAB-10": (("CBL-USBC-1M", 0.3),),
    "MON-24-FHD": (("CBL-HDMI-2M", 0.45), ("MON-ARM-DUAL", 0.12)),
    "MON-27-QHD": (("CBL-DP-2M", 0.4), ("MON-ARM-DUAL", 0.2)),
    "MON-34-UW": (("CBL-DP-2M", 0.5), ("MON-ARM-DUAL", 0.15)),
    "PRJ-HD-300": (("CBL-HDMI-2M", 0.6), ("SPK-CONF-360", 0.15)),
    "NAS-2BAY": (("HDD-EXT-4TB", 0.4), ("CBL-ETH-5M", 0.5)),
    "NET-RTR-AX": (("CBL-ETH-5M", 0.5), ("NET-AP-MESH", 0.3)),
    "SUP-WHITEBOARD": (("SUP-MARKERS-8", 0.85),),
    "FUR-CHAIR-ERGO": (("FUR-FOOTREST", 0.25),),
    "FUR-DESK-ELEC": (("FUR-CABINET", 0.2),),
}


@dataclass(frozen=True)
class Bundle:
    """Items bought together as a whole (planted, so the basket analysis finds them)."""

    name: str
    skus: tuple[str, ...]
    b2c: float  # probability per order of a consumer
    b2b: float  # probability per order of a business


BUNDLES: tuple[Bundle, ...] = (
    Bundle("home office", ("FUR-DESK-ELEC", "FUR-CHAIR-ERGO", "FUR-LAMP-LED"), 0.03, 0.03),
    Bundle("video call", ("CAM-HD-1080", "HDS-USB-ANC", "SPK-CONF-360"), 0.015, 0.04),
    Bundle("new hire", ("LAP-15-BIZ", "ACC-DOCK-USBC", "MON-27-QHD", "KBD-MSE-SET"), 0.0, 0.05),
)
LINES_WEIGHTS = (0.27, 0.25, 0.2, 0.13, 0.09, 0.06)  # 1..6 lines
FX = {"EUR": Decimal(1), "USD": Decimal("1.09"), "GBP": Decimal("0.86")}

# --- customers ----------------------------------------------------------------------------------

REGIONS: dict[str, tuple[float, tuple[tuple[str, str, str, float], ...]]] = {
    # region: (weight, ((country, city, postal code, weight), ...))
    "EU-WEST": (
        0.38,
        (
            ("DE", "Berlin", "10115", 0.22),
            ("DE", "Munich", "80331", 0.14),
            ("FR", "Lyon", "69001", 0.2),
            ("NL", "Utrecht", "3511", 0.14),
            ("BE", "Ghent", "9000", 0.08),
            ("GB", "Manchester", "M1 1AE", 0.22),
        ),
    ),
    "EU-NORTH": (
        0.2,
        (
            ("SE", "Gothenburg", "411 01", 0.35),
            ("DK", "Aarhus", "8000", 0.25),
            ("FI", "Tampere", "33100", 0.25),
            ("IE", "Cork", "T12", 0.15),
        ),
    ),
    "EU-SOUTH": (
        0.17,
        (
            ("IT", "Bologna", "40121", 0.4),
            ("ES", "Valencia", "46001", 0.4),
            ("PT", "Porto", "4000", 0.2),
        ),
    ),
    "US-EAST": (0.15, (("US", "Boston", "02108", 0.5), ("US", "Philadelphia", "19107", 0.5))),
    "APAC": (
        0.1,
        (
            ("SG", "Singapore", "018956", 0.5),
            ("AU", "Brisbane", "4000", 0.3),
            ("JP", "Osaka", "530", 0.2),
        ),
    ),
}
REPS: dict[str, tuple[str, ...]] = {
    "EU-WEST": ("rep-anna", "rep-ben"),
    "EU-NORTH": ("rep-david",),
    "EU-SOUTH": ("rep-carla",),
    "US-EAST": ("rep-elena",),
    "APAC": ("rep-farid",),
}
B2B_SOURCES = (
    (OrderSource.ERP, 0.5),
    (OrderSource.CONSOLE, 0.25),
    (OrderSource.IMPORT, 0.15),
    (OrderSource.API, 0.1),
)
B2C_SOURCES = ((OrderSource.ESHOP, 0.75), (OrderSource.POS, 0.15), (OrderSource.API, 0.1))
# Days from pick-up to delivery, by region: (low, high).
TRANSIT_DAYS = {
    "EU-WEST": (0.6, 2.5),
    "EU-NORTH": (1.0, 3.5),
    "EU-SOUTH": (1.0, 4.0),
    "US-EAST": (1.5, 5.0),
    "APAC": (2.0, 7.0),
}
CANCEL_REASONS = (
    ("customer_request", 0.6),
    ("duplicate", 0.15),
    ("payment_problem", 0.1),
    ("other", 0.1),
    ("fraud_suspected", 0.05),
)
REJECT_REASONS = (
    "discount above what the account allows",
    "order volume needs a framework contract",
    "duplicate of an earlier order",
    "customer over budget this quarter",
)
# UTC hours of the day: business hours in Europe, evening shopping, a little night.
HOURS = (
    *(0.3, 0.2, 0.15, 0.15, 0.2, 0.4, 0.8, 1.5, 2.5, 3.2, 3.4, 3.3),
    *(3.0, 3.2, 3.3, 3.1, 2.7, 2.2, 2.0, 2.1, 2.0, 1.6, 1.0, 0.6),
)
WEEKDAYS = (1.15, 1.2, 1.15, 1.1, 1.0, 0.55, 0.45)  # Monday first
MONTHS = (0.85, 0.85, 0.95, 0.95, 1.0, 0.95, 0.85, 0.8, 1.0, 1.05, 1.35, 1.5)
GROWTH = 0.3  # a year


@dataclass(frozen=True)
class Profile:
    """A demo customer: who they are to the reports, and how they buy."""

    customer: Customer
    address: Address
    currency: str
    b2b: bool
    source: OrderSource
    rep: str | None
    payment: PaymentMethod
    score: int  # credit bureau score
    credit_limit: Decimal


CARD = PaymentMethod(type=PaymentType.CARD, token="****4242")  # as recorded: masked
TRANSFER = PaymentMethod(type=PaymentType.BANK_TRANSFER)


def _pick(rng: random.Random, items: Sequence[tuple[Any, float]]) -> Any:
    return rng.choices([i for i, _ in items], weights=[w for _, w in items])[0]


def make_customers(rng: random.Random, count: int) -> list[Profile]:
    """``count`` customers: region, country, currency, tier, way of buying (no personal data)."""
    out = []
    regions = [(name, w) for name, (w, _) in REGIONS.items()]
    for n in range(1, count + 1):
        region = _pick(rng, regions)
        country, city, postal, _ = _pick(rng, [(c, c[3]) for c in REGIONS[region][1]])
        b2b = rng.random() < 0.35
        vip = rng.random() < (0.18 if b2b else 0.03)
        tier = CustomerTier.VIP if vip else CustomerTier.STANDARD
        currency = {"GB": "GBP", "US": "USD"}.get(country, "EUR")
        if region == "APAC":
            currency = "USD" if rng.random() < 0.6 else "EUR"
        cid = f"C-DEMO-{n:05d}"
        label = f"Demo customer {n:05d}"
        customer = Customer(
            id=cid, name=label, email=f"{cid.lower()}@demo.example", tier=tier, region=region
        )
        address = Address(
            name=label, line1=f"Demo street {n}", city=city, postal_code=postal, country=country
        )
        if b2b:
            score = int(rng.triangular(560, 990, 820))
            limit = Decimal(250_000 if vip else 60_000)
        else:
            score = int(rng.triangular(430, 990, 760))
            limit = Decimal(5000)
        out.append(
            Profile(
                customer=customer,
                address=address,
                currency=currency,
                b2b=b2b,
                source=_pick(rng, B2B_SOURCES if b2b else B2C_SOURCES),
                rep=rng.choice(REPS[region]) if b2b else None,
                payment=TRANSFER if rng.random() < (0.6 if b2b else 0.08) else CARD,
                score=score,
                credit_limit=limit,
            )
        )
    return out


def order_counts(rng: random.Random, customers: Sequence[Profile], orders: int) -> list[int]:
    """How many orders each customer places: nearly half buy once, a third a few times, the
    rest (businesses most of all) often, heavy-tailed."""
    n = len(customers)
    counts = [0] * n
    if orders < 2 * n:  # too few orders for the shape: spread them
        for i in range(orders):
            counts[i % n] += 1
        return counts
    kinds = [rng.random() for _ in range(n)]
    frequent = [i for i in range(n) if kinds[i] < (0.45 if customers[i].b2b else 0.08)] or [0]
    often = set(frequent)
    occasional = [i for i in range(n) if i not in often and kinds[i] < 0.55]
    for i in range(n):
        counts[i] = 1
    for i in occasional:
        counts[i] = rng.randint(2, 6)
    left = orders - sum(counts)
    if left < 0:  # trim the occasional buyers back
        for i in occasional:
            take = min(counts[i] - 1, -left)
            counts[i] -= take
            left += take
    weights = [rng.lognormvariate(0, 0.8) * (2.0 if customers[i].b2b else 1.0) for i in frequent]
    for i in rng.choices(frequent, weights=weights, k=max(left, 0)):
        counts[i] += 1
    return counts


# --- when orders are placed -------------------------------------------------------------------


def months_back(day: date, months: int) -> date:
    month = day.month - 1 - months
    year = day.year + month // 12
    month = month % 12 + 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


def day_weight(day: date, start: date, rng: random.Random) -> float:
    """Orders expected on ``day``, relatively: growth, season, weekday, holidays, noise."""
    weight: float = math.exp(math.log1p(GROWTH) * (day - start).days / 365.25)
    weight *= WEEKDAYS[day.weekday()] * MONTHS[day.month - 1]
    if day.month == 11:
        thanksgiving = 22 + (3 - date(day.year, 11, 1).weekday()) % 7
        if day.day == thanksgiving + 1:
            weight *= 2.4  # Black Friday
        elif day.day == thanksgiving + 4:
            weight *= 1.8  # Cyber Monday
    if (day.month, day.day) in {(12, 24), (12, 25), (12, 26), (12, 31), (1, 1)}:
        weight *= 0.3
    elif day.month == 12 and day.day > 20:
        weight *= 0.7
    return weight * rng.lognormvariate(0, 0.12)


def schedule(rng: random.Random, orders: int, start: date, end: date) -> list[datetime]:
    """``orders`` creation times in ``[start, end)``, sorted."""
    days = [start + timedelta(days=i) for i in range((end - start).days)]
    cum_days = list(itertools.accumulate(day_weight(d, start, rng) for d in days))
    cum_hours = list(itertools.accumulate(HOURS))
    out = []
    for i in rng.choices(range(len(days)), cum_weights=cum_days, k=orders):
        hour = bisect.bisect_right(cum_hours, rng.random() * cum_hours[-1])
        d = days[i]
        seconds = min(hour, 23) * 3600 + rng.random() * 3600
        out.append(datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(seconds=seconds))
    out.sort()
    return out


def order_ids(created: Sequence[datetime], taken: set[str]) -> list[str]:
    """``SO-<day>-ZZ<nnn>``, numbered per day in creation order, skipping ``taken`` ids."""
    out: list[str] = []
    numbers: Counter[date] = Counter()
    for at in created:
        day = at.date()
        while True:
            n = numbers[day]
            numbers[day] += 1
            if n >= PER_DAY:
                raise SeedError(f"more than {PER_DAY} orders on {day}: seed fewer or more months")
            a, b = divmod(n, len(_ALPHABET) ** 2)
            b, c = divmod(b, len(_ALPHABET))
            candidate = f"SO-{day:%Y%m%d}-{ID_MARK}{_ALPHABET[a]}{_ALPHABET[b]}{_ALPHABET[c]}"
            if candidate not in taken:
                out.append(candidate)
                break
    return out


# --- one order ----------------------------------------------------------------------------------


def _price(sku: str, currency: str) -> Decimal:
    raw = PRODUCTS[sku].price * FX[currency]
    if raw >= 20:
        return Decimal(math.ceil(raw)) - CENT  # 72.99, not 73.21
    return raw.quantize(CENT, ROUND_HALF_EVEN)


PRICES = {(p.sku, c): _price(p.sku, c) for p in CATALOGUE for c in FX}
_ANCHORS = [p.sku for p in CATALOGUE]
_ANCHOR_CUM = list(itertools.accumulate(p.popularity for p in CATALOGUE))


def basket(rng: random.Random, b2b: bool) -> list[tuple[str, int]]:
    """1-6 (sku, quantity): a planted bundle, or a first item with what it pulls in, topped up
    with other items."""
    size = rng.choices(range(1, 7), weights=LINES_WEIGHTS)[0]
    skus: list[str] = []
    staff = 1
    for bundle in BUNDLES:
        if rng.random() < (bundle.b2b if b2b else bundle.b2c):
            skus = list(bundle.skus)
            staff = rng.randint(1, 8) if b2b else 1  # a kit per new colleague
            break
    if not skus:
        first = _ANCHORS[bisect.bisect_right(_ANCHOR_CUM, rng.random() * _ANCHOR_CUM[-1])]
        skus = [first]
        for sku, p in COMPANIONS.get(first, ()):
            if rng.random() < p:
                skus.append(sku)
    while len(skus) < size:
        sku = _ANCHORS[bisect.bisect_right(_ANCHOR_CUM, rng.random() * _ANCHOR_CUM[-1])]
        if sku not in skus:
            skus.append(sku)
    return [
        (sku, staff if staff > 1 else _quantity(rng, PRODUCTS[sku].kind, b2b)) for sku in skus[:6]
    ]


def _quantity(rng: random.Random, kind: str, b2b: bool) -> int:
    if kind == "consumable":
        return rng.randint(2, 30) if b2b else rng.randint(1, 4)
    if kind == "small":
        return rng.choice((1, 2, 2, 3, 5, 10, 10, 20)) if b2b else rng.choice((1, 1, 1, 2))
    if b2b:
        return rng.choice((1, 1, 2, 2, 3, 5, 10)) if rng.random() < 0.95 else rng.randint(12, 40)
    return 1 if rng.random() < 0.93 else 2


def spec_for(rng: random.Random, profile: Profile, items: Sequence[tuple[str, int]]) -> OrderSpec:
    """The order as it was submitted; businesses often get a discount off the list price.

    Built without validation (the values are typed by construction; validating every nested
    model again costs a third of the run): the tests validate what is stored."""
    discount = 0
    if profile.b2b and rng.random() < 0.5:
        discount = rng.choice((5, 5, 8, 10, 10, 12, 15, 15, 18, 20))
    lines = []
    for sku, quantity in items:
        listed = PRICES[(sku, profile.currency)]
        price = (listed * (100 - discount) / 100).quantize(CENT, ROUND_HALF_EVEN)
        lines.append(
            OrderLine.model_construct(
                sku=sku,
                quantity=quantity,
                unit_price=price,
                list_price=listed if discount else None,
            )
        )
    if profile.b2b:
        source = profile.source if rng.random() < 0.8 else _pick(rng, B2B_SOURCES)
    else:
        source = profile.source if rng.random() < 0.8 else _pick(rng, B2C_SOURCES)
    return OrderSpec.model_construct(
        customer=profile.customer,
        lines=lines,
        currency=profile.currency,
        shipping_address=profile.address,
        payment_method=profile.payment,
        sales_rep=profile.rep,
        source=source,
    )


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def _lognormal_hours(rng: random.Random, median: float, sigma: float) -> timedelta:
    return timedelta(hours=median * rng.lognormvariate(0, sigma))


def _seconds(rng: random.Random, low: float = 0.2, high: float = 3.0) -> timedelta:
    return timedelta(seconds=rng.uniform(low, high))


class _Life:
    """The events of one order, stamped in sequence and in time order."""

    def __init__(self, order_id: str, created_at: datetime, spec: OrderSpec) -> None:
        self.t = created_at
        self.events: list[ev.OrderEvent] = [
            ev.Received.model_construct(
                seq=1,
                at=created_at,
                actor=SEED_ACTOR,
                order_id=order_id,
                spec=spec,
                total=spec.total(),
            )
        ]

    def add(self, kind: type[Any], wait: timedelta = timedelta(0), **fields: Any) -> datetime:
        self.t += wait
        self.events.append(kind(seq=len(self.events) + 1, at=self.t, **fields))
        return self.t

    def at(self, when: datetime, kind: type[Any], **fields: Any) -> datetime:
        return self.add(kind, max(when - self.t, timedelta(0)), **fields)


# How an approval chain, a prepayment and a card payment end: (ending, cumulative probability).
APPROVAL_ENDINGS = (("rejected", 0.07), ("expired", 0.1), ("cancelled", 0.13))
PREPAY_ENDINGS = (("expired", 0.06), ("cancelled", 0.08))
CARD_ENDINGS = (("declined", 0.03),)


def _ending(rng: random.Random, endings: Sequence[tuple[str, float]], usual: str) -> str:
    r = rng.random()
    return next((name for name, below in endings if r < below), usual)


@dataclass(frozen=True)
class _Plan:
    """What happens to the order (drawn once, independent of the pace)."""

    credit: CreditDecision
    out_of_stock: bool
    chain: list[ChainLevel]
    approval_end: str  # approved | rejected | expired | cancelled
    end_level: int  # the level a rejection, expiry or cancellation happens at
    prepay: bool
    payment_end: str  # paid | expired | cancelled | declined
    cancel_fulfilling: bool
    late: bool
    cancel_reason: str


def plan_for(rng: random.Random, profile: Profile, spec: OrderSpec, policy: OrderPolicy) -> _Plan:
    total = spec.total()
    score = profile.score + rng.randint(-25, 25)
    if rng.random() < 0.015:
        score = rng.randint(280, 399)  # below the rules' reject band
    exposure = (profile.credit_limit * Decimal(rng.uniform(0, 0.3))).quantize(CENT)
    if not profile.b2b:
        exposure = Decimal(0)
    credit = decide_credit(
        score=max(0, min(score, 1000)),
        credit_limit=profile.credit_limit,
        open_exposure=exposure,
        order_total=total,
        rules=policy.credit_rules,
    )
    chain = approval_chain(
        policy.approval,
        total=total,
        currency=spec.currency,
        credit=credit.outcome,
        max_discount_pct=spec.max_discount_pct(),
        tier=spec.customer.tier,
    )
    approval_end = _ending(rng, APPROVAL_ENDINGS, "approved") if chain else "approved"
    prepay = requires_prepayment(spec, credit.outcome)
    payment_end = _ending(rng, PREPAY_ENDINGS if prepay else CARD_ENDINGS, "paid")
    return _Plan(
        credit=credit,
        out_of_stock=rng.random() < 0.02,
        chain=chain,
        approval_end=approval_end,
        end_level=rng.randrange(len(chain)) if chain else 0,
        prepay=prepay,
        payment_end=payment_end,
        cancel_fulfilling=rng.random() < 0.025,
        late=rng.random() < 0.04,
        cancel_reason=_pick(rng, CANCEL_REASONS),
    )


def _approvers(rng: random.Random, level: int, quorum: int) -> list[str]:
    """``quorum`` distinct approvers of ``level``."""
    pool = list(APPROVERS.get(level, FINANCE))
    rng.shuffle(pool)
    return [pool[k] if k < len(pool) else f"{pool[0]}-{k + 1}" for k in range(quorum)]


def lifecycle(
    rng: random.Random,
    order_id: str,
    created_at: datetime,
    spec: OrderSpec,
    plan: _Plan,
    policy: OrderPolicy,
    *,
    pace: float = 1.0,
    expiries: bool = True,
) -> list[ev.OrderEvent]:
    """The order's events, as its workflow records them; ``pace`` < 1 shortens every wait
    (an order created shortly before ``now`` must have closed by then), ``expiries`` False
    turns the paths that wait for a deadline into their ordinary ending."""
    life = _Life(order_id, created_at, spec)
    units = sum(line.quantity for line in spec.lines)
    total = spec.total()
    country = spec.shipping_address.country

    def hours(median: float, sigma: float) -> timedelta:
        return _lognormal_hours(rng, median, sigma) * pace

    def secs(low: float = 0.2, high: float = 3.0) -> timedelta:
        return _seconds(rng, low, high) * pace

    def close(kind: type[Any], actor: str, reason: str) -> None:
        life.add(ev.StockReleased, secs(), units=units)  # the reserved stock goes back
        life.add(kind, secs(), actor=actor, reason=reason)

    def cancel(wait: timedelta) -> None:
        life.add(ev.CancelRequested, wait, actor=SUPPORT, reason=plan.cancel_reason)
        close(ev.Cancelled, SUPPORT, plan.cancel_reason)

    life.add(ev.CreditCheckStarted, secs(0.05, 0.5))
    life.add(ev.CreditChecked, secs(0.3, 2.0), actor="credit-policy", decision=plan.credit)
    if plan.credit.outcome is CreditOutcome.REJECT:
        life.add(ev.Rejected, secs(), actor="credit-policy", reason=plan.credit.reason)
        return life.events
    if plan.out_of_stock:
        sku, quantity = spec.lines[-1].sku, spec.lines[-1].quantity
        reason = f"not enough stock of {sku} for {quantity}"
        life.add(ev.OutOfStock, secs(), actor="inventory", reason=reason)
        life.add(ev.Failed, secs(), actor="inventory", reason=reason)
        return life.events
    life.add(ev.StockReserved, secs(), revision=0, units=units)
    if plan.chain:
        life.add(
            ev.ApprovalChainDecided,
            secs(0.01, 0.2),
            policy_version=policy.approval.version,
            levels=[
                ev.ChainStep(level=c.level, name=c.name, quorum=c.quorum, escalate_to=c.escalate_to)
                for c in plan.chain
            ],
        )
        for index, level in enumerate(plan.chain):
            timing = level.timing
            asked = life.t + secs(0.01, 0.2)
            life.at(
                asked,
                ev.ApprovalRequested,
                level=level.level,
                remind_at=asked + timing.reminder_after,
                escalate_at=asked + timing.escalate_after,
                expire_at=asked + timing.expire_after,
            )
            ending = plan.approval_end if index == plan.end_level else "approved"
            if ending == "expired" and not expiries:
                ending = "approved"
            median = 3.0 if spec.customer.tier is CustomerTier.STANDARD else 1.5
            wait = min(hours(median, 1.1), timing.expire_after * 0.95)
            if ending == "expired":
                wait = timing.expire_after
            deputy = level.escalate_to if level.escalate_to is not None else level.level
            for after, kind, extra in (
                (timing.reminder_after, ev.ApprovalReminderSent, {}),
                (timing.escalate_after, ev.ApprovalEscalated, {"to_level": deputy}),
            ):
                if wait > after:
                    life.at(asked + after, kind, level=level.level, **extra)
            if ending == "expired":
                life.at(asked + wait, ev.ApprovalExpired, level=level.level)
                close(ev.Rejected, SYSTEM, "approval expired")
                return life.events
            if ending == "cancelled":
                cancel(max(asked + wait * rng.uniform(0.2, 0.9) - life.t, timedelta(0)))
                return life.events
            deciders = _approvers(rng, level.level, level.quorum)
            if ending == "rejected":
                reason = rng.choice(REJECT_REASONS)
                life.at(
                    asked + wait,
                    ev.LevelRejected,
                    actor=deciders[0],
                    level=level.level,
                    reason=reason,
                )
                close(ev.Rejected, deciders[0], reason)
                return life.events
            for decider in deciders:  # the level's quorum of distinct approvals
                life.at(asked + wait, ev.LevelApproved, actor=decider, level=level.level)
                wait += hours(0.5, 1.0)
    life.add(ev.Confirmed, secs(0.1, 1.0))
    payer = SYSTEM
    if plan.prepay:
        started = life.t + secs(0.1, 1.0)
        due_at = started + policy.payment_deadline
        life.at(started, ev.PaymentRequested, amount=total, due_at=due_at)
        ending = plan.payment_end if expiries or plan.payment_end != "expired" else "paid"
        wait = min(hours(20, 0.9), policy.payment_deadline * 0.95)
        if ending == "expired":
            wait = policy.payment_deadline
        if policy.payment_reminder_after < policy.payment_deadline:
            if wait > policy.payment_reminder_after:
                life.at(started + policy.payment_reminder_after, ev.PaymentReminderSent)
        if ending == "expired":
            life.at(started + wait, ev.PaymentExpired)
            close(ev.Cancelled, SYSTEM, "payment deadline passed")
            return life.events
        if ending == "cancelled":
            cancel(max(started + wait * rng.uniform(0.2, 0.9) - life.t, timedelta(0)))
            return life.events
        life.at(started + wait, ev.PaymentReceived, actor=PAYER, amount=total)
        payer = PAYER
    elif plan.payment_end == "declined":
        reason = "card declined by issuer"
        life.add(ev.PaymentDeclined, secs(1, 4), actor="payment-gateway", reason=reason)
        close(ev.Failed, "payment-gateway", reason)
        return life.events
    life.add(
        ev.PaymentCaptured,
        secs(1, 4),
        actor=payer,
        amount=total,
        reference=f"ch_{_hex(rng, 16)}",
    )
    tracking = f"SX{country}{_hex(rng, 10).upper()}"
    booked = life.add(
        ev.ShipmentBooked,
        secs(1, 5),
        parcel=1,
        carrier=CARRIER,
        tracking_number=tracking,
        lines=[ev.ParcelLine(sku=line.sku, quantity=line.quantity) for line in spec.lines],
    )
    pick_up = booked + hours(30 if spec.customer.tier is CustomerTier.STANDARD else 14, 0.6)
    while pace == 1.0 and pick_up.weekday() >= 5:  # handed over on working days
        pick_up += timedelta(days=1)
    if plan.cancel_fulfilling:
        asked = booked + (pick_up - booked) * rng.uniform(0.1, 0.9)
        life.at(asked, ev.CancelRequested, actor=SUPPORT, reason=plan.cancel_reason)
        life.add(ev.ShipmentCancelled, secs(), parcel=1, tracking_number=tracking)
        refund = f"re_{_hex(rng, 16)}"
        life.add(ev.PaymentRefunded, secs(1, 4), amount=total, reference=refund)
        close(ev.Cancelled, SUPPORT, plan.cancel_reason)
        return life.events
    low, high = TRANSIT_DAYS[spec.customer.region]
    in_transit = pick_up + timedelta(hours=rng.uniform(3, 14)) * pace
    delivered = in_transit + timedelta(days=rng.uniform(low, high)) * pace
    if plan.late:
        delivered += timedelta(days=rng.uniform(4, 9)) * pace
    overdue_at = booked + policy.delivery_sla
    scans = (("picked_up", pick_up), ("in_transit", in_transit), ("delivered", delivered))
    for scan, when in scans:
        if overdue_at < when and not any(isinstance(e, ev.DeliveryOverdue) for e in life.events):
            life.at(overdue_at, ev.DeliveryOverdue)
        occurred = when if scan == "delivered" else None
        life.at(
            when,
            ev.CarrierScan,
            actor=CARRIER_ACTOR,
            parcel=1,
            tracking_number=tracking,
            scan=scan,
            occurred_at=occurred,
        )
        if scan == "picked_up":
            life.add(ev.Shipped, actor=CARRIER_ACTOR, parcel=1)
    life.add(ev.Delivered, actor=CARRIER_ACTOR, delivered_at=delivered)
    life.add(ev.Completed, secs(0.5, 3))
    return life.events


class Logged(NamedTuple):
    """An event with the order's status after it (domain.state.LoggedEvent, lighter)."""

    status: OrderStatus
    event: ev.OrderEvent


def fold(events: Sequence[ev.OrderEvent]) -> tuple[OrderState, list[Logged]]:
    """The state after the events, and each event with the status after it (as logged)."""
    state: OrderState | None = None
    logged = []
    for e in events:
        state = apply(state, e)
        logged.append(Logged(state.status, e))
    assert state is not None
    return state, logged


# --- writing ------------------------------------------------------------------------------------


def seeded() -> ColumnElement[bool]:
    """The seeded orders: created by seed-demo, with a seeded id."""
    return and_(OrderRow.created_by == SEED_ACTOR, OrderRow.id.like(ID_PATTERN))


async def count_seeded(session: AsyncSession) -> int:
    return int(
        await session.scalar(select(func.count()).select_from(OrderRow).where(seeded())) or 0
    )


async def delete_seeded(session: AsyncSession) -> int:
    """Delete the seeded orders with their lines and events (not the rollups: rebuild them)."""
    deleted, after = 0, ""
    while True:
        ids = list(
            await session.scalars(
                select(OrderRow.id)
                .where(seeded(), OrderRow.id > after)
                .order_by(OrderRow.id)
                .limit(_DELETE_CHUNK)
            )
        )
        if not ids:
            return deleted
        await session.execute(delete(OrderLineRow).where(OrderLineRow.order_id.in_(ids)))
        await session.execute(delete(OrderEventRow).where(OrderEventRow.order_id.in_(ids)))
        await session.execute(delete(OrderRow).where(OrderRow.id.in_(ids)))
        deleted += len(ids)
        after = ids[-1]


async def write_products(session: AsyncSession, now: datetime) -> dict[str, str]:
    """The catalogue (a product already there keeps its name and category); sku -> category
    as the lines record it."""
    stmt = insert_for(session, ProductRow).values(
        [
            {"sku": p.sku, "name": p.name, "category": p.category, "updated_at": now}
            for p in CATALOGUE
        ]
    )
    await session.execute(stmt.on_conflict_do_nothing(index_elements=["sku"]))
    return await rollup.categories(session, [p.sku for p in CATALOGUE])


@dataclass
class _Chunk:
    orders: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    per_order: dict[Any, Figures] = field(default_factory=dict)
    per_sku: dict[Any, Figures] = field(default_factory=dict)

    def add(self, state: OrderState, logged: Sequence[Logged], category: dict[str, str]) -> None:
        values = {
            **_order_values(state, state.model_dump(mode="json")),
            **dict.fromkeys(_TIMES),  # every row the same keys (one executemany)
            **rollup.event_times(logged),
        }
        self.orders.append(values)
        self.lines.extend(rollup.line_rows(state, category))
        facts = rollup.line_facts(state, category)
        source = state.source.value
        for item in logged:
            e = item.event
            self.events.append(
                {
                    "order_id": state.id,
                    "seq": e.seq,
                    "type": e.type,
                    "actor": e.actor,
                    "at": e.at,
                    "status": item.status.value,
                    "payload": e.model_dump(mode="json"),
                    "source": source,
                }
            )
        orders, skus = contributions(
            OrderFacts(
                day=utc_day(state.created_at),
                region=values["region"],
                tier=values["customer_tier"],
                status=values["status"],
                source=values["source"],
                sales_rep=values["sales_rep"] or "",
                currency=values["currency"],
                total=state.total,
                refunded=state.payment.refunded,
                lines=tuple(facts),
            )
        )
        for key, f in orders.items():
            self.per_order[key] = self.per_order.get(key, Figures()) + f
        for key, f in skus.items():
            self.per_sku[key] = self.per_sku.get(key, Figures()) + f

    async def write(self, session: AsyncSession) -> None:
        conn = await session.connection()  # Core executemany: no ORM bookkeeping per row
        await conn.execute(insert(_table(OrderRow)), self.orders)
        await conn.execute(insert(_table(OrderLineRow)), self.lines)
        await conn.execute(insert(_table(OrderEventRow)), self.events)
        await add_figures(session, SalesDailyRow, rollup.ORDER_KEY, self.per_order)
        await add_figures(session, SalesDailySkuRow, rollup.SKU_KEY, self.per_sku)
        await add_figures(
            session, SalesMonthlySkuRow, rollup.MONTH_SKU_KEY, rollup.monthly(self.per_sku)
        )
        await add_figures(
            session, SalesWeeklySkuRow, rollup.WEEK_SKU_KEY, rollup.weekly(self.per_sku)
        )


def _table(model: type[Base]) -> Table:
    return Base.metadata.tables[model.__tablename__]


async def add_figures(
    session: AsyncSession, model: type[Base], key: Sequence[str], figures: dict[Any, Figures]
) -> None:
    """:func:`db.rollup.add` as one executemany: add the figures to the rollup rows, creating
    missing ones, in key order (so concurrent projections lock shared rows in the same order)."""
    rows = [
        {**dict(zip(key, k, strict=True)), **{c: getattr(f, c) for c in rollup.FIGURES}}
        for k, f in sorted(figures.items())
        if not f.zero
    ]
    if not rows:
        return
    table = _table(model)
    stmt = insert_for(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key), set_={c: table.c[c] + stmt.excluded[c] for c in rollup.FIGURES}
    )
    await (await session.connection()).execute(stmt, rows)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a chunk is built and written: its hundreds of
    thousands of young objects (snapshots, payloads) made the collector take a third of the
    run; they are freed by reference counting once the chunk is written."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def generate(
    options: SeedOptions,
    policy: OrderPolicy,
    now: datetime,
    taken: set[str],
) -> tuple[date, date, int, Iterator[tuple[OrderState, list[Logged]]]]:
    """The demo history, order by order in creation order (pure: no I/O). Returns the date
    range, the number of customers, and the orders (state and logged events)."""
    rng = random.Random(options.seed)
    end = now.astimezone(UTC).date()  # exclusive: up to the end of yesterday
    start = months_back(end, options.months)
    customers = make_customers(rng, options.customers or max(1, round(options.orders / 25)))
    counts = order_counts(rng, customers, options.orders)
    who = [i for i, n in enumerate(counts) for _ in range(n)]
    rng.shuffle(who)
    created = schedule(rng, options.orders, start, end)
    ids = order_ids(created, taken)

    def orders() -> Iterator[tuple[OrderState, list[Logged]]]:
        for n, (order_id, at, index) in enumerate(zip(ids, created, who, strict=True)):
            # Each order draws from its own generator: one order's draws never shift another's.
            own = (options.seed * 10_000_019 + n) * 2
            rng = random.Random(own)
            profile = customers[index]
            spec = spec_for(rng, profile, basket(rng, profile.b2b))
            plan = plan_for(rng, profile, spec, policy)
            pace, expiries = 1.0, True
            while True:
                life = random.Random(own + 1)  # the same draws again, only faster if hurried
                events = lifecycle(
                    life, order_id, at, spec, plan, policy, pace=pace, expiries=expiries
                )
                if events[-1].at <= now:
                    break
                pace, expiries = pace / 2, False  # it would not have closed by now
            yield fold(events)

    return start, end, len(customers), orders()


async def seed_demo(
    sessions: SessionFactory,
    options: SeedOptions,
    policy: OrderPolicy,
    *,
    now: datetime | None = None,
    on_progress: ProgressCallback | None = None,
) -> SeedResult:
    """Write the demo history (see the module docstring). Raises :class:`SeededDataExists`
    when seeded orders are there and ``options.replace`` is False, :class:`SeedError` for
    options it refuses."""
    options.check()
    began = time.perf_counter()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    async with sessions.begin() as session:
        existing = await count_seeded(session)
        if existing and not options.replace:
            raise SeededDataExists(existing)
        # Ids real orders hold; the ids are drawn here, so a refusal comes before any change.
        held = OrderRow.id.like(ID_PATTERN) & (OrderRow.created_by != SEED_ACTOR)
        taken = set(await session.scalars(select(OrderRow.id).where(held)))
        start, end, customers, orders = generate(options, policy, now, taken)
        replaced = 0
        if existing:
            replaced = await delete_seeded(session)
            await rollup.rebuild(session)
        category = await write_products(session, now)
    total, done, lines, events = options.orders, 0, 0, 0
    statuses: Counter[str] = Counter()
    reasons: Counter[tuple[str, str]] = Counter()
    if on_progress:
        on_progress(0, total)
    while done < total:
        chunk = _Chunk()
        with _collector_paused():
            for state, logged in itertools.islice(orders, options.chunk):
                chunk.add(state, logged, category)
            async with sessions.begin() as session:
                await chunk.write(session)
        done += len(chunk.orders)
        lines += len(chunk.lines)
        events += len(chunk.events)
        statuses.update(o["status"] for o in chunk.orders)
        reasons.update((o["status"], o["close_reason"]) for o in chunk.orders if o["close_reason"])
        if on_progress:
            on_progress(done, total)
    return SeedResult(
        orders=done,
        lines=lines,
        events=events,
        customers=customers,
        products=len(CATALOGUE),
        replaced=replaced,
        start=start,
        end=end,
        seconds=time.perf_counter() - began,
        statuses=dict(statuses.most_common()),
        close_reasons={
            status: {code: n for (s, code), n in reasons.most_common() if s == status}
            for status in statuses
            if status != S.COMPLETED
        },
    )
