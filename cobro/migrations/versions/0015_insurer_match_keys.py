"""insurer_match_keys: the customers' normalised identifiers of one sync run, so that each
page is matched by an indexed query instead of every customer held in memory

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 06:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "insurer_match_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sync_run_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_insurer_match_keys_lookup",
        "insurer_match_keys",
        ["sync_run_id", "value", "kind"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_insurer_match_keys_lookup", table_name="insurer_match_keys")
    op.drop_table("insurer_match_keys")
