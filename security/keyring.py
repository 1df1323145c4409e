"""The key ring: AES-256-GCM keys by id, one current for encrypting, all for decrypting.

Payloads in Temporal (``security.codec``) and wrapped customer data keys (``db.vault``) are
encrypted under the current key; any key still in the ring decrypts, so keys rotate without
breaking running or closed orders. Keys come from settings (``ORDERLY_ENCRYPTION_KEYS``) or a
JSON key file ``{"current": "<id>", "keys": {"<id>": "<base64 of 32 bytes>"}}``; in development
a key file is generated under ``var/`` on first use.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
KEY_BYTES = 32
_KEY_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class KeyConfigError(ValueError):
    """The configured keys are missing or invalid; the message says what to set."""


class UnknownKeyError(ValueError):
    """Data was encrypted under a key id this ring does not hold."""

    def __init__(self, key_id: str, known: list[str]) -> None:
        super().__init__(
            f"encrypted with key id {key_id!r}, which is not in the key ring "
            f"(known: {', '.join(known)}); add the old key to ORDERLY_ENCRYPTION_KEYS to read it"
        )
        self.key_id = key_id


class DecryptError(ValueError):
    """Ciphertext failed authentication: corrupted, truncated or under another key."""


def new_key() -> str:
    """A fresh random key, base64-encoded as the key file and settings hold it."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def _check_id(key_id: str) -> str:
    if not key_id or len(key_id) > 64 or not set(key_id) <= _KEY_ID_CHARS:
        raise KeyConfigError(
            f"encryption key id {key_id!r}: use 1-64 characters of letters, digits, - _ ."
        )
    return key_id


def _decode_key(key_id: str, value: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyConfigError(f"encryption key {key_id!r} is not valid base64") from exc
    if len(raw) != KEY_BYTES:
        raise KeyConfigError(
            f"encryption key {key_id!r} has {len(raw)} bytes; AES-256 needs {KEY_BYTES}"
        )
    return raw


class KeyRing:
    """AES-256-GCM under a current key; every ring key decrypts. Thread-safe, immutable."""

    def __init__(self, current: str, keys: Mapping[str, str]) -> None:
        if not keys:
            raise KeyConfigError("the key ring is empty")
        self._aead = {_check_id(kid): AESGCM(_decode_key(kid, v)) for kid, v in keys.items()}
        if current not in self._aead:
            raise KeyConfigError(
                f"current encryption key id {current!r} is not among the keys "
                f"({', '.join(sorted(self._aead))})"
            )
        self.current = current

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._aead)

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> tuple[str, bytes]:
        """(key id, nonce + ciphertext + tag) under the current key."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return self.current, nonce + self._aead[self.current].encrypt(nonce, plaintext, aad)

    def decrypt(self, key_id: str, blob: bytes, aad: bytes = b"") -> bytes:
        aead = self._aead.get(key_id)
        if aead is None:
            raise UnknownKeyError(key_id, self.key_ids)
        if len(blob) < NONCE_BYTES + 16:
            raise DecryptError(f"ciphertext under key {key_id!r} is truncated")
        try:
            return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise DecryptError(
                f"ciphertext under key {key_id!r} failed authentication (corrupted or altered)"
            ) from exc


def read_key_file(path: Path) -> KeyRing:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeyConfigError(f"encryption key file {path}: cannot read: {exc.strerror}") from exc
    except ValueError as exc:
        raise KeyConfigError(f"encryption key file {path}: not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("keys"), dict):
        raise KeyConfigError(
            f'encryption key file {path}: expected {{"current": "<id>", "keys": {{"<id>": '
            f'"<base64>"}}}}'
        )
    keys: dict[str, str] = {str(k): str(v) for k, v in data["keys"].items()}
    current = str(data.get("current") or (next(iter(keys)) if len(keys) == 1 else ""))
    try:
        return KeyRing(current, keys)
    except KeyConfigError as exc:
        raise KeyConfigError(f"encryption key file {path}: {exc}") from None


def create_dev_key_file(path: Path) -> None:
    """Write a new one-key file (mode 0600) unless one exists; safe when processes race."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kid = "dev-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    body = json.dumps({"current": kid, "keys": {kid: new_key()}}, indent=2).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as f:
        f.write(body)


if __name__ == "__main__":  # `python -m security.keyring`: print a new key for settings
    print(new_key())  # noqa: T201
