"""Migrations apply to an empty database, downgrade cleanly and leave tenant tables protected."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from depotline import migrations
from depotline.migrations import create_database, drop_database


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("select tablename from pg_tables where schemaname = 'public'")
        )
        names = set(rows.scalars())
    await engine.dispose()
    return names


async def test_upgrade_downgrade_upgrade_on_an_empty_database(server_url: str) -> None:
    url = await create_database(server_url, "depotline_test_migrations_")
    try:
        assert await _tables(url) == set()
        await asyncio.to_thread(migrations.upgrade, url)
        after_upgrade = await _tables(url)
        assert {"alembic_version", "outbox_events"} <= after_upgrade
        await asyncio.to_thread(migrations.downgrade, url, "base")
        assert await _tables(url) == {"alembic_version"}
        await asyncio.to_thread(migrations.upgrade, url)
        assert await _tables(url) == after_upgrade
    finally:
        await drop_database(server_url, url)


async def test_every_tenant_owned_table_has_forced_row_level_security(owner_url: str) -> None:
    """A table with a tenant_id column is tenant-owned; each must be under a forced policy.
    (The outbox is the one exception: infrastructure read only by the relay, never by a route.)"""
    engine = create_async_engine(owner_url, poolclass=NullPool)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    """
                    select c.relname, c.relrowsecurity, c.relforcerowsecurity,
                           (select count(*) from pg_policy p where p.polrelid = c.oid)
                    from pg_class c
                    join pg_namespace n on n.oid = c.relnamespace
                    join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id'
                    where n.nspname = 'public' and c.relkind = 'r'
                    """
                )
            )
        ).all()
    await engine.dispose()
    unprotected = [
        name
        for name, enabled, forced, policies in rows
        if name != "outbox_events" and not (enabled and forced and policies >= 1)
    ]
    assert rows, "expected tenant-owned tables"
    assert unprotected == []


async def test_app_role_is_neither_superuser_nor_owner(owner_url: str, settings: object) -> None:
    from depotline.config import APP_ROLE

    engine = create_async_engine(owner_url, poolclass=NullPool)
    async with engine.connect() as conn:
        role = (
            await conn.execute(
                text("select rolsuper, rolbypassrls from pg_roles where rolname = :r"),
                {"r": APP_ROLE},
            )
        ).one()
        owned = await conn.scalar(
            text("select count(*) from pg_tables where tableowner = :r"), {"r": APP_ROLE}
        )
    await engine.dispose()
    assert role == (False, False)
    assert owned == 0
