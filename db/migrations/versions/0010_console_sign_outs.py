"""console sessions ended by signing out

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.models import UtcDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_sign_outs",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("until", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_console_sign_outs")),
    )
    op.create_index(
        op.f("ix_console_sign_outs_user_id"), "console_sign_outs", ["user_id"], unique=False
    )
    op.create_index(
        op.f("ix_console_sign_outs_until"), "console_sign_outs", ["until"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_console_sign_outs_until"), table_name="console_sign_outs")
    op.drop_index(op.f("ix_console_sign_outs_user_id"), table_name="console_sign_outs")
    op.drop_table("console_sign_outs")
