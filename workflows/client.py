"""Temporal client construction and the policy snapshot every new order starts with."""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

from temporalio.client import Client
from temporalio.service import TLSConfig

from config import Settings, load_keyring
from domain.approval import ApprovalPolicy
from domain.policies import CreditRules
from security.codec import data_converter
from security.keyring import KeyRing
from workflows.contracts import OrderPolicy


class TemporalConfigError(ValueError):
    """The Temporal connection settings are inconsistent or name unreadable files."""


class ConnectOptions(TypedDict):
    """What :func:`connect` passes to ``Client.connect`` besides the target and converter."""

    namespace: str
    tls: bool | TLSConfig
    api_key: str | None


def _pem(setting: str, path: Path) -> bytes:
    name = f"ORDERLY_{setting.upper()}"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TemporalConfigError(f"{name}={path}: cannot read: {exc.strerror}") from exc
    if b"-----BEGIN " not in data:
        raise TemporalConfigError(f"{name}={path}: not a PEM file (no -----BEGIN line)")
    return data


def connect_options(settings: Settings) -> ConnectOptions:
    """The trust-boundary settings as ``Client.connect`` arguments: mTLS client certificate,
    server CA and name, Temporal Cloud API key. Raises :class:`TemporalConfigError` naming the
    setting when they do not fit together (a certificate without its key, TLS turned off while
    TLS files or an API key are set)."""
    cert, key = settings.temporal_tls_client_cert, settings.temporal_tls_client_key
    if (cert is None) != (key is None):
        have, lacks = ("CERT", "KEY") if key is None else ("KEY", "CERT")
        raise TemporalConfigError(
            f"ORDERLY_TEMPORAL_TLS_CLIENT_{have} is set without "
            f"ORDERLY_TEMPORAL_TLS_CLIENT_{lacks}: mTLS needs both"
        )
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else ""
    files = {
        "temporal_tls_client_cert": cert,
        "temporal_tls_client_key": key,
        "temporal_tls_server_ca": settings.temporal_tls_server_ca,
    }
    named = {**files, "temporal_tls_server_name": settings.temporal_tls_server_name}
    tls_set = sorted(f"ORDERLY_{name.upper()}" for name, value in named.items() if value)
    if settings.temporal_tls is False and (tls_set or api_key):
        why = ", ".join(tls_set) if tls_set else "ORDERLY_TEMPORAL_API_KEY (it would go in clear)"
        raise TemporalConfigError(f"ORDERLY_TEMPORAL_TLS=false, but {why} is set")
    options = ConnectOptions(
        namespace=settings.temporal_namespace, tls=False, api_key=api_key or None
    )
    if tls_set:
        pem = {name: _pem(name, path) for name, path in files.items() if path is not None}
        options["tls"] = TLSConfig(
            server_root_ca_cert=pem.get("temporal_tls_server_ca"),
            domain=settings.temporal_tls_server_name or None,
            client_cert=pem.get("temporal_tls_client_cert"),
            client_private_key=pem.get("temporal_tls_client_key"),
        )
    elif settings.temporal_tls or api_key:
        options["tls"] = True  # the system's root certificates
    return options


async def connect(settings: Settings, keyring: KeyRing | None = None) -> Client:
    """The only way to a Temporal client: payloads and failures always encrypted; TLS, mTLS
    and an API key as the settings say (:func:`connect_options`)."""
    return await Client.connect(
        settings.temporal_target,
        data_converter=data_converter(keyring or load_keyring(settings)),
        **connect_options(settings),
    )


def order_policy(settings: Settings, approval: ApprovalPolicy) -> OrderPolicy:
    """What a new order is started with: settings and approval policy as they are now."""
    return OrderPolicy(
        approval=approval,
        credit_rules=CreditRules(review_above_ratio=settings.credit_review_ratio),
        payment_deadline=settings.payment_deadline,
        payment_reminder_after=settings.payment_reminder_after,
        delivery_sla=settings.delivery_sla,
        activity_timeout=settings.activity_timeout,
        activity_heartbeat=settings.activity_heartbeat,
    )
