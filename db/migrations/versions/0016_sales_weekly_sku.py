"""sales_weekly_sku: the per-SKU rollup summed per ISO week over regions and tiers, filled
from sales_daily_sku

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(18, 4)
_KEY = ("status", "sku", "category", "currency")


def upgrade() -> None:
    op.create_table(
        "sales_weekly_sku",
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("orders", sa.BigInteger(), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("revenue", MONEY, nullable=False),
        sa.Column("refunds", MONEY, nullable=False),
        sa.PrimaryKeyConstraint("week", *_KEY, name=op.f("pk_sales_weekly_sku")),
    )
    op.create_index("ix_sales_weekly_sku_sku_week", "sales_weekly_sku", ["sku", "week"])
    # Existing daily rows summed into ISO weeks (Monday first; empty on a new database).
    if op.get_bind().dialect.name == "postgresql":
        week = "date_trunc('week', day)::date"
    else:
        week = "date(day, 'weekday 0', '-6 days')"
    keys = ", ".join(_KEY)
    op.execute(
        f"INSERT INTO sales_weekly_sku (week, {keys}, orders, units, revenue, refunds) "
        f"SELECT {week}, {keys}, sum(orders), sum(units), sum(revenue), sum(refunds) "
        f"FROM sales_daily_sku GROUP BY {week}, {keys}"
    )


def downgrade() -> None:
    op.drop_index("ix_sales_weekly_sku_sku_week", table_name="sales_weekly_sku")
    op.drop_table("sales_weekly_sku")
