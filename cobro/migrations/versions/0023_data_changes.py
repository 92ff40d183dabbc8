"""data_changes: one row per committed statement that changed what the portfolio's figures
read (PostgreSQL statement triggers), so that a figure computed once is reused until the
data changes (`cobro.portfolio_cache`)

Revision ID: 0023
Revises: 0019
Create Date: 2026-12-02 22:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# what the portfolio's figures (KPIs, exposures, obligations, facts) read
WATCHED = (
    "customers",
    "invoices",
    "payments",
    "payment_allocations",
    "insurer_covers",
    "insurer_declarations",
    "insurer_claims",
    "risk_assessments",
    "grade_history",
    "dunning_pauses",
    "customer_fact_snapshots",
    "ruleset_versions",
)


def upgrade() -> None:
    op.create_table(
        "data_changes",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("weight", sa.BigInteger(), server_default="1", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_changes")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: no triggers, the figures are computed at every read
    op.execute(
        "CREATE FUNCTION cobro_note_data_change() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN INSERT INTO data_changes DEFAULT VALUES; RETURN NULL; END $$"
    )
    for table in WATCHED:
        op.execute(
            f"CREATE TRIGGER cobro_data_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
            f" ON {table} FOR EACH STATEMENT EXECUTE FUNCTION cobro_note_data_change()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            op.execute(f"DROP TRIGGER IF EXISTS cobro_data_change ON {table}")
        op.execute("DROP FUNCTION IF EXISTS cobro_note_data_change()")
    op.drop_table("data_changes")
