"""invoices: a partial index of the open credit notes (open_amount < 0), so the KPIs net
them from the receivables without scanning the invoices

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 05:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_invoices_open_credit",
        "invoices",
        ["currency", "issue_date", "due_date", "open_amount"],
        unique=False,
        postgresql_where=sa.text("open_amount < 0"),
        sqlite_where=sa.text("open_amount < 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_invoices_open_credit", table_name="invoices")
