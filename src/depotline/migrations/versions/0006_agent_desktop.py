"""Agent desktop and supervisor console: reason codes, wrap-up codes, call controls.

Revision ID: 0006_agent_desktop
Revises: 0005_customers
Create Date: 2026-11-25
"""

from collections.abc import Sequence

revision: str = "0006_agent_desktop"
down_revision: str | None = "0005_customers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
