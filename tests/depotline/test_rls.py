"""Row-level security, as the app role: tenant A never sees or writes tenant B's rows, and a
query without a tenant scope fails instead of returning everyone's rows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from depotline.db import Database, NoTenantScopeError, TenantOwned, tenant_scope
from depotline.migrations.rls import enable_tenant_rls

A = uuid.UUID("00000000-0000-0000-0000-00000000000a")
B = uuid.UUID("00000000-0000-0000-0000-00000000000b")


def _create_scratch_table(connection: Connection) -> None:
    connection.execute(text("DROP TABLE IF EXISTS rls_scratch"))
    connection.execute(
        text(
            "CREATE TABLE rls_scratch (tenant_id uuid NOT NULL, id uuid NOT NULL, "
            "note text, PRIMARY KEY (tenant_id, id))"
        )
    )
    with Operations.context(MigrationContext.configure(connection)):
        enable_tenant_rls("rls_scratch")  # the same helper the migrations use


@pytest.fixture
async def scratch(owner_engine: AsyncEngine, db: Database) -> AsyncIterator[None]:
    async with owner_engine.begin() as conn:
        await conn.run_sync(_create_scratch_table)
    for tenant in (A, B):
        with tenant_scope(tenant):
            async with db.session() as session:
                await session.execute(
                    text("insert into rls_scratch values (:t, :i, :n)"),
                    {"t": tenant, "i": uuid.uuid4(), "n": f"row of {tenant}"},
                )
    yield
    async with owner_engine.begin() as conn:
        await conn.execute(text("DROP TABLE rls_scratch"))


async def test_scope_a_sees_only_its_rows(scratch: None, db: Database) -> None:
    with tenant_scope(A):
        async with db.session() as session:
            rows = (await session.execute(text("select tenant_id from rls_scratch"))).scalars()
            assert set(rows) == {A}


async def test_scope_a_cannot_insert_for_b(scratch: None, db: Database) -> None:
    with tenant_scope(A), pytest.raises(DBAPIError, match="row-level security"):
        async with db.session() as session:
            await session.execute(
                text("insert into rls_scratch values (:t, :i, 'forged')"),
                {"t": B, "i": uuid.uuid4()},
            )


async def test_scope_a_cannot_update_or_delete_b(scratch: None, db: Database) -> None:
    with tenant_scope(A):
        async with db.session() as session:
            updated = await session.execute(
                text("update rls_scratch set note = 'hijacked' where tenant_id = :t"), {"t": B}
            )
            deleted = await session.execute(
                text("delete from rls_scratch where tenant_id = :t"), {"t": B}
            )
            assert updated.rowcount == 0  # type: ignore[attr-defined]
            assert deleted.rowcount == 0  # type: ignore[attr-defined]
        with pytest.raises(DBAPIError, match="row-level security"):
            async with db.session() as session:
                await session.execute(text("update rls_scratch set tenant_id = :t"), {"t": B})
    with tenant_scope(B):
        async with db.session() as session:
            notes = (await session.execute(text("select note from rls_scratch"))).scalars()
            assert list(notes) == [f"row of {B}"]


async def test_no_scope_fails_instead_of_returning_all_rows(scratch: None, db: Database) -> None:
    with pytest.raises(DBAPIError, match="no tenant scope"):
        async with db.session() as session:
            await session.execute(text("select * from rls_scratch"))


async def test_scope_does_not_leak_to_the_next_transaction(scratch: None, db: Database) -> None:
    """The scope is transaction-local: a pooled connection never carries it to the next user."""
    with tenant_scope(A):
        async with db.session() as session:
            await session.execute(text("select 1 from rls_scratch"))
    with pytest.raises(DBAPIError, match="no tenant scope"):
        async with db.session() as session:
            await session.execute(text("select * from rls_scratch"))


def test_tenant_owned_rows_refuse_to_exist_without_a_scope() -> None:
    class Thing(TenantOwned):
        note: str = ""

    with pytest.raises(NoTenantScopeError):
        Thing(note="orphan")
    with tenant_scope(A):
        assert Thing(note="mine").tenant_id == A
