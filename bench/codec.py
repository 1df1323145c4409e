"""CPU cost of payload encryption per order: ``python bench/codec.py [-r 200]``.

Takes the saved replay histories (real orders of each shape), decodes their payloads once, then
times, per order, encoding and decoding every payload the order's history carries, with the
AES-256-GCM codec and, side by side, with no codec (the engine's own path: the payloads pass as
they are). Prints payloads and bytes per order and codec CPU per order in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory

from security.codec import ENCODING, EncryptionCodec
from tests.keys import TEST_RING
from tests.replay.record import HISTORIES
from tests.security.test_encryption import _payloads


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-r", "--rounds", type=int, default=200, help="repetitions per history")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    codec = EncryptionCodec(TEST_RING)
    rows = []
    print(f"{'history':<26}{'payloads':>9}{'KiB':>8}{'codec ms/order':>16}{'none ms/order':>15}")
    for path in sorted(HISTORIES.glob("*.json")):
        history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
        sealed = [p for p in _payloads(history) if p.metadata.get("encoding") == ENCODING]
        plain: list[Payload] = await codec.decode(sealed)
        size = sum(p.ByteSize() for p in plain)
        t0 = time.process_time()
        for _ in range(args.rounds):
            await codec.decode(await codec.encode(plain))
        with_codec = (time.process_time() - t0) / args.rounds
        t0 = time.process_time()
        for _ in range(args.rounds):  # the same work minus the cipher: serialise + copy
            [Payload.FromString(p.SerializeToString()) for p in plain]
        without = (time.process_time() - t0) / args.rounds
        rows.append(
            {
                "history": path.stem,
                "payloads": len(plain),
                "bytes": size,
                "codec_ms_per_order": round(with_codec * 1000, 3),
                "no_codec_ms_per_order": round(without * 1000, 3),
            }
        )
        print(
            f"{path.stem:<26}{len(plain):>9}{size / 1024:>8.1f}"
            f"{with_codec * 1000:>16.3f}{without * 1000:>15.3f}"
        )
    mean = sum(r["codec_ms_per_order"] for r in rows) / len(rows)
    print(f"mean codec CPU per order (encode + decode of every payload once): {mean:.3f} ms")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"rounds": args.rounds, "rows": rows}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
