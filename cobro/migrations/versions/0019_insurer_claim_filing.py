"""insurer_claims: the idempotent client reference a claim is filed with, the insurer's job,
when its decision was last asked for, the attempts, and the recovered amount (payments
allocated after the indemnity). It follows 0022 (login_throttles), which landed first on
0018: one line of revisions, 0018 -> 0022 -> 0019.

Revision ID: 0019
Revises: 0022
Create Date: 2026-12-02 19:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cobro.types

revision: str = "0019"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("insurer_claims", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_reference", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("job_id", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("checked_at", cobro.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column(
                "recovered_amount",
                cobro.types.Money(precision=18, scale=4),
                server_default="0",
                nullable=False,
            )
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_insurer_claims_client_reference"), ["client_reference"]
        )


def downgrade() -> None:
    with op.batch_alter_table("insurer_claims", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_insurer_claims_client_reference"), type_="unique")
        batch_op.drop_column("recovered_amount")
        batch_op.drop_column("attempts")
        batch_op.drop_column("checked_at")
        batch_op.drop_column("job_id")
        batch_op.drop_column("client_reference")
