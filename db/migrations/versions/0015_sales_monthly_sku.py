"""sales_monthly_sku: the per-SKU rollup summed per month, filled from sales_daily_sku

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(18, 4)
_KEY = ("region", "tier", "status", "sku", "category", "currency")


def upgrade() -> None:
    op.create_table(
        "sales_monthly_sku",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("orders", sa.BigInteger(), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("revenue", MONEY, nullable=False),
        sa.Column("refunds", MONEY, nullable=False),
        sa.PrimaryKeyConstraint("month", *_KEY, name=op.f("pk_sales_monthly_sku")),
    )
    # Existing daily rows summed into months (empty on a new database).
    if op.get_bind().dialect.name == "postgresql":
        month = "date_trunc('month', day)::date"
    else:
        month = "date(day, 'start of month')"
    keys = ", ".join(_KEY)
    op.execute(
        f"INSERT INTO sales_monthly_sku (month, {keys}, orders, units, revenue, refunds) "
        f"SELECT {month}, {keys}, sum(orders), sum(units), sum(revenue), sum(refunds) "
        f"FROM sales_daily_sku GROUP BY {month}, {keys}"
    )


def downgrade() -> None:
    op.drop_table("sales_monthly_sku")
