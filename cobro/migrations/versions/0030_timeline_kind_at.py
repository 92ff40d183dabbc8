"""ix_timeline_events_kind_at: the customers' side of the portfolio (visits, replies, actions of
the last days) reads timeline events by kind and time, not by customer.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-03 12:45:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("timeline_events") as batch:
        batch.create_index("ix_timeline_events_kind_at", ["kind", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("timeline_events") as batch:
        batch.drop_index("ix_timeline_events_kind_at")
