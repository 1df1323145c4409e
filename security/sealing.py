"""Small values sealed for a browser or a link (session cookies, tracking links): JSON under
AES-256-GCM with the key ring, so they are signed and unreadable. The associated data names what
a value is, so one kind never passes for another (nor for a Temporal payload or a data key)."""

from __future__ import annotations

import base64
import binascii
import json

from security.keyring import KeyRing


def seal_data(ring: KeyRing, aad: bytes, data: dict[str, object]) -> str:
    """``data`` sealed for a cookie: ``<ring key id>.<base64url of nonce + ciphertext + tag>``;
    ``aad`` names what it is, so one kind of sealed value never passes for another."""
    body = json.dumps(data, separators=(",", ":")).encode()
    key_id, blob = ring.encrypt(body, aad)
    return f"{key_id}.{base64.urlsafe_b64encode(blob).decode().rstrip('=')}"


def unseal_data(ring: KeyRing, aad: bytes, value: str) -> dict[str, object] | None:
    """What :func:`seal_data` sealed with the same ``aad``; None for anything else."""
    key_id, dot, encoded = value.rpartition(".")
    if not dot or not key_id or len(value) > 2048:
        return None
    try:
        blob = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        data = json.loads(ring.decrypt(key_id, blob, aad))
    except (binascii.Error, ValueError, TypeError):  # ring errors are ValueErrors
        return None
    return data if isinstance(data, dict) else None


def seal_bytes(ring: KeyRing, aad: bytes, data: bytes) -> bytes:
    """``data`` sealed for storage (an uploaded file, a report): ``<key id>\\n`` + nonce +
    ciphertext + tag; ``aad`` names what it is and whose, as for :func:`seal_data`."""
    key_id, blob = ring.encrypt(data, aad)
    return key_id.encode() + b"\n" + blob


def unseal_bytes(ring: KeyRing, aad: bytes, sealed: bytes) -> bytes:
    """What :func:`seal_bytes` sealed with the same ``aad``; raises the ring's errors (a
    ValueError) for anything else, since stored data that fails to open is a fault."""
    key_id, sep, blob = sealed.partition(b"\n")
    if not sep:
        raise ValueError("sealed data has no key id")
    return ring.decrypt(key_id.decode(), blob, aad)
