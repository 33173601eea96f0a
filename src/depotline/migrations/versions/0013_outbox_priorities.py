"""Outbox priorities: URGENT (0), SOON (1), NORMAL (2).

SOON sits between the two of 0010: SMS already queued in the gateway wait for their carrier
after a booking's dispatch, but before bookkeeping. Pending normal events move from 1 to 2.

Revision ID: 0013_outbox_priorities
Revises: 0012_pickup_depot_keys
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_outbox_priorities"
down_revision: str | None = "0012_pickup_depot_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE outbox_events SET priority = 2 WHERE priority = 1 AND processed_at IS NULL")
    op.alter_column("outbox_events", "priority", server_default="2")


def downgrade() -> None:
    op.execute("UPDATE outbox_events SET priority = 1 WHERE priority = 2 AND processed_at IS NULL")
    op.alter_column("outbox_events", "priority", server_default="1")
