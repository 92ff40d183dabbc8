"""insurer quarantine entries stay open until a valid version of the record is applied; while
open they hold the incremental sync's window back (refetch_since)

Rows quarantined before this revision have no refetch_since: they are open, so the first
incremental sync after the upgrade is a full one, which closes them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 22:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cobro.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("insurer_quarantine", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("refetch_since", cobro.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("resolved_at", cobro.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("resolved_by_run_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("resolution", sa.String(length=16), nullable=True))
        batch_op.create_index(
            "ix_insurer_quarantine_record", ["insurer", "record_id"], unique=False
        )
        batch_op.create_index(
            "ix_insurer_quarantine_open", ["insurer", "resolved_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("insurer_quarantine", schema=None) as batch_op:
        batch_op.drop_index("ix_insurer_quarantine_open")
        batch_op.drop_index("ix_insurer_quarantine_record")
        batch_op.drop_column("resolution")
        batch_op.drop_column("resolved_by_run_id")
        batch_op.drop_column("resolved_at")
        batch_op.drop_column("refetch_since")
