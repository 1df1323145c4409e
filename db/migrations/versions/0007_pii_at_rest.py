"""per-customer data keys; PII sealed in the read model

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.models import UtcDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_keys",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("dek_id", sa.String(length=16), nullable=False),
        sa.Column("kek_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_keys")),
    )
    with op.batch_alter_table("approval_inbox") as batch:
        batch.alter_column(
            "customer_name", existing_type=sa.String(length=200), type_=sa.Text()
        )
    with op.batch_alter_table("sim_outbox") as batch:
        batch.add_column(
            sa.Column("owner", sa.String(length=80), nullable=False, server_default="")
        )
        batch.alter_column("recipient", existing_type=sa.String(length=320), type_=sa.Text())
    with op.batch_alter_table("sim_outbox") as batch:
        batch.alter_column("owner", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("sim_outbox") as batch:
        batch.alter_column("recipient", existing_type=sa.Text(), type_=sa.String(length=320))
        batch.drop_column("owner")
    with op.batch_alter_table("approval_inbox") as batch:
        batch.alter_column(
            "customer_name", existing_type=sa.Text(), type_=sa.String(length=200)
        )
    op.drop_table("customer_keys")
