"""Kernel: the app role, the tenant-scope function, the transactional outbox.

Revision ID: 0001_kernel
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from depotline.config import APP_ROLE
from depotline.migrations.rls import grant_app

revision: str = "0001_kernel"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Roles are cluster-wide: create the app role once, never with more than it needs.
    op.execute(
        f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
            CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
          END IF;
        END $$;
        """
    )
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    op.execute(
        """
        CREATE FUNCTION depotline_current_tenant() RETURNS uuid
        LANGUAGE plpgsql STABLE AS $$
        DECLARE scope text := current_setting('app.tenant_id', true);
        BEGIN
          IF scope IS NULL OR scope = '' THEN
            RAISE EXCEPTION 'no tenant scope set for this transaction'
              USING ERRCODE = 'insufficient_privilege';
          END IF;
          RETURN scope::uuid;
        END $$;
        """
    )
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.Uuid(), primary_key=True),
        # Nullable: platform-level events belong to no tenant. The outbox is read only by the
        # relay, never served by a route, so it carries no row-level policy.
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_index(
        "ix_outbox_events_pending",
        "outbox_events",
        ["created_at"],
        postgresql_where=sa.text("processed_at IS NULL"),
    )
    grant_app("outbox_events", "SELECT, INSERT, UPDATE")


def downgrade() -> None:
    op.drop_index("ix_outbox_events_pending", table_name="outbox_events")
    op.drop_table("outbox_events")
    op.execute("DROP FUNCTION depotline_current_tenant()")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}")
