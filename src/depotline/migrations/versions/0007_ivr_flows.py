"""Tenant IVR flows, versioned and published; what callers hear while they wait and after.

Revision ID: 0007_ivr_flows
Revises: 0006_agent_desktop
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from depotline.migrations.rls import create_tenant_owned_table, enable_tenant_rls

revision: str = "0007_ivr_flows"
down_revision: str | None = "0006_agent_desktop"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    create_tenant_owned_table(
        "ivr_flow_versions",
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("document", postgresql.JSONB(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
        sa.Column("author_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("published_at", TS, nullable=True),
        sa.Column("published_by", sa.Uuid(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("retired_at", TS, nullable=True),
        sa.UniqueConstraint("tenant_id", "number"),
        sa.CheckConstraint("status in ('draft', 'published', 'retired')", name="ivr_flow_status"),
    )
    # At most one version of a tenant's flow is live.
    op.create_index(
        "ux_ivr_flow_published",
        "ivr_flow_versions",
        ["tenant_id"],
        unique=True,
        postgresql_where=sa.text("status = 'published'"),
    )
    # Versions are history: never deleted.
    enable_tenant_rls("ivr_flow_versions", privileges="SELECT, INSERT, UPDATE")

    # Past this wait a caller is offered voicemail or a callback (none: never offered).
    op.add_column("queues", sa.Column("callback_offer_after_seconds", sa.Integer(), nullable=True))
    # The number callers are told when an agent answers (工号), unique in the tenant.
    op.add_column("agent_states", sa.Column("agent_number", sa.Text(), nullable=True))
    op.create_unique_constraint(
        "uq_agent_states_number", "agent_states", ["tenant_id", "agent_number"]
    )
    # The agent number the caller was told, and where a voicemail left on the call is.
    op.add_column("calls", sa.Column("agent_number", sa.Text(), nullable=True))
    op.add_column("calls", sa.Column("voicemail_url", sa.Text(), nullable=True))
    # The expected wait told to callers averages the talk time of a queue's recent calls.
    op.create_index("ix_calls_queue_ended", "calls", ["tenant_id", "queue_id", "ended_at"])


def downgrade() -> None:
    op.drop_index("ix_calls_queue_ended", "calls")
    op.drop_column("calls", "voicemail_url")
    op.drop_column("calls", "agent_number")
    op.drop_constraint("uq_agent_states_number", "agent_states")
    op.drop_column("agent_states", "agent_number")
    op.drop_column("queues", "callback_offer_after_seconds")
    op.drop_table("ivr_flow_versions")
