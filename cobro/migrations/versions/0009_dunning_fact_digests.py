"""dunning fact digests: a workflow is signalled again only when its customer's facts changed

Revision ID: 0009_fact_digests
Revises: 0008
Create Date: 2026-12-01 22:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cobro.types

revision: str = "0009_fact_digests"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dunning_fact_digests",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("signal", sa.String(length=64), nullable=False),
        sa.Column("signalled_at", cobro.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_dunning_fact_digests_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_dunning_fact_digests")),
    )


def downgrade() -> None:
    op.drop_table("dunning_fact_digests")
