"""Contact center: queues, agent skills and states, calls and offers.

Revision ID: 0004_contact_center
Revises: 0003_carrier_gateway
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from depotline.migrations.rls import create_tenant_owned_table, enable_tenant_rls

revision: str = "0004_contact_center"
down_revision: str | None = "0003_carrier_gateway"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    create_tenant_owned_table(
        "queues",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("strategy", sa.Text(), nullable=False),
        sa.Column("reservation_seconds", sa.Integer(), nullable=False),
        sa.Column("wrap_up_seconds", sa.Integer(), nullable=False),
        sa.Column("service_level_seconds", sa.Integer(), nullable=False),
        sa.Column("overflow_after_seconds", sa.Integer(), nullable=True),
        sa.Column("overflow_when_waiting", sa.Integer(), nullable=True),
        sa.Column("overflow_queue_id", sa.Uuid(), nullable=True),
        sa.Column("overflow_operator_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "name"),
        sa.CheckConstraint(
            "strategy in ('longest_idle', 'round_robin', 'least_talk', 'skill_first')",
            name="queue_strategy",
        ),
    )
    enable_tenant_rls("queues")

    create_tenant_owned_table(
        "agent_skills",
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("queue_id", sa.Uuid(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.UniqueConstraint("tenant_id", "user_id", "queue_id"),
        sa.ForeignKeyConstraint(["tenant_id", "queue_id"], ["queues.tenant_id", "queues.id"]),
    )
    enable_tenant_rls("agent_skills")

    create_tenant_owned_table(
        "agent_states",
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("home_tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("since", TS, nullable=False),
        sa.Column("current_call_id", sa.Uuid(), nullable=True),
        sa.Column("last_offered_at", TS, nullable=True),
        sa.Column("talk_seconds_today", sa.Integer(), nullable=False),
        sa.UniqueConstraint("tenant_id", "user_id"),
    )
    op.create_index("ix_agent_states_ready", "agent_states", ["tenant_id", "status", "since"])
    enable_tenant_rls("agent_states")

    create_tenant_owned_table(
        "calls",
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("provider_call_id", sa.Text(), nullable=False),
        sa.Column("from_number", sa.Text(), nullable=False),
        sa.Column("to_number", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("queue_id", sa.Uuid(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("arrived_at", TS, nullable=False),
        sa.Column("queued_at", TS, nullable=True),
        sa.Column("overflowed_at", TS, nullable=True),
        sa.Column("offered_at", TS, nullable=True),
        sa.Column("answered_at", TS, nullable=True),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("wait_seconds", sa.Integer(), nullable=True),
        sa.Column("talk_seconds", sa.Integer(), nullable=True),
        sa.Column("disposition", sa.Text(), nullable=True),
        sa.Column("wrap_up_code", sa.Text(), nullable=True),
        sa.Column("language", sa.Text(), nullable=True),
        sa.Column("ivr_progress", postgresql.JSONB(), nullable=True),
        sa.Column("survey_score", sa.Integer(), nullable=True),
        sa.Column("callback_requested", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("tenant_id", "provider", "provider_call_id"),
    )
    # The routing query: the oldest, highest-priority waiting call.
    op.create_index(
        "ix_calls_waiting",
        "calls",
        ["tenant_id", sa.text("priority DESC"), "queued_at"],
        postgresql_where=sa.text("status = 'queued'"),
    )
    enable_tenant_rls("calls")

    create_tenant_owned_table(
        "call_offers",
        sa.Column("call_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("offered_at", TS, nullable=False),
        sa.Column("decided_at", TS, nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
    )
    op.create_index("ix_call_offers_agent", "call_offers", ["tenant_id", "agent_id", "offered_at"])
    enable_tenant_rls("call_offers")

    create_tenant_owned_table(
        "blocklist_entries",
        sa.Column("phone", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("removed_at", TS, nullable=True),
        sa.Column("removed_by", sa.Uuid(), nullable=True),
    )
    op.create_index(
        "ux_blocklist_active",
        "blocklist_entries",
        ["tenant_id", "phone"],
        unique=True,
        postgresql_where=sa.text("removed_at IS NULL"),
    )
    enable_tenant_rls("blocklist_entries", privileges="SELECT, INSERT, UPDATE")

    create_tenant_owned_table(
        "contact_center_settings",
        sa.Column("business_hours", postgresql.JSONB(), nullable=True),
        sa.Column("vip_numbers", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("survey_enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id"),
    )
    enable_tenant_rls("contact_center_settings")


def downgrade() -> None:
    for table in (
        "contact_center_settings",
        "blocklist_entries",
        "call_offers",
        "calls",
        "agent_states",
        "agent_skills",
        "queues",
    ):
        op.drop_table(table)
