"""forecast cache: the portfolio curve and each customer's payment profile as of a day

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import cobro.types

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "forecast_models",
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("fingerprint", sa.String(length=128), nullable=False),
        sa.Column(
            "portfolio",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("open_fingerprint", sa.String(length=160), nullable=True),
        sa.Column(
            "forecasts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("computed_at", cobro.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("as_of", name=op.f("pk_forecast_models")),
    )
    op.create_table(
        "forecast_profiles",
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("delay_days", sa.Integer(), nullable=False),
        sa.Column("spread_step", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("as_of", "customer_id", name=op.f("pk_forecast_profiles")),
    )


def downgrade() -> None:
    op.drop_table("forecast_profiles")
    op.drop_table("forecast_models")
