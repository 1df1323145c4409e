"""SQLAlchemy 2 typed models: the order read model, API keys, and the simulators' ledgers."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Numeric(18, 4)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite keeps no zone: we add UTC back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, list[int]: JSON, list[Any]: JSON}  # noqa: RUF012


# --- read model -------------------------------------------------------------------------------


class OrderRow(Base):
    """One row per order, upserted by the projection activity on every status change."""

    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(32))
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    customer_id: Mapped[str] = mapped_column(String(64))
    customer_tier: Mapped[str] = mapped_column(String(16))
    region: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[Decimal] = mapped_column(Money)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    seq: Mapped[int] = mapped_column(Integer, doc="Last event seq applied; guards stale writes.")
    snapshot: Mapped[dict[str, Any]] = mapped_column(doc="The order's state (domain.state).")
    external_reference: Mapped[str | None] = mapped_column(
        String(64), nullable=True, doc="The client's own reference (search by it)."
    )
    source: Mapped[str] = mapped_column(
        String(16), default="api", server_default="api", doc="domain.order.OrderSource"
    )
    # Report dimensions (services.reports), kept by the projection.
    sales_rep: Mapped[str | None] = mapped_column(String(128), nullable=True)
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    refunded: Mapped[Decimal] = mapped_column(Money, default=0, server_default="0")
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    shipped_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    close_reason: Mapped[str | None] = mapped_column(
        String(32), nullable=True, doc="domain.reporting.close_reason_code of the closure."
    )

    __table_args__ = (
        Index("ix_orders_created", "created_at", "id"),
        Index("ix_orders_status_created", "status", "created_at"),
        Index("ix_orders_customer_created", "customer_id", "created_at"),
        Index("ix_orders_external_reference_source", "external_reference", "source"),
    )


class OrderEventRow(Base):
    """The event log (transactional outbox): every event of every order, written by the
    projection in the same transaction as the read model. ``id`` is the global cursor."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    order_id: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(Integer, doc="Per-order sequence, from 1.")
    type: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(32), doc="The order's status after the event.")
    payload: Mapped[dict[str, Any]] = mapped_column(doc="The whole event as JSON.")
    source: Mapped[str] = mapped_column(
        String(16), default="api", server_default="api", doc="The order's source (feed filter)."
    )

    __table_args__ = (
        UniqueConstraint("order_id", "seq"),
        Index("ix_order_events_type_id", "type", "id"),
        Index("ix_order_events_source_id", "source", "id"),
        {"sqlite_autoincrement": True},  # never reuse an id: a replaced event gets a new one
    )


class IdempotencyKeyRow(Base):
    """Client ``Idempotency-Key`` of an order creation, scoped to the calling principal."""

    __tablename__ = "idempotency_keys"

    principal: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ApprovalInboxRow(Base):
    """Orders waiting for approval, one row per level whose holders may decide them now."""

    __tablename__ = "approval_inbox"

    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    eligible_level: Mapped[int] = mapped_column(Integer, primary_key=True)
    level: Mapped[int] = mapped_column(Integer, doc="The level waiting for a decision.")
    level_name: Mapped[str] = mapped_column(String(64))
    waiting_since: Mapped[datetime] = mapped_column(UtcDateTime())
    next_deadline: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    next_deadline_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    customer_name: Mapped[str] = mapped_column(Text, doc="Sealed (db.vault).")
    customer_tier: Mapped[str] = mapped_column(String(16))
    total: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))

    __table_args__ = (Index("ix_approval_inbox_queue", "eligible_level", "waiting_since"),)


class ApprovalConflictRow(Base):
    """People who may not approve an order: its creator, its sales rep, who approved a level."""

    __tablename__ = "approval_conflicts"

    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    actor: Mapped[str] = mapped_column(String(128), primary_key=True)


class CustomerKeyRow(Base):
    """A customer's data key (db.vault), wrapped by the key ring; deleted on PII erasure."""

    __tablename__ = "customer_keys"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dek_id: Mapped[str] = mapped_column(String(16), doc="Names this key in sealed values.")
    kek_id: Mapped[str] = mapped_column(String(64), doc="Key ring key that wraps it.")
    wrapped: Mapped[str] = mapped_column(Text, doc="base64 of nonce + wrapped key + tag")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


# --- customer master data (services.customers) ----------------------------------------------


class CustomerRow(Base):
    """A customer's master record: orders take tier, region and credit limit from it. Name,
    email and phone are stored only sealed under the customer's data key (db.vault)."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text, doc="Sealed (db.vault); a placeholder once erased.")
    email: Mapped[str] = mapped_column(Text, doc="Sealed (db.vault); a placeholder once erased.")
    phone: Mapped[str | None] = mapped_column(Text, nullable=True, doc="Sealed (db.vault).")
    region: Mapped[str] = mapped_column(String(64))
    tier: Mapped[str] = mapped_column(String(16), doc="domain.order.CustomerTier")
    credit_limit: Mapped[Decimal | None] = mapped_column(
        Money, nullable=True, doc="Overrides the bureau's limit; None: the bureau's."
    )
    tags: Mapped[list[str]] = mapped_column(default=list)
    language: Mapped[str] = mapped_column(
        String(8), default="en", server_default="en", doc="domain.mail.Language of emails."
    )
    suggested_tier: Mapped[str | None] = mapped_column(
        String(16), nullable=True, doc="The classifier's proposal, until applied or withdrawn."
    )
    erased_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_customers_region_id", "region", "id"),
        Index("ix_customers_tier_id", "tier", "id"),
    )


class CustomerChangeRow(Base):
    """Every change of a customer's master record, with who made it; ``detail`` holds no PII."""

    __tablename__ = "customer_changes"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    customer_id: Mapped[str] = mapped_column(String(64), ForeignKey("customers.id"))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(128))
    change: Mapped[str] = mapped_column(
        String(32), doc="created | updated | tier_changed | tier_suggested | pii_erased"
    )
    detail: Mapped[dict[str, Any]] = mapped_column(doc='e.g. {"from": "standard", "to": "vip"}')

    __table_args__ = (
        Index("ix_customer_changes_customer_id_id", "customer_id", "id"),
        {"sqlite_autoincrement": True},  # ids order the changes: never reuse one
    )


# --- authentication ---------------------------------------------------------------------------


class ApiKeyRow(Base):
    """An API key: only its hash and a short prefix (for people to recognise it) are kept."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, doc="sha256 hex of the key")
    prefix: Mapped[str] = mapped_column(
        String(12), default="", server_default="", doc="First 12 characters, e.g. ok_AbCdEf123"
    )
    principal: Mapped[str] = mapped_column(String(128))
    roles: Mapped[list[str]] = mapped_column()
    approval_levels: Mapped[list[int]] = mapped_column(default=list, server_default="[]")
    scopes: Mapped[list[str]] = mapped_column(
        default=list, server_default="[]", doc="Empty: everything the roles allow."
    )
    description: Mapped[str] = mapped_column(String(200), default="", server_default="")
    email: Mapped[str | None] = mapped_column(
        String(254), nullable=True, doc="The principal's address (approval reminders)."
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True, doc="False once revoked.")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime(), nullable=True, doc="Written at most once a minute per key and process."
    )
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    rotated_to: Mapped[int | None] = mapped_column(
        Integer, nullable=True, doc="The key that replaced this one (rotated once only)."
    )


class AuditRow(Base):
    """The audit trail: one row per command (any method but GET/HEAD/OPTIONS), accepted,
    refused or failed. Append-only: the database refuses UPDATE and DELETE (triggers below)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    principal: Mapped[str | None] = mapped_column(String(128), doc="None: not authenticated.")
    roles: Mapped[str] = mapped_column(String(200), doc="Comma-separated, sorted.")
    key_id: Mapped[str | None] = mapped_column(String(64))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(512))
    action: Mapped[str | None] = mapped_column(String(64), doc="Route name; None: no route.")
    order_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), doc="accepted | refused | failed")
    status_code: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text, doc="The error message of a refusal.")
    request_id: Mapped[str | None] = mapped_column(String(128), doc="X-Request-ID header.")
    idempotency_key: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        Index("ix_audit_log_principal_id", "principal", "id"),
        Index("ix_audit_log_order_id_id", "order_id", "id"),
        Index("ix_audit_log_action_id", "action", "id"),
        Index("ix_audit_log_outcome_id", "outcome", "id"),
        Index("ix_audit_log_at", "at"),
        {"sqlite_autoincrement": True},  # ids are the cursor: never reuse one
    )


AUDIT_APPEND_ONLY_MESSAGE = "audit_log is append-only"
AUDIT_APPEND_ONLY_DDL: dict[str, tuple[str, ...]] = {
    "sqlite": tuple(
        f"CREATE TRIGGER audit_log_no_{op.lower()} BEFORE {op} ON audit_log "
        f"BEGIN SELECT RAISE(ABORT, '{AUDIT_APPEND_ONLY_MESSAGE}'); END"
        for op in ("UPDATE", "DELETE")
    ),
    "postgresql": (
        "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql "
        f"AS $$ BEGIN RAISE EXCEPTION '{AUDIT_APPEND_ONLY_MESSAGE}'; END $$",
        "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
    ),
}
"""Statements that make ``audit_log`` append-only, per dialect (create_all and migration 0005)."""

for _dialect, _statements in AUDIT_APPEND_ONLY_DDL.items():
    for _statement in _statements:
        event.listen(
            AuditRow.__table__,
            "after_create",
            DDL(_statement).execute_if(dialect=_dialect),  # type: ignore[no-untyped-call]
        )
event.listen(
    AuditRow.__table__,
    "after_drop",
    DDL("DROP FUNCTION IF EXISTS audit_log_append_only()").execute_if(  # type: ignore[no-untyped-call]
        dialect="postgresql"
    ),
)


# --- simulators of external parties (each keeps its own ledger) ------------------------------


class CreditProfileRow(Base):
    __tablename__ = "sim_credit_profiles"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    score: Mapped[int] = mapped_column(Integer)
    credit_limit: Mapped[Decimal] = mapped_column(Money)


class StockItemRow(Base):
    __tablename__ = "sim_stock_items"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    on_hand: Mapped[int] = mapped_column(BigInteger)
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    reorder_point: Mapped[int | None] = mapped_column(
        BigInteger, nullable=True, doc="Available below this: time to reorder (None: not kept)."
    )


class ReservationRow(Base):
    __tablename__ = "sim_stock_reservations"

    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True, default=0)
    sku: Mapped[str] = mapped_column(
        String(64), ForeignKey("sim_stock_items.sku"), primary_key=True
    )
    quantity: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), doc="reserved | released | shipped")


class PaymentLedgerRow(Base):
    __tablename__ = "sim_payment_ledger"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    order_id: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(16), doc="capture | refund")
    status: Mapped[str] = mapped_column(String(16), doc="succeeded | declined")
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reference: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ShipmentRow(Base):
    """One booking per order and parcel."""

    __tablename__ = "sim_shipments"

    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    parcel: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    units: Mapped[int] = mapped_column(Integer, default=0)
    carrier: Mapped[str] = mapped_column(String(32))
    tracking_number: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), doc="booked | cancelled")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class OutboxRow(Base):
    """Every email, one per idempotency key (``<order>:<event seq>:<kind>``, or the sender's own
    key): composed from the event log by activities/mail.py, then sent by the mail transport.
    Recipients and bodies are sealed under the order's customer's data key (db.vault), so
    erasing the customer shreds them too; subjects name only the order."""

    __tablename__ = "mail_outbox"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    order_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(80), doc="Whose data key seals it.")
    recipient: Mapped[str] = mapped_column(Text, doc="Sealed (db.vault); comma-separated.")
    language: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, doc="The plain-text part. Sealed (db.vault).")
    html: Mapped[str | None] = mapped_column(Text, nullable=True, doc="Sealed (db.vault).")
    status: Mapped[str] = mapped_column(
        String(12), default="pending", server_default="sent", doc="domain.mail.MailStatus"
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(
        UtcDateTime(), nullable=True, doc="A sender holds it until then (one sender at a time)."
    )
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_mail_outbox_status_next", "status", "next_attempt_at"),)


class ConsumerCursorRow(Base):
    """How far a consumer of the event log (``order_events.id``) has read, e.g. ``mail``."""

    __tablename__ = "consumer_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    since: Mapped[datetime | None] = mapped_column(
        UtcDateTime(), nullable=True, doc="Orders created before it are not the consumer's."
    )
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class UserRow(Base):
    """A person who signs in to the console: the same roles and approval levels as an API key's
    principal. Invited by an admin (``invite_hash`` until the invite is accepted); the password
    is kept only as an argon2 hash. ``session_epoch`` grows whenever the password, roles or
    active flag change, which ends every session issued before."""

    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, doc="Lower case; the actor.")
    display_name: Mapped[str] = mapped_column(String(120))
    roles: Mapped[list[str]] = mapped_column()
    approval_levels: Mapped[list[int]] = mapped_column(default=list, server_default="[]")
    language: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    email: Mapped[str | None] = mapped_column(
        String(254), nullable=True, doc="Where approval reminders and owner notices go."
    )
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    invite_hash: Mapped[str | None] = mapped_column(
        String(64), nullable=True, unique=True, doc="sha256 hex of the open invite's token."
    )
    invite_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(128))
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class SignInFailureRow(Base):
    """One failed console sign-in: counted per user name and per client address over a window
    (``Settings.sign_in_lockout``) to refuse guessing; old rows are pruned on the next failure."""

    __tablename__ = "sign_in_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64))
    source_ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_sign_in_failures_username_at", "username", "at"),
        Index("ix_sign_in_failures_source_ip_at", "source_ip", "at"),
    )


class SignOutRow(Base):
    """A console session ended by signing out, kept until it would have expired anyway, so a
    copy of its cookie taken before stops working too (``session_id``: sha256 of its token)."""

    __tablename__ = "console_sign_outs"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    until: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


# --- price list and order templates (services.prices, services.templates) --------------------


class PriceRow(Base):
    """A list price of one SKU in one currency, valid over ``[valid_from, valid_to)`` (UTC;
    ``valid_to`` None: open-ended). Periods of the same SKU and currency never overlap."""

    __tablename__ = "price_list"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    sku: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    list_price: Mapped[Decimal] = mapped_column(Money)
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime())
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_by: Mapped[str] = mapped_column(String(128))

    __table_args__ = (
        UniqueConstraint("sku", "currency", "valid_from"),
        {"sqlite_autoincrement": True},
    )


class OrderTemplateRow(Base):
    """An order template; its content lives in versions (``current_version`` is the one in
    use). Archived, never deleted."""

    __tablename__ = "order_templates"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    customer_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    current_version: Mapped[int] = mapped_column(Integer)
    archived_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    archived_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_order_templates_customer_id", "customer_id", "id"),)


class OrderTemplateVersionRow(Base):
    """One version of a template (never changed once written). ``content`` is the template
    (domain.pricing.TemplateContent) with customer and address PII sealed under ``owner``'s
    data key (db.vault), and the payment token and notes sealed as values."""

    __tablename__ = "order_template_versions"

    template_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("order_templates.id"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(80), doc="Customer id or template:<id>.")
    content: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(128))


# --- order intake: references and inbound webhooks (services.orders, services.inbound) ------


class OrderReferenceRow(Base):
    """A (source, external reference) pair claimed by one order, before its workflow starts:
    the database keeps the pair unique; a second create with it gets this order."""

    __tablename__ = "order_references"

    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    external_reference: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(128), doc="Who claimed it first.")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class InboundDeliveryRow(Base):
    """One signed inbound webhook delivery (``webhook-id``) per sender, recorded before it is
    acted on: ``acting`` while a request handles it (a lease: ``claimed_at``), ``done`` after.
    A delivery whose action failed is deleted, so the sender's retry acts again."""

    __tablename__ = "inbound_deliveries"

    sender: Mapped[str] = mapped_column(String(64), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), doc="carrier | payment")
    state: Mapped[str] = mapped_column(String(16), doc="acting | done")
    order_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


# --- spreadsheet imports (services.imports, activities.imports) ---------------------------------


class ImportRow(Base):
    """One spreadsheet import: its options, status and counts (written by the import's
    activities as the work goes on). The uploaded file is kept sealed (``security.sealing``)
    only until the import ends; the report keeps the problems and the rows they are on."""

    __tablename__ = "imports"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(8), doc="csv | xlsx")
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mode: Mapped[str] = mapped_column(String(16), doc="all-or-nothing | skip-invalid")
    dry_run: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16), doc="domain.imports.ImportStatus")
    counts: Mapped[dict[str, Any]] = mapped_column(doc="services.imports.ImportCounts")
    error: Mapped[str | None] = mapped_column(Text, nullable=True, doc="Why it failed.")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    file: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, doc="Sealed upload.")
    report: Mapped[bytes | None] = mapped_column(
        LargeBinary, nullable=True, doc="Sealed problems with the header and their rows."
    )

    __table_args__ = (
        Index("ix_imports_created_at", "created_at", "id"),
        Index("ix_imports_created_by", "created_by", "created_at"),
    )


class ImportOrderRow(Base):
    """One valid order of an import, in file order (``seq``), with its spec sealed until it
    is started; then the order id (``started``: created by this import; ``existing``: the
    reference was already imported; ``failed``: refused at start, ``message`` says why)."""

    __tablename__ = "import_orders"

    import_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_ref: Mapped[str] = mapped_column(String(64))
    first_row: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), doc="pending|started|existing|failed|cancelled")
    spec: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    attempted_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime(), nullable=True, doc="When a batch first tried to start it."
    )
    order_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)


# --- reports (services.reports; kept by the projection, db.rollup) ------------------------------


class OrderLineRow(Base):
    """One line of an order as the reports see it (the projection rewrites them on amendment)."""

    __tablename__ = "order_lines"

    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(64), doc="products.category; 'uncategorised'.")
    quantity: Mapped[int] = mapped_column(BigInteger)
    unit_price: Mapped[Decimal] = mapped_column(Money)
    line_total: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))

    __table_args__ = (Index("ix_order_lines_sku", "sku", "order_id"),)


class ProductRow(Base):
    """A product's name and category (the reports' product dimension)."""

    __tablename__ = "products"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SalesDailyRow(Base):
    """Daily rollup per order: orders created that day (UTC), by their current status and
    dimensions. Kept incrementally by the projection (an order's contribution moves from its
    old key to its new one in the projection's transaction); ``sales_rep`` '' = none."""

    __tablename__ = "sales_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    region: Mapped[str] = mapped_column(String(64), primary_key=True)
    tier: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(32), primary_key=True)
    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    sales_rep: Mapped[str] = mapped_column(String(128), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    orders: Mapped[int] = mapped_column(BigInteger)
    units: Mapped[int] = mapped_column(BigInteger)
    revenue: Mapped[Decimal] = mapped_column(Money)
    refunds: Mapped[Decimal] = mapped_column(Money)


class SalesDailySkuRow(Base):
    """Daily rollup per order line (date x region x tier x sku x status): ``orders`` counts the
    orders holding the SKU; ``refunds`` is the order's refund shared over its lines by value."""

    __tablename__ = "sales_daily_sku"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    region: Mapped[str] = mapped_column(String(64), primary_key=True)
    tier: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(32), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    orders: Mapped[int] = mapped_column(BigInteger)
    units: Mapped[int] = mapped_column(BigInteger)
    revenue: Mapped[Decimal] = mapped_column(Money)
    refunds: Mapped[Decimal] = mapped_column(Money)

    __table_args__ = (Index("ix_sales_daily_sku_sku_day", "sku", "day"),)


class SalesMonthlySkuRow(Base):
    """``sales_daily_sku`` summed per calendar month (``month`` = its first day), kept by the
    same upkeep: a report over whole months (or ranking SKUs over a year) reads ~1/30 of the
    daily rows, the days at the range's edges still come from the daily table."""

    __tablename__ = "sales_monthly_sku"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    region: Mapped[str] = mapped_column(String(64), primary_key=True)
    tier: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(32), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    orders: Mapped[int] = mapped_column(BigInteger)
    units: Mapped[int] = mapped_column(BigInteger)
    revenue: Mapped[Decimal] = mapped_column(Money)
    refunds: Mapped[Decimal] = mapped_column(Money)


class SalesWeeklySkuRow(Base):
    """``sales_daily_sku`` summed per ISO week (``week`` = its Monday) over all regions and
    tiers, kept by the same upkeep: a per-SKU report by week that neither groups nor filters by
    region or tier reads one row per week, SKU, status and currency instead of one per day,
    region and tier; the days at the range's edges still come from the daily table."""

    __tablename__ = "sales_weekly_sku"

    week: Mapped[date] = mapped_column(Date, primary_key=True)
    status: Mapped[str] = mapped_column(String(32), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    orders: Mapped[int] = mapped_column(BigInteger)
    units: Mapped[int] = mapped_column(BigInteger)
    revenue: Mapped[Decimal] = mapped_column(Money)
    refunds: Mapped[Decimal] = mapped_column(Money)

    __table_args__ = (Index("ix_sales_weekly_sku_sku_week", "sku", "week"),)


class ReportExportRow(Base):
    """A report exported in the background (ReportExportWorkflow) and kept for download."""

    __tablename__ = "report_exports"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    report: Mapped[str] = mapped_column(String(32), doc="sales | operations | customers | ...")
    params: Mapped[dict[str, Any]] = mapped_column(doc="The report's query, as the API took it.")
    format: Mapped[str] = mapped_column(String(8), doc="csv | xlsx | png")
    status: Mapped[str] = mapped_column(String(16), doc="queued | running | done | failed")
    rows_done: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    content: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    subscription_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    __table_args__ = (Index("ix_report_exports_created_by", "created_by", "created_at"),)


class ReportSubscriptionRow(Base):
    """A manager's scheduled report (a Temporal Schedule starts its export every period)."""

    __tablename__ = "report_subscriptions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    principal: Mapped[str] = mapped_column(String(128))
    report: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column()
    format: Mapped[str] = mapped_column(String(8))
    cadence: Mapped[str] = mapped_column(String(16), doc="weekly")
    email: Mapped[str | None] = mapped_column(Text, nullable=True, doc="Sealed; None: store only.")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ProductRuleRow(Base):
    """An association rule "orders with ``antecedent`` also hold ``consequent``" (domain.basket),
    replaced as a whole by each scheduled recomputation."""

    __tablename__ = "product_rules"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    antecedent: Mapped[list[str]] = mapped_column()
    consequent: Mapped[str] = mapped_column(String(64))
    support: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    lift: Mapped[float] = mapped_column(Float)
    orders: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class DemandForecastRow(Base):
    """The latest weekly demand forecast of one SKU in one region ('*': all regions)."""

    __tablename__ = "demand_forecasts"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    region: Mapped[str] = mapped_column(String(64), primary_key=True)
    method: Mapped[str] = mapped_column(String(16))
    history_weeks: Mapped[int] = mapped_column(Integer)
    backtest_weeks: Mapped[int] = mapped_column(Integer)
    backtest_smape: Mapped[float | None] = mapped_column(Float, nullable=True)
    points: Mapped[list[Any]] = mapped_column(doc="[{week, quantity, lower, upper}]")
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime())


# --- outbound webhooks (services.webhooks, activities.webhooks) ----------------------------------


class WebhookEndpointRow(Base):
    """A subscriber's endpoint: where an order's events go, signed with its secrets.

    ``secrets`` is sealed (``security.sealing``): the list of (secret, until) the deliveries
    are signed with, newest first; a rotated-out one signs until its ``until``. ``cursor`` is
    the last event log id the delivery workflow has turned into deliveries."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list[str]] = mapped_column(doc="[] = every event type")
    description: Mapped[str] = mapped_column(String(500), default="")
    enabled: Mapped[bool] = mapped_column(Boolean)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    secrets: Mapped[bytes] = mapped_column(LargeBinary)
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    since: Mapped[int] = mapped_column(
        BigInteger, default=0, doc="Events up to this id are never delivered (before creation)."
    )
    failing_since: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class WebhookDeliveryRow(Base):
    """One event for one endpoint: its attempts so far and what comes next. Unique per
    (endpoint, order, seq), so an event re-logged under a new cursor is delivered once."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    endpoint_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_id: Mapped[int] = mapped_column(BigInteger, doc="order_events.id (the feed cursor)")
    order_id: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), doc="pending | delivered | failed | dead")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_latency_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    __table_args__ = (
        UniqueConstraint("endpoint_id", "order_id", "seq"),
        Index("ix_webhook_deliveries_endpoint_status", "endpoint_id", "status", "order_id", "seq"),
        Index("ix_webhook_deliveries_endpoint_event", "endpoint_id", "event_id"),
        {"sqlite_autoincrement": True},
    )
