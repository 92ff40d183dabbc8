"""login_throttles: failed dashboard log-ins per user name and per client address (growing
delays; a lockout that `cobro users unlock NAME` lifts)

Revision ID: 0022
Revises: 0018
Create Date: 2026-12-02 19:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cobro.types

revision: str = "0022"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_throttles",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", cobro.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_at", cobro.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kind", "key", name=op.f("pk_login_throttles")),
    )
    with op.batch_alter_table("login_throttles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_login_throttles_last_failure_at"), ["last_failure_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("login_throttles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_throttles_last_failure_at"))
    op.drop_table("login_throttles")
