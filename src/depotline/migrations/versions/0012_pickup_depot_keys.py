"""Pickup: API keys with the depot user role, linked to the depots they work for.

Revision ID: 0012_pickup_depot_keys
Revises: 0011_agent_engagements
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from depotline.migrations.rls import create_tenant_owned_table, enable_tenant_rls

revision: str = "0012_pickup_depot_keys"
down_revision: str | None = "0011_agent_engagements"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_tenant_owned_table(
        "pickup_depot_keys",
        sa.Column("depot_id", sa.Uuid(), nullable=False),
        sa.Column("api_key_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "depot_id", "api_key_id"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "depot_id"], ["pickup_depots.tenant_id", "pickup_depots.id"]
        ),
        sa.ForeignKeyConstraint(["tenant_id", "api_key_id"], ["api_keys.tenant_id", "api_keys.id"]),
    )
    enable_tenant_rls("pickup_depot_keys")


def downgrade() -> None:
    op.drop_table("pickup_depot_keys")
