"""Agent desktop and supervisor console: reason codes, wrap-up codes, call controls.

Revision ID: 0006_agent_desktop
Revises: 0005_customers
Create Date: 2026-11-25
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from depotline.migrations.rls import create_tenant_owned_table, enable_tenant_rls

revision: str = "0006_agent_desktop"
down_revision: str | None = "0005_customers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def call_columns() -> list[sa.Column[Any]]:
    """What the desktop adds to a call: its wrap-up, hold time, the agents it passed through
    (transfers), a third party (three-way call) and the IVR path kept for the screen pop.
    Made fresh each time: a Column belongs to one table, and migrations may run twice."""
    return [
        sa.Column("wrap_up_notes", sa.Text(), nullable=True),
        sa.Column("wrapped_up_at", TS, nullable=True),
        sa.Column("held_since", TS, nullable=True),
        sa.Column("hold_seconds", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("agent_answered_at", TS, nullable=True),
        sa.Column("transferred_from", sa.Uuid(), nullable=True),
        sa.Column("transfer_note", sa.Text(), nullable=True),
        sa.Column(
            "legs", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")
        ),
        sa.Column("conference_with", sa.Text(), nullable=True),
        sa.Column("conference_since", TS, nullable=True),
        sa.Column("ivr_path", postgresql.JSONB(), nullable=True),
    ]


def agent_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("auto_answer", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("last_call_id", sa.Uuid(), nullable=True),
    ]


def upgrade() -> None:
    # A tenant's own not-ready reasons and wrap-up codes, in the order its agents see them.
    create_tenant_owned_table(
        "desk_codes",
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("kind in ('not_ready', 'wrap_up')", name="desk_code_kind"),
        sa.CheckConstraint("length(label) between 1 and 60", name="desk_code_label"),
    )
    op.create_index(
        "ux_desk_codes_active",
        "desk_codes",
        ["tenant_id", "kind", "label"],
        unique=True,
        postgresql_where=sa.text("active"),
    )
    enable_tenant_rls("desk_codes", privileges="SELECT, INSERT, UPDATE")
    for column in call_columns():
        op.add_column("calls", column)
    for column in agent_columns():
        op.add_column("agent_states", column)
    # Supervisor console: a forced not ready / sign out asked for during a call, applied at its end.
    op.add_column("agent_states", sa.Column("pending_status", sa.Text(), nullable=True))
    op.add_column("agent_states", sa.Column("pending_reason", sa.Text(), nullable=True))
    # The wallboard's "today": a tenant's calls by the moment they entered a queue.
    op.create_index("ix_calls_queued_at", "calls", ["tenant_id", "queued_at"])


def downgrade() -> None:
    op.drop_index("ix_calls_queued_at", table_name="calls")
    op.drop_column("agent_states", "pending_reason")
    op.drop_column("agent_states", "pending_status")
    for column in agent_columns():
        op.drop_column("agent_states", column.name)
    for column in call_columns():
        op.drop_column("calls", column.name)
    op.drop_table("desk_codes")
