"""Pickup and delivery orders, depots, zones, dispatch, tracking.

Revision ID: 0008_pickup
Revises: 0007_ivr_flows
Create Date: 2026-11-25
"""

from collections.abc import Sequence

revision: str = "0008_pickup"
down_revision: str | None = "0007_ivr_flows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
