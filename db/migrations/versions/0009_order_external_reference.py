"""orders.external_reference (indexed) for the console's search, filled from the snapshots

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_orders = sa.table(
    "orders",
    sa.column("id", sa.String()),
    sa.column("snapshot", sa.JSON()),
    sa.column("external_reference", sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("external_reference", sa.String(length=64), nullable=True))
        batch.create_index("ix_orders_external_reference", ["external_reference"])
    # Orders projected before this revision: the reference is a plain (not sealed) snapshot field.
    conn = op.get_bind()
    rows = conn.execute(sa.select(_orders.c.id, _orders.c.snapshot)).all()
    for order_id, snapshot in rows:
        reference = (snapshot or {}).get("external_reference")
        if reference:
            conn.execute(
                sa.update(_orders)
                .where(_orders.c.id == order_id)
                .values(external_reference=str(reference)[:64])
            )


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_index("ix_orders_external_reference")
        batch.drop_column("external_reference")
