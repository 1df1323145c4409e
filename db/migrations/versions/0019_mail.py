"""email: the simulator's outbox becomes the real mail outbox (status, attempts, HTML part),
a cursor per event-log consumer, languages on customers and addresses on principals

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.models import UtcDateTime

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_sim_outbox_order_id", table_name="sim_outbox")
    op.rename_table("sim_outbox", "mail_outbox")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE mail_outbox RENAME CONSTRAINT pk_sim_outbox TO pk_mail_outbox")
    with op.batch_alter_table("mail_outbox") as batch:
        batch.alter_column("key", type_=sa.String(160), existing_nullable=False)
        batch.alter_column("order_id", existing_type=sa.String(32), nullable=True)
        batch.alter_column("subject", type_=sa.String(300), existing_nullable=False)
        batch.add_column(sa.Column("language", sa.String(8), nullable=False, server_default="en"))
        batch.add_column(sa.Column("html", sa.Text(), nullable=True))
        # rows of the simulator were "sent" when written
        batch.add_column(sa.Column("status", sa.String(12), nullable=False, server_default="sent"))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_attempt_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("claimed_until", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("sent_at", UtcDateTime(), nullable=True))
    op.create_index("ix_mail_outbox_order_id", "mail_outbox", ["order_id"])
    op.create_index("ix_mail_outbox_status_next", "mail_outbox", ["status", "next_attempt_at"])
    op.create_table(
        "consumer_cursors",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("since", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("language", sa.String(8), nullable=False, server_default="en"))
    for table in ("console_users", "api_keys"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("email", sa.String(254), nullable=True))


def downgrade() -> None:
    for table in ("console_users", "api_keys"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("email")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("language")
    op.drop_table("consumer_cursors")
    op.drop_index("ix_mail_outbox_status_next", table_name="mail_outbox")
    op.drop_index("ix_mail_outbox_order_id", table_name="mail_outbox")
    op.execute("DELETE FROM mail_outbox WHERE order_id IS NULL")
    with op.batch_alter_table("mail_outbox") as batch:
        for name in ("sent_at", "last_error", "claimed_until", "next_attempt_at", "attempts",
                     "status", "html", "language"):  # fmt: skip
            batch.drop_column(name)
        batch.alter_column("order_id", existing_type=sa.String(32), nullable=False)
    op.rename_table("mail_outbox", "sim_outbox")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE sim_outbox RENAME CONSTRAINT pk_mail_outbox TO pk_sim_outbox")
    op.create_index("ix_sim_outbox_order_id", "sim_outbox", ["order_id"])
