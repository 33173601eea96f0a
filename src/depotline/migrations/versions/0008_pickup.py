"""Pickup and delivery orders, depots, zones, dispatch, tracking.

Revision ID: 0008_pickup
Revises: 0007_ivr_flows
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from depotline.migrations.rls import create_tenant_owned_table, enable_tenant_rls

revision: str = "0008_pickup"
down_revision: str | None = "0007_ivr_flows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
TEXTS = postgresql.ARRAY(sa.Text())
MONEY = sa.Numeric(12, 2)


def upgrade() -> None:
    create_tenant_owned_table(
        "pickup_settings",
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("order_prefix", sa.Text(), nullable=False),
        sa.Column("same_day_cutoff", sa.Time(), nullable=False),
        sa.Column("min_window_minutes", sa.Integer(), nullable=False),
        sa.Column("lead_time_minutes", sa.Integer(), nullable=False),
        sa.Column("day_starts", sa.Time(), nullable=False),
        sa.Column("day_ends", sa.Time(), nullable=False),
        sa.Column("horizon_days", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id"),
    )
    enable_tenant_rls("pickup_settings")

    create_tenant_owned_table(
        "pickup_depots",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("city", sa.Text(), nullable=False),
        sa.Column("postal_code", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("opens_at", sa.Time(), nullable=False),
        sa.Column("closes_at", sa.Time(), nullable=False),
        sa.Column("open_days", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column("sms_contacts", TEXTS, nullable=False),
        sa.Column("language", sa.Text(), nullable=False),
        sa.Column("daily_capacity", sa.Integer(), nullable=True),
        sa.Column("slot_minutes", sa.Integer(), nullable=False),
        sa.Column("slot_capacity", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "name"),
    )
    # A depot's SMS reply is matched to the depot by the sender's number.
    op.create_index(
        "ix_pickup_depots_contacts", "pickup_depots", ["sms_contacts"], postgresql_using="gin"
    )
    enable_tenant_rls("pickup_depots")

    create_tenant_owned_table(
        "pickup_depot_users",
        sa.Column("depot_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "depot_id", "user_id"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "depot_id"], ["pickup_depots.tenant_id", "pickup_depots.id"]
        ),
    )
    enable_tenant_rls("pickup_depot_users")

    create_tenant_owned_table(
        "pickup_zones",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("depot_id", sa.Uuid(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("postal_codes", TEXTS, nullable=False),
        sa.Column("postal_prefixes", TEXTS, nullable=False),
        sa.Column("polygon", postgresql.JSONB(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "name"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "depot_id"], ["pickup_depots.tenant_id", "pickup_depots.id"]
        ),
    )
    enable_tenant_rls("pickup_zones")

    create_tenant_owned_table(
        "pickup_orders",
        sa.Column("number", sa.Text(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("confirmation_code", sa.Text(), nullable=False),
        sa.Column("tracking_token", sa.Text(), nullable=False, unique=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        *(
            column
            for party in ("sender", "receiver")
            for column in (
                sa.Column(f"{party}_name", sa.Text(), nullable=False),
                sa.Column(f"{party}_phone", sa.Text(), nullable=True),
                sa.Column(f"{party}_address", sa.Text(), nullable=False),
                sa.Column(f"{party}_city", sa.Text(), nullable=False),
                sa.Column(f"{party}_postal_code", sa.Text(), nullable=False),
                sa.Column(f"{party}_lat", sa.Float(), nullable=True),
                sa.Column(f"{party}_lon", sa.Float(), nullable=True),
            )
        ),
        sa.Column("contact_phone", sa.Text(), nullable=True),
        sa.Column("language", sa.Text(), nullable=False),
        sa.Column("notify_sms", sa.Boolean(), nullable=False),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("window_end", TS, nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("parcels", postgresql.JSONB(), nullable=False),
        sa.Column("parcel_count", sa.Integer(), nullable=False),
        sa.Column("weight_kg", sa.Float(), nullable=False),
        sa.Column("declared_value", MONEY, nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("payment", sa.Text(), nullable=False),
        sa.Column("cash_amount", MONEY, nullable=True),
        sa.Column("depot_id", sa.Uuid(), nullable=True),
        sa.Column("zone_id", sa.Uuid(), nullable=True),
        sa.Column("depot_accepted_at", TS, nullable=True),
        sa.Column("driver_name", sa.Text(), nullable=True),
        sa.Column("picked_up_at", TS, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("exception_reason", sa.Text(), nullable=True),
        sa.Column("status_before_cancel", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column("request_hash", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("dispatched_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "number"),
        sa.UniqueConstraint("tenant_id", "year", "seq"),
        sa.CheckConstraint(
            "kind in ('pickup', 'delivery', 'pickup_and_delivery')", name="pickup_order_kind"
        ),
        sa.CheckConstraint(
            "payment in ('prepaid', 'cash_on_pickup', 'cash_on_delivery')",
            name="pickup_order_payment",
        ),
        sa.CheckConstraint("window_end > window_start", name="pickup_order_window"),
    )
    op.create_index(
        "ux_pickup_orders_idempotency",
        "pickup_orders",
        ["tenant_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_index("ix_pickup_orders_created", "pickup_orders", ["tenant_id", "created_at"])
    op.create_index("ix_pickup_orders_status", "pickup_orders", ["tenant_id", "status"])
    # Duplicate bookings are looked for by the customer's number (or profile).
    op.create_index("ix_pickup_orders_contact", "pickup_orders", ["tenant_id", "contact_phone"])
    op.create_index("ix_pickup_orders_sender", "pickup_orders", ["tenant_id", "sender_phone"])
    op.create_index("ix_pickup_orders_customer", "pickup_orders", ["tenant_id", "customer_id"])
    # Capacity: a depot's orders by the start of their window.
    op.create_index(
        "ix_pickup_orders_depot_window", "pickup_orders", ["tenant_id", "depot_id", "window_start"]
    )
    enable_tenant_rls("pickup_orders")

    create_tenant_owned_table(
        "pickup_order_events",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("from_status", sa.Text(), nullable=True),
        sa.Column("to_status", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor_kind", sa.Text(), nullable=False),
        sa.Column("actor_name", sa.Text(), nullable=False),
        sa.Column("actor_user_id", sa.Uuid(), nullable=True),
        sa.Column("depot_id", sa.Uuid(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("detail", postgresql.JSONB(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "order_id"], ["pickup_orders.tenant_id", "pickup_orders.id"]
        ),
    )
    op.create_index(
        "ix_pickup_order_events_order", "pickup_order_events", ["tenant_id", "order_id", "at"]
    )
    # The timeline is a record: it is added to, never rewritten.
    enable_tenant_rls("pickup_order_events", privileges="SELECT, INSERT")

    create_tenant_owned_table(
        "pickup_assignments",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("depot_id", sa.Uuid(), nullable=False),
        sa.Column("zone_id", sa.Uuid(), nullable=True),
        sa.Column("assigned_at", TS, nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=True),
        sa.Column("answered_at", TS, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("answered_by", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "order_id"], ["pickup_orders.tenant_id", "pickup_orders.id"]
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "depot_id"], ["pickup_depots.tenant_id", "pickup_depots.id"]
        ),
    )
    op.create_index("ix_pickup_assignments_order", "pickup_assignments", ["tenant_id", "order_id"])
    enable_tenant_rls("pickup_assignments")

    create_tenant_owned_table(
        "pickup_order_counters",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.UniqueConstraint("tenant_id", "year"),
    )
    enable_tenant_rls("pickup_order_counters")


def downgrade() -> None:
    for table in (
        "pickup_order_counters",
        "pickup_assignments",
        "pickup_order_events",
        "pickup_orders",
        "pickup_zones",
        "pickup_depot_users",
        "pickup_depots",
        "pickup_settings",
    ):
        op.drop_table(table)
