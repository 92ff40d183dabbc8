"""customer_search_text: customers.search_text, the name, account, SIREN, VAT and email
without case or accents (cobro.search), backfilled here, with a trigram index on PostgreSQL
(pg_trgm, for `LIKE '%nunez%'`) and a plain one on SQLite

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 10:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000


def upgrade() -> None:
    from cobro.search import search_text

    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("search_text", sa.Text(), server_default="", nullable=False))
    conn = op.get_bind()
    customers = sa.table(
        "customers",
        sa.column("id", sa.Integer),
        sa.column("account"),
        sa.column("name"),
        sa.column("siren"),
        sa.column("vat"),
        sa.column("email"),
        sa.column("search_text"),
    )
    last = 0
    while True:
        rows = conn.execute(
            sa.select(
                customers.c.id,
                customers.c.account,
                customers.c.name,
                customers.c.siren,
                customers.c.vat,
                customers.c.email,
            )
            .where(customers.c.id > last)
            .order_by(customers.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        conn.execute(
            customers.update()
            .where(customers.c.id == sa.bindparam("row_id"))
            .values(search_text=sa.bindparam("text")),
            [{"row_id": r.id, "text": search_text(*r[1:])} for r in rows],
        )
        last = rows[-1].id
    if conn.dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index(
            "ix_customers_search_text",
            "customers",
            ["search_text"],
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        )
    else:
        op.create_index("ix_customers_search_text", "customers", ["search_text"])


def downgrade() -> None:
    op.drop_index("ix_customers_search_text", table_name="customers")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("search_text")
