"""An endpoint's signing secrets, sealed at rest under the key ring: newest first, each with
the time it stops signing (None: the current one). After a rotation both sign until the old
one's time is up, so a receiver can switch secrets without missing a delivery."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from db.models import WebhookEndpointRow
from security.keyring import KeyRing
from security.sealing import seal_bytes, unseal_bytes


def _aad(endpoint_id: str) -> bytes:
    return f"webhook-secrets:{endpoint_id}".encode()


def seal_secrets(ring: KeyRing, endpoint_id: str, items: list[dict[str, Any]]) -> bytes:
    return seal_bytes(ring, _aad(endpoint_id), json.dumps(items).encode())


def open_secrets(ring: KeyRing, endpoint: WebhookEndpointRow) -> list[dict[str, Any]]:
    """[{"secret": "whsec_...", "until": ISO time or None}], newest first."""
    items: list[dict[str, Any]] = json.loads(
        unseal_bytes(ring, _aad(endpoint.id), endpoint.secrets)
    )
    return items


def active_secrets(ring: KeyRing, endpoint: WebhookEndpointRow, now: datetime) -> list[str]:
    """The secrets that sign a delivery made at ``now``."""
    return [
        item["secret"]
        for item in open_secrets(ring, endpoint)
        if item["until"] is None or datetime.fromisoformat(item["until"]) > now
    ]
