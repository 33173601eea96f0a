"""Row-level security helpers for migrations.

Every tenant-owned table gets ENABLE + FORCE row-level security (FORCE so even the owner is
subject to it) and one policy whose USING and WITH CHECK both compare `tenant_id` with
`depotline_current_tenant()`, which raises when the transaction has no tenant scope.
"""

from __future__ import annotations

from alembic import op

from depotline.config import APP_ROLE

POLICY = "tenant_isolation"


def enable_tenant_rls(table: str, *, privileges: str = "SELECT, INSERT, UPDATE, DELETE") -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY {POLICY} ON {table} "
        "USING (tenant_id = depotline_current_tenant()) "
        "WITH CHECK (tenant_id = depotline_current_tenant())"
    )
    grant_app(table, privileges)


def disable_tenant_rls(table: str) -> None:
    op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")


def grant_app(table: str, privileges: str = "SELECT, INSERT, UPDATE, DELETE") -> None:
    op.execute(f"GRANT {privileges} ON {table} TO {APP_ROLE}")
