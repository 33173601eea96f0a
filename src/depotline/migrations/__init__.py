"""Alembic migrations: the only way the schema changes. `upgrade` / `downgrade` run them."""

from __future__ import annotations

import uuid
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from depotline.config import APP_ROLE, Settings

HERE = Path(__file__).resolve().parent


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


async def set_app_role_password(settings: Settings) -> None:
    """Give the app role its password from APP_DB_PASSWORD (never stored in the repo)."""
    if settings.app_db_password is None:
        return
    engine = create_async_engine(settings.owner_database_url, poolclass=NullPool)
    async with engine.begin() as conn:
        statement = await conn.scalar(
            text("select format('ALTER ROLE %I PASSWORD %L', :role, :password)"),
            {"role": APP_ROLE, "password": settings.app_db_password.get_secret_value()},
        )
        await conn.execute(text(str(statement)))
    await engine.dispose()


async def create_database(server_url: str, prefix: str) -> str:
    """Create an empty database named `<prefix><random>` on the server; return its owner URL.
    Tests and benchmarks each work in a database of their own."""
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(server_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    admin = create_async_engine(server_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()
