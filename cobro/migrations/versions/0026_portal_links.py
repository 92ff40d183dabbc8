"""portal_links: the customers' signed self-service links (expiry, revocation, last use,
requests per minute).

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-02 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cobro.types

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "portal_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("created_at", cobro.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("expires_at", cobro.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", cobro.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", cobro.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("window_start", cobro.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("window_hits", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_portal_links_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_links")),
    )
    op.create_index(
        op.f("ix_portal_links_customer_id"), "portal_links", ["customer_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_portal_links_customer_id"), table_name="portal_links")
    op.drop_table("portal_links")
