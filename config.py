"""All settings of Orderly, read from the environment (prefix ``ORDERLY_``) or a ``.env`` file.

Nothing is built at import time: call :func:`get_settings` where a settings object is needed.
"""

from __future__ import annotations

import base64
import binascii
import tomllib
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.approval import ApprovalPolicy
from security.keyring import KeyConfigError, KeyRing, create_dev_key_file, read_key_file

ROOT = Path(__file__).resolve().parent


SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 16


def _webhook_secret(value: SecretStr) -> SecretStr:
    """A Standard Webhooks secret: ``whsec_`` + base64 of at least 16 random bytes."""
    raw = value.get_secret_value().removeprefix(SECRET_PREFIX)
    try:
        decoded = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if len(decoded) < MIN_SECRET_BYTES:
        raise ValueError(f"a webhook secret needs at least {MIN_SECRET_BYTES} random bytes")
    return value


class InboundSender(BaseModel):
    """One sender of signed inbound webhooks (api/routes/inbound.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["carrier", "payment"] = Field(
        description="carrier: POST /inbound/carriers/{sender}; payment: /inbound/payments/{sender}"
    )
    secrets: list[Annotated[SecretStr, AfterValidator(_webhook_secret)]] = Field(
        min_length=1,
        max_length=5,
        description="whsec_... secrets; several during a rotation (any one may sign).",
    )


SenderName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class Settings(BaseSettings):
    """Every knob of the API, the worker and the simulators."""

    @property
    def intake_queue(self) -> str:
        return self.intake_task_queue or f"{self.task_queue}-intake"

    # Errors name the setting and the reason, never the value (several hold secrets).
    model_config = SettingsConfigDict(
        env_prefix="ORDERLY_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    # Addresses
    temporal_target: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "orders"
    intake_task_queue: str | None = Field(
        default=None,
        description="Task queue of spreadsheet imports (ImportWorkflow and its activities); "
        "default <task_queue>-intake. Apart from the orders' so that a big import's starts "
        "neither wait behind the orders it creates nor starve them.",
    )
    import_batch_size: int = Field(
        default=200, ge=1, le=1000, description="Orders an import starts per activity."
    )
    worker_queues: list[Literal["orders", "intake"]] = Field(
        default=["orders", "intake"],
        description='What a worker process serves, e.g. ["intake"] for a dedicated import '
        'worker (its own process: its own CPU) next to order workers with ["orders"].',
    )
    database_url: str = f"sqlite+aiosqlite:///{ROOT / 'var' / 'orderly.db'}"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    environment: Literal["development", "production"] = Field(
        default="development",
        description="production refuses to start without configured encryption keys.",
    )

    # Encryption (security.keyring): Temporal payloads and customer data keys
    encryption_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='JSON {"<key id>": "<base64 of 32 bytes>"}; older keys stay for decryption.',
    )
    encryption_key_id: str | None = Field(
        default=None, description="The key id new data is encrypted with (the only key if one)."
    )
    encryption_keys_file: Path | None = Field(
        default=None,
        description='JSON file {"current": id, "keys": {...}} (a mounted secret); development '
        "default var/encryption-keys.json, generated on first run.",
    )

    # Codec server (api/routes/codec.py): staff see decoded payloads in the Temporal UI
    temporal_ui_origin: str = Field(
        default="http://127.0.0.1:8233",
        pattern=r"^https?://[^/\s]+$",
        description="The Temporal UI's origin as browsers see it (scheme://host[:port]): the one "
        "origin CORS lets call /codec, with credentials.",
    )
    codec_session_ttl: timedelta = Field(
        default=timedelta(hours=8),
        gt=timedelta(0),
        le=timedelta(days=7),
        description="How long a /codec/sign-in session lasts (never past its key's expiry).",
    )
    session_cookie_secure: bool | None = Field(
        default=None,
        description="The sign-in cookie's Secure flag; unset: when the sign-in came over https "
        "(set true behind a TLS-terminating proxy).",
    )
    # Web console (console/): people sign in with a password; sessions are sealed cookies
    console_session_ttl: timedelta = Field(
        default=timedelta(hours=8),
        gt=timedelta(0),
        le=timedelta(days=7),
        description="How long a console sign-in lasts (absolute; sign in again after it).",
    )
    console_idle_timeout: timedelta = Field(
        default=timedelta(minutes=30),
        gt=timedelta(0),
        description="A console session unused this long ends (each page view renews it).",
    )
    sign_in_max_failures: int = Field(
        default=5,
        ge=1,
        description="Failed console sign-ins per user name (and per client address, x4) within "
        "sign_in_lockout before further tries are refused with 429.",
    )
    sign_in_lockout: timedelta = Field(
        default=timedelta(minutes=15), gt=timedelta(0), description="The sign-in failure window."
    )
    invite_ttl: timedelta = Field(
        default=timedelta(days=3), gt=timedelta(0), description="How long an invite link works."
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        pattern=r"^https?://[^\s]+[^/\s]$",
        description="Where customers and staff reach the API/console (links in emails).",
    )
    tracking_link_ttl: timedelta = Field(
        default=timedelta(days=60),
        gt=timedelta(0),
        description="How long a customer's tracking link in an email keeps working.",
    )
    tracking_show_prices: bool = Field(
        default=False, description="Show the order total on the public tracking page."
    )
    # Temporal trust boundary (workflows/client.py): workflows trust the actor in each update,
    # so whoever reaches the frontend can act as anyone. Keep it private; use mTLS or an API key.
    temporal_tls: bool | None = Field(
        default=None,
        description="TLS to the frontend; unset: on when any temporal_tls_* setting or "
        "temporal_api_key is set (system roots unless temporal_tls_server_ca).",
    )
    temporal_tls_client_cert: Path | None = Field(
        default=None, description="PEM client certificate for mTLS (with its key)."
    )
    temporal_tls_client_key: Path | None = Field(
        default=None, description="PEM private key of temporal_tls_client_cert."
    )
    temporal_tls_server_ca: Path | None = Field(
        default=None, description="PEM CA that signed the frontend's certificate."
    )
    temporal_tls_server_name: str | None = Field(
        default=None, description="Name the frontend's certificate is checked against (SNI)."
    )
    temporal_api_key: SecretStr | None = Field(
        default=None, description="Temporal Cloud API key (sent as a bearer token, over TLS)."
    )

    # Business policy (passed into each workflow at start, so a change never alters running orders)
    payment_deadline: timedelta = Field(
        default=timedelta(days=3), description="Prepay orders not paid by then are cancelled."
    )
    payment_reminder_after: timedelta = Field(
        default=timedelta(days=1), description="When the customer is reminded to pay."
    )
    delivery_sla: timedelta = Field(
        default=timedelta(days=7), description="After this without delivery, support is notified."
    )
    credit_default_limit: Decimal = Field(
        default=Decimal("50000"), ge=0, description="Credit limit of customers unknown to bureau."
    )
    credit_default_score: int = Field(default=700, ge=0, le=1000)
    credit_review_ratio: Decimal | None = Field(
        default=Decimal("0.8"),
        gt=0,
        le=1,
        description="Exposure + order above this share of the credit limit needs finance review.",
    )
    approval_policy_file: Path = Field(
        default=ROOT / "approval-policy.yaml", description="YAML or TOML approval policy."
    )

    # Activity behaviour
    activity_timeout: timedelta = Field(
        default=timedelta(seconds=30), description="Start-to-close timeout of one activity try."
    )
    activity_heartbeat: timedelta = Field(
        default=timedelta(seconds=10), description="Heartbeat timeout of slow external calls."
    )
    max_cached_workflows: int = Field(default=2000, ge=0)
    strict_sandbox: bool = Field(
        default=False,
        description="Re-import workflow code for every order so the sandbox checks every call "
        "it makes (slower, more memory per cached order); the test suite runs with it.",
    )
    command_wait: timedelta = Field(
        default=timedelta(seconds=20),
        description="How long the API waits for a command to finish before answering 202.",
    )

    # API keys (services.auth, services.keys)
    key_cache_ttl: timedelta = Field(
        default=timedelta(seconds=5),
        ge=timedelta(0),
        le=timedelta(minutes=5),
        description="How long a process trusts a key it has checked: a revocation or expiry "
        "made elsewhere takes effect within this (in the same process at once).",
    )
    key_rotation_overlap: timedelta = Field(
        default=timedelta(hours=24),
        ge=timedelta(0),
        description="After a rotation the old key keeps working this long, then expires.",
    )

    # Inbound webhooks (services.inbound): carriers and payment providers sign with Standard
    # Webhooks; each sender has its own secrets.
    inbound_webhooks: dict[SenderName, InboundSender] = Field(
        default_factory=dict,
        description='JSON {"<sender>": {"kind": "carrier"|"payment", "secrets": ["whsec_..."]}}; '
        "list the new secret next to the old one while the sender rotates.",
    )

    # Customer classification (domain.customers.propose_tier, workflows/classify.py): RFM over
    # the last 12 months; VIP needs all three of recency, frequency and spend.
    rfm_vip_min_orders: int = Field(
        default=12, ge=1, description="VIP: at least this many orders in the last 12 months."
    )
    rfm_vip_min_spend: dict[str, Decimal] = Field(
        default_factory=lambda: {
            "EUR": Decimal(50000),
            "USD": Decimal(55000),
            "GBP": Decimal(43000),
            "*": Decimal(50000),
        },
        description='VIP: spend in one currency at least this (JSON {"EUR": 50000, "*": ...}).',
    )
    rfm_vip_max_recency_days: int = Field(
        default=90, ge=0, le=365, description="VIP: last order at most this many days ago."
    )
    rfm_auto_promote: bool = Field(
        default=False,
        description="Apply a proposed promotion to VIP at once; false: leave it as a suggestion "
        "for support. Demotions are always suggestions.",
    )
    classification_schedule: str = Field(
        default="0 2 * * *",
        pattern=r"^(@\w+|\S+( \S+){4})$",
        description="Cron expression (UTC) of the classification run (a Temporal schedule).",
    )

    # Reports (services.reports) and analytics (workflows/analytics.py)
    report_rates: dict[str, Decimal] = Field(
        default_factory=dict,
        description='Exchange rates for reports that convert money: JSON {"USD": 0.92, ...}, '
        "units of report_rate_base per unit of each currency. Empty: reports never convert, "
        "every figure stays per currency.",
    )
    report_rate_base: str = Field(
        default="EUR", pattern=r"^[A-Z]{3}$", description="The currency report_rates are in."
    )
    report_rates_as_of: str = Field(
        default="", max_length=40, description="Stated on converted reports, e.g. 2026-12-01."
    )
    report_export_rows: int = Field(
        default=1_000_000, ge=1000, description="Most rows a background export writes."
    )
    report_stuck_after: timedelta = Field(
        default=timedelta(hours=48),
        description="The operations report counts open orders unchanged this long as stuck.",
    )
    report_sync_rows: int = Field(
        default=20_000,
        ge=100,
        description="Bigger reports are exported in the background (POST /reports/exports).",
    )
    rules_min_support: float = Field(
        default=0.005, gt=0, le=1, description="Association rules: share of orders holding the set."
    )
    rules_min_confidence: float = Field(
        default=0.3, gt=0, le=1, description="Association rules: P(consequent | antecedent)."
    )
    rules_min_lift: float = Field(
        default=1.5, gt=0, description="Association rules: confidence over the consequent's share."
    )
    rules_history_days: int = Field(
        default=365, ge=7, le=1830, description="Orders of the last N days feed the rules."
    )
    forecast_horizon_weeks: int = Field(default=12, ge=1, le=52)
    forecast_backtest_weeks: int = Field(default=8, ge=1, le=26)
    analytics_schedule: str = Field(
        default="30 3 * * *",
        pattern=r"^(@\w+|\S+( \S+){4})$",
        description="Cron (UTC) of the analytics run: association rules and demand forecasts.",
    )

    # Outbound webhooks (services/webhooks.py, workflows/webhooks.py)
    webhook_retry_schedule: tuple[timedelta, ...] = Field(
        default=(
            timedelta(seconds=5),
            timedelta(minutes=5),
            timedelta(minutes=30),
            timedelta(hours=2),
            timedelta(hours=5),
            timedelta(hours=10),
            timedelta(hours=24),
        ),
        min_length=1,
        max_length=20,
        description="Waits before each retry of a failed delivery (JSON list of durations, "
        "each jittered by up to 10 %); after the last one the delivery goes to the dead letter.",
    )
    webhook_timeout: timedelta = Field(
        default=timedelta(seconds=10),
        gt=timedelta(0),
        le=timedelta(seconds=60),
        description="How long a receiver may take to answer one delivery.",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow webhook URLs on private, loopback and link-local addresses "
        "(development and tests); off: refused when set and again at every delivery.",
    )
    webhook_disable_after: timedelta = Field(
        default=timedelta(days=5),
        gt=timedelta(0),
        description="An endpoint failing every delivery this long is disabled.",
    )
    webhook_poll: timedelta = Field(
        default=timedelta(milliseconds=500),
        gt=timedelta(0),
        le=timedelta(seconds=30),
        description="How often a live endpoint's delivery activity looks for new events.",
    )
    webhook_secret_overlap: timedelta = Field(
        default=timedelta(hours=24),
        ge=timedelta(0),
        le=timedelta(days=30),
        description="How long the old secret still signs after a rotation (by default).",
    )

    # Email (activities/mail.py, workflows/mail.py): composed from the event log, then sent
    mail_transport: Literal["smtp", "file", "outbox"] = Field(
        default="file",
        description="smtp: send through smtp_host; file: write .eml files to mail_dir "
        "(make run); outbox: record only, send nothing (tests).",
    )
    mail_dir: Path = Field(
        default=Path("var/mail"), description="Where mail_transport=file writes."
    )
    mail_from: str = Field(
        default="Orderly <orders@orderly.local>", min_length=3, description="The From header."
    )
    mail_support_to: str = Field(
        default="support@orderly.local",
        pattern=r"^[^@\s,]+@[^@\s,]+$",
        description="Where support's messages go (delivery overdue, compensation refused).",
    )
    smtp_host: str = Field(
        default="localhost", description="The SMTP server (mail_transport=smtp)."
    )
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_tls: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="starttls (587), tls (implicit, 465) or none (local relay)."
    )
    smtp_username: str | None = Field(default=None, description="SMTP AUTH user, if any.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP AUTH password.")
    smtp_ca_file: Path | None = Field(
        default=None, description="PEM CA for the server's certificate (else the system's)."
    )
    smtp_timeout: timedelta = Field(
        default=timedelta(seconds=30), gt=timedelta(0), le=timedelta(minutes=5)
    )
    mail_retry_schedule: tuple[timedelta, ...] = Field(
        default=(
            timedelta(minutes=1),
            timedelta(minutes=5),
            timedelta(minutes=30),
            timedelta(hours=2),
            timedelta(hours=6),
            timedelta(hours=24),
        ),
        min_length=1,
        max_length=20,
        description="Waits before each retry of a transient SMTP failure (4xx, no connection; "
        "jittered by up to 10 %); after the last one the message is recorded failed.",
    )
    mail_poll: timedelta = Field(
        default=timedelta(seconds=1),
        gt=timedelta(0),
        le=timedelta(seconds=60),
        description="How often the mail activity looks for new events and due messages.",
    )

    # Simulator failure injection (tests and demos)
    sim_payment_delay: float = Field(
        default=0.0, ge=0, description="Seconds each gateway call takes."
    )
    sim_payment_transient_failures: int = Field(
        default=0,
        ge=0,
        description="Gateway calls per idempotency key that fail transiently first.",
    )
    sim_carrier_delay: float = Field(
        default=0.0, ge=0, description="Seconds each carrier call takes."
    )


def get_settings() -> Settings:
    return Settings()


DEV_KEY_FILE = ROOT / "var" / "encryption-keys.json"


def load_keyring(settings: Settings) -> KeyRing:
    """The key ring from settings; in development a generated key file under ``var/``.

    Raises :class:`KeyConfigError` with what to set when production has no keys.
    """
    if settings.encryption_keys:
        keys = {kid: v.get_secret_value() for kid, v in settings.encryption_keys.items()}
        current = settings.encryption_key_id or (next(iter(keys)) if len(keys) == 1 else "")
        if not current:
            raise KeyConfigError(
                "ORDERLY_ENCRYPTION_KEY_ID must name the current key when several keys are set"
            )
        return KeyRing(current, keys)
    path = settings.encryption_keys_file
    if path is None:
        if settings.environment == "production":
            raise KeyConfigError(
                "no encryption keys: production needs ORDERLY_ENCRYPTION_KEYS (with "
                "ORDERLY_ENCRYPTION_KEY_ID) or ORDERLY_ENCRYPTION_KEYS_FILE; generate a key with "
                "`python -m security.keyring`"
            )
        path = DEV_KEY_FILE
        create_dev_key_file(path)
    ring = read_key_file(path)
    if settings.encryption_key_id and settings.encryption_key_id != ring.current:
        raise KeyConfigError(
            f"ORDERLY_ENCRYPTION_KEY_ID={settings.encryption_key_id} but {path} says "
            f"current is {ring.current}"
        )
    return ring


class PolicyFileError(ValueError):
    """The approval policy file is missing, unreadable or invalid; the message names the key."""


def load_policy(path: Path) -> ApprovalPolicy:
    """Read and validate a YAML or TOML approval policy; errors name the file and the key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyFileError(f"approval policy {path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise PolicyFileError(f"approval policy {path}: not UTF-8 text: {exc}") from exc
    try:
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise PolicyFileError(
            f"approval policy {path}: not valid {path.suffix[1:]}: {exc}"
        ) from exc
    try:
        return ApprovalPolicy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise PolicyFileError(f"approval policy {path}: {problems}") from exc
