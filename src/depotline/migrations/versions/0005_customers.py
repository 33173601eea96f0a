"""End-customer profiles, phone numbers, addresses, contact timeline, imports.

Revision ID: 0005_customers
Revises: 0004_contact_center
Create Date: 2026-11-25
"""

from collections.abc import Sequence

revision: str = "0005_customers"
down_revision: str | None = "0004_contact_center"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
