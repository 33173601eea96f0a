"""Pickup notifications: SMS templates per tenant and language, depot replies, reminders.

Also the public tracking page's way in: `pickup_tracking_links` (token -> tenant and order),
written by a trigger in the same statement that books an order. The page has no tenant scope;
like a carrier webhook's number lookup (0003), its transaction declares the one token it looks
up in `app.tracking_lookup` and row-level security lets exactly that link through.

Revision ID: 0009_pickup_notifications
Revises: 0008_pickup
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from depotline.migrations.rls import create_tenant_owned_table, enable_tenant_rls

revision: str = "0009_pickup_notifications"
down_revision: str | None = "0008_pickup"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)

# 0003's function, with one more declared narrow scope (each sees only its one row).
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
TRACKING_LOOKUP = " AND nullif(current_setting('app.tracking_lookup', true), '') IS NULL"

LINK_ON_BOOKING = """
        CREATE FUNCTION pickup_link_tracking_token() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          INSERT INTO pickup_tracking_links (tenant_id, id, token, order_id, created_at)
          VALUES (NEW.tenant_id, gen_random_uuid(), NEW.tracking_token, NEW.id, now());
          RETURN NEW;
        END $$;
"""


def upgrade() -> None:
    op.execute(VISIBLE_TENANTS % (NUMBER_LOOKUP + TRACKING_LOOKUP))

    create_tenant_owned_table(
        "pickup_sms_templates",
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("language", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "kind", "language"),
    )
    enable_tenant_rls("pickup_sms_templates")

    create_tenant_owned_table(
        "pickup_notification_settings",
        sa.Column("depot_answer_minutes", sa.Integer(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id"),
        sa.CheckConstraint(
            "depot_answer_minutes between 1 and 1440", name="pickup_depot_answer_minutes"
        ),
    )
    enable_tenant_rls("pickup_notification_settings")

    create_tenant_owned_table(
        "pickup_tracking_links",
        sa.Column("token", sa.Text(), nullable=False, unique=True),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "order_id"], ["pickup_orders.tenant_id", "pickup_orders.id"]
        ),
    )
    # Written with the order, never changed: the app role may read and add.
    enable_tenant_rls(
        "pickup_tracking_links",
        privileges="SELECT, INSERT",
        read_also="token = current_setting('app.tracking_lookup', true)",
    )
    op.execute(LINK_ON_BOOKING)
    op.execute(
        "CREATE TRIGGER pickup_orders_tracking_link AFTER INSERT ON pickup_orders "
        "FOR EACH ROW EXECUTE FUNCTION pickup_link_tracking_token()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER pickup_orders_tracking_link ON pickup_orders")
    op.execute("DROP FUNCTION pickup_link_tracking_token()")
    for table in (
        "pickup_tracking_links",
        "pickup_notification_settings",
        "pickup_sms_templates",
    ):
        op.drop_table(table)
    op.execute(VISIBLE_TENANTS % NUMBER_LOOKUP)
