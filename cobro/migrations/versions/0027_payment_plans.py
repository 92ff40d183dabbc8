"""payment_plans and payment_plan_instalments: customers' payment plans (requested,
approved, rejected, completed, broken, cancelled) and their instalments.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-03 08:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import cobro.types

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "payment_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total_amount", cobro.types.Money(precision=18, scale=4), nullable=False),
        sa.Column("invoice_numbers", JSON, nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("requested_at", cobro.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("problems", JSON, nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", cobro.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("ended_at", cobro.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ruleset_hash", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_payment_plans_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_plans")),
    )
    op.create_index(
        op.f("ix_payment_plans_customer_id"), "payment_plans", ["customer_id"], unique=False
    )
    op.create_index(op.f("ix_payment_plans_status"), "payment_plans", ["status"], unique=False)
    op.create_table(
        "payment_plan_instalments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("amount", cobro.types.Money(precision=18, scale=4), nullable=False),
        sa.Column("paid_amount", cobro.types.Money(precision=18, scale=4), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("paid_at", cobro.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["payment_plans.id"],
            name=op.f("fk_payment_plan_instalments_plan_id_payment_plans"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_plan_instalments")),
        sa.UniqueConstraint("plan_id", "seq", name=op.f("uq_payment_plan_instalments_plan_id_seq")),
    )
    op.create_index(
        op.f("ix_payment_plan_instalments_plan_id"),
        "payment_plan_instalments",
        ["plan_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_payment_plan_instalments_plan_id"), table_name="payment_plan_instalments"
    )
    op.drop_table("payment_plan_instalments")
    op.drop_index(op.f("ix_payment_plans_status"), table_name="payment_plans")
    op.drop_index(op.f("ix_payment_plans_customer_id"), table_name="payment_plans")
    op.drop_table("payment_plans")
