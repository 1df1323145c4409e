"""reports: order dimensions, order_lines, daily rollups, products, exports, subscriptions,
product rules and demand forecasts

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.models import UtcDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(18, 4)
_ORDER_COLUMNS = (
    sa.Column("sales_rep", sa.String(length=128), nullable=True),
    sa.Column("revision", sa.Integer(), server_default="0", nullable=False),
    sa.Column("refunded", MONEY, server_default="0", nullable=False),
    sa.Column("confirmed_at", UtcDateTime(), nullable=True),
    sa.Column("shipped_at", UtcDateTime(), nullable=True),
    sa.Column("delivered_at", UtcDateTime(), nullable=True),
    sa.Column("closed_at", UtcDateTime(), nullable=True),
    sa.Column("close_reason", sa.String(length=32), nullable=True),
)


def _figures() -> list[sa.Column]:
    return [
        sa.Column("orders", sa.BigInteger(), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("revenue", MONEY, nullable=False),
        sa.Column("refunds", MONEY, nullable=False),
    ]


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        for column in _ORDER_COLUMNS:
            batch.add_column(column.copy())
    op.create_table(
        "order_lines",
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("unit_price", MONEY, nullable=False),
        sa.Column("line_total", MONEY, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.PrimaryKeyConstraint("order_id", "line_no", name=op.f("pk_order_lines")),
    )
    op.create_index("ix_order_lines_sku", "order_lines", ["sku", "order_id"])
    op.create_table(
        "products",
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sku", name=op.f("pk_products")),
    )
    op.create_table(
        "sales_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("sales_rep", sa.String(length=128), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        *_figures(),
        sa.PrimaryKeyConstraint(
            "day",
            "region",
            "tier",
            "status",
            "source",
            "sales_rep",
            "currency",
            name=op.f("pk_sales_daily"),
        ),
    )
    op.create_table(
        "sales_daily_sku",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        *_figures(),
        sa.PrimaryKeyConstraint(
            "day",
            "region",
            "tier",
            "status",
            "sku",
            "category",
            "currency",
            name=op.f("pk_sales_daily_sku"),
        ),
    )
    op.create_index("ix_sales_daily_sku_sku_day", "sales_daily_sku", ["sku", "day"])
    op.create_table(
        "report_exports",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("report", sa.String(length=32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rows_done", sa.BigInteger(), nullable=False),
        sa.Column("rows_total", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("subscription_id", sa.String(length=32), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_exports")),
    )
    op.create_index("ix_report_exports_created_by", "report_exports", ["created_by", "created_at"])
    op.create_table(
        "report_subscriptions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("principal", sa.String(length=128), nullable=False),
        sa.Column("report", sa.String(length=32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("cadence", sa.String(length=16), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_subscriptions")),
    )
    op.create_table(
        "product_rules",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("antecedent", sa.JSON(), nullable=False),
        sa.Column("consequent", sa.String(length=64), nullable=False),
        sa.Column("support", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("lift", sa.Float(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("computed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_rules")),
    )
    op.create_table(
        "demand_forecasts",
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("history_weeks", sa.Integer(), nullable=False),
        sa.Column("backtest_weeks", sa.Integer(), nullable=False),
        sa.Column("backtest_smape", sa.Float(), nullable=True),
        sa.Column("points", sa.JSON(), nullable=False),
        sa.Column("computed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sku", "region", name=op.f("pk_demand_forecasts")),
    )


def downgrade() -> None:
    for table in (
        "demand_forecasts",
        "product_rules",
        "report_subscriptions",
        "report_exports",
        "sales_daily_sku",
        "sales_daily",
        "products",
        "order_lines",
    ):
        op.drop_table(table)
    with op.batch_alter_table("orders") as batch:
        for column in reversed(_ORDER_COLUMNS):
            batch.drop_column(column.name)
