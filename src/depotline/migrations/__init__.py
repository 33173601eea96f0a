"""Alembic migrations: the only way the schema changes. `upgrade` / `downgrade` run them."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
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
