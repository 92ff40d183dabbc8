"""api_tokens: a scope (`read`: GET only; `act`: also the state-changing calls) and an
expiry. Tokens made before this revision keep working as they did: scope `act`, no expiry
(NULL). New tokens get both from `cobro users token` (default read, 90 days).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-02 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cobro.types

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scope", sa.String(length=8), nullable=False, server_default="act")
        )
        batch_op.add_column(
            sa.Column("expires_at", cobro.types.UTCDateTime(timezone=True), nullable=True)
        )
    # the server default only fills the rows that exist; new rows name their scope
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.alter_column(
            "scope", existing_type=sa.String(length=8), existing_nullable=False, server_default=None
        )


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
        batch_op.drop_column("scope")
