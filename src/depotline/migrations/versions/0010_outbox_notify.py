"""Outbox wake-up and priority.

Every commit that published events NOTIFYs `outbox_events`: a running worker LISTENs on that
channel and handles the events at once (`outbox.Consumer`) instead of finding them on its next
poll. Notifications are sent at commit, never for a rolled-back transaction, and PostgreSQL
folds identical ones of one transaction into one.

`priority` (0 urgent, 1 normal): in a backlog, events someone waits on are claimed first; the
pending index follows the claim's order.

Revision ID: 0010_outbox_notify
Revises: 0009_pickup_notifications
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_outbox_notify"
down_revision: str | None = "0009_pickup_notifications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "outbox_events",
        sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="1"),
    )
    op.drop_index("ix_outbox_events_pending", table_name="outbox_events")
    op.create_index(
        "ix_outbox_events_pending",
        "outbox_events",
        ["priority", "created_at"],
        postgresql_where=sa.text("processed_at IS NULL"),
    )
    op.execute(
        """
        CREATE FUNCTION depotline_outbox_notify() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM pg_notify('outbox_events', '');
          RETURN NULL;
        END $$;
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_events_notify AFTER INSERT ON outbox_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION depotline_outbox_notify()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER outbox_events_notify ON outbox_events")
    op.execute("DROP FUNCTION depotline_outbox_notify()")
    op.drop_index("ix_outbox_events_pending", table_name="outbox_events")
    op.create_index(
        "ix_outbox_events_pending",
        "outbox_events",
        ["created_at"],
        postgresql_where=sa.text("processed_at IS NULL"),
    )
    op.drop_column("outbox_events", "priority")
