"""Outsourced agents on several clients' floors: no seat, no call; one call at a time.

An operator's agent may hold seats of several clients and be on each one's floor (one
`agent_states` row per client). Every client routes on its own, under its own lock and scope.
Two rules hold in the database, whatever code reserves an agent (routing, a transfer):

- `depotline_holds_seat(client, user)`, the tenant domain's answer to "does this user hold an
  open seat of this client now" (read under the caller's row-level security), so the contact
  center asks it instead of reading seat sessions. Routing picks only seated outsourced agents.
- `agent_engagements`: one row per agent busy with a call (reserved, on it, wrapping up) on any
  floor, kept by a trigger on `agent_states`. It names no tenant (only that the agent is busy
  somewhere), so it is a platform table like `users`. Routing skips agents with a row.

The trigger refuses a reservation that breaks either rule by skipping the row (a BEFORE trigger
returning NULL): the statement that tried changes nothing for that agent and carries on, so a
race between two floors (both saw the agent free) never rings an agent twice, and never fails
the loser's transaction either: routing sees no reservation and picks again (the engagement
is visible by then), a transfer to that agent is refused as "not ready".

Revision ID: 0011_agent_engagements
Revises: 0010_outbox_notify
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from depotline.migrations.rls import grant_app

revision: str = "0011_agent_engagements"
down_revision: str | None = "0010_outbox_notify"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENGAGED = "('reserved', 'on_call', 'wrap_up')"


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION depotline_holds_seat(client uuid, person uuid) RETURNS boolean
        LANGUAGE sql STABLE AS $$
          SELECT EXISTS (SELECT FROM seat_sessions s
                         WHERE s.tenant_id = client AND s.user_id = person AND s.ended_at IS NULL)
        $$
        """
    )
    op.create_table(
        "agent_engagements",
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    )
    grant_app("agent_engagements", "SELECT, INSERT, DELETE")
    # Only outsourced agents (home tenant other than the floor's) work several floors.
    op.execute(
        f"""
        CREATE FUNCTION depotline_agent_engagement() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE was boolean := TG_OP = 'UPDATE' AND OLD.status IN {ENGAGED};
        DECLARE busy boolean := NEW.status IN {ENGAGED};
        BEGIN
          IF busy AND NOT was THEN
            IF NOT depotline_holds_seat(NEW.tenant_id, NEW.user_id) THEN
              RETURN NULL;  -- no seat of this client: not reserved
            END IF;
            INSERT INTO agent_engagements (user_id, since) VALUES (NEW.user_id, now())
            ON CONFLICT DO NOTHING;
            IF NOT FOUND THEN
              RETURN NULL;  -- busy on another floor: not reserved
            END IF;
          ELSIF was AND NOT busy THEN
            DELETE FROM agent_engagements WHERE user_id = NEW.user_id;
          END IF;
          RETURN NEW;
        END $$;
        """
    )
    op.execute(
        """
        CREATE TRIGGER agent_engagement BEFORE INSERT OR UPDATE OF status ON agent_states
        FOR EACH ROW WHEN (NEW.home_tenant_id <> NEW.tenant_id)
        EXECUTE FUNCTION depotline_agent_engagement()
        """
    )
    # Agents busy at the time of the upgrade (run as the owner, outside row-level security).
    op.execute(
        f"""
        INSERT INTO agent_engagements (user_id, since)
        SELECT DISTINCT user_id, now() FROM agent_states
        WHERE home_tenant_id <> tenant_id AND status IN {ENGAGED}
        ON CONFLICT DO NOTHING
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER agent_engagement ON agent_states")
    op.execute("DROP FUNCTION depotline_agent_engagement()")
    op.drop_table("agent_engagements")
    op.execute("DROP FUNCTION depotline_holds_seat(uuid, uuid)")
