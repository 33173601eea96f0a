"""Tenant IVR flows, versioned and published.

Revision ID: 0007_ivr_flows
Revises: 0006_agent_desktop
Create Date: 2026-11-25
"""

from collections.abc import Sequence

revision: str = "0007_ivr_flows"
down_revision: str | None = "0006_agent_desktop"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
