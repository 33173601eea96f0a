"""End-customer profiles, phone numbers, addresses, contact timeline, imports.

Revision ID: 0005_customers
Revises: 0004_contact_center
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from depotline.migrations.rls import create_tenant_owned_table, enable_tenant_rls

revision: str = "0005_customers"
down_revision: str | None = "0004_contact_center"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def _of_customer(table: str) -> sa.ForeignKeyConstraint:
    # Deferred to commit: a new caller's number is claimed (ON CONFLICT) before the profile it
    # points to is written, so that two calls from one new number race on the number alone.
    return sa.ForeignKeyConstraint(
        ["tenant_id", "customer_id"],
        ["customers.tenant_id", "customers.id"],
        name=f"fk_{table}_customer",
        deferrable=True,
        initially="DEFERRED",
    )


def upgrade() -> None:
    create_tenant_owned_table(
        "customers",
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("tier", sa.Text(), nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("language", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("merged_into", sa.Uuid(), nullable=True),
    )
    op.create_index("ix_customers_updated", "customers", ["tenant_id", sa.text("updated_at DESC")])
    enable_tenant_rls("customers", privileges="SELECT, INSERT, UPDATE")

    create_tenant_owned_table(
        "customer_phones",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("e164", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "e164"),
        _of_customer("customer_phones"),
    )
    op.create_index("ix_customer_phones_customer", "customer_phones", ["tenant_id", "customer_id"])
    enable_tenant_rls("customer_phones")

    create_tenant_owned_table(
        "customer_addresses",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("line1", sa.Text(), nullable=False),
        sa.Column("line2", sa.Text(), nullable=False),
        sa.Column("district", sa.Text(), nullable=False),
        sa.Column("city", sa.Text(), nullable=False),
        sa.Column("postal_code", sa.Text(), nullable=False),
        sa.Column("country", sa.Text(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        _of_customer("customer_addresses"),
    )
    op.create_index(
        "ix_customer_addresses_customer", "customer_addresses", ["tenant_id", "customer_id"]
    )
    enable_tenant_rls("customer_addresses")

    create_tenant_owned_table(
        "customer_contacts",
        # Null while the end of a call is known and its start (with the caller) not yet.
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "kind", "ref"),
        sa.CheckConstraint("direction in ('inbound', 'outbound')", name="contact_direction"),
        _of_customer("customer_contacts"),
    )
    # The timeline and the screen pop's "recent contacts": newest first per customer.
    op.create_index(
        "ix_customer_contacts_timeline",
        "customer_contacts",
        ["tenant_id", "customer_id", sa.text("at DESC")],
    )
    enable_tenant_rls("customer_contacts", privileges="SELECT, INSERT, UPDATE")

    create_tenant_owned_table(
        "customer_imports",
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("default_region", sa.Text(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("report", postgresql.JSONB(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Uuid(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.CheckConstraint(
            "status in ('queued', 'running', 'done', 'failed')", name="customer_import_status"
        ),
    )
    op.create_index(
        "ix_customer_imports_recent", "customer_imports", ["tenant_id", sa.text("created_at DESC")]
    )
    enable_tenant_rls("customer_imports", privileges="SELECT, INSERT, UPDATE")

    create_tenant_owned_table(
        "customer_import_files",
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "id"],
            ["customer_imports.tenant_id", "customer_imports.id"],
            ondelete="CASCADE",
        ),
    )
    enable_tenant_rls("customer_import_files", privileges="SELECT, INSERT, DELETE")


def downgrade() -> None:
    for table in (
        "customer_import_files",
        "customer_imports",
        "customer_contacts",
        "customer_addresses",
        "customer_phones",
        "customers",
    ):
        op.drop_table(table)
