"""Outbox priorities: URGENT (0), SOON (1), NORMAL (2), and a NOTIFY that names the most urgent.

SOON sits between the two of 0010: SMS already queued in the gateway wait for their carrier
after a booking's dispatch, but before bookkeeping. Pending normal events move from 1 to 2.
The commit's notification now carries the most urgent priority the statement inserted, so a
busy worker claims an URGENT event at once instead of after the line it holds.

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


def _trigger(function_body: str, referencing: str) -> None:
    op.execute("DROP TRIGGER outbox_events_notify ON outbox_events")
    op.execute(
        "CREATE OR REPLACE FUNCTION depotline_outbox_notify() RETURNS trigger "
        f"LANGUAGE plpgsql AS $$ BEGIN {function_body} RETURN NULL; END $$"
    )
    op.execute(
        f"CREATE TRIGGER outbox_events_notify AFTER INSERT ON outbox_events {referencing} "
        "FOR EACH STATEMENT EXECUTE FUNCTION depotline_outbox_notify()"
    )


def upgrade() -> None:
    op.execute("UPDATE outbox_events SET priority = 2 WHERE priority = 1 AND processed_at IS NULL")
    op.alter_column("outbox_events", "priority", server_default="2")
    _trigger(
        "PERFORM pg_notify('outbox_events', "
        "coalesce((SELECT min(priority) FROM inserted)::text, ''));",
        "REFERENCING NEW TABLE AS inserted",
    )


def downgrade() -> None:
    _trigger("PERFORM pg_notify('outbox_events', '');", "")
    op.execute("UPDATE outbox_events SET priority = 1 WHERE priority = 2 AND processed_at IS NULL")
    op.alter_column("outbox_events", "priority", server_default="1")
