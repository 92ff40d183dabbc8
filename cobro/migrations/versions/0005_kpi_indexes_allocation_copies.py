"""allocations carry their payment's date and their invoice's customer, currency and dates;
indexes for the KPIs and the rules' facts (open invoices, sales by issue date, allocations
by payment date and by customer, payments by customer and date)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COPIES = {
    "payment_date": ("payments", "date", "payment_id", sa.Date()),
    "customer_id": ("invoices", "customer_id", "invoice_id", sa.Integer()),
    "currency": ("invoices", "currency", "invoice_id", sa.String(length=3)),
    "issue_date": ("invoices", "issue_date", "invoice_id", sa.Date()),
    "due_date": ("invoices", "due_date", "invoice_id", sa.Date()),
}


def upgrade() -> None:
    with op.batch_alter_table("payment_allocations", schema=None) as batch_op:
        for name, (*_, type_) in COPIES.items():
            batch_op.add_column(sa.Column(name, type_, nullable=True))
    # existing allocations: copy from their payment and invoice
    sets = ", ".join(
        f"{name} = (SELECT {table}.{column} FROM {table}"
        f" WHERE {table}.id = payment_allocations.{key})"
        for name, (table, column, key, _) in COPIES.items()
    )
    op.execute(f"UPDATE payment_allocations SET {sets}")
    with op.batch_alter_table("payment_allocations", schema=None) as batch_op:
        for name, (*_, type_) in COPIES.items():
            batch_op.alter_column(name, existing_type=type_, nullable=False)
        batch_op.create_index(
            "ix_payment_allocations_payment_date",
            ["payment_date"],
            unique=False,
            postgresql_include=[
                "invoice_id",
                "customer_id",
                "currency",
                "issue_date",
                "due_date",
                "amount",
            ],
        )
        batch_op.create_index(
            "ix_payment_allocations_customer_id_payment_date",
            ["customer_id", "payment_date", "due_date"],
            unique=False,
        )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_customer_id")
        batch_op.create_index("ix_payments_customer_id_date", ["customer_id", "date"], unique=False)
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index(
            "ix_invoices_open",
            ["customer_id", "currency", "issue_date", "due_date", "open_amount", "disputed", "id"],
            unique=False,
            postgresql_where=sa.text("open_amount > 0"),
            sqlite_where=sa.text("open_amount > 0"),
        )
        batch_op.create_index(
            "ix_invoices_issue_date", ["issue_date", "currency", "amount"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_invoices_issue_date")
        batch_op.drop_index("ix_invoices_open")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_customer_id_date")
        batch_op.create_index("ix_payments_customer_id", ["customer_id"], unique=False)
    with op.batch_alter_table("payment_allocations", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_allocations_customer_id_payment_date")
        batch_op.drop_index("ix_payment_allocations_payment_date")
        for name in reversed(COPIES):
            batch_op.drop_column(name)
