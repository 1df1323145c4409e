"""customer master data and classification

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.models import UtcDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("credit_limit", sa.Numeric(18, 4), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("suggested_tier", sa.String(length=16), nullable=True),
        sa.Column("erased_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    op.create_index("ix_customers_region_id", "customers", ["region", "id"])
    op.create_index("ix_customers_tier_id", "customers", ["tier", "id"])
    op.create_table(
        "customer_changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("change", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_changes_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_changes")),
        sqlite_autoincrement=True,  # ids order the changes: never reuse one
    )
    op.create_index("ix_customer_changes_customer_id_id", "customer_changes", ["customer_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_customer_changes_customer_id_id", table_name="customer_changes")
    op.drop_table("customer_changes")
    op.drop_index("ix_customers_tier_id", table_name="customers")
    op.drop_index("ix_customers_region_id", table_name="customers")
    op.drop_table("customers")
