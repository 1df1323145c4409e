"""Payload encryption for Temporal: every payload leaves the process AES-256-GCM encrypted.

A payload becomes ``metadata = {encoding: binary/encrypted, encryption-key-id: <id>}`` and
``data = nonce(12) + ciphertext + tag`` of the original serialised ``Payload``. Failures are
converted with encoded attributes, so messages and stack traces are encrypted too.
:func:`data_converter` is the only converter any client, worker or replayer may use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from security.keyring import KeyRing

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"


class UndecodablePayload(ValueError):
    """An encrypted payload that cannot be decrypted here (unknown key id, damaged data)."""


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over whole payloads, keyed by the ring's current key."""

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encode_one(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decode_one(p) for p in payloads]

    def encode_one(self, payload: Payload) -> Payload:
        key_id, blob = self.keyring.encrypt(payload.SerializeToString())
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id.encode()}, data=blob)

    def decode_one(self, payload: Payload) -> Payload:
        """Decrypt an encrypted payload; others (e.g. Temporal's own) pass through unchanged."""
        if payload.metadata.get("encoding", b"") != ENCODING:
            return payload
        raw_id = payload.metadata.get(KEY_ID)
        if raw_id is None:
            raise UndecodablePayload("encrypted payload without an encryption-key-id")
        key_id = raw_id.decode(errors="replace")
        try:
            plain = self.keyring.decrypt(key_id, payload.data)
        except ValueError as exc:
            raise UndecodablePayload(str(exc)) from exc
        out = Payload()
        out.ParseFromString(plain)
        return out


def data_converter(keyring: KeyRing) -> DataConverter:
    """Pydantic payloads, encrypted; failures with encoded (encrypted) message and stack."""
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(keyring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
