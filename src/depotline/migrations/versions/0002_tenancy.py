"""Tenancy: tenants, users, memberships, invitations, seats, audit log, API keys, SSO.

Revision ID: 0002_tenancy
Revises: 0001_kernel
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from depotline.migrations.rls import (
    VISIBLE,
    create_tenant_owned_table,
    enable_tenant_rls,
    grant_app,
)

revision: str = "0002_tenancy"
down_revision: str | None = "0001_kernel"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("slug", sa.Text(), nullable=False, unique=True),
        sa.Column("parent_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=True, index=True),
        sa.Column("timezone", sa.Text(), nullable=False, server_default="UTC"),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("kind in ('platform', 'client', 'operator')", name="tenant_kind"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("email", sa.Text(), nullable=False, unique=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("locale", sa.Text(), nullable=False, server_default="en"),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("email = lower(email)", name="user_email_lower"),
    )
    # Platform tables: readable by the app, scoped by the repositories.
    grant_app("tenants", "SELECT, INSERT, UPDATE")
    grant_app("users", "SELECT, INSERT, UPDATE")

    op.execute(
        """
        CREATE FUNCTION depotline_current_user() RETURNS uuid LANGUAGE sql STABLE AS $$
          SELECT nullif(current_setting('app.user_id', true), '')::uuid
        $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION depotline_visible_tenants() RETURNS uuid[] LANGUAGE plpgsql STABLE AS $$
        DECLARE scope text := nullif(current_setting('app.tenant_id', true), '');
        DECLARE visible uuid[];
        BEGIN
          IF scope IS NULL THEN
            IF depotline_current_user() IS NULL THEN
              RAISE EXCEPTION 'no tenant scope set for this transaction'
                USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN '{}'::uuid[];  -- a signed-in user with no tenant chosen sees no tenant's rows
          END IF;
          WITH RECURSIVE tree(id) AS (
            SELECT scope::uuid
            UNION
            SELECT t.id FROM tenants t JOIN tree ON t.parent_id = tree.id
          )
          SELECT array_agg(id) INTO visible FROM tree;
          RETURN visible;
        END $$;
        """
    )

    create_tenant_owned_table(
        "memberships",
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "user_id"),
    )
    # A user always sees their own memberships: that is how sign-in finds the user's tenants.
    enable_tenant_rls("memberships", read_also="user_id = depotline_current_user()")

    create_tenant_owned_table(
        "invitations",
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False, unique=True),
        sa.Column("invited_by", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("accepted_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    enable_tenant_rls("invitations")

    create_tenant_owned_table(
        "seat_leases",
        sa.Column("operator_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=True),
        sa.Column("seats", sa.Integer(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("seats >= 0", name="seat_lease_seats"),
        sa.CheckConstraint("ends_on IS NULL OR ends_on >= starts_on", name="seat_lease_period"),
    )
    op.create_index("ix_seat_leases_operator", "seat_leases", ["operator_id"])
    # The operator named on a lease sees it (to assign agents), but only the client changes it.
    enable_tenant_rls("seat_leases", read_also=f"operator_id = {VISIBLE}")

    create_tenant_owned_table(
        "seat_assignments",
        sa.Column("client_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
    )
    op.create_index("ix_seat_assignments_client", "seat_assignments", ["client_id", "user_id"])
    enable_tenant_rls("seat_assignments", read_also=f"client_id = {VISIBLE}")

    create_tenant_owned_table(
        "seat_sessions",
        sa.Column("lease_id", sa.Uuid(), nullable=False),
        sa.Column("operator_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=True),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("ended_by", sa.Uuid(), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "lease_id"], ["seat_leases.tenant_id", "seat_leases.id"]
        ),
    )
    op.create_index(
        "ux_seat_sessions_open",
        "seat_sessions",
        ["tenant_id", "user_id"],
        unique=True,
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.create_index("ix_seat_sessions_operator", "seat_sessions", ["operator_id"])
    # Operator supervisors see and free the seats their agents hold.
    enable_tenant_rls(
        "seat_sessions",
        privileges="SELECT, INSERT, UPDATE",
        read_also=f"operator_id = {VISIBLE}",
        write_also=f"operator_id = {VISIBLE}",
    )

    create_tenant_owned_table(
        "audit_log",
        sa.Column("at", TS, nullable=False),
        sa.Column("actor_user_id", sa.Uuid(), nullable=True),
        sa.Column("actor_tenant_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("record_type", sa.Text(), nullable=True),
        sa.Column("record_id", sa.Text(), nullable=True),
        sa.Column("ip", sa.Text(), nullable=True),
        sa.Column("detail", postgresql.JSONB(), nullable=False),
    )
    op.create_index("ix_audit_log_tenant_at", "audit_log", ["tenant_id", "at"])
    # Append-only for the app. An actor may add to the log of a tenant whose data it touched
    # (an operator freeing a client's seat), but reads only its own tenants' logs.
    enable_tenant_rls(
        "audit_log", privileges="SELECT, INSERT", write_also=f"actor_tenant_id = {VISIBLE}"
    )

    create_tenant_owned_table(
        "api_keys",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False, unique=True),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_used_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
    )
    enable_tenant_rls("api_keys", privileges="SELECT, INSERT, UPDATE")

    create_tenant_owned_table(
        "sso_configs",
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("client_secret_encrypted", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id"),
    )
    enable_tenant_rls("sso_configs")


def downgrade() -> None:
    for table in (
        "sso_configs",
        "api_keys",
        "audit_log",
        "seat_sessions",
        "seat_assignments",
        "seat_leases",
        "invitations",
        "memberships",
    ):
        op.drop_table(table)
    op.execute("DROP FUNCTION depotline_visible_tenants()")
    op.execute("DROP FUNCTION depotline_current_user()")
    op.drop_table("users")
    op.drop_table("tenants")
