"""approval chains: inbox, conflicts, approver levels, reservation revisions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.models import UtcDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "approval_inbox",
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("eligible_level", sa.Integer(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("level_name", sa.String(length=64), nullable=False),
        sa.Column("waiting_since", UtcDateTime(), nullable=False),
        sa.Column("next_deadline", UtcDateTime(), nullable=True),
        sa.Column("next_deadline_kind", sa.String(length=16), nullable=True),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("customer_name", sa.String(length=200), nullable=False),
        sa.Column("customer_tier", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.PrimaryKeyConstraint("order_id", "eligible_level", name=op.f("pk_approval_inbox")),
    )
    op.create_index(
        "ix_approval_inbox_queue", "approval_inbox", ["eligible_level", "waiting_since"]
    )
    op.create_table(
        "approval_conflicts",
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("order_id", "actor", name=op.f("pk_approval_conflicts")),
    )
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(
            sa.Column("approval_levels", sa.JSON(), nullable=False, server_default="[]")
        )
    # Reservations get a revision (one per amendment): part of the primary key.
    with op.batch_alter_table("sim_stock_reservations", recreate="always") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
        batch.drop_constraint("pk_sim_stock_reservations", type_="primary")
        batch.create_primary_key(
            "pk_sim_stock_reservations", ["order_id", "revision", "sku"]
        )


def downgrade() -> None:
    with op.batch_alter_table("sim_stock_reservations", recreate="always") as batch:
        batch.drop_constraint("pk_sim_stock_reservations", type_="primary")
        batch.drop_column("revision")
        batch.create_primary_key("pk_sim_stock_reservations", ["order_id", "sku"])
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("approval_levels")
    op.drop_table("approval_conflicts")
    op.drop_index("ix_approval_inbox_queue", table_name="approval_inbox")
    op.drop_table("approval_inbox")
