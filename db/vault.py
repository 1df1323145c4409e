"""Customer data at rest: PII sealed under a per-customer data key, erasable by shredding it.

Each customer gets a random AES-256 data key (DEK), stored only wrapped by the key ring
(``customer_keys``). Documents we store (order snapshots, event payloads) keep their shape:
their PII fields hold placeholders, and ``_pii`` carries the real values encrypted under the
customer's DEK, bound to the customer id. Deleting the DEK (:meth:`Vault.shred`) makes every copy
unreadable at once, in every row and every backup, while the business figures stay readable.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import CustomerKeyRow
from db.upsert import insert_for
from security.keyring import NONCE_BYTES, KeyRing

ERASED = "[erased]"
_PLACEHOLDERS = {"email": "erased@erased.example", "postal_code": "-"}
# Which fields of which objects are personal data (by the key the object sits under).
_CUSTOMER_FIELDS = ("name", "email", "phone")
_ADDRESS_FIELDS = ("name", "line1", "line2", "city", "postal_code", "phone")
TEXT_PREFIX = "pii1:"

Path = list[str | int]


def placeholder(field: str) -> str:
    """What a sealed or erased PII field shows (valid for the field's validation)."""
    return _PLACEHOLDERS.get(field, ERASED)


def _pii_fields(key: str | int) -> tuple[str, ...]:
    if key == "customer":
        return _CUSTOMER_FIELDS
    if isinstance(key, str) and key.endswith("address"):
        return _ADDRESS_FIELDS
    return ()


def _extract(node: Any, path: Path, found: list[tuple[Path, str]]) -> Any:
    """A copy of ``node`` with PII strings replaced by placeholders, collected in ``found``."""
    if isinstance(node, dict):
        fields = _pii_fields(path[-1]) if path else ()
        out: dict[str, Any] = {}
        for k, v in node.items():
            if k in fields and isinstance(v, str) and v:
                found.append(([*path, k], v))
                out[k] = placeholder(k)
            else:
                out[k] = _extract(v, [*path, k], found)
        return out
    if isinstance(node, list):
        return [_extract(v, [*path, i], found) for i, v in enumerate(node)]
    return node


def without_pii(node: Any, path: Path | None = None) -> Any:
    """A copy of a stored document without its PII fields and without the sealed ``_pii``
    (for receivers that may not see customer data, e.g. webhook payloads)."""
    path = path or []
    if isinstance(node, dict):
        fields = _pii_fields(path[-1]) if path else ()
        return {
            k: without_pii(v, [*path, k])
            for k, v in node.items()
            if k != "_pii" and k not in fields
        }
    if isinstance(node, list):
        return [without_pii(v, [*path, i]) for i, v in enumerate(node)]
    return node


def _put(doc: Any, path: Path, value: str) -> None:
    node = doc
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


class Vault:
    """Seal and open customer PII with per-customer data keys; shred them on erasure."""

    def __init__(self, keyring: KeyRing) -> None:
        self._ring = keyring

    # --- data keys -----------------------------------------------------------------------

    def _unwrap(self, row: CustomerKeyRow) -> AESGCM:
        aad = b"dek:" + row.customer_id.encode()
        return AESGCM(self._ring.decrypt(row.kek_id, base64.b64decode(row.wrapped), aad))

    async def _keys(
        self, session: AsyncSession, customer_ids: Iterable[str]
    ) -> dict[str, tuple[str, AESGCM]]:
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        rows = await session.scalars(
            select(CustomerKeyRow).where(CustomerKeyRow.customer_id.in_(ids))
        )
        return {r.customer_id: (r.dek_id, self._unwrap(r)) for r in rows}

    async def _key_for_sealing(self, session: AsyncSession, customer_id: str) -> tuple[str, AESGCM]:
        found = (await self._keys(session, [customer_id])).get(customer_id)
        if found is not None:
            return found
        kek_id, wrapped = self._ring.encrypt(
            secrets.token_bytes(32), b"dek:" + customer_id.encode()
        )
        stmt = insert_for(session, CustomerKeyRow).values(
            customer_id=customer_id,
            dek_id=secrets.token_hex(8),
            kek_id=kek_id,
            wrapped=base64.b64encode(wrapped).decode(),
            created_at=datetime.now(UTC),
        )
        await session.execute(stmt.on_conflict_do_nothing(index_elements=["customer_id"]))
        return (await self._keys(session, [customer_id]))[customer_id]  # ours or a racer's

    async def shred(self, session: AsyncSession, customer_id: str) -> bool:
        """Delete the customer's data key: all their sealed PII becomes unreadable for good."""
        result = await session.execute(
            delete(CustomerKeyRow).where(CustomerKeyRow.customer_id == customer_id)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # --- documents -----------------------------------------------------------------------

    async def seal(
        self, session: AsyncSession, customer_id: str, doc: dict[str, Any]
    ) -> dict[str, Any]:
        """``doc`` with its PII fields as placeholders and the values sealed in ``_pii``."""
        found: list[tuple[Path, str]] = []
        out = _extract(doc, [], found)
        if not found:
            return out  # type: ignore[no-any-return]
        dek_id, aead = await self._key_for_sealing(session, customer_id)
        nonce = secrets.token_bytes(NONCE_BYTES)
        plain = json.dumps([v for _, v in found], ensure_ascii=False).encode()
        out["_pii"] = {
            "c": customer_id,
            "k": dek_id,
            "p": [p for p, _ in found],
            "v": base64.b64encode(
                nonce + aead.encrypt(nonce, plain, customer_id.encode())
            ).decode(),
        }
        return out  # type: ignore[no-any-return]

    async def open(self, session: AsyncSession, doc: dict[str, Any]) -> dict[str, Any]:
        return (await self.open_many(session, [doc]))[0]

    async def open_many(
        self, session: AsyncSession, docs: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The documents with PII restored (one key read for all); erased PII stays placeholder."""
        keys = await self._keys(session, (d["_pii"]["c"] for d in docs if "_pii" in d))
        return [self._open(d, keys) for d in docs]

    def _open(self, doc: dict[str, Any], keys: dict[str, tuple[str, AESGCM]]) -> dict[str, Any]:
        sealed = doc.get("_pii")
        if sealed is None:
            return doc
        out = {k: v for k, v in doc.items() if k != "_pii"}
        key = keys.get(sealed["c"])
        if key is None or key[0] != sealed["k"]:
            return out  # erased: the placeholders stay
        raw = base64.b64decode(sealed["v"])
        try:
            plain = key[1].decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], sealed["c"].encode())
        except InvalidTag:
            return out
        copy: dict[str, Any] = json.loads(json.dumps(out))  # a deep copy to write into
        for path, value in zip(sealed["p"], json.loads(plain), strict=True):
            _put(copy, path, value)
        return copy

    # --- single values (columns) -----------------------------------------------------------

    async def seal_text(self, session: AsyncSession, customer_id: str, value: str) -> str:
        """One PII value for a column: ``pii1:<dek id>:<base64>``."""
        dek_id, aead = await self._key_for_sealing(session, customer_id)
        nonce = secrets.token_bytes(NONCE_BYTES)
        blob = nonce + aead.encrypt(nonce, value.encode(), customer_id.encode())
        return f"{TEXT_PREFIX}{dek_id}:{base64.b64encode(blob).decode()}"

    async def open_texts(
        self, session: AsyncSession, values: Sequence[tuple[str, str]], field: str = "name"
    ) -> list[str]:
        """Open ``(customer id, sealed value)`` pairs; erased ones read as the placeholder."""
        keys = await self._keys(session, (cid for cid, _ in values))
        return [self._open_text(cid, v, keys, field) for cid, v in values]

    async def open_text(
        self, session: AsyncSession, customer_id: str, value: str, field: str = "name"
    ) -> str:
        return (await self.open_texts(session, [(customer_id, value)], field))[0]

    @staticmethod
    def _open_text(
        customer_id: str, value: str, keys: dict[str, tuple[str, AESGCM]], field: str
    ) -> str:
        if not value.startswith(TEXT_PREFIX):
            return value
        dek_id, _, b64 = value[len(TEXT_PREFIX) :].partition(":")
        key = keys.get(customer_id)
        if key is None or key[0] != dek_id:
            return placeholder(field)
        raw = base64.b64decode(b64)
        try:
            return (
                key[1].decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], customer_id.encode()).decode()
            )
        except InvalidTag:
            return placeholder(field)
