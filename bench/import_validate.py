"""Figures of the import's pure phase: read_table + validate on generated XLSX files.

Generates an XLSX of N rows (orders of 5 lines, e.g. 10,000 rows = 2,000 orders), then, in a
fresh child process per file (so that the generator's memory is not counted), times
``read_table`` and ``validate`` and reads the peak RSS (``resource.getrusage``). No stack, no
database: the callables answer from memory, as the service will after prefetching.

    .venv/bin/python bench/import_validate.py                      # 10,000 and 100,000 rows
    .venv/bin/python bench/import_validate.py --sizes 10000 --json bench/results/import.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LINES_PER_ORDER = 5
SKUS = [f"SKU-{i:04d}" for i in range(500)]
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "张", "李", "François", "Zoë"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "伟", "娜", "Müller"]
CITIES = ["London", "Paris", "Berlin", "北京市", "Zürich", "Madrid", "Oslo", "Lyon"]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """An import XLSX of ``rows`` rows written with xlsxwriter's constant-memory mode."""
    import xlsxwriter

    from domain.imports import COLUMN_NAMES

    rng = random.Random(seed)
    wb = xlsxwriter.Workbook(
        str(path),
        {"constant_memory": True, "strings_to_formulas": False, "strings_to_numbers": False},
    )
    ws = wb.add_worksheet("orders")
    for c, name in enumerate(COLUMN_NAMES):
        ws.write_string(0, c, name)
    r = 1
    for order in range(rows // LINES_PER_ORDER):
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        fields = {
            "order_ref": f"BENCH-{order:07d}",
            "customer_id": f"C-{rng.randrange(10**6):06d}",
            "customer_name": name,
            "customer_email": f"c{order}@example.com",
            "customer_region": rng.choice(["EU-WEST", "EU-NORTH", "APAC"]),
            "currency": "EUR",
            "ship_name": name,
            "ship_line1": f"{rng.randrange(1, 400)} {rng.choice(LAST)} Street",
            "ship_city": rng.choice(CITIES),
            "ship_postal_code": f"{rng.randrange(10**5):05d}",
            "ship_country": rng.choice(["GB", "FR", "DE", "CN", "CH"]),
            "payment_type": "card",
            "payment_token": f"tok_{rng.randrange(16**12):012x}",
            "sales_rep": f"rep-{rng.randrange(40)}",
        }
        for sku in rng.sample(SKUS, LINES_PER_ORDER):
            values: dict[str, Any] = {
                **fields,
                "sku": sku,
                "quantity": rng.randrange(1, 50),
                "unit_price": rng.randrange(100, 100_000) / 100,
            }
            for c, column in enumerate(COLUMN_NAMES):
                value = values.get(column, "")
                if isinstance(value, str):
                    if value:
                        ws.write_string(r, c, value)
                else:
                    ws.write_number(r, c, value)
            r += 1
    wb.close()


def measure(path: Path) -> dict[str, Any]:
    """Run in the child: time the reading and the validation; the peak RSS of the process."""
    import zipfile

    from domain.import_formats import read_table
    from domain.imports import validate

    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        ratio = max(i.file_size / max(i.compress_size, 1) for i in archive.infolist())
    t0 = time.perf_counter()
    table = read_table(data, path.name)
    t1 = time.perf_counter()
    result = validate(
        table,
        known_skus=frozenset(SKUS),
        is_known_customer=lambda _id, _email: "new",
        already_imported=lambda _ref: None,
    )
    t2 = time.perf_counter()
    rows = len(table.rows)
    return {
        "rows": rows,
        "file_bytes": len(data),
        "max_zip_ratio": round(ratio, 1),
        "orders_valid": result.counts.orders_valid,
        "problems": len(result.problems),
        "read_s": round(t1 - t0, 3),
        "validate_s": round(t2 - t1, 3),
        "total_s": round(t2 - t0, 3),
        "rows_per_s": round(rows / (t2 - t0)),
        "baseline_rss_mb": round(baseline_kb / 1024, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="rows per file, comma-separated")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child's mode
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    figures = []
    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            path = Path(tmp) / f"import-{size}.xlsx"
            t0 = time.perf_counter()
            generate(path, size)
            gen_s = time.perf_counter() - t0
            child = subprocess.run(
                [sys.executable, __file__, "--measure", str(path)],
                check=True,
                capture_output=True,
                text=True,
                timeout=1800,
            )
            result = json.loads(child.stdout)
            result["generate_s"] = round(gen_s, 2)
            figures.append(result)
            print(
                f"{result['rows']:>7,} rows ({result['orders_valid']:,} orders, "
                f"{result['file_bytes'] / 2**20:.1f} MiB, zip ratio <= {result['max_zip_ratio']}): "
                f"read {result['read_s']:.2f} s + validate {result['validate_s']:.2f} s = "
                f"{result['total_s']:.2f} s, {result['rows_per_s']:,} rows/s, "
                f"peak RSS {result['peak_rss_mb']:.0f} MB "
                f"(baseline {result['baseline_rss_mb']:.0f})"
            )
    if args.json:
        meta = {"cpu_count": os.cpu_count(), "python": sys.version.split()[0]}
        args.json.write_text(json.dumps({"meta": meta, "runs": figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
