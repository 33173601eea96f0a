"""Row-level security helpers for migrations.

Every tenant-owned table gets ENABLE + FORCE row-level security (FORCE so even the owner is
subject to it) and one policy whose USING and WITH CHECK compare `tenant_id` with the tenants the
transaction may see: `depotline_visible_tenants()`, the scoped tenant and its descendants (the
platform tenant is the root, an HQ sees its branches). With no scope at all the function raises.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from depotline.config import APP_ROLE

POLICY = "tenant_isolation"
VISIBLE = "ANY (depotline_visible_tenants())"


def enable_tenant_rls(
    table: str,
    *,
    privileges: str = "SELECT, INSERT, UPDATE, DELETE",
    read_also: str | None = None,
    write_also: str | None = None,
) -> None:
    """Protect `table`. `read_also` / `write_also` are extra SQL conditions under which a row is
    visible / writable too (e.g. a seat assignment is visible to the client it serves)."""
    using = f"tenant_id = {VISIBLE}" + (f" OR ({read_also})" if read_also else "")
    check = f"tenant_id = {VISIBLE}" + (f" OR ({write_also})" if write_also else "")
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({using}) WITH CHECK ({check})")
    grant_app(table, privileges)


def disable_tenant_rls(table: str) -> None:
    op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")


def grant_app(table: str, privileges: str = "SELECT, INSERT, UPDATE, DELETE") -> None:
    op.execute(f"GRANT {privileges} ON {table} TO {APP_ROLE}")


def create_tenant_owned_table(name: str, *items: sa.schema.SchemaItem) -> None:
    """A tenant-owned table: `tenant_id` (a tenant) leads the primary key, so every tenant's rows
    sit together and the table can be distributed by tenant later."""
    op.create_table(
        name,
        sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        *items,
        sa.PrimaryKeyConstraint("tenant_id", "id"),
    )
