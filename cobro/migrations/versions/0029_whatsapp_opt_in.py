"""customers.whatsapp_opt_in_at / whatsapp_opt_in_source: the customer's WhatsApp opt-in
(WhatsApp dunning steps are only sent to customers who gave one);
communications.provider_template: the approved WhatsApp template a message is sent as.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-03 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import cobro.types

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(
            sa.Column("whatsapp_opt_in_at", cobro.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("whatsapp_opt_in_source", sa.String(length=128), nullable=True))
    with op.batch_alter_table("communications") as batch:
        batch.add_column(
            sa.Column(
                "provider_template",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("communications") as batch:
        batch.drop_column("provider_template")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("whatsapp_opt_in_source")
        batch.drop_column("whatsapp_opt_in_at")
