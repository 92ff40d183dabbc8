"""insurer_declarations (OVD, EXP, RES filed through the connector, exactly once by their
client reference) and insurer_claims (filed -> acknowledged -> indemnified or refused)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 10:15:44.711720
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import cobro.types

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "insurer_claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("invoice_number", sa.String(length=64), nullable=False),
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_amount", cobro.types.Money(precision=18, scale=4), nullable=False),
        sa.Column("indemnified_amount", cobro.types.Money(precision=18, scale=4), nullable=True),
        sa.Column("insured_percent", cobro.types.Money(precision=18, scale=4), nullable=False),
        sa.Column("insurer_reference", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("filed_on", sa.Date(), nullable=False),
        sa.Column("claim_by", sa.Date(), nullable=True),
        sa.Column("acknowledged_on", sa.Date(), nullable=True),
        sa.Column("indemnified_on", sa.Date(), nullable=True),
        sa.Column("refused_on", sa.Date(), nullable=True),
        sa.Column("filed_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", cobro.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cobro.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_insurer_claims_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_insurer_claims_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insurer_claims")),
        sa.UniqueConstraint("invoice_id", name=op.f("uq_insurer_claims_invoice_id")),
    )
    with op.batch_alter_table("insurer_claims", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_insurer_claims_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "insurer_declarations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("invoice_number", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=3), nullable=False),
        sa.Column("client_reference", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.String(length=64), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", cobro.types.Money(precision=18, scale=4), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=True),
        sa.Column("new_due_date", sa.Date(), nullable=True),
        sa.Column(
            "installments",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("overdue_id", sa.String(length=64), nullable=True),
        sa.Column("insurer_status", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("approved_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", cobro.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("filed_at", cobro.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("answered_at", cobro.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_insurer_declarations_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_insurer_declarations_invoice_id_invoices"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insurer_declarations")),
        sa.UniqueConstraint(
            "client_reference", name=op.f("uq_insurer_declarations_client_reference")
        ),
    )
    with op.batch_alter_table("insurer_declarations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_insurer_declarations_customer_status", ["customer_id", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_insurer_declarations_invoice_id"), ["invoice_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("insurer_declarations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_insurer_declarations_invoice_id"))
        batch_op.drop_index("ix_insurer_declarations_customer_status")

    op.drop_table("insurer_declarations")
    with op.batch_alter_table("insurer_claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_insurer_claims_customer_id"))

    op.drop_table("insurer_claims")
