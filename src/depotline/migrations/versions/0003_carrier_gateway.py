"""Carrier gateway: carrier accounts, phone numbers, SMS, opt-outs, usage, webhook receipts.

Revision ID: 0003_carrier_gateway
Revises: 0002_tenancy
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from depotline.migrations.rls import create_tenant_owned_table, enable_tenant_rls, grant_app

revision: str = "0003_carrier_gateway"
down_revision: str | None = "0002_tenancy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


VISIBLE_TENANTS = """
        CREATE OR REPLACE FUNCTION depotline_visible_tenants() RETURNS uuid[]
        LANGUAGE plpgsql STABLE AS $$
        DECLARE scope text := nullif(current_setting('app.tenant_id', true), '');
        DECLARE visible uuid[];
        BEGIN
          IF scope IS NULL THEN
            IF depotline_current_user() IS NULL%s THEN
              RAISE EXCEPTION 'no tenant scope set for this transaction'
                USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN '{}'::uuid[];  -- a declared, narrower scope: no tenant's rows through this
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
NUMBER_LOOKUP = " AND nullif(current_setting('app.number_lookup', true), '') IS NULL"


def upgrade() -> None:
    # A webhook's number lookup is a scope of its own (one phone_numbers row, nothing else).
    op.execute(VISIBLE_TENANTS % NUMBER_LOOKUP)
    # Outbox events may wait before being handed over (retries with backoff).
    op.add_column(
        "outbox_events",
        sa.Column("available_at", TS, nullable=False, server_default=sa.func.now()),
    )
    create_tenant_owned_table(
        "carrier_accounts",
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("settings", postgresql.JSONB(), nullable=False),
        sa.Column("credentials_encrypted", sa.Text(), nullable=False),
        sa.Column("sender_id", sa.Text(), nullable=True),
        sa.Column("sms_per_second", sa.Float(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint(
            "provider in ('simulator', 'twilio', 'kannel')", name="carrier_provider"
        ),
    )
    enable_tenant_rls("carrier_accounts")

    create_tenant_owned_table(
        "phone_numbers",
        sa.Column("e164", sa.Text(), nullable=False, unique=True),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("voice", sa.Boolean(), nullable=False),
        sa.Column("sms", sa.Boolean(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "account_id"], ["carrier_accounts.tenant_id", "carrier_accounts.id"]
        ),
    )
    # A carrier webhook names only the dialled number. The transaction that routes it declares
    # that one number in `app.number_lookup` and sees that one row, nothing else.
    enable_tenant_rls(
        "phone_numbers", read_also="e164 = current_setting('app.number_lookup', true)"
    )

    create_tenant_owned_table(
        "sms_messages",
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=True),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("from_number", sa.Text(), nullable=False),
        sa.Column("to_number", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("encoding", sa.Text(), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("provider_message_id", sa.Text(), nullable=True),
        sa.Column("error_code", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "message_id"),
    )
    op.create_index("ix_sms_messages_provider_id", "sms_messages", ["provider_message_id"])
    op.create_index("ix_sms_messages_tenant_created", "sms_messages", ["tenant_id", "created_at"])
    enable_tenant_rls("sms_messages", privileges="SELECT, INSERT, UPDATE")

    create_tenant_owned_table(
        "sms_opt_outs",
        sa.Column("phone", sa.Text(), nullable=False),
        sa.Column("keyword", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "phone"),
    )
    enable_tenant_rls("sms_opt_outs")

    create_tenant_owned_table(
        "usage_records",
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "kind", "source"),
    )
    enable_tenant_rls("usage_records", privileges="SELECT, INSERT")

    op.create_table(
        "carrier_event_receipts",
        sa.Column("provider", sa.Text(), primary_key=True),
        sa.Column("provider_event_id", sa.Text(), primary_key=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
    )
    grant_app("carrier_event_receipts", "SELECT, INSERT")


def downgrade() -> None:
    op.execute(VISIBLE_TENANTS % "")
    op.drop_column("outbox_events", "available_at")
    op.drop_table("carrier_event_receipts")
    for table in (
        "usage_records",
        "sms_opt_outs",
        "sms_messages",
        "phone_numbers",
        "carrier_accounts",
    ):
        op.drop_table(table)
