"""order core v1: the event log replaces the timeline; parcels per shipment booking

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.models import UtcDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "order_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_events")),
        sa.UniqueConstraint("order_id", "seq", name=op.f("uq_order_events_order_id")),
        sqlite_autoincrement=True,  # never reuse an id: a replaced event gets a new one
    )
    op.create_index("ix_order_events_type_id", "order_events", ["type", "id"])
    op.drop_table("order_timeline")
    # Pre-v1 rows were test data only (nothing was released): the new key needs a fresh table.
    op.drop_table("sim_shipments")
    op.create_table(
        "sim_shipments",
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("parcel", sa.Integer(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("tracking_number", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", "parcel", name=op.f("pk_sim_shipments")),
        sa.UniqueConstraint("tracking_number", name=op.f("uq_sim_shipments_tracking_number")),
    )


def downgrade() -> None:
    # The event log's data does not fit the old tables: going back drops it.
    op.drop_table("sim_shipments")
    op.create_table(
        "sim_shipments",
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("tracking_number", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_sim_shipments")),
        sa.UniqueConstraint("tracking_number", name=op.f("uq_sim_shipments_tracking_number")),
    )
    op.create_table(
        "order_timeline",
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", "seq", name=op.f("pk_order_timeline")),
    )
    op.drop_index("ix_order_events_type_id", table_name="order_events")
    op.drop_table("order_events")
