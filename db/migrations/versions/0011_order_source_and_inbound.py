"""order source: orders.source and order_events.source, the (source, external_reference)
claims, and the inbound webhook deliveries

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.models import UtcDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_orders = sa.table(
    "orders",
    sa.column("id", sa.String()),
    sa.column("external_reference", sa.String()),
    sa.column("created_by", sa.String()),
    sa.column("created_at", UtcDateTime()),
)
_references = sa.table(
    "order_references",
    sa.column("source", sa.String()),
    sa.column("external_reference", sa.String()),
    sa.column("order_id", sa.String()),
    sa.column("created_by", sa.String()),
    sa.column("created_at", UtcDateTime()),
)


def upgrade() -> None:
    # Every order before this revision came through the API: source "api".
    with op.batch_alter_table("orders") as batch:
        batch.add_column(
            sa.Column("source", sa.String(length=16), server_default="api", nullable=False)
        )
        batch.drop_index("ix_orders_external_reference")
        batch.create_index("ix_orders_external_reference_source", ["external_reference", "source"])
    with op.batch_alter_table("order_events") as batch:
        batch.add_column(
            sa.Column("source", sa.String(length=16), server_default="api", nullable=False)
        )
        batch.create_index("ix_order_events_source_id", ["source", "id"])
    op.create_table(
        "order_references",
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("external_reference", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", "external_reference", name=op.f("pk_order_references")),
    )
    op.create_table(
        "inbound_deliveries",
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("webhook_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.String(length=32), nullable=True),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("claimed_at", UtcDateTime(), nullable=False),
        sa.Column("done_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("sender", "webhook_id", name=op.f("pk_inbound_deliveries")),
    )
    op.create_index(
        op.f("ix_inbound_deliveries_received_at"),
        "inbound_deliveries",
        ["received_at"],
        unique=False,
    )
    # Orders before this revision claim their reference (source "api"); where several share
    # one, the first created keeps it (the others stay readable, they just do not own it).
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(
            _orders.c.id, _orders.c.external_reference, _orders.c.created_by, _orders.c.created_at
        )
        .where(_orders.c.external_reference.is_not(None))
        .order_by(_orders.c.created_at, _orders.c.id)
    ).all()
    claimed: set[str] = set()
    for order_id, reference, created_by, created_at in rows:
        if reference in claimed:
            continue
        claimed.add(reference)
        conn.execute(
            sa.insert(_references).values(
                source="api",
                external_reference=reference,
                order_id=order_id,
                created_by=created_by,
                created_at=created_at,
            )
        )


def downgrade() -> None:
    op.drop_index(op.f("ix_inbound_deliveries_received_at"), table_name="inbound_deliveries")
    op.drop_table("inbound_deliveries")
    op.drop_table("order_references")
    # SQLite rebuilds the table to drop a column: keep its ids never reused.
    with op.batch_alter_table("order_events", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_index("ix_order_events_source_id")
        batch.drop_column("source")
    with op.batch_alter_table("orders") as batch:
        batch.drop_index("ix_orders_external_reference_source")
        batch.create_index("ix_orders_external_reference", ["external_reference"])
        batch.drop_column("source")
